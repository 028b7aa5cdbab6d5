"""Closed forms for Gaussian data: X0 ~ N(0, I), X1 ~ N(m, diag s^2) independent (docs/maths.md, "Closed forms").

For an affine path x_t = alpha x1 + sigma x0 (+ gamma z for interpolants) everything is jointly Gaussian, so
per dimension, with V = alpha^2 s^2 + sigma^2 + gamma^2:

    v(x, t)   = alpha' m + (alpha alpha' s^2 + sigma sigma' + gamma gamma') / V * (x - alpha m)
    eta(x, t) = E[z | x_t = x] = gamma / V * (x - alpha m)

Each method's own loss must be lower at the exact field than at a perturbed one, and each method's own
dynamics, fed the exact fields, must carry the t0 marginal to the t1 marginal (mean and variance within
sampling error).
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from odebench.bench.core.solvers import sample
from odebench.methods import get_method

M = torch.tensor([1.0, -2.0, 0.5])
S = torch.tensor([0.5, 2.0, 1.0])
N_LOSS = 40_000
N_SAMPLE = 20_000


def coefficients(method, t):
    """(alpha, sigma, alpha', sigma', gamma, gamma') at t: [B] -> each [B, 1]."""
    c = method.path.coefficients(t)
    if method.name == "interpolant" and method.stochastic:
        g, dg = method.gamma_of(t)
    else:
        g = dg = torch.zeros_like(t)
    return [v[:, None] for v in (c.alpha_t, c.sigma_t, c.d_alpha_t, c.d_sigma_t, g, dg)]


class ExactVelocity(nn.Module):
    """The marginal velocity E[u | x_t = x] of ``method``'s path for Gaussian data, plus ``shift``."""

    def __init__(self, method, shift: float = 0.0):
        super().__init__()
        self.method, self.shift = method, shift

    def forward(self, x, t):
        a, s, da, ds, g, dg = coefficients(self.method, t)
        var = a**2 * S**2 + s**2 + g**2
        return da * M + (a * da * S**2 + s * ds + g * dg) / var * (x - a * M) + self.shift


class ExactDenoiser(nn.Module):
    """eta(x, t) = E[z | x_t = x] = gamma / V * (x - alpha m), plus ``shift``."""

    def __init__(self, method, shift: float = 0.0):
        super().__init__()
        self.method, self.shift = method, shift

    def forward(self, x, t):
        a, s, _, _, g, _ = coefficients(self.method, t)
        return g / (a**2 * S**2 + s**2 + g**2) * (x - a * M) + self.shift


class Heads(nn.Module):
    """Two fields as one network with stacked output channels (the stochastic interpolant's layout)."""

    def __init__(self, *fields):
        super().__init__()
        self.fields = nn.ModuleList(fields)

    def forward(self, x, t):
        return torch.cat([f(x, t) for f in self.fields], dim=1)


def exact_model(method, v_shift=0.0, eta_shift=0.0) -> nn.ModuleDict:
    if method.name != "interpolant":
        return nn.ModuleDict({"v": ExactVelocity(method, v_shift)})
    if not method.stochastic:
        return nn.ModuleDict({"b": ExactVelocity(method, v_shift)})
    return nn.ModuleDict({"b_eta": Heads(ExactVelocity(method, v_shift), ExactDenoiser(method, eta_shift))})


CASES = [
    ("fm_ot", {}), ("fm_ot", {"sigma_min": 0.1}), ("fm_diffusion", {}), ("rf", {}),
    ("interpolant", {"path": "linear"}), ("interpolant", {"path": "trig"}),
    ("interpolant", {"path": "linear", "gamma": 1.0}), ("interpolant", {"path": "trig", "gamma": 0.5}),
    ("interpolant", {"path": "encdec", "gamma": 1.0}),
]


def _loss(method, model, seed=0):
    g = torch.Generator().manual_seed(seed)
    x0 = torch.randn(N_LOSS, 3, generator=g)
    x1 = M + S * torch.randn(N_LOSS, 3, generator=g)
    with torch.no_grad():
        return float(method.loss(model, x0, x1, g))


@pytest.mark.parametrize("name,hp", CASES, ids=[f"{n}-{'-'.join(map(str, h.values()))}" for n, h in CASES])
def test_loss_is_lowest_at_the_exact_field(name, hp):
    method = get_method(name, **hp)
    exact = _loss(method, exact_model(method))
    # the excess loss of a shift delta is E|delta|^2 per dimension = 0.04; sampling noise is far smaller
    assert exact < _loss(method, exact_model(method, v_shift=0.2)) - 0.02
    assert exact < _loss(method, exact_model(method, v_shift=-0.2)) - 0.02
    if name == "interpolant" and method.stochastic:
        assert exact < _loss(method, exact_model(method, eta_shift=0.2)) - 0.02


def marginal(method, t: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and variance per dimension of x_t under the path (source N(0, I))."""
    a, s, _, _, g, _ = coefficients(method, torch.tensor([t]))
    return (a * M)[0], (a**2 * S**2 + s**2 + g**2)[0]


SAMPLERS = [(n, h, "rk4", 400) for n, h in CASES] + [
    ("interpolant", {"path": "linear", "gamma": 1.0, "eps": 1.0}, "euler_maruyama", 1000),
    ("interpolant", {"path": "trig", "gamma": 0.5, "eps": 0.5}, "euler_maruyama", 1000),
]


@pytest.mark.parametrize("name,hp,solver,nfe", SAMPLERS,
                         ids=[f"{n}-{'-'.join(map(str, h.values()))}-{s}" for n, h, s, _ in SAMPLERS])
def test_exact_field_reproduces_the_target_moments(name, hp, solver, nfe):
    method = get_method(name, **hp)
    dyn = method.dynamics(exact_model(method))
    mean0, var0 = marginal(method, dyn.t0)
    mean1, var1 = marginal(method, dyn.t1)
    g = torch.Generator().manual_seed(1)
    x0 = mean0 + var0.sqrt() * torch.randn(N_SAMPLE, 3, generator=g)  # start from the exact t0 marginal
    x = sample(dyn, x0, solver, nfe=nfe, gen=g).x
    se_mean = (var1 / N_SAMPLE).sqrt()
    se_var = var1 * math.sqrt(2 / N_SAMPLE)
    # 5 standard errors, plus the O(dt) Euler-Maruyama bias allowance for the SDE
    slack = 0.03 if solver == "euler_maruyama" else 0.0
    assert torch.all((x.mean(0) - mean1).abs() < 5 * se_mean + slack), (x.mean(0), mean1)
    assert torch.all((x.var(0) - var1).abs() < 5 * se_var + slack * var1), (x.var(0), var1)
    # and the t1 marginal is the data law (up to sigma_min / gamma(t1) / the VP end point)
    assert torch.allclose(mean1, M, atol=0.05) and torch.allclose(var1.sqrt(), S, atol=0.05)


def test_linear_exact_velocity_matches_the_1rf_closed_form():
    """The generic formula reduces to the 1-RF velocity of docs/maths.md ("Closed forms") on the linear path."""
    method = get_method("rf")
    t = torch.full((5,), 0.3)
    x = torch.randn(5, 3, generator=torch.Generator().manual_seed(0))
    tt = 0.3
    expected = M + (tt * S**2 - (1 - tt)) / (tt**2 * S**2 + (1 - tt) ** 2) * (x - tt * M)
    assert torch.allclose(ExactVelocity(method)(x, t), expected, atol=1e-6)
