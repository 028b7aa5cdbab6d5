"""A sweep's records packed into one compressed file, for committing results: ``records.jsonl.gz``.

One JSON object per line (keys sorted, no spaces), lines ordered by cell id, gzip with no file name and a zero
time stamp: the same records give the same bytes on every machine, so a committed pack changes only when its
records do. :func:`read_packed` checks every line against the record schema, as the record store does with
``cells/*.json``; a folder holding a pack and no ``cells/`` is read from it by
:class:`odebench.bench.harness.records.RecordStore`, so the report and the claims rebuild every table from it.
"""

from __future__ import annotations

import gzip
import io
import json
from pathlib import Path
from typing import Any

from odebench.bench.harness.artifacts import atomic_write_bytes
from odebench.bench.harness.record_schema import record_problem

PACKED = "records.jsonl.gz"


def pack_bytes(records: list[dict[str, Any]]) -> bytes:
    """The deterministic gzip bytes of ``records`` (sorted by cell id, one canonical JSON line each)."""
    lines = [json.dumps(r, sort_keys=True, separators=(",", ":"), default=str)
             for r in sorted(records, key=lambda r: r["cell_id"])]
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, mtime=0, compresslevel=9) as gz:
        gz.write(("\n".join(lines) + "\n").encode())
    return buf.getvalue()


def write_packed(records: list[dict[str, Any]], folder: Path, root: Path) -> Path:
    """Write ``<folder>/records.jsonl.gz`` (atomically, inside ``root``)."""
    return atomic_write_bytes(Path(folder) / PACKED, pack_bytes(records), root=root)


def read_packed(path: Path) -> tuple[list[dict[str, Any]], dict[Path, str]]:
    """(sound records, {"<path>:<line>": why} for lines that are not) of a pack."""
    records, corrupt = [], {}
    try:
        text = gzip.decompress(Path(path).read_bytes()).decode()
    except (OSError, EOFError, UnicodeDecodeError) as exc:
        return [], {Path(path): f"unreadable pack ({type(exc).__name__}: {str(exc)[:120]})"}
    for i, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        where = Path(f"{path}:{i}")
        try:
            record = json.loads(line)
        except ValueError as exc:
            corrupt[where] = f"not JSON ({str(exc)[:80]})"
            continue
        problem = record_problem(record, str(record.get("cell_id")) if isinstance(record, dict) else "")
        if problem is not None:
            corrupt[where] = problem
            continue
        records.append(record)
    return records, corrupt
