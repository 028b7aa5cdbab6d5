"""``odebench pack SWEEP_DIR DEST``: a sweep's results in the compact form committed under ``results/<tier>/``.

DEST receives the sweep's current records packed into one deterministic ``records.jsonl.gz``
(odebench.bench.harness.store.packed), its two-sample floors (``floors.json``, computed if the sweep has none yet),
and the report built from the pack: ``leaderboard.md`` / ``.csv`` / ``.tex`` / ``.html``, ``claims.md`` /
``.csv``, PNG figures (no PDFs) and ``index.html``. Trajectory and sample figures are drawn from the sweep's
model cache (``<SWEEP_DIR>/../.cache/models``, or ``cache``) while packing; ``odebench report DEST`` and
``odebench claims DEST`` later rebuild every table from the pack alone. Nothing is written or deleted outside
DEST (its report is published whole, as ``odebench report`` does: odebench.bench.report.build.write_report).
"""

from __future__ import annotations

from pathlib import Path

from odebench.bench.harness.guards.bounded_read import MAX_SIDE_FILE_BYTES, RefusedFile, read_bounded
from odebench.bench.harness.guards.safe_paths import inside
from odebench.bench.harness.store.artifacts import atomic_write_bytes
from odebench.bench.harness.store.packed import write_packed


class PackRefused(ValueError):
    """DEST cannot receive a pack (it is the sweep folder, lies inside it, or holds unpacked records)."""


def _foreign_entries(dest: Path) -> list[str]:
    """The entries of an existing ``dest`` that show it is not an earlier pack: anything at all when it holds no
    ``records.jsonl.gz`` (an empty folder is fine)."""
    from odebench.bench.harness.store.packed import PACKED

    names = sorted(p.name for p in dest.iterdir())
    return [] if not names or PACKED in names else names


def pack_sweep(sweep_dir: str | Path, dest: str | Path, cache_dir: str | Path | None = None,
               figures: bool = True):
    """Pack ``sweep_dir`` into ``dest`` (see the module docstring); returns the Report written there."""
    from odebench.bench.report.build import write_report
    from odebench.bench.report.floors import FLOOR_FILE
    from odebench.bench.report.tables import load_sweep

    src, dest = Path(sweep_dir).resolve(), Path(dest).absolute()
    dest.mkdir(parents=True, exist_ok=True)
    dest = dest.resolve()
    if dest == src or dest.is_relative_to(src):
        raise PackRefused(f"pack into another folder than the sweep itself, e.g. results/{src.name}")
    if (dest / "cells").exists():
        raise PackRefused(f"{dest} holds a cells/ folder (a sweep's records): give an empty folder or an "
                          f"earlier pack")
    foreign = _foreign_entries(dest)
    if foreign:  # a pack replaces DEST's report and figures: never those of a folder that is not a pack
        shown = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
        raise PackRefused(f"{dest} is neither empty nor an earlier pack (it holds {shown}): packing would replace "
                          f"its report files and figures; give an empty or new folder, or an earlier pack")
    sweep = load_sweep(src)
    if not sweep.records:
        raise PackRefused(f"{src} holds no records to pack")
    write_packed(sweep.records, dest, root=dest)
    floors = src / FLOOR_FILE
    if floors.is_file():  # a regular file of bounded size only; the report notes what it holds that is unsound
        try:
            atomic_write_bytes(inside(dest, dest / FLOOR_FILE), read_bounded(floors, MAX_SIDE_FILE_BYTES), root=dest)
        except RefusedFile:
            pass  # too large to be floors: the report computes them again and writes its own
    cache = Path(cache_dir) if cache_dir else src.parent / ".cache" / "models"
    return write_report(dest, figures=figures, cache_dir=cache)
