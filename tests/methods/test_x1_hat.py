"""The data prediction every Gaussian-path method offers agrees with its velocity, and the methods offer the
samplers' capabilities exactly where their path is Gaussian.

On x_t = alpha_t x1 + sigma_t x0 the marginal velocity and the data prediction are tied by

    v(x, t) = (sigma'/sigma) x + (alpha' - sigma' alpha / sigma) x1_hat(x, t),

checked here in float64 on untrained networks (the identity holds for any network), with alpha', sigma' from
central differences of the method's schedule.
"""

from __future__ import annotations

import pytest
import torch

from odebench.bench.nets import NETS
from odebench.methods import METHODS, get_method

SHAPE = (2,)
X1 = frozenset({"noise_schedule", "x1_hat"})
SCHEDULE = frozenset({"noise_schedule"})
#: what each method (with these hparams) offers beyond its ODE and SDE terms, and why
EXPECTED = {
    ("ddpm", ()): X1, ("score_ve", (("sigma_max", 12.0),)): X1, ("edm", ()): X1,
    ("fm_ot", ()): X1, ("fm_diffusion", ()): X1,
    ("rf", ()): X1,  # round 1: independent coupling from N(0, I)
    ("rf", (("k", 2),)): SCHEDULE,  # reflow pairs x0 with ODE(x0): x_t given x1 is not Gaussian
    ("rf", (("distill", True),)): frozenset(),  # a one-step map
    ("otcfm", ()): SCHEDULE,  # minibatch-OT pairs: x0 depends on x1
    ("curvature_min", ()): frozenset(),  # the encoder's noise depends on x1: not alpha x1 + sigma x0
    ("interpolant", ()): X1,
    ("interpolant", (("gamma", 1.0),)): X1,  # noise sqrt(sigma^2 + gamma^2)
    ("interpolant", (("gamma", 0.5), ("path", "trig"))): X1,
    ("interpolant", (("gamma", 0.5), ("path", "vp_trig"))): X1,
    ("interpolant", (("gamma", 1.0), ("path", "encdec"))): frozenset(),  # alpha = 0 on [0, 1/2]
    # consistency models: EDM's path for the sampler's re-noising, but a jump to the data is no E[x1 | x_t]
    ("consistency_training", ()): SCHEDULE, ("consistency_distillation", ()): SCHEDULE,
    ("meanflow", ()): X1,  # the linear path from an independent source; the velocity is U at r = t
    ("shortcut", ()): frozenset(),  # its path keeps 1e-5 of x0 at t = 1: not the linear path's schedule
}


def _model(method):
    def make_net(out_mult=1, **_):
        return NETS.get("mlp")(SHAPE, hidden=16, depth=2, out_mult=out_mult)

    torch.manual_seed(0)
    return method.networks(make_net, SHAPE).double()


def test_every_registered_method_is_listed():
    assert {name for name, _ in EXPECTED} >= set(METHODS.names()) - {"plan_probe"}


@pytest.mark.parametrize("name,hp", list(EXPECTED), ids=[f"{n}{dict(h)}" for n, h in EXPECTED])
def test_offers(name, hp):
    method = get_method(name, **dict(hp))
    assert method.offers() & (X1 | SCHEDULE) == EXPECTED[(name, hp)]
    assert method.dynamics(_model(method)).offers() == method.offers()


@pytest.mark.parametrize("name,hp", [k for k, v in EXPECTED.items() if "x1_hat" in v],
                         ids=[f"{n}{dict(h)}" for (n, h), v in EXPECTED.items() if "x1_hat" in v])
def test_x1_hat_agrees_with_the_velocity(name, hp):
    method = get_method(name, **dict(hp))
    dyn = method.dynamics(_model(method))
    x = torch.randn(6, *SHAPE, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    for frac in (0.05, 0.5, 0.95):
        t = torch.full((6,), dyn.t0 + frac * (dyn.t1 - dyn.t0), dtype=torch.float64)
        a, s = dyn.schedule.alpha_sigma(t)
        e = 1e-6
        (a1, s1), (a0, s0) = dyn.schedule.alpha_sigma(t + e), dyn.schedule.alpha_sigma(t - e)
        da, ds = (a1 - a0) / (2 * e), (s1 - s0) / (2 * e)
        with torch.no_grad():
            v = dyn.velocity(x, t)
            rebuilt = (ds / s)[:, None] * x + (da - ds * a / s)[:, None] * dyn.x1_hat(x, t)
        torch.testing.assert_close(rebuilt, v, rtol=1e-6, atol=1e-6 * v.abs().max().item())


@pytest.mark.parametrize("name,hp", [k for k, v in EXPECTED.items() if v],
                         ids=[f"{n}{dict(h)}" for (n, h), v in EXPECTED.items() if v])
def test_log_snr_inverse_is_the_bisection(name, hp):
    """Where a schedule inverts its log-SNR in closed form, it agrees with the generic bisection."""
    from odebench.bench.core.schedules import NoiseSchedule

    method = get_method(name, **dict(hp))
    dyn = method.dynamics(_model(method))
    ends = dyn.schedule.log_snr(torch.tensor([dyn.t0, dyn.t1], dtype=torch.float64)).clamp(-8.0, 8.0)
    lam = torch.linspace(float(ends[0]) + 1e-3, float(ends[1]) - 1e-3, 25, dtype=torch.float64)
    fast = dyn.schedule.t_of_log_snr(lam, dyn.t0, dyn.t1)
    torch.testing.assert_close(fast, NoiseSchedule.t_of_log_snr(dyn.schedule, lam, dyn.t0, dyn.t1), rtol=0, atol=1e-9)
    torch.testing.assert_close(dyn.schedule.log_snr(fast), lam, rtol=0, atol=1e-6)
