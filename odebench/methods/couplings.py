"""Couplings: how a training batch pairs source draws x0 with data draws x1.

A coupling is ``draw(n, gen) -> (x0, x1)``, both [n, *shape]. The harness builds the independent coupling
from the source and target samplers, or a fixed-pair coupling from a parent stage's pairs (reflow,
distillation). :func:`minibatch_ot_pairs` re-pairs any batch by exact OT (OT-CFM does so inside its loss).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
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


def minibatch_ot_pairs(x0: Tensor, x1: Tensor) -> tuple[Tensor, Tensor]:
    """Re-pair a minibatch by exact optimal transport (Tong et al. 2023; Pooladian et al. 2023).

    Solves the discrete OT problem between the empirical measures of x0 and x1 (uniform weights 1/n,
    squared-Euclidean cost ||x0_i - x1_j||^2 on flattened samples) with POT's network simplex ``ot.emd``.
    With equal sizes and uniform weights the optimal plan is a permutation matrix divided by n (a vertex of
    the Birkhoff polytope, which the simplex returns), so the re-pairing is deterministic: x1 is permuted,
    x0 kept.

    Args:
        x0: [n, *shape] source draws; x1: [n, *shape] target draws (same n).
    Returns:
        (x0, x1[perm]) with perm the optimal assignment; both [n, *shape].
    """
    import ot

    if x0.shape[0] != x1.shape[0]:
        raise ValueError(f"minibatch OT needs equally many source and target draws; got {x0.shape[0]} and "
                         f"{x1.shape[0]}")
    n = x0.shape[0]
    cost = torch.cdist(x0.detach().flatten(1).double(), x1.detach().flatten(1).double()).pow(2).cpu().numpy()
    weights = np.full(n, 1.0 / n)
    plan = ot.emd(weights, weights, cost)
    perm = torch.from_numpy(plan.argmax(axis=1)).to(x1.device)
    if torch.unique(perm).numel() != n:  # cannot happen for a simplex vertex; never train on a broken pairing
        raise RuntimeError("ot.emd returned a plan that is not a permutation; check the inputs for NaN")
    return x0, x1[perm]
