"""Couplings: how a training batch pairs source draws x0 with data draws x1.

A coupling is ``draw(n, gen) -> (x0, x1)``, both [n, *shape]. The harness builds the independent coupling
from the source and target samplers, or a fixed-pair coupling from a parent stage's pairs (reflow,
distillation).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

Sampler = Callable[[int, torch.Generator | None], Tensor]
"""``sampler(n, gen) -> [n, *shape]``."""


@dataclass
class IndependentCoupling:
    """x0 ~ source and x1 ~ target drawn independently."""

    source: Sampler
    target: Sampler

    def draw(self, n: int, gen: torch.Generator | None) -> tuple[Tensor, Tensor]:
        return self.source(n, gen), self.target(n, gen)


@dataclass
class PairCoupling:
    """A fixed set of pairs (x0[i], x1[i]), drawn by index with replacement (reflow's (Z0, Z1))."""

    x0: Tensor
    x1: Tensor

    def draw(self, n: int, gen: torch.Generator | None) -> tuple[Tensor, Tensor]:
        idx = torch.randint(len(self.x0), (n,), generator=gen, device=self.x0.device)
        return self.x0[idx], self.x1[idx]
