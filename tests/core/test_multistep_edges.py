"""Edges of the samplers on a data prediction: the ``lower_order_final`` threshold at exactly 15 steps, the
trajectory only when asked for, the schedule read in float64 whatever the dtype of the times, and
DPM-Solver++(3M) continuous as alpha at the start tends to 0 (the limits it takes where the log-SNR is -inf)."""

from __future__ import annotations

import torch
from gaussian_paths import Gaussian, TrigSchedule, VPSchedule

from odebench.bench.core.solvers import SOLVERS, sample
from odebench.bench.core.solvers.multistep import LOWER_ORDER_FINAL_BELOW, dpm_orders

DATA = Gaussian(torch.tensor([0.3, -0.5, 0.1], dtype=torch.float64), torch.tensor([0.5, 0.2, 1.0], dtype=torch.float64))
X1_SOLVERS = ["ddim", "ddim_eta1", "dpmpp_2m", "dpmpp_3m", "dpmpp_2m_sde", "unipc"]


def _start(schedule, t0: float, n: int = 50) -> tuple[torch.Tensor, torch.Tensor]:
    z = torch.randn(n, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    return z, DATA.flow(schedule, z, t0)


def test_lower_order_final_applies_below_15_steps_only():
    """The peers lower the final order with *fewer than* 15 steps: at exactly 15 the last steps keep the full
    order (unless the last step lands on sigma = 0)."""
    n = LOWER_ORDER_FINAL_BELOW
    assert n == 15
    assert dpm_orders(n, 2, final_sigma_zero=False) == [1] + [2] * (n - 1)
    assert dpm_orders(n, 3, final_sigma_zero=False) == [1, 2] + [3] * (n - 2)
    assert dpm_orders(n - 1, 3, final_sigma_zero=False) == [1, 2] + [3] * (n - 5) + [2, 1]


def test_trajectory_only_when_asked_for():
    schedule = VPSchedule()
    dyn = DATA.dynamics(schedule, 0.0, 1 - 1e-3)
    _, x0 = _start(schedule, 0.0, n=4)
    ts = torch.linspace(0.0, 1 - 1e-3, 6, dtype=torch.float64)
    for name in X1_SOLVERS:
        solver = SOLVERS.get(name)
        assert solver.integrate(dyn, x0, ts, gen=torch.Generator().manual_seed(0)).trajectory is None, name
        res = sample(dyn, x0, name, nfe=5, gen=torch.Generator().manual_seed(0), trajectory=False)
        assert res.trajectory is None and res.nfe == 5, name


def test_float32_times_are_read_in_float64():
    """``integrate`` reads the schedule at the given times in float64: float32 times give the samples of the
    same times converted to float64 (not of a schedule evaluated in float32)."""
    schedule = VPSchedule()
    dyn = DATA.dynamics(schedule, 0.0, 1 - 1e-3)
    _, x0 = _start(schedule, 0.0)
    ts32 = torch.linspace(0.0, 1 - 1e-3, 9, dtype=torch.float32)
    for name in ("ddim", "dpmpp_2m", "dpmpp_3m", "unipc"):
        solver = SOLVERS.get(name)
        a, b = solver.integrate(dyn, x0, ts32).x, solver.integrate(dyn, x0, ts32.double()).x
        torch.testing.assert_close(a, b, rtol=0, atol=1e-13, msg=name)


def test_dpmpp_3m_is_continuous_as_alpha_at_the_start_tends_to_zero():
    """On the trig path alpha(0) = 0 and the log-SNR starts at -inf: the steps take the limits of their
    coefficients there (the D differences that span the infinite first step get weight 0). Starting instead at
    t = 1e-300, where alpha is tiny but positive and every coefficient finite, must give nearly the same samples;
    the difference falls like 1 / |log-SNR(1e-300)| ~ 1e-3 relative to the D differences."""
    schedule = TrigSchedule()
    dyn = DATA.dynamics(schedule, 0.0, 1.0)
    _, x0 = _start(schedule, 0.0)
    ts = torch.linspace(0.0, 1.0, 11, dtype=torch.float64)
    shifted = ts.clone()
    shifted[0] = 1e-300
    solver = SOLVERS.get("dpmpp_3m")
    a, b = solver.integrate(dyn, x0, ts).x, solver.integrate(dyn, x0, shifted).x
    assert (a - b).abs().max().item() < 1e-3
