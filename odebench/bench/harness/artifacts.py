"""Content-addressed store of trained models: a state dict plus a JSON meta holding its SHA-256.

A model's key is the hash of everything that determines it (method config, dataset, source, net, training
config, seed, parent key). Weights are written as safetensors (tensors and a string header, no code at all);
caches written before hold torch pickles (``.pt``), which still load, through ``torch.load(weights_only=True)``.
Loading checks the file's hash first, so a truncated or tampered file is reported, never parsed; a file that
still fails to load or to fit the network is reported the same way (CorruptArtifact), never as a traceback.
Weights are published before the meta that points to them, so a kill between the two never forces a retrain
(see ArtifactStore).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from odebench.bench.core.hashing import sha256_file
from odebench.bench.harness.safe_paths import inside
from odebench.bench.harness.stale_files import temp_affixes


class CorruptArtifact(RuntimeError):
    """A cached model file does not match its recorded hash (delete it and re-run to retrain)."""


def config_hash(config: Any) -> str:
    """SHA-256 (hex, first 16 chars) of a JSON-serialisable config, keys sorted."""
    blob = json.dumps(config, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


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


def atomic_write_bytes(path: Path, data: bytes, *, root: str | Path) -> Path:
    """Write via a temp file in the same folder, fsync, then os.replace: readers never see half a file.

    ``root`` is the folder the write must stay in (safe_paths.inside; a relative ``path`` is relative to the
    current folder, as for ``open()``); returns the resolved path written. The temp file is
    ``.<name>.odebench-<random>.tmp`` (stale_files.temp_affixes: the one name the cleanup removes). The file gets
    the mode an ordinary ``open(path, "w")`` would give (0o666 less the umask, 0o644 typically), not the 0o600 of
    a temp file, so a results folder can be shared. An OSError (a full disk, a read-only folder) names ``path``:
    the temp file is gone and the old file, if any, is unchanged.
    """
    path = inside(root, path)
    prefix, suffix = temp_affixes(path.name)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=prefix, suffix=suffix)
    except OSError as exc:
        raise _naming(exc, path) from exc
    try:
        with os.fdopen(fd, "wb") as fh:
            os.fchmod(fh.fileno(), 0o666 & ~current_umask())
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise _naming(exc, path) from exc
        raise
    return path


def _naming(exc: OSError, path: Path) -> OSError:
    """``exc`` as the same kind of OSError (errno kept: ENOSPC, EACCES -> PermissionError, ...) naming ``path``."""
    if exc.errno is None or exc.filename == str(path):
        return exc
    return OSError(exc.errno, exc.strerror or os.strerror(exc.errno), str(path))


class ArtifactStore:
    """Models under ``root``: ``<key>.<sha16>.safetensors`` (weights, named by the first 16 hex digits of their
    SHA-256) and ``<key>.json`` (meta: the weights' file name and full SHA-256, training losses and seconds).

    Publishing order: the weights first, then the meta that points to them. A kill between the two renames
    leaves weights without meta; since the weights file also embeds the meta, an orphan whose content matches
    the hash in its name is the finished model (``has`` says so, ``load`` restores the meta file), so it is
    never trained again. Caches written before safetensors hold ``<key>.<sha16>.pt`` or, older still, ``<key>.pt``
    (torch pickles); they load unchanged, and orphans among them are recovered the same way.

    ``out_root`` is the folder every write must stay in (default ``root``); ``read_only`` stores (the
    report's) never write, not even to restore a meta.
    """

    def __init__(self, root: str | Path, *, out_root: str | Path | None = None, read_only: bool = False):
        # absolute from the start: ``inside(out_root, path)`` takes a relative path under out_root, so a
        # relative root ("results") would put every file one level too deep ("results/results/...")
        self.root = Path(root).absolute()
        self.out_root = Path(out_root).absolute() if out_root is not None else self.root
        self.read_only = read_only

    def meta_path(self, key: str) -> Path:
        return self.root / f"{key}.json"

    def read_meta(self, key: str) -> dict[str, Any] | None:
        """The meta of ``key`` if its file holds a JSON object, else None (missing, unreadable, not a dict)."""
        try:
            meta = json.loads(self.meta_path(key).read_text())
        except (OSError, ValueError):
            return None
        return meta if isinstance(meta, dict) else None

    def weights_path(self, key: str, meta: dict[str, Any] | None = None) -> Path:
        """The weights file ``meta`` names (a plain file name in ``root``), else the legacy ``<key>.pt``."""
        name = (meta or {}).get("weights")
        if isinstance(name, str) and _WEIGHTS_RE.fullmatch(name) and name.startswith(f"{key}."):
            return self.root / name
        return self.root / f"{key}.pt"

    def paths(self, key: str) -> tuple[Path, Path]:
        """(weights, meta) paths of ``key`` as its meta names them."""
        return self.weights_path(key, self.read_meta(key)), self.meta_path(key)

    def orphan(self, key: str) -> Path | None:
        """A hash-named weights file of ``key`` whose content matches its name, published without its meta."""
        for path in sorted(p for p in self.root.glob(f"{key}.*") if p.suffix in WEIGHTS_SUFFIXES):
            m = _WEIGHTS_RE.fullmatch(path.name)
            if m and m.group(1) == key and sha256_file(path)[:16] == m.group(2):
                return path
        return None

    def has(self, key: str) -> bool:
        meta = self.read_meta(key)
        if meta is not None and self.weights_path(key, meta).exists():
            return True
        return self.meta_path(key).exists() is False and self.orphan(key) is not None

    def save(self, key: str, model: nn.Module, meta: dict[str, Any]) -> None:
        from safetensors.torch import save

        if self.read_only:
            raise RuntimeError(f"model store {self.root} is read-only")
        embedded = json.dumps({**meta, "key": key}, sort_keys=True, default=str)
        # a copy of each tensor: safetensors refuses tensors that share memory, and the values are what count
        state = {k: v.detach().to("cpu", copy=True).contiguous() for k, v in model.state_dict().items()}
        data = save(state, metadata={META_FIELD: embedded})
        sha = hashlib.sha256(data).hexdigest()
        weights = self.root / f"{key}.{sha[:16]}{WEIGHTS_SUFFIX}"
        atomic_write_bytes(weights, data, root=self.out_root)  # first the weights, under their hash name
        full = {**meta, "key": key, "sha256": sha, "weights": weights.name}
        atomic_write_bytes(self.meta_path(key), json.dumps(full, indent=2, sort_keys=True, default=str).encode(),
                           root=self.out_root)  # then the meta that points to them

    def _payload(self, weights: Path, device) -> Any:
        """A safetensors file as {"state_dict", "meta"} (the layout of the pickles before it); a ``.pt`` as
        ``torch.load(weights_only=True)`` gives it."""
        try:
            if weights.suffix == WEIGHTS_SUFFIX:
                return read_safetensors(weights, device)
            return torch.load(weights, map_location=device, weights_only=True)
        except Exception as exc:  # a refused pickle, a truncated zip, a bad header, ...: never a traceback
            raise CorruptArtifact(f"cannot load model file {weights}: {type(exc).__name__}: {exc}. Delete it "
                                  f"and re-run to retrain.") from exc

    def _restore_meta(self, key: str, device) -> dict[str, Any]:
        """The meta of an orphaned weights file (embedded in it); written back unless read-only."""
        weights = self.orphan(key)
        if weights is None:
            raise CorruptArtifact(f"model {key} is not in the cache {self.root}")
        payload = self._payload(weights, device)
        try:
            meta = json.loads(payload["meta"])
            assert isinstance(meta, dict)
        except Exception as exc:
            raise CorruptArtifact(f"model file {weights} holds no readable meta; delete it and re-run") from exc
        meta.update(key=key, sha256=sha256_file(weights), weights=weights.name, recovered=True)
        if not self.read_only:
            atomic_write_bytes(self.meta_path(key), json.dumps(meta, indent=2, sort_keys=True,
                                                               default=str).encode(), root=self.out_root)
        return meta

    def load(self, key: str, model: nn.Module, device: str | torch.device = "cpu") -> dict[str, Any]:
        """Fill ``model`` with the stored weights; returns the meta. Raises CorruptArtifact when the meta is
        unreadable, the file does not match its recorded hash, or its content does not fit ``model``."""
        meta_path = self.meta_path(key)
        meta = self.read_meta(key)
        if meta is None and not meta_path.exists():
            meta = self._restore_meta(key, device)
        if meta is None:
            raise CorruptArtifact(f"cannot read model meta {meta_path} (not a JSON object). Delete it and "
                                  f"re-run to retrain.")
        weights = self.weights_path(key, meta)
        try:
            actual = sha256_file(weights)
        except OSError as exc:
            raise CorruptArtifact(f"cannot read model file {weights}: {exc}. Delete {meta_path} and re-run "
                                  f"to retrain.") from exc
        if actual != meta.get("sha256"):
            raise CorruptArtifact(f"model file {weights} has sha256 {actual[:12]}..., its meta says "
                                  f"{str(meta.get('sha256'))[:12]}...: the file is corrupt. Delete {weights} "
                                  f"and {meta_path} and re-run to retrain.")
        payload = self._payload(weights, device)
        state = payload["state_dict"] if isinstance(payload, dict) and set(payload) == {"state_dict", "meta"} \
            else payload
        try:
            model.load_state_dict(state)
        except Exception as exc:
            raise CorruptArtifact(f"model file {weights} does not fit the network ({type(exc).__name__}: "
                                  f"{str(exc)[:200]}). Delete it and {meta_path} and re-run to retrain.") from exc
        return meta

    def quarantine(self, key: str) -> str | None:
        """If cached model ``key`` fails its hash check, move its files aside (``.corrupt``) and say so."""
        meta_path = self.meta_path(key)
        if not meta_path.exists():
            return None  # absent, or an orphan that ``load`` checks and restores
        meta = self.read_meta(key)
        weights = self.weights_path(key, meta)
        if meta is not None and weights.exists() and sha256_file(weights) == meta.get("sha256"):
            return None
        if meta is not None and not weights.exists():
            return None  # the weights are simply missing: a cache miss, trained again
        for p in (weights, meta_path):
            if p.exists():
                os.replace(p, inside(self.out_root, p.with_name(p.name + ".corrupt")))
        return f"cached model {key} failed its SHA-256 check; moved it to {weights.name}.corrupt, training again"


def read_safetensors(path: Path, device="cpu") -> dict[str, Any]:
    """{"state_dict": tensors, "meta": the embedded meta (JSON text, or None)} of a safetensors weights file."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt", device=str(device)) as fh:
        meta = (fh.metadata() or {}).get(META_FIELD)
        return {"state_dict": {k: fh.get_tensor(k) for k in fh.keys()}, "meta": meta}


#: the weights format written now; ``.pt`` (torch pickles, read with weights_only=True) is still read
WEIGHTS_SUFFIX = ".safetensors"
WEIGHTS_SUFFIXES = (WEIGHTS_SUFFIX, ".pt")
#: the safetensors header field holding the model's meta (JSON), from which an orphan's meta is restored
META_FIELD = "odebench_meta"
#: hash-named weights: ``<key>.<first 16 hex digits of the file's SHA-256>.safetensors`` (or ``.pt``)
_WEIGHTS_RE = re.compile(r"([0-9a-f]{16})\.([0-9a-f]{16})\.(?:safetensors|pt)")
