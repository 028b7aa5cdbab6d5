"""Time embeddings shared by the networks."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


class SinusoidalTimeEmbedding(nn.Module):
    """t: [B] in [0, 1] -> [B, dim] sin/cos features over geometric frequencies (Transformer-style)."""

    def __init__(self, dim: int, max_period: float = 10000.0, scale: float = 1000.0):
        super().__init__()
        half = dim // 2
        freqs = torch.exp(-math.log(max_period) * torch.arange(half) / half)
        self.register_buffer("freqs", freqs, persistent=False)
        self.scale = scale  # t in [0, 1] is spread over the frequencies as t * 1000 (DDPM's step index)
        self.dim = dim

    def forward(self, t: Tensor) -> Tensor:
        args = (self.scale * t.float())[:, None] * self.freqs[None]
        emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
        if self.dim % 2:
            emb = nn.functional.pad(emb, (0, 1))
        return emb
