"""Image helpers shared by image metrics: the uint8 quantisation clean-fid expects.

Samples live in model space, [N, C, H, W] in [-1, 1]. Inception-based metrics (FID) read 8-bit images:
k = clamp(round((x + 1) * 127.5), 0, 255), the inverse of the loaders' x = k / 127.5 - 1.
"""

from __future__ import annotations

import torch
from torch import Tensor


def to_uint8(x: Tensor) -> Tensor:
    """[N, C, H, W] in [-1, 1] -> uint8 [N, C, H, W]: round((x + 1) * 127.5), clamped to 0..255.

    Non-finite values are an error (a diverged sampler), not something to clamp away.
    """
    if x.dim() != 4:
        raise ValueError(f"to_uint8 expects images [N, C, H, W], got shape {tuple(x.shape)}")
    if not torch.isfinite(x).all():
        raise ValueError("to_uint8: samples contain NaN/inf; the sampler diverged")
    return ((x.float() + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)


def to_uint8_hwc(x: Tensor) -> Tensor:
    """[N, C, H, W] in [-1, 1] -> uint8 [N, H, W, C] on the CPU (the layout PIL and clean-fid read)."""
    return to_uint8(x).permute(0, 2, 3, 1).contiguous().cpu()
