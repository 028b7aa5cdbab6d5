"""Figures written the way records are: rendered in memory, then one atomic rename inside the sweep folder.

A kill while matplotlib writes a PDF used to leave a 0-byte file that the next report linked to; rendering to
a buffer and publishing with ``atomic_write_bytes`` leaves either the old figure or the new one. A report draws
its figures into a staging folder of the sweep folder (:func:`report_folder` maps it back), and publishes them
only once the whole report is built.

A PNG is stored as an 8-bit palette image (at most 256 colours, no dithering): a plot's colours are a few
line colours and their anti-aliased edges, so the picture is the same to the eye, and the file is a third to a
tenth of the RGBA one matplotlib writes (a tier's sample figures were 1-2 MB each).
"""

from __future__ import annotations

import io
from pathlib import Path

from odebench.bench.harness.store.artifacts import atomic_write_bytes
from odebench.bench.harness.store.stale_files import STAGING_RE


def write_figure(fig, path: Path, root: Path, **savefig_kwargs) -> Path:
    """Render ``fig`` in the format of ``path``'s suffix and publish it atomically (inside ``root``); a PNG as a
    palette PNG (:func:`palette_png`)."""
    buf = io.BytesIO()
    fmt = path.suffix.lstrip(".")
    fig.savefig(buf, format=fmt, **savefig_kwargs)
    data = palette_png(buf.getvalue()) if fmt == "png" else buf.getvalue()
    return atomic_write_bytes(path, data, root=root)


def palette_png(png: bytes, colors: int = 256) -> bytes:
    """The PNG ``png`` as an optimised palette PNG of at most ``colors`` colours (median cut, no dithering)."""
    from PIL import Image

    with Image.open(io.BytesIO(png)) as im:
        rgb = im.convert("RGB")
    out = io.BytesIO()
    rgb.quantize(colors=colors, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(
        out, format="PNG", optimize=True)
    return out.getvalue()


#: file-name prefix of a dataset's headline figure (odebench.bench.report.headline_figure), which opens its section
HEADLINE_PREFIX = "headline_"


def is_headline(fig) -> bool:
    """Whether a FigureFile of a section is its headline figure (the page puts it first)."""
    return Path(fig.png).name.startswith(HEADLINE_PREFIX)


def report_folder(folder: Path) -> Path:
    """The sweep folder that figures drawn under ``folder`` belong to: ``folder`` itself, or the folder holding
    it when ``folder`` is a report's staging folder (odebench.bench.report.build.write_report draws there)."""
    folder = Path(folder)
    return folder.parent if STAGING_RE.fullmatch(folder.name) else folder
