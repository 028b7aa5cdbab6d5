"""solve(), the ODE entry point: euler is its default solver, an SDE solver is refused with a pointer to
sample(), and an NFE cap in force binds the adaptive solves it runs (fixed-step budgets are what they are)."""

import math

import pytest
import torch

from odebench.bench.core import budgets
from odebench.bench.core.solvers import Unsupported, solve


def test_default_solver_is_euler():
    """dx/dt = x from x = 1 with 4 Euler steps of 1/4 gives (5/4)^4 exactly."""
    x0 = torch.ones(2, 3, dtype=torch.float64)
    res = solve(lambda x, t: x, x0, nfe=4)
    assert res.nfe == 4
    assert torch.allclose(res.x, torch.full_like(x0, 1.25**4), rtol=0, atol=1e-14)


@pytest.mark.parametrize("solver", ["euler_maruyama", "ancestral"])
def test_sde_solver_is_refused_with_a_pointer_to_sample(solver):
    with pytest.raises(Unsupported, match=rf"'{solver}' is an SDE solver; use sample\(\)"):
        solve(lambda x, t: -x, torch.ones(2, 2), solver, nfe=4)


def test_nfe_cap_binds_an_adaptive_solve():
    """dopri5 at tolerance 1e-8 on dx/dt = -x needs far more than 12 field calls: the cap stops it."""
    x0 = torch.ones(2, 2, dtype=torch.float64)
    free = solve(lambda x, t: -x, x0, "dopri5", rtol=1e-8, atol=1e-8)
    assert free.nfe > 12 and torch.allclose(free.x, torch.full_like(x0, math.exp(-1)), atol=1e-6)
    with budgets.limits(max_nfe=12), pytest.raises(budgets.BudgetExceeded, match=r"budgets\.max_nfe"):
        solve(lambda x, t: -x, x0, "dopri5", rtol=1e-8, atol=1e-8)
    with budgets.limits(max_nfe=2):
        assert solve(lambda x, t: -x, x0, "euler", nfe=8).nfe == 8
