"""Uniform dequantization of training draws from an image dataset whose pixels take a few grey levels.

An image dataset stores pixel k in {0 .. L - 1} (L = ``meta["levels"]``: 17 for scikit-learn's digits, 256 for 8-bit
images) as x = 2 k / (L - 1) - 1 in [-1, 1]. A continuous density fitted to those L lattice points concentrates on
them: its likelihood of the dequantized test points that the ``nll`` metric scores is then meaningless (on the
digits, 34 % of the points of a lattice-trained DDPM cost more than 10 bits/dim). Training on dequantized draws,

    x = 2 (k + u) / L - 1,   u ~ U[0, 1)^D, drawn afresh for every training batch,

i.e. (k + u) / L in the [0, 1] scaling (the score-SDE code's ``(u + 255 img) / 256`` for L = 256), fits the
density that the metric's Jensen bound measures. The formula is the one ``odebench.metrics.likelihood.dequantize``
applies to the test points; tests/data/test_training_dequantization.py holds the two to the same draws.
"""

from __future__ import annotations

import torch
from torch import Tensor

#: how far a stored value may sit from the lattice 2 k / (L - 1) - 1 (in units of k) and still count as on it
LATTICE_TOLERANCE = 1e-3


def lattice_index(x: Tensor, levels: int) -> Tensor:
    """k = (x + 1) (L - 1) / 2 rounded, for x [B, *shape] stored as 2 k / (L - 1) - 1; refuses values off the
    lattice (a dataset whose ``levels`` is wrong, or data that was already dequantized)."""
    k = (x + 1) / 2 * (levels - 1)
    rounded = torch.round(k)
    if (rounded - k).abs().max() > LATTICE_TOLERANCE:
        raise ValueError(f"images are not on a {levels}-level grid 2 k / (L - 1) - 1; check meta['levels'] of the "
                         f"dataset, or set train.dequantize = false")
    return rounded.clamp(0, levels - 1)


def uniform_dequantize(x: Tensor, levels: int, gen: torch.Generator | None = None) -> Tensor:
    """[B, *shape] draws 2 (k + u) / L - 1 in [-1, 1), u ~ U[0, 1)^D from ``gen`` (on the generator's device)."""
    k = lattice_index(x, levels)
    u = torch.rand(x.shape, generator=gen, device=gen.device if gen is not None else x.device, dtype=x.dtype)
    return 2 * (k + u.to(x.device)) / levels - 1
