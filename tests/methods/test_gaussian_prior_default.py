"""GaussianPrior without a scale is the standard normal N(0, I) the flow methods start from."""

from __future__ import annotations

import math

import torch

from odebench.methods.base import GaussianPrior


def test_default_scale_is_the_standard_normal():
    prior = GaussianPrior((2, 3))
    assert prior.scale == 1.0
    zero = torch.zeros(1, 2, 3)
    torch.testing.assert_close(prior.log_prob(zero), torch.tensor([-3 * math.log(2 * math.pi)]))
    x = prior.sample(4000, torch.Generator().manual_seed(0))
    assert x.shape == (4000, 2, 3) and abs(float(x.std()) - 1) < 0.03
