"""Temp files a killed run left behind, removed when the next run starts.

Every write goes through ``artifacts.atomic_write_bytes``: a temp file ``.<name>.<random>.tmp`` next to the
target, then a rename. A kill between the two leaves the temp file, which no later write reuses. With the
folder's lock held (odebench.bench.harness.lock) no other run writes there, so a temp file older than this
process is an orphan; younger ones (this process's own writes in flight) are left alone.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

from odebench.bench.harness.safe_paths import inside

#: when this process imported the harness: a temp file older than that was not written by it
PROCESS_START = time.time()
TEMP_RE = re.compile(r"\..+\.[^.]+\.tmp")
MAX_DEPTH = 3  # <out>/<sweep>/cells, <out>/.cache/models, <out>/<sweep>/figures: depth 2 suffices


def remove_stale_temps(out_root: str | Path, older_than: float | None = None) -> list[Path]:
    """Delete ``.<name>.*.tmp`` files under ``out_root`` (symlinks not followed) last modified before
    ``older_than`` (default: this process's start); returns what was removed."""
    root = Path(out_root)
    cutoff = PROCESS_START if older_than is None else older_than
    removed = []
    for folder, dirs, files in os.walk(root):
        if len(Path(folder).relative_to(root).parts) >= MAX_DEPTH:
            dirs.clear()
        for name in files:
            path = Path(folder) / name
            if not TEMP_RE.fullmatch(name):
                continue
            try:
                if path.is_symlink() or path.stat().st_mtime >= cutoff:
                    continue
                inside(root, path).unlink()
            except OSError:
                continue  # gone already, or not ours to remove
            removed.append(path)
    return removed
