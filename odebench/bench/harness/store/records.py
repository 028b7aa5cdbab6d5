"""Result records: one JSON file per cell, written atomically; load a sweep as a pandas DataFrame.

Layout: ``<out>/<sweep>/cells/<cell_id>.json``. A record holds ``schema_version``, the resolved ``config``
and its ``config_hash``, ``status`` (ok | failed | skipped) with ``reason``, ``metrics``, ``metric_info``,
``metric_failures`` (only where a metric failed alone: metric -> reason, the others kept), actual ``nfe``,
``timings`` (train/sample/metric seconds), ``training`` (the model's cost and convergence) and ``environment``.
Older schema versions are migrated on load. A file that fails the schema (odebench.bench.harness.store.record_schema),
or is not a regular file of at most MAX_RECORD_BYTES (a FIFO, a link to ``/dev/zero``: refused before it is read,
odebench.bench.harness.guards.bounded_read), is *corrupt*: reading never returns it (its cell counts as not run) and
``RecordStore.corrupt`` says why; a run moves it aside with ``RecordStore.quarantine`` and evaluates the cell
again.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import time
from pathlib import Path
from typing import Any

import pandas as pd

from odebench.bench.harness.guards.bounded_read import MAX_RECORD_BYTES, RefusedFile, read_bounded
from odebench.bench.harness.guards.safe_paths import inside
from odebench.bench.harness.spec.sweep import Cell
from odebench.bench.harness.store.artifacts import atomic_write_bytes
from odebench.bench.harness.store.record_schema import SCHEMA_VERSION, record_problem

__all__ = ["SCHEMA_VERSION", "RecordStore", "base_record", "environment", "failed_record", "is_finished",
           "method_label", "migrate", "records_frame", "skipped_record"]
FINISHED = ("ok", "skipped")


def environment(device: str) -> dict[str, Any]:
    """Versions, device and CPU threads that produced a record (git commit when run from a checkout).

    ``threads`` is torch's intra-op thread count in the process that ran the cell: timings are only
    comparable between records with the same count on the same machine.
    """
    import torch

    import odebench

    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=Path(__file__).parent)
        commit = out.stdout.strip() if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        commit = None
    dev = device
    if device.startswith("cuda") and torch.cuda.is_available():
        dev = f"{device} ({torch.cuda.get_device_name()})"
    return {"odebench": odebench.__version__, "torch": torch.__version__, "python": platform.python_version(),
            "device": dev, "threads": torch.get_num_threads(), "git_commit": commit,
            "platform": platform.platform()}


def base_record(cell: Cell, device: str) -> dict[str, Any]:
    return {"schema_version": SCHEMA_VERSION, "cell_id": cell.id, "config": cell.config(),
            "config_hash": cell.id, "environment": environment(device), "created": time.time()}


def failed_record(cell: Cell, device: str, reason: str, stage: str) -> dict[str, Any]:
    return {**base_record(cell, device), "status": "failed", "reason": f"{stage}: {reason}", "metrics": {},
            "timings": {}}


def skipped_record(cell: Cell, device: str, reason: str) -> dict[str, Any]:
    return {**base_record(cell, device), "status": "skipped", "reason": reason, "metrics": {}, "nfe": None,
            "timings": {}}


def is_finished(record: dict[str, Any] | None) -> bool:
    """Whether a record (None: no file) ends its cell: ok or skipped; failed cells run again, and so do cells
    with a failed metric (``metric_failures``: metric -> reason; their other metrics were kept)."""
    return record is not None and record.get("status") in FINISHED and not record.get("metric_failures")


class NoRecords(FileNotFoundError):
    """A folder read as a sweep holds no records; the message names the sweep folders found nearby."""


def sweep_folders(root: Path) -> list[Path]:
    """Folders directly under ``root`` that hold records (``<folder>/cells/*.json``)."""
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if p.is_dir() and any((p / "cells").glob("*.json")))


class RecordStore:
    """Reads and writes the records of one sweep folder.

    ``root`` is the folder every write must stay in (default the sweep folder; a run passes ``--out``).
    ``corrupt`` maps the path of every record file read so far that failed the schema to the reason.
    """

    def __init__(self, sweep_dir: str | Path, root: str | Path | None = None):
        self.dir = Path(sweep_dir).absolute()  # absolute, for the same reason as ArtifactStore's root
        self.cells = self.dir / "cells"
        self.root = Path(root).absolute() if root is not None else self.dir
        self.corrupt: dict[Path, str] = {}

    def path(self, cell_id: str) -> Path:
        return self.cells / f"{cell_id}.json"

    def write(self, record: dict[str, Any]) -> Path:
        path = self.path(record["cell_id"])
        atomic_write_bytes(path, json.dumps(record, indent=2, sort_keys=True, default=str).encode(), root=self.root)
        return path

    def _load(self, path: Path) -> dict[str, Any] | None:
        """The record in ``path`` if it is sound (migrated), else None and a note in ``corrupt``."""
        try:
            record = json.loads(read_bounded(path, MAX_RECORD_BYTES))
        except FileNotFoundError:
            return None
        except RefusedFile as exc:  # a FIFO, a link to /dev/zero, a file far larger than a record: never read
            self.corrupt[path] = str(exc).replace(str(path), "the file")[:200]
            return None
        except (OSError, ValueError, RecursionError) as exc:  # truncated, not UTF-8, not JSON, nested too deep
            self.corrupt[path] = f"unreadable ({type(exc).__name__}: {str(exc)[:120]})"
            return None
        problem = record_problem(record, path.stem)
        if problem is not None:
            self.corrupt[path] = problem
            return None
        self.corrupt.pop(path, None)
        return migrate(record)

    def read(self, cell_id: str) -> dict[str, Any] | None:
        """The sound record of ``cell_id``, or None (no file, or a corrupt one: see ``corrupt``)."""
        return self._load(self.path(cell_id))

    def finished(self, cell_id: str) -> bool:
        return is_finished(self.read(cell_id))

    def records(self) -> list[dict[str, Any]]:
        """Every sound record of the folder; the others are listed in ``corrupt``. A folder without ``cells/``
        that holds a pack (``records.jsonl.gz``, odebench.bench.harness.store.packed) is read from the pack."""
        from odebench.bench.harness.store.packed import PACKED, read_packed

        if not self.cells.is_dir() and os.path.lexists(self.dir / PACKED):  # read_packed refuses a special file
            packed, corrupt = read_packed(self.dir / PACKED)
            self.corrupt.update(corrupt)
            return [migrate(r) for r in packed]
        out = []
        for p in sorted(self.cells.glob("*.json")):
            if (record := self._load(p)) is not None:
                out.append(record)
        return out

    def quarantine(self, cell_id: str) -> str | None:
        """Move a corrupt record of ``cell_id`` aside (``<id>.json.corrupt``); returns the note, None if sound."""
        path = self.path(cell_id)
        if path.exists() and self._load(path) is None and path in self.corrupt:
            reason = self.corrupt.pop(path)
            aside = inside(self.root, path.with_name(path.name + ".corrupt"))
            os.replace(path, aside)
            return f"record {path} is corrupt ({reason}); moved it to {aside.name}, its cell runs again"
        return None

    def frame(self) -> pd.DataFrame:
        """Every record as one row (see :func:`records_frame`); raises NoRecords, naming the sweep folders
        it found under or beside this one, when the folder holds none (a wrong path, not an empty sweep)."""
        records = self.records()
        if not records:
            raise NoRecords(self.no_records_message())
        return records_frame(records)

    def no_records_message(self) -> str:
        found = sweep_folders(self.dir) or [p for p in sweep_folders(self.dir.parent) if p != self.dir]
        where = (f"sweep folders found: {', '.join(map(str, found))}; give one of them, e.g. "
                 f"RecordStore({str(found[0])!r})" if found else
                 f"no sweep folder (one holding cells/*.json) under {self.dir} or {self.dir.parent} either; "
                 f"run `odebench run --out DIR` first")
        state = "does not exist" if not self.dir.exists() else f"holds no records ({self.cells}/*.json)"
        return f"{self.dir} {state}; {where}"


def migrate(record: dict[str, Any]) -> dict[str, Any]:
    """Bring an older record up to SCHEMA_VERSION (version 1 is the first; key renames within it are mapped:
    ``sample_grid`` -> ``sample_sheet``, and ``transport_cost.excess`` of a record without
    ``transport_cost.reference`` -> ``transport_cost.excess_ot``, the meaning it had)."""
    version = record.get("schema_version", 1)
    if version > SCHEMA_VERSION:
        raise ValueError(f"record schema {version} is newer than this odebench ({SCHEMA_VERSION}); upgrade")
    if "sample_grid" in record and "sample_sheet" not in record:  # the image's old name
        record["sample_sheet"] = record.pop("sample_grid")
    metrics = record.get("metrics") or {}
    if "transport_cost.excess" in metrics and "transport_cost.reference" not in metrics:
        # before the transport reference, .excess was the cost above the exact OT of the cell's own sets
        metrics["transport_cost.excess_ot"] = metrics.pop("transport_cost.excess")
    return record


def method_label(method: dict[str, Any]) -> str:
    """'rf(k=2)' style label: the name plus hparams that differ from the method's defaults."""
    import inspect

    from odebench.methods import METHODS

    name = method["name"]
    if "given_model" in method:  # a model given to odebench eval: its name and the start of its weights' hash
        return f"{name}@{str(method['given_model'])[:8]}"
    try:
        params = inspect.signature(METHODS.get(name).__init__).parameters
        defaults = {k: p.default for k, p in params.items() if p.default is not inspect.Parameter.empty}
    except Exception:  # an unregistered plugin: show every hparam
        defaults = {}
    shown = [f"{k}={v}" for k, v in method.items() if k != "name" and defaults.get(k, object()) != v]
    return f"{name}({', '.join(shown)})" if shown else name


def records_frame(records: list[dict[str, Any]]) -> pd.DataFrame:
    """One row per record: config columns, status, nfe, timings, and one column per metric value."""
    rows = []
    for r in records:
        c = r["config"]
        row = {"cell_id": r["cell_id"], "sweep": c["sweep"], "method": method_label(c["method"]),
               "method_name": c["method"]["name"], "target": c["target"], "source": c["source"],
               "dataset": c["target"] if c["source"] == "gaussian" else f"{c['source']}->{c['target']}",
               "solver": c["solver"] + ("" if c.get("grid", "uniform") == "uniform" else f"/{c['grid']}"),
               "nfe_requested": c["nfe"], "tol": c["tol"], "seed": c["seed"],
               "status": r["status"], "reason": r.get("reason"), "nfe": r.get("nfe"),
               **{f"time_{k}": v for k, v in r.get("timings", {}).items()}}
        row.update(r.get("metrics", {}))
        rows.append(row)
    return pd.DataFrame(rows)
