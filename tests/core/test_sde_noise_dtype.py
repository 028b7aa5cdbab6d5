"""Euler-Maruyama draws its noise in the state's dtype: a float64 solve carries float64 noise, not a float32
draw cast up (which would cap the sample's precision at float32 whatever the state's dtype)."""

import torch

from odebench.bench.core.solvers import Dynamics, sample


def test_euler_maruyama_noise_is_drawn_in_float64_for_a_float64_state():
    # dX = dW from 0 with two steps of 1/2: the first adds sqrt(1/2) z, the last returns its mean (no noise)
    dyn = Dynamics(velocity=lambda x, t: 0 * x, drift=lambda x, t: 0 * x, diffusion=lambda t: torch.ones_like(t))
    x0 = torch.zeros(256, 2, dtype=torch.float64)
    res = sample(dyn, x0, "euler_maruyama", nfe=2, gen=torch.Generator().manual_seed(0))
    assert res.x.dtype == torch.float64
    z = res.x / 0.5**0.5
    assert abs(float(z.mean())) < 0.15 and abs(float(z.std()) - 1) < 0.1  # standard normal, 512 draws
    # float32 draws, cast up, agree with their float32 rounding to ~1e-16 here; float64 draws differ by ~1e-8
    assert (z - z.float().double()).abs().max() > 1e-10
