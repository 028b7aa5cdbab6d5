"""Time grids of the fixed-step solvers: ``grid(n_steps, t0, t1) -> [n_steps + 1]`` times from t0 to t1.

Built-in grids register here; third-party ones join through the ``odebench.time_grids`` entry-point group.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from odebench.bench.core.registry import Registry

GRIDS: Registry[Callable[..., Tensor]] = Registry("time grid", "odebench.time_grids")


@GRIDS.register("uniform")
def uniform_grid(n_steps: int, t0: float = 0.0, t1: float = 1.0, device=None, dtype=None) -> Tensor:
    """n_steps + 1 equally spaced times from t0 to t1."""
    return torch.linspace(t0, t1, n_steps + 1, device=device, dtype=dtype)


@GRIDS.register("cosine")
def cosine_grid(n_steps: int, t0: float = 0.0, t1: float = 1.0, device=None, dtype=None) -> Tensor:
    """Times denser near both ends: t0 + (t1 - t0) (1 - cos(pi u)) / 2 for uniform u."""
    u = torch.linspace(0.0, 1.0, n_steps + 1, device=device, dtype=dtype)
    return t0 + (t1 - t0) * (1 - torch.cos(math.pi * u)) / 2
