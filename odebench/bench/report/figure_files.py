"""Figures written the way records are: rendered in memory, then one atomic rename inside the sweep folder.

A kill while matplotlib writes a PDF used to leave a 0-byte file that the next report linked to; rendering to
a buffer and publishing with ``atomic_write_bytes`` leaves either the old figure or the new one. A report draws
its figures into a staging folder of the sweep folder (:func:`report_folder` maps it back), and publishes them
only once the whole report is built.
"""

from __future__ import annotations

import io
from pathlib import Path

from odebench.bench.harness.store.artifacts import atomic_write_bytes
from odebench.bench.harness.store.stale_files import STAGING_RE


def write_figure(fig, path: Path, root: Path, **savefig_kwargs) -> Path:
    """Render ``fig`` in the format of ``path``'s suffix and publish it atomically (inside ``root``)."""
    buf = io.BytesIO()
    fig.savefig(buf, format=path.suffix.lstrip("."), **savefig_kwargs)
    return atomic_write_bytes(path, buf.getvalue(), root=root)


def report_folder(folder: Path) -> Path:
    """The sweep folder that figures drawn under ``folder`` belong to: ``folder`` itself, or the folder holding
    it when ``folder`` is a report's staging folder (odebench.bench.report.build.write_report draws there)."""
    folder = Path(folder)
    return folder.parent if STAGING_RE.fullmatch(folder.name) else folder
