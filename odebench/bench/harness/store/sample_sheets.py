"""Sample sheets: one PNG per image cell, ``<sweep>/samples/<cell_id>.png``, for eyeballing a sweep.

A colour sheet is stored as an 8-bit palette PNG (256 colours by median cut, no dithering) and every sheet is
written with PNG optimisation: a sheet of 64 colour samples at 64 x 64 pixels stays under 400 KB even when the
samples are noise (``MAX_SHEET_BYTES``), a third of the RGB file; grey sheets (8 x 8 digits) are 8-bit already.
"""

from __future__ import annotations

import io
import math
from pathlib import Path

import torch
from torch import Tensor

from odebench.bench.harness.store.artifacts import atomic_write_bytes
from odebench.metrics.images import to_uint8_hwc


def sheet_image(samples: Tensor, n: int = 64, pad: int = 1, scale: int | None = None):
    """The first ``n`` samples [N, C, H, W] in [-1, 1] tiled into a near-square PIL image.

    Images smaller than 32 pixels are enlarged (nearest neighbour) so that 8x8 digits stay legible.
    """
    from PIL import Image

    x = to_uint8_hwc(samples[:n])  # [n, H, W, C]
    count, h, w, c = x.shape
    cols = math.ceil(math.sqrt(count))
    rows = math.ceil(count / cols)
    canvas = torch.full((rows * (h + pad) + pad, cols * (w + pad) + pad, c), 255, dtype=torch.uint8)
    for i in range(count):
        top, left = (pad + k * (size + pad) for k, size in zip(divmod(i, cols), (h, w), strict=True))
        canvas[top:top + h, left:left + w] = x[i]
    arr = canvas.numpy()
    img = Image.fromarray(arr[..., 0] if c == 1 else arr)  # uint8 [H, W] -> "L", [H, W, 3] -> "RGB"
    scale = scale or max(1, 32 // max(h, w))
    return img.resize((img.width * scale, img.height * scale), Image.Resampling.NEAREST) if scale > 1 else img


#: the size a sheet of up to 64 samples of 64 x 64 pixels stays under (tests/report/test_figure_files.py)
MAX_SHEET_BYTES = 400_000


def sheet_png(samples: Tensor, n: int = 64) -> bytes:
    """The sheet of ``samples`` as PNG bytes: palette PNG for colour samples, 8-bit grey for one channel."""
    from PIL import Image

    img = sheet_image(samples, n)
    if img.mode == "RGB":
        img = img.quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def save_sample_sheet(samples: Tensor, path: str | Path, n: int = 64, *, root: str | Path) -> str:
    """Write the sheet of ``samples`` to ``path`` (inside ``root``) atomically; returns the path as a string."""
    atomic_write_bytes(Path(path), sheet_png(samples, n), root=root)
    return str(path)
