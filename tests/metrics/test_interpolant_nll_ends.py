"""The latent-noise interpolant's NLL: its field is trained on [t_eps, 1 - t_eps] only (gamma' is unbounded at
the ends), so the solver runs there and the two end pieces are one Euler step each (``Dynamics.nll_span``).
Checked against the closed form on Gaussian data N(m, s^2 I), where x_t = (1 - t) x0 + t x1 + gamma(t) z is
N(t m, v(t) I) with v = (1 - t)^2 + t^2 s^2 + a t (1 - t) and the exact velocity is b = m + v' / (2 v) (x - t m)."""

from __future__ import annotations

import math

import torch
from torch import nn

from odebench.methods import get_method
from odebench.metrics import METRICS
from odebench.metrics.likelihood import NLLConfig, nll
from odebench.metrics.registry import EvalContext, split_output

A, T_EPS, S = 1.0, 1e-3, 0.2
M = torch.tensor([0.5, -0.3], dtype=torch.float64)
#: per-point bias of the Euler end pieces here: O(t_eps^2 (a / s^2)^2) = 1.7e-3 measured
TOL = 0.01


def _v(t):
    return (1 - t) ** 2 + t**2 * S**2 + A * t * (1 - t)


def _dv(t):
    return -2 * (1 - t) + 2 * t * S**2 + A * (1 - 2 * t)


def exact_b(x, t):
    t = t.view(-1, 1)
    return M + _dv(t) / (2 * _v(t)) * (x - t * M)


def std_normal(x):
    return -0.5 * x.pow(2).sum(1) - x.shape[1] / 2 * math.log(2 * math.pi)


def closed_form(x):
    return 0.5 * ((x - M) ** 2).sum(1) / S**2 + x.shape[1] / 2 * math.log(2 * math.pi * S**2)


def data(n=64):
    return M + S * torch.randn(n, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)


CFG = NLLConfig(divergence="loop", rtol=1e-9, atol=1e-9)


def test_the_end_pieces_recover_the_closed_form_nll():
    """Over [t_eps, 1 - t_eps] alone, the NLL is the data's convolved with N(0, a t_eps) at the data end (0.1
    nats off here); with the end pieces it is the data's own within the pieces' O(t_eps^2) bias."""
    x = data()
    full = nll(exact_b, x, std_normal, CFG, T_EPS, 1 - T_EPS, span=(0.0, 1.0))
    assert torch.isfinite(full.nll).all()
    assert (full.nll - closed_form(x)).abs().max() < TOL
    short = nll(exact_b, x, std_normal, CFG, T_EPS, 1 - T_EPS)
    assert (short.nll - closed_form(x)).abs().max() > 5 * TOL
    assert full.nfe == short.nfe + 2  # one field call per end piece


def test_a_span_must_hold_the_solvers_interval():
    x = data(4)
    try:
        nll(exact_b, x, std_normal, CFG, 0.1, 0.9, span=(0.2, 1.0))
    except ValueError as exc:
        assert "span" in str(exc)
    else:
        raise AssertionError("a span inside the solver's interval was accepted")


class ExactFields(nn.Module):
    """The interpolant's two-headed network with the exact b in the first head (eta, unused by the NLL, is 0)."""

    def forward(self, x, t):
        return torch.cat([exact_b(x, t), torch.zeros_like(x)], 1)


def test_the_interpolants_nll_at_gamma_one_is_the_closed_form():
    """Through the method's dynamics and the registered metric: finite and within the tolerance of the exact
    NLL, on the interval [0, 1] the record states. The points sit two scales out on each axis, where the data
    end's convolution changes the density at first order (at the bulk of the data it nearly cancels in a mean)."""
    method = get_method("interpolant", path="linear", gamma=A, t_eps=T_EPS)
    dyn = method.dynamics(nn.ModuleDict({"b_eta": ExactFields()}))
    assert (dyn.t0, dyn.t1, dyn.nll_span) == (T_EPS, 1 - T_EPS, (0.0, 1.0))
    x = M + 2 * S * torch.tensor([[1.0, 1.0], [1.0, -1.0], [-1.0, 1.0], [-1.0, -1.0]], dtype=torch.float64)
    ctx = EvalContext(samples=x, reference=x, dynamics=dyn, log_prob_source=std_normal,
                      gen=torch.Generator().manual_seed(0),
                      options={"nll": {"divergence": "loop", "rtol": 1e-9, "atol": 1e-9}})
    values, settings = split_output("nll", METRICS.get("nll").fn(ctx))
    assert math.isfinite(values["nll"]) and settings["bpd_valid"] is True
    assert abs(values["nll"] - float(closed_form(x).mean())) < TOL
    assert settings["span"] == [0.0, 1.0]


def test_without_latent_noise_the_likelihood_is_the_solvers_interval():
    method = get_method("interpolant", path="linear", gamma=0.0)
    dyn = method.dynamics(method.networks(lambda **_: nn.Linear(2, 2), (2,)))
    assert dyn.nll_span is None and (dyn.t0, dyn.t1) == (0.0, 1.0)
