"""A sweep's records packed into one compressed file, for committing results: ``records.jsonl.gz``.

One JSON object per line (keys sorted, no spaces), lines ordered by cell id, gzip with no file name and a zero
time stamp: the same records give the same bytes on every machine, so a committed pack changes only when its
records do. :func:`read_packed` checks every line against the record schema, as the record store does with
``cells/*.json``; it refuses a cell id found on several lines (its docstring says how), a pack that is not a
regular file, a damaged gzip stream and one that expands past MAX_PACK_BYTES (a gzip bomb), each with the
reason. A folder holding a pack and no ``cells/`` is read from it by
:class:`odebench.bench.harness.store.records.RecordStore`, so the report and the claims rebuild every table from it.
"""

from __future__ import annotations

import gzip
import io
import json
import zlib
from pathlib import Path
from typing import Any

from odebench.bench.harness.guards.bounded_read import RefusedFile, open_regular
from odebench.bench.harness.store.artifacts import atomic_write_bytes
from odebench.bench.harness.store.record_schema import record_problem

PACKED = "records.jsonl.gz"
#: the most a pack may hold, decompressed (the largest committed pack is under 10 MB for 2,652 records)
MAX_PACK_BYTES = 256 * 2**20
CHUNK = 2**20


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


def inflate_pack(path: Path, limit: int | None = None) -> bytes:
    """The decompressed bytes of the pack ``path``: a regular file (RefusedFile otherwise), inflated in chunks and
    refused once past ``limit`` bytes (default MAX_PACK_BYTES), so a gzip bomb never fills the memory. A damaged
    stream raises ``zlib.error``, ``EOFError`` or ``OSError`` (gzip's CRC and length checks)."""
    limit = MAX_PACK_BYTES if limit is None else limit
    chunks, total = [], 0
    with open_regular(path, limit) as raw, gzip.GzipFile(fileobj=raw, mode="rb") as gz:
        while chunk := gz.read(CHUNK):
            total += len(chunk)
            if total > limit:
                raise RefusedFile(f"{path} expands past {limit:,} bytes, more than a pack of records may hold "
                                  f"(a damaged or hostile file); refused")
            chunks.append(chunk)
    return b"".join(chunks)


def _cause(exc: BaseException, path: Path) -> str:
    """Why a pack cannot be read, in words."""
    if isinstance(exc, RefusedFile):
        return str(exc).replace(str(path), "the file")
    if isinstance(exc, (zlib.error, EOFError, gzip.BadGzipFile)):
        return f"damaged gzip stream: {type(exc).__name__}: {exc or 'the stream ends early'}"
    if isinstance(exc, UnicodeDecodeError):
        return f"not UTF-8 text ({exc})"
    return f"{type(exc).__name__}: {exc}"


def read_packed(path: Path) -> tuple[list[dict[str, Any]], dict[Path, str]]:
    """(sound records, {"<path>:<line>": why} for lines that are not) of a pack; ``{<path>: why}`` and no record
    when the pack as a whole cannot be read (not a regular file, too large, a damaged gzip stream, not UTF-8).

    A cell id on several lines is refused, never averaged: copies with the same content count once (the others
    are listed), copies that differ are all left out and listed, each naming the lines of the others."""
    records: dict[int, dict[str, Any]] = {}
    corrupt: dict[Path, str] = {}
    try:
        text = inflate_pack(Path(path)).decode()
    except (OSError, EOFError, UnicodeDecodeError, zlib.error) as exc:  # RefusedFile is an OSError
        return [], {Path(path): _cause(exc, path)[:240]}
    for i, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        where = Path(f"{path}:{i}")
        try:
            record = json.loads(line)
        except (ValueError, RecursionError) as exc:  # not JSON, or nested past the parser's depth
            corrupt[where] = f"not JSON ({type(exc).__name__}: {str(exc)[:80]})"
            continue
        problem = record_problem(record, str(record.get("cell_id")) if isinstance(record, dict) else "")
        if problem is not None:
            corrupt[where] = problem
            continue
        records[i] = record
    lines_of: dict[str, list[int]] = {}
    for i, record in records.items():
        lines_of.setdefault(record["cell_id"], []).append(i)
    for cell_id, lines in lines_of.items():
        if len(lines) == 1:
            continue
        texts = {json.dumps(records[i], sort_keys=True) for i in lines}
        if len(texts) == 1:  # the same record twice: count it once
            for i in lines[1:]:
                corrupt[Path(f"{path}:{i}")] = f"a second copy of cell {cell_id} (line {lines[0]}); counted once"
                del records[i]
            continue
        for i in lines:
            others = ", ".join(str(j) for j in lines if j != i)
            corrupt[Path(f"{path}:{i}")] = (f"cell {cell_id} is also on line(s) {others}, with different content; "
                                            f"no copy is used (copies are never averaged)")
            del records[i]
    return list(records.values()), corrupt
