"""The fresh noise of the reverse-diffusion predictor is drawn in the state's dtype: a float64 step carries
float64 noise, not a float32 draw cast up."""

from __future__ import annotations

import torch

from odebench.methods import get_method


def test_reverse_diffusion_noise_is_drawn_in_float64_for_a_float64_state():
    method = get_method("score_ve", sigma_max=12.0)
    gen = torch.Generator().manual_seed(0)
    x, eps = (torch.randn(256, 2, dtype=torch.float64, generator=gen) for _ in range(2))
    t, t_next = torch.full((256,), 0.3, dtype=torch.float64), torch.full((256,), 0.45, dtype=torch.float64)
    step = method.reverse_diffusion_step(x, eps, t, t_next, torch.Generator().manual_seed(1))
    mean = method.reverse_diffusion_step(x, eps, t, t_next, None, last=True)
    assert step.dtype == torch.float64
    sig, sig_next = method.schedule(1 - t).sigma[0], method.schedule(1 - t_next).sigma[0]
    z = (step - mean) / (sig**2 - sig_next**2).sqrt()  # VE: v = sigma(s)^2 - sigma(s')^2
    assert abs(float(z.mean())) < 0.15 and abs(float(z.std()) - 1) < 0.1  # standard normal, 512 draws
    # float32 draws, cast up, agree with their float32 rounding to ~1e-15 here; float64 draws differ by ~1e-8
    assert (z - z.float().double()).abs().max() > 1e-10
