"""SHA-256 of a file, read in 1 MiB chunks (the model cache and the shipped metric weights both check theirs), and
of a config (a cell's id, a model's cache key)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any


def sha256_file(path: str | Path) -> str:
    """Hex SHA-256 of the whole file at ``path``."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def config_hash(config: Any) -> str:
    """SHA-256 (hex, first 16 chars) of a JSON-serialisable config, keys sorted."""
    blob = json.dumps(config, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]
