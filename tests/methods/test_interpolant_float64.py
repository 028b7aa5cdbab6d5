"""The stochastic interpolant keeps float64 data in float64: its latent noise z is drawn in the data's dtype.

With x0 = x1 = 0 the network is shown x_t = +-gamma(t) z, so in each row x_t / z is the one number gamma(t) in
every coordinate. With z drawn as the generator's float64 normals (after the training times, as the loss draws
them) that holds to float64 rounding; noise drawn in float32 and widened would be off by ~1e-8."""

from __future__ import annotations

import torch
from torch import nn

from odebench.methods import get_method


class Recorder(nn.Module):
    """b = eta = x; records every input."""

    def __init__(self):
        super().__init__()
        self.calls = []

    def forward(self, x, t):
        self.calls.append((x.clone(), t.clone()))
        return torch.cat([x, x], dim=1)


def test_latent_noise_is_drawn_in_float64_for_float64_data():
    method = get_method("interpolant", gamma=0.7)
    net = Recorder()
    zeros = torch.zeros(32, 3, dtype=torch.float64)
    loss = method.loss(nn.ModuleDict({"b_eta": net}), zeros, zeros, torch.Generator().manual_seed(5))
    assert loss.dtype == torch.float64
    (x_plus, t), (x_minus, _) = net.calls
    assert x_plus.dtype == torch.float64 and torch.equal(x_minus, -x_plus)

    g = torch.Generator().manual_seed(5)
    lo, hi = method.time_range()
    assert torch.equal(t, lo + (hi - lo) * torch.rand(32, generator=g))  # the times come first ...
    z = torch.randn(32, 3, generator=g, dtype=torch.float64)  # ... then the noise, in the data's dtype
    ratio = x_plus / z
    torch.testing.assert_close(ratio, ratio[:, :1].expand(-1, 3), rtol=1e-13, atol=0)  # gamma(t), per row
    gamma = (0.7 * t * (1 - t)).sqrt().double()
    torch.testing.assert_close(ratio[:, 0], gamma, rtol=1e-6, atol=0)  # t and gamma(t) are float32
