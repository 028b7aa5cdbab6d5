"""Sample sheets: one PNG per image cell, ``<sweep>/samples/<cell_id>.png``, for eyeballing a sweep."""

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


def save_sample_sheet(samples: Tensor, path: str | Path, n: int = 64, *, root: str | Path) -> str:
    """Write the sheet of ``samples`` to ``path`` (inside ``root``) atomically; returns the path as a string."""
    buf = io.BytesIO()
    sheet_image(samples, n).save(buf, format="PNG")
    atomic_write_bytes(Path(path), buf.getvalue(), root=root)
    return str(path)
