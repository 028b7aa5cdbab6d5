"""Networks with a time input, f(x, t) -> [B, out_mult * C, ...], for any method.

``MLP`` flattens any input shape, so it serves toy sets and 8x8 digits alike. ``build_net`` is the factory
the harness hands to ``Method.networks``.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from bench.registry import Registry

NETS: Registry[type[nn.Module]] = Registry("network")


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


@NETS.register("mlp")
class MLP(nn.Module):
    """Time-conditioned MLP on flattened inputs.

    Args:
        shape: per-sample input shape; the output has shape [out_mult * shape[0], *shape[1:]].
        hidden: width; depth: number of hidden layers; time_dim: size of the time embedding.
    """

    def __init__(self, shape: tuple[int, ...], hidden: int = 128, depth: int = 3, time_dim: int = 32,
                 out_mult: int = 1):
        super().__init__()
        self.shape = tuple(shape)
        self.out_shape = (out_mult * self.shape[0], *self.shape[1:])
        d_in = math.prod(self.shape)
        self.embed = SinusoidalTimeEmbedding(time_dim)
        layers: list[nn.Module] = []
        width = d_in + time_dim
        for _ in range(depth):
            layers += [nn.Linear(width, hidden), nn.SiLU()]
            width = hidden
        layers.append(nn.Linear(width, math.prod(self.out_shape)))
        self.body = nn.Sequential(*layers)

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        """x: [B, *shape], t: [B] -> [B, *out_shape]."""
        h = torch.cat([x.flatten(1), self.embed(t).to(x.dtype)], dim=1)
        return self.body(h).view(x.shape[0], *self.out_shape)


def build_net(config: dict[str, Any], shape: tuple[int, ...], out_mult: int = 1) -> nn.Module:
    """Instantiate ``config['name']`` (default "mlp") with the remaining keys as keyword arguments."""
    cfg = dict(config)
    cls = NETS.get(cfg.pop("name", "mlp"))
    return cls(shape, out_mult=out_mult, **cfg)


# The image U-Net lives in its own module and registers itself as "unet" on import.
from bench import unet as _unet  # noqa: E402,F401
