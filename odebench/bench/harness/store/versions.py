"""One configuration per cell id: which records of a sweep folder the current spec produces, and how the others
differ from it.

A cell id is the hash of the cell's whole resolved configuration (method and its hparams, data, training,
network, evaluation, solver, budget, seed), so editing a spec (``train.steps`` 500 -> 300) gives every affected
cell a new id: the old records stay in ``cells/`` beside the new ones, never overwritten and never taken as
the new cells' results. Each run writes the ids its spec produces to ``<sweep>/sweep.json``; the report shows
those records only and lists the others as "from an earlier version of this spec", with what changed, so
two configurations are never averaged into one "mean ± std over seeds". The run and the dry run say the
same before any work.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from odebench.bench.harness.guards.bounded_read import MAX_SIDE_FILE_BYTES, read_bounded
from odebench.bench.harness.spec.train_config import train_key_fields
from odebench.bench.harness.store.artifacts import atomic_write_bytes

MANIFEST = "sweep.json"
#: config keys that place a cell within its configuration (the report's rows and columns), not define it; the
#: data seed is a replicate axis like the seed: one spec gives every seed one data draw (an integer data_seed) or
#: each its own (data_seed = "per_seed"), and the seeds of a configuration are aggregated over either way
AXES = ("sweep", "seed", "data_seed", "solver", "grid", "nfe", "tol")


def flat_config(config: dict[str, Any], precision: str | None = None) -> dict[str, str]:
    """The configuration of a cell less its axes (seed and data seed, solver, budget), as dotted keys -> JSON text:
    ``{"method.name": '"rf"', "method.k": "2", "train.steps": "300", ...}``; ``precision`` (the record's
    runtime, not part of the cell) joins as ``runtime.precision`` when given and not fp32. The training settings
    read as they key a cell (``train_key_fields``): an option that is off reads as absent, so a record written
    before the option existed and one written after with it off show as the same configuration."""
    out: dict[str, str] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict) and value:
            for k in sorted(value):
                walk(f"{prefix}.{k}" if prefix else str(k), value[k])
        else:
            out[prefix] = json.dumps(value, sort_keys=True, default=str)

    for key, value in config.items():
        if key in AXES:
            continue
        if key == "data_options" and not value:
            continue  # cells without loader options
        if key == "train" and isinstance(value, dict):
            value = train_key_fields(value)
        walk(key, value)
    if precision and precision != "fp32":
        out["runtime.precision"] = json.dumps(precision)
    return out


def short(text: str, limit: int = 40) -> str:
    """A JSON value for a label: strings unquoted, long values cut."""
    try:
        value = json.loads(text)
        text = value if isinstance(value, str) else text
    except (TypeError, ValueError):
        pass
    return text if len(text) <= limit else text[: limit - 3] + "..."


# --------------------------------------------------------------------------------------- the manifest
def write_manifest(sweep_dir: Path, name: str, cell_ids: Iterable[str], root: str | Path | None = None) -> Path:
    """Record which cells the spec of this run produces (read by the report); ``root`` is the folder every write
    must stay in (default: the sweep folder itself)."""
    path = Path(sweep_dir) / MANIFEST
    body = {"sweep": name, "cells": sorted(set(cell_ids)), "updated": time.time(),
            "about": "the cell ids the latest run's spec produces; the report shows these records only"}
    return atomic_write_bytes(path, json.dumps(body, indent=1).encode(), root=root if root is not None else sweep_dir)


def current_cell_ids(sweep_dir: Path) -> set[str] | None:
    """The cell ids of the latest run's spec, or None for a folder written before manifests (or unreadable: not a
    regular file of bounded size, which is never read, or not of the shape written here)."""
    try:
        body = json.loads(read_bounded(Path(sweep_dir) / MANIFEST, MAX_SIDE_FILE_BYTES))
        return {c for c in body["cells"] if isinstance(c, str)}
    except (OSError, ValueError, KeyError, TypeError, RecursionError):
        return None


def earlier_configs(sweep_dir: Path, current_ids: set[str]) -> list[dict[str, Any]]:
    """Configs of the records in ``sweep_dir/cells`` whose ids are not in ``current_ids`` (unreadable files
    are passed over: they are no one's result)."""
    out = []
    for path in sorted((Path(sweep_dir) / "cells").glob("*.json")):
        if path.stem in current_ids:
            continue
        try:
            out.append(json.loads(read_bounded(path))["config"])  # a FIFO or /dev/zero is refused, not read
        except (OSError, ValueError, KeyError, TypeError, RecursionError):
            continue
    return out


# --------------------------------------------------------------------------------- what changed, in words
def _identity(config: dict[str, Any]) -> tuple:
    method = config.get("method", {})
    return method.get("name"), config.get("target"), config.get("source")


def _budget(config: dict[str, Any]) -> str:
    solver = config.get("solver", "?") + ("" if config.get("grid", "uniform") == "uniform" else f"/{config['grid']}")
    return f"{solver}@{config['nfe']}" if config.get("nfe") is not None else f"{solver}@tol={config.get('tol')}"


def change_of(old: dict[str, Any], current: list[dict[str, Any]]) -> str:
    """How a cell config ``old`` differs from the nearest of the ``current`` configs, in a few words:
    'train.steps=500 (now 300)', 'heun@64 seed 1: no longer swept', 'rf on moons: not in the spec now'."""
    same = [c for c in current if _identity(c) == _identity(old)]
    if not same:
        name, target, source = _identity(old)
        data = target if source in (None, "gaussian") else f"{source}->{target}"
        return f"{name} on {data}: not in the spec now"
    mine = flat_config(old)
    best: list[str] | None = None
    for c in same:
        theirs = flat_config(c)
        diff = [f"{k}={short(mine.get(k, 'unset'))} (now {short(theirs.get(k, 'unset'))})"
                for k in sorted(set(mine) | set(theirs)) if mine.get(k) != theirs.get(k)]
        if best is None or len(diff) < len(best):
            best = diff
    if best:
        return "; ".join(best)
    redrawn = [c for c in same if c.get("seed") == old.get("seed") and c.get("data_seed") != old.get("data_seed")
               and flat_config(c) == mine]
    if redrawn:
        return f"seed {old.get('seed')}: data_seed={old.get('data_seed')} (now {redrawn[0].get('data_seed')})"
    return f"{_budget(old)} seed {old.get('seed')}: no longer swept"


def describe_changes(old: list[dict[str, Any]], current: list[dict[str, Any]], limit: int = 3) -> str:
    """The changes of several old configs, most common first: 'train.steps=500 (now 300) [4 cells]; ...'."""
    counts = Counter(change_of(o, current) for o in old)
    parts = [f"{text} [{n} cell{'s' if n > 1 else ''}]" for text, n in counts.most_common(limit)]
    if len(counts) > limit:
        parts.append(f"and {len(counts) - limit} other change(s)")
    return "; ".join(parts)


def earlier_note(sweep_dir: Path, old: list[dict[str, Any]], current: list[dict[str, Any]]) -> str | None:
    """The line the run and the dry run print about records of ``sweep_dir`` that the spec no longer produces
    (``old``: their configs), or None when there are none."""
    if not old:
        return None
    n = len(old)
    return (f"{n} cell{'s' if n > 1 else ''} from an earlier version of this spec: "
            f"{describe_changes(old, current)}. They stay in {Path(sweep_dir) / 'cells'} but are left out of the "
            f"leaderboard; to keep both versions side by side, run the new one under another spec name or --out")
