"""fm_diffusion's default VP path is Lipman et al.'s (the schedule of Song et al.'s VP-SDE): beta_min = 0.1,
beta_max = 20, so it starts at alpha_0 = exp(-(beta_min + beta_max) / 4) ~ 0.0066, not exactly at N(0, I)."""

from __future__ import annotations

import math

import pytest
import torch

from odebench.methods import get_method


def test_default_betas_and_the_start_of_the_path():
    method = get_method("fm_diffusion")
    assert method.hparams == {"beta_min": 0.1, "beta_max": 20.0}
    c = method.path.coefficients(torch.zeros(1, dtype=torch.float64))
    assert c.alpha_t.item() == pytest.approx(math.exp(-(0.1 + 20.0) / 4), rel=1e-12)
    assert c.alpha_t.item() == pytest.approx(0.0066, abs=5e-5)
    assert c.sigma_t.item() == pytest.approx(math.sqrt(1 - math.exp(-(0.1 + 20.0) / 2)), rel=1e-12)
