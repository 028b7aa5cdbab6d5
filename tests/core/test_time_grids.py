"""Time grids: the noise-level grids (edm, logsnr) put the same noise levels on every method's own time, keep
the method's ends exactly, and are refused, with the reason, where a method has no noise schedule."""

from __future__ import annotations

import math

import pytest
import torch
from gaussian_paths import TrigSchedule, VESchedule, VPSchedule

from odebench.bench.core.fields import Dynamics, Unsupported
from odebench.bench.core.schedules import SIGMA_MAX, SIGMA_MIN, karras_levels
from odebench.bench.core.time_grids import GRIDS, grid_requires, grid_unmet, make_grid


def _dyn(schedule, t0=0.0, t1=1.0):
    return Dynamics(velocity=lambda x, t: x, schedule=schedule, t0=t0, t1=t1)


def _ratio(schedule, ts):
    a, s = schedule.alpha_sigma(ts.to(torch.float64))
    return s / a


def test_edm_grid_on_edm_time_is_karras_levels():
    """On EDM's path (sigma affine in t from 80 to 0.002) the edm grid is Karras et al.'s sigma_i exactly."""
    ts = make_grid("edm", 17, _dyn(VESchedule()), dtype=torch.float64)
    torch.testing.assert_close(_ratio(VESchedule(), ts), karras_levels(17, 80.0, 0.002), rtol=1e-10, atol=0)
    assert ts[0] == 0 and ts[-1] == 1


def test_logsnr_grid_is_uniform_in_log_snr():
    sched, t0, t1 = VPSchedule(), 0.0, 1 - 1e-3
    ts = make_grid("logsnr", 10, _dyn(sched, t0, t1), dtype=torch.float64)
    lam = -torch.log(_ratio(sched, ts))
    steps = lam[2:-1] - lam[1:-2]  # interior steps (the first point is the clipped end t0, see below)
    torch.testing.assert_close(steps, torch.full_like(steps, steps[0].item()), rtol=1e-9, atol=0)
    assert ts[0] == t0 and ts[-1] == t1


@pytest.mark.parametrize("grid", ["edm", "logsnr"])
def test_open_ends_are_the_method_own_and_levels_are_clipped_to_edm_range(grid):
    """alpha = 0 at t0 and sigma = 0 at t1 (a flow's path): the levels are spaced between 80 and 0.002, the first
    and last points are t0 and t1 themselves, and the grid increases strictly."""
    sched = TrigSchedule()
    ts = make_grid(grid, 8, _dyn(sched), dtype=torch.float64)
    assert ts[0] == 0.0 and ts[-1] == 1.0 and bool((ts[1:] > ts[:-1]).all())
    levels = GRIDS.get(grid)
    inner = _ratio(sched, ts[1:-1])
    ref = _ratio(sched, levels(8, 0.0, 1.0, dtype=torch.float64, schedule=sched)[1:-1])
    torch.testing.assert_close(inner, ref)
    assert SIGMA_MIN < inner.min() and inner.max() < SIGMA_MAX
    if grid == "edm":
        torch.testing.assert_close(inner, karras_levels(8, SIGMA_MAX, SIGMA_MIN)[1:-1], rtol=1e-10, atol=0)


def test_grids_follow_the_dtype_and_time_grids_are_unchanged():
    dyn = _dyn(VPSchedule())
    assert make_grid("logsnr", 4, dyn).dtype == torch.get_default_dtype()
    torch.testing.assert_close(make_grid("uniform", 4, dyn), torch.linspace(0, 1, 5), rtol=0, atol=0)
    assert make_grid("edm", 4, dyn, dtype=torch.float32).dtype == torch.float32


def test_noise_grids_need_a_noise_schedule_and_say_so():
    assert grid_requires("uniform") == frozenset() and grid_requires("cosine") == frozenset()
    assert grid_requires("edm") == grid_requires("logsnr") == frozenset({"noise_schedule"})
    reason = grid_unmet("edm", frozenset({"velocity"}), "method 'curvature_min'")
    assert "noise_schedule" in reason and "curvature_min" in reason and "uniform" in reason
    assert grid_unmet("edm", frozenset({"velocity", "noise_schedule"})) is None
    with pytest.raises(Unsupported, match="noise_schedule"):
        make_grid("logsnr", 4, Dynamics(velocity=lambda x, t: x))


def test_bisection_inverts_the_log_snr():
    sched = VPSchedule()
    lam = torch.linspace(-4.0, 4.0, 9, dtype=torch.float64)
    ts = sched.t_of_log_snr(lam, 0.0, 1 - 1e-3)
    torch.testing.assert_close(sched.log_snr(ts), lam, rtol=0, atol=1e-10)
    assert math.isclose(float(sched.t_of_log_snr(torch.tensor([50.0]), 0.0, 0.5)), 0.5)  # beyond the end
