"""The default source law N(0, scale^2 I): its log-density for any scale is the product of the per-coordinate
normal densities."""

from __future__ import annotations

import pytest
import torch

from odebench.methods.base import GaussianPrior


@pytest.mark.parametrize("scale", [1.0, 0.5, 2.5, 80.0])
def test_log_prob_is_the_isotropic_normal_density(scale):
    prior = GaussianPrior((3, 2), scale=scale)
    x = scale * torch.randn(5, 3, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    zero = torch.zeros((), dtype=torch.float64)
    normal = torch.distributions.Normal(zero, zero + scale)
    want = normal.log_prob(x).flatten(1).sum(1)
    torch.testing.assert_close(prior.log_prob(x), want, rtol=1e-12, atol=1e-10)
