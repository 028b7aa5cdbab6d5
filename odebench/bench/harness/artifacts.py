"""Content-addressed store of trained models: a state dict plus a JSON meta holding its SHA-256.

A model's key is the hash of everything that determines it (method config, dataset, source, net, training
config, seed, parent key). Loading checks the file's hash before ``torch.load(weights_only=True)``, so a
truncated or tampered checkpoint is reported, never unpickled.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import nn


class CorruptArtifact(RuntimeError):
    """A cached model file does not match its recorded hash (delete it and re-run to retrain)."""


def config_hash(config: Any) -> str:
    """SHA-256 (hex, first 16 chars) of a JSON-serialisable config, keys sorted."""
    blob = json.dumps(config, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def current_umask() -> int:
    """The process's umask, read without changing it where the system allows (Linux: /proc/self/status)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)  # elsewhere: set and restore at once
    os.umask(mask)
    return mask


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write via a temp file in the same folder, fsync, then os.replace: readers never see half a file.

    The file gets the mode an ordinary ``open(path, "w")`` would give (0o666 less the umask, 0o644 typically),
    not the 0o600 of a temp file, so a results folder can be shared.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            os.fchmod(fh.fileno(), 0o666 & ~current_umask())
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class ArtifactStore:
    """Models under ``root/<key>.pt`` with ``root/<key>.json`` (meta + sha256)."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    def paths(self, key: str) -> tuple[Path, Path]:
        return self.root / f"{key}.pt", self.root / f"{key}.json"

    def has(self, key: str) -> bool:
        weights, meta = self.paths(key)
        return weights.exists() and meta.exists()

    def save(self, key: str, model: nn.Module, meta: dict[str, Any]) -> None:
        import io

        weights, meta_path = self.paths(key)
        buf = io.BytesIO()
        torch.save(model.state_dict(), buf)
        atomic_write_bytes(weights, buf.getvalue())
        full = {**meta, "key": key, "sha256": sha256_file(weights)}
        atomic_write_bytes(meta_path, json.dumps(full, indent=2, sort_keys=True, default=str).encode())

    def load(self, key: str, model: nn.Module, device: str | torch.device = "cpu") -> dict[str, Any]:
        """Fill ``model`` with the stored weights; returns the meta. Raises CorruptArtifact on mismatch."""
        weights, meta_path = self.paths(key)
        try:
            meta = json.loads(meta_path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise CorruptArtifact(f"cannot read model meta {meta_path}: {exc}. Delete {weights} and "
                                  f"{meta_path} and re-run to retrain.") from exc
        actual = sha256_file(weights)
        if actual != meta.get("sha256"):
            raise CorruptArtifact(f"model file {weights} has sha256 {actual[:12]}..., its meta says "
                                  f"{str(meta.get('sha256'))[:12]}...: the file is corrupt. Delete {weights} "
                                  f"and {meta_path} and re-run to retrain.")
        state = torch.load(weights, map_location=device, weights_only=True)
        model.load_state_dict(state)
        return meta
