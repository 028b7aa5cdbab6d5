"""A time-conditioned MLP on flattened inputs: serves toy sets and 8x8 digits alike."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from odebench.bench.nets.base import NETS
from odebench.bench.nets.embedding import SinusoidalTimeEmbedding


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

    @staticmethod
    def scaled_config(config: dict, width: float, depth: float) -> dict:
        """The config of an MLP ``width`` times as wide and ``depth`` times as deep (at least 8 wide, 1 deep)."""
        out = dict(config)
        out["hidden"] = max(8, round(config.get("hidden", 128) * width))
        out["depth"] = max(1, round(config.get("depth", 3) * depth))
        return out

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        """x: [B, *shape], t: [B] -> [B, *out_shape]."""
        h = torch.cat([x.flatten(1), self.embed(t).to(x.dtype)], dim=1)
        return self.body(h).view(x.shape[0], *self.out_shape)
