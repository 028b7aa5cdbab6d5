"""Temp files a killed run left behind, removed when the next run starts; nothing else is ever removed here.

Every write goes through ``artifacts.atomic_write_bytes``: a temp file ``.<name>.odebench-<random>.tmp`` next to
the target (:func:`temp_affixes`), then a rename. A kill between the two leaves the temp file, which no later
write reuses. A report is drawn into a staging folder ``<sweep>/.report.odebench-<random>.tmp/`` first
(odebench.bench.report.build), which a kill leaves too. With the folder's lock held (odebench.bench.harness.store.lock)
no other run writes there, so a temp file older than this process is an orphan; younger ones (this process's own
writes in flight) are left alone.

Only odebench's own names, in folders odebench owns, are candidates: ``<out>/.cache/models`` and
``<out>/.cache/transport_reference``, and in each sweep
folder under ``<out>`` (one holding ``sweep.json``, ``records.jsonl.gz`` or records in ``cells/``) the folder itself,
``cells/``, ``figures/``, ``samples/`` and its report staging folders. Temp files named before the
``odebench-`` tag (``.<name>.<random>.tmp``) are recognised only there and only for the files odebench writes
in that folder (a record in ``cells/``, a figure in ``figures/``, ``index.html`` in the sweep folder, ...). A
user's ``.thesis.docx.tmp``, or any file in a folder of their own under ``--out``, is never touched; every
delete goes through ``safe_paths.remove_file`` (a regular file, never through a symlink out of ``--out``).
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

from odebench.bench.harness.guards.safe_paths import UnsafePath, remove_file
from odebench.metrics.transport_reference import CACHE_SUBDIR as TRANSPORT_SUBDIR

#: when this process imported the harness: a temp file older than that was not written by it
PROCESS_START = time.time()
#: the mark of every temp name odebench makes (tempfile's random part is [a-z0-9_])
TEMP_TAG = ".odebench-"
TEMP_RE = re.compile(r"\..+\.odebench-[a-z0-9_]+\.tmp")
#: the naming before the tag: ``.<name>.<random>.tmp``; group 1 is the target's name
OLD_TEMP_RE = re.compile(r"\.(.+)\.[a-z0-9_]{8}\.tmp")
#: a report's staging folder (odebench.bench.report.build.write_report)
STAGING_PREFIX = ".report.odebench-"
STAGING_RE = re.compile(r"\.report\.odebench-[a-z0-9_]+\.tmp")
#: the files odebench writes directly in a sweep folder, and what its own sub-folders hold (old temp names)
SWEEP_FILES = frozenset({"sweep.json", "effective_spec.toml", "floors.json", "records.jsonl.gz", "index.html",
                         "leaderboard.md", "leaderboard.tex", "leaderboard.html", "leaderboard.csv", "claims.md",
                         "claims.csv"})
OWNED_SUFFIXES = {"cells": (".json",), "figures": (".png", ".pdf"), "samples": (".png",)}
CACHE = (".cache", "models")
#: the run's cache folders odebench owns, with the kind of temp file each may hold: the models (any temp name
#: odebench ever used) and the metrics' kept references (only the tagged name, the only one they ever used)
CACHE_FOLDERS = ((CACHE, "models"), ((".cache", TRANSPORT_SUBDIR), "references"))
RECORD_RE = re.compile(r"[0-9a-f]{16}\.json")


def temp_affixes(name: str) -> tuple[str, str]:
    """(prefix, suffix) of the temp file written before ``name`` (for ``tempfile.mkstemp``)."""
    return f".{name}{TEMP_TAG}", ".tmp"


def is_sweep_folder(folder: Path) -> bool:
    """A folder a run or a pack wrote: it holds ``sweep.json``, ``records.jsonl.gz`` or a record
    ``cells/<16 hex digits>.json`` (a folder from before manifests)."""
    if folder.is_symlink() or not folder.is_dir():
        return False
    if (folder / "sweep.json").is_file() or (folder / "records.jsonl.gz").is_file():
        return True
    cells = folder / "cells"
    try:
        return not cells.is_symlink() and any(RECORD_RE.fullmatch(n) for n in os.listdir(cells))
    except OSError:
        return False


def _is_ours(name: str, kind: str) -> bool:
    """Whether ``name`` is a temp file odebench left in a folder of ``kind`` ("sweep", "cells", "figures",
    "samples", "models", "staging")."""
    if TEMP_RE.fullmatch(name):
        return True
    old = OLD_TEMP_RE.fullmatch(name)
    if old is None:
        return False
    target = old.group(1)
    if kind == "models":
        return True  # the model cache holds nothing but odebench's files
    if kind == "sweep":
        return target in SWEEP_FILES
    return target.endswith(OWNED_SUFFIXES.get(kind, ()))


def _old(path: Path, cutoff: float) -> bool:
    try:
        return path.stat(follow_symlinks=False).st_mtime < cutoff
    except OSError:
        return False


def _temps_in(root: Path, folder: Path, kind: str, cutoff: float) -> list[Path]:
    """Remove the stale temp files odebench left directly in ``folder``; returns them."""
    removed = []
    if folder.is_symlink() or not folder.is_dir():
        return removed
    try:
        names = sorted(os.listdir(folder))
    except OSError:
        return removed
    for name in names:
        path = folder / name
        if _is_ours(name, kind) and _old(path, cutoff):
            try:
                if remove_file(root, path):
                    removed.append(path)
            except (OSError, UnsafePath):
                continue  # gone already, a link, or not ours to remove
    return removed


def remove_staging(root: Path, folder: Path, cutoff: float) -> list[Path]:
    """Remove a report's staging folder a killed report left (its figures, report files and temp files, then
    the folder itself) if nothing in it is younger than ``cutoff``; returns the files removed."""
    if folder.is_symlink() or not folder.is_dir() or not STAGING_RE.fullmatch(folder.name):
        return []
    figures = folder / "figures"
    if not _old(folder, cutoff) or (figures.is_dir() and not _old(figures, cutoff)):
        return []  # a report drawing right now
    removed = []
    for sub, names in ((figures, OWNED_SUFFIXES["figures"]), (folder, tuple(SWEEP_FILES))):
        if sub.is_symlink() or not sub.is_dir():
            continue
        for name in sorted(os.listdir(sub)):
            path = sub / name
            if name.endswith(names) or _is_ours(name, "figures" if sub == figures else "sweep"):
                try:
                    if remove_file(root, path):
                        removed.append(path)
                except (OSError, UnsafePath):
                    continue
    for sub in (figures, folder):
        try:
            sub.rmdir()  # only when empty: anything left is not ours to remove
        except OSError:
            pass
    return removed


def remove_sweep_temps(root: str | Path, sweep: str | Path, older_than: float | None = None) -> list[Path]:
    """Stale temp files and report staging folders of one sweep folder (checked to lie in ``root``)."""
    root, sweep = Path(root).absolute(), Path(sweep).absolute()
    cutoff = PROCESS_START if older_than is None else older_than
    removed = _temps_in(root, sweep, "sweep", cutoff)
    for kind in OWNED_SUFFIXES:
        removed += _temps_in(root, sweep / kind, kind, cutoff)
    try:
        staging = [sweep / n for n in sorted(os.listdir(sweep)) if STAGING_RE.fullmatch(n)]
    except OSError:
        staging = []
    for folder in staging:
        removed += remove_staging(root, folder, cutoff)
    return removed


def remove_stale_temps(out_root: str | Path, older_than: float | None = None,
                       sweeps: tuple[str, ...] = ()) -> list[Path]:
    """Delete odebench's temp files under ``out_root``, in the folders it owns (see the module docstring), last
    modified before ``older_than`` (default: this process's start); returns what was removed. ``sweeps`` names
    sweep folders of ``out_root`` known to be odebench's (the run's own) even before they hold a record."""
    root = Path(out_root).absolute()
    cutoff = PROCESS_START if older_than is None else older_than
    removed = [path for folder, kind in CACHE_FOLDERS for path in _temps_in(root, root.joinpath(*folder), kind, cutoff)]
    try:
        children = sorted(os.listdir(root))
    except OSError:
        return removed
    for name in children:
        folder = root / name
        if not name.startswith(".") and (is_sweep_folder(folder) or (name in sweeps and not folder.is_symlink())):
            removed += remove_sweep_temps(root, folder, cutoff)
    return removed
