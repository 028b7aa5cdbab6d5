"""The adaptive solver's contract on dx/dt = a x (exact solution x0 e^(a t)): both tolerances are required and
both act, the output times are [t0, t1] or the trajectory's evenly spaced points, and recording the trajectory
(dense output) costs no field call and leaves the sample unchanged."""

from __future__ import annotations

import math

import pytest
import torch

from odebench.bench.core.solvers import SOLVERS, Dynamics, sample, solve

A = -0.7


def _field(x, t):
    return A * x


@pytest.mark.parametrize("rtol,atol", [(None, None), (1e-3, None), (None, 1e-3)])
def test_both_tolerances_are_required(rtol, atol):
    with pytest.raises(ValueError, match=r"'dopri5' needs tolerances \(rtol=\.\.\., atol=\.\.\.\)"):
        solve(_field, torch.ones(2, 2, dtype=torch.float64), "dopri5", rtol=rtol, atol=atol)


def test_atol_sets_the_step_count_where_the_state_is_small():
    """With |x| ~ 1e-6 and rtol = 1e-3 the error target atol + rtol |x| is atol's: a loose atol takes fewer
    steps than a tight one, and the tight solve is within rtol |x| of the exact solution."""
    x0 = torch.full((3, 2), 1e-6, dtype=torch.float64)
    exact = x0 * math.exp(A)
    loose, tight = (solve(_field, x0, "dopri5", rtol=1e-3, atol=atol) for atol in (1e-2, 1e-12))
    assert loose.nfe < tight.nfe, (loose.nfe, tight.nfe)
    assert (tight.x - exact).abs().max().item() < 1e-3 * 1e-6


def test_without_a_trajectory_the_output_times_are_the_interval():
    dyn = Dynamics(velocity=_field, t0=0.1, t1=0.9)
    x0 = torch.ones(3, 2, dtype=torch.float64)
    res = sample(dyn, x0, "dopri5", rtol=1e-6, atol=1e-6)
    assert res.trajectory is None
    torch.testing.assert_close(res.t, torch.tensor([0.1, 0.9], dtype=torch.float64), rtol=0, atol=0)
    torch.testing.assert_close(res.x, x0 * math.exp(A * 0.8), rtol=0, atol=1e-5)


def test_trajectory_holds_the_exact_solution_at_evenly_spaced_times():
    n = SOLVERS.get("dopri5").n_trajectory_points
    dyn = Dynamics(velocity=_field, t0=0.1, t1=0.9)
    x0 = torch.ones(3, 2, dtype=torch.float64)
    res = sample(dyn, x0, "dopri5", rtol=1e-8, atol=1e-8, trajectory=True)
    times = torch.linspace(0.1, 0.9, n, dtype=torch.float64)
    torch.testing.assert_close(res.t, times, rtol=0, atol=1e-15)
    assert res.trajectory.shape == (n, 3, 2)
    exact = x0 * torch.exp(A * (times - 0.1))[:, None, None]
    torch.testing.assert_close(res.trajectory, exact, rtol=0, atol=1e-7)
    torch.testing.assert_close(res.trajectory[-1], res.x, rtol=0, atol=0)


def test_recording_the_trajectory_costs_no_field_call():
    """The trajectory's points come from the solver's dense output: the steps, the NFE and the sample are those
    of the same solve without it (a benchmark cell's NFE must not depend on whether paths are recorded)."""
    x0 = torch.ones(3, 2, dtype=torch.float64)
    for tol in (1e-3, 1e-6):
        plain, traced = (solve(_field, x0, "dopri5", rtol=tol, atol=tol, trajectory=tr) for tr in (False, True))
        assert plain.nfe == traced.nfe, (tol, plain.nfe, traced.nfe)
        torch.testing.assert_close(traced.x, plain.x, rtol=0, atol=1e-15)
