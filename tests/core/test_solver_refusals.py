"""What a solver refuses and the reasons it gives: the reason a sweep records for a skipped cell, so each names
the problem and the way out. A solver needing capabilities the dynamics lack names each one with its meaning and
what the method does offer; a budget below one step names the least budget that fits (with the SDE samplers'
final denoising call counted) and the budget it got. ``sample`` runs euler by default, and an NFE cap in force
binds the adaptive solves it runs."""

import math
import re

import pytest
import torch

from odebench.bench.core import budgets
from odebench.bench.core.fields import CAPABILITIES
from odebench.bench.core.solvers import SOLVERS, BudgetTooSmall, Dynamics, Unsupported, sample


def _sde(**extra) -> Dynamics:
    """dx = -x dt + 0.5 dW (velocity -x for the ODE)."""
    return Dynamics(
        velocity=lambda x, t: -x, drift=lambda x, t: -x, diffusion=lambda t: torch.full_like(t, 0.5), **extra
    )


def test_missing_capabilities_are_each_named_with_their_meaning_and_what_is_offered():
    """pc needs an SDE and a corrector; dynamics with only a velocity lack both, and the reason (check's, with
    the default "this method") lists them in order, what each means, and what the dynamics do offer."""
    with pytest.raises(Unsupported) as err:
        sample(Dynamics(velocity=lambda x, t: -x), torch.ones(2, 2), "pc", nfe=4)
    assert str(err.value) == (
        f"solver 'pc' needs corrector and sde ({CAPABILITIES['corrector']}; {CAPABILITIES['sde']}), which this "
        f"method does not offer (it offers velocity); use a solver that needs only what it offers"
    )


def test_unmet_lists_every_offered_capability_and_names_who():
    reason = SOLVERS.get("pc").unmet(frozenset({"velocity", "noise_schedule", "x1_hat"}), "method 'edm'")
    assert "which method 'edm' does not offer (it offers noise_schedule, velocity, x1_hat);" in reason
    assert SOLVERS.get("pc").unmet(frozenset({"velocity", "sde", "corrector"})) is None


@pytest.mark.parametrize("solver,nfe,least", [("euler", 0, 1), ("heun", 1, 2), ("rk4", 3, 4)])
def test_a_budget_below_one_step_names_the_cost_of_a_step(solver, nfe, least):
    """Without a final denoising call (an ODE cell, as the plan asks) the reason is the cost of one step alone."""
    with pytest.raises(BudgetTooSmall) as err:
        SOLVERS.get(solver).steps_for(nfe)
    assert str(err.value) == f"solver {solver!r} needs at least {least} NFE per step; got a budget of {nfe}"
    assert SOLVERS.get(solver).steps_for(least) == 1


def test_a_budget_too_small_once_the_final_denoising_call_is_paid_names_both_costs():
    """euler_maruyama with a denoising call: NFE 1 pays only the denoiser, so 2 is the least that fits, and the
    message gives the whole budget asked for (1) and how to drop the extra call."""
    dyn = _sde(denoise=lambda x, t: x)
    with pytest.raises(BudgetTooSmall) as err:
        sample(dyn, torch.ones(2, 2), "euler_maruyama", nfe=1, gen=torch.Generator().manual_seed(0))
    assert str(err.value) == (
        "solver 'euler_maruyama' needs at least 2 NFE here: 1 per step plus 1 for the final denoising call; got a "
        "budget of 1 (the method's hparam denoise = false drops that call)"
    )
    res = sample(dyn, torch.ones(2, 2), "euler_maruyama", nfe=2, gen=torch.Generator().manual_seed(0))
    assert res.nfe == 2


def test_sample_runs_euler_by_default():
    """dx/dt = x from x = 1 with 4 Euler steps of 1/4 gives (5/4)^4 exactly."""
    x0 = torch.ones(2, 3, dtype=torch.float64)
    res = sample(Dynamics(velocity=lambda x, t: x), x0, nfe=4)
    assert res.nfe == 4
    torch.testing.assert_close(res.x, torch.full_like(x0, 1.25**4), rtol=0, atol=1e-14)


def test_an_nfe_cap_binds_the_adaptive_solves_sample_runs():
    """dopri5 at tolerance 1e-8 on dx/dt = -x needs far more than 12 field calls: the cap stops it; a fixed-step
    solve spends its budget whatever the cap."""
    dyn, x0 = Dynamics(velocity=lambda x, t: -x), torch.ones(2, 2, dtype=torch.float64)
    free = sample(dyn, x0, "dopri5", rtol=1e-8, atol=1e-8)
    assert free.nfe > 12
    torch.testing.assert_close(free.x, torch.full_like(x0, math.exp(-1)), rtol=0, atol=1e-6)
    with budgets.limits(max_nfe=12), pytest.raises(budgets.BudgetExceeded, match=re.escape("budgets.max_nfe")):
        sample(dyn, x0, "dopri5", rtol=1e-8, atol=1e-8)
    with budgets.limits(max_nfe=2):
        assert sample(dyn, x0, "euler", nfe=8).nfe == 8
