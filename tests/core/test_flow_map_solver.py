"""The flow_map solver: n jumps of X(x, r, t) on the cell's grid for a budget of n NFE, every call counted."""

from __future__ import annotations

import math

import pytest
import torch

from odebench.bench.core.solvers import SOLVERS, BudgetTooSmall, Dynamics, Unsupported, sample
from odebench.bench.core.time_grids import make_grid


def exact_map(calls: list):
    """The flow map of dx/dt = -x + t (x(t) = t - 1 + C e^{-t}), recording each call's (r, t)."""

    def flow_map(x, r, t):
        calls.append((r.clone(), t.clone()))
        c = (x - (r - 1)[:, None]) * torch.exp(r)[:, None]
        return (t - 1)[:, None] + c * torch.exp(-t)[:, None]

    return flow_map


@pytest.mark.parametrize("nfe", [1, 2, 4, 8])
@pytest.mark.parametrize("grid", ["uniform", "cosine"])
def test_a_budget_of_n_buys_n_jumps_on_the_grid_and_the_nfe_is_the_calls_made(nfe, grid):
    calls: list = []
    x0 = torch.randn(6, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    res = sample(Dynamics(flow_map=exact_map(calls)), x0, "flow_map", nfe=nfe, grid=grid, trajectory=True)
    ts = make_grid(grid, nfe, Dynamics(), dtype=torch.float64)
    assert res.nfe == len(calls) == nfe
    assert torch.equal(res.t, ts)
    for i, (r, t) in enumerate(calls):  # jump i runs from grid time i to grid time i + 1, for every sample
        assert torch.equal(r, ts[i].expand(6)) and torch.equal(t, ts[i + 1].expand(6))
    # the exact map composes to the exact solution at t = 1 whatever the number of jumps
    exact = (x0 + 1) * math.exp(-1.0)
    torch.testing.assert_close(res.x, exact)
    assert res.trajectory.shape == (nfe + 1, 6, 2)
    torch.testing.assert_close(res.trajectory[-1], res.x)
    torch.testing.assert_close(res.trajectory[0], x0)


def test_below_one_jump_the_budget_is_too_small():
    with pytest.raises(BudgetTooSmall, match="at least 1 NFE"):
        sample(Dynamics(flow_map=exact_map([])), torch.zeros(2, 2), "flow_map", nfe=0)


def test_it_requires_a_flow_map_and_the_ode_solvers_a_velocity():
    assert SOLVERS.get("flow_map").requires == {"flow_map"}
    with pytest.raises(Unsupported, match="flow_map"):
        sample(Dynamics(velocity=lambda x, t: -x), torch.zeros(2, 2), "flow_map", nfe=2)
    with pytest.raises(Unsupported, match="velocity"):
        sample(Dynamics(flow_map=exact_map([])), torch.zeros(2, 2), "euler", nfe=2)


def test_a_deadline_in_force_stops_the_jumps_at_the_counter():
    from odebench.bench.core import budgets

    calls: list = []
    with budgets.limits(seconds=-1.0), pytest.raises(budgets.BudgetExceeded, match="wall-clock"):
        sample(Dynamics(flow_map=exact_map(calls)), torch.zeros(2, 2), "flow_map", nfe=8)
    assert not calls  # the counter refused the first call before it reached the network
