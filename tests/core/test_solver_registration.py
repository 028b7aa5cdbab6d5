"""A solver written outside the package (a plugin, a user's module) joins the registry through
``register_solver``: the decorator names the class and registers one instance, so ``solve`` finds it by name
and its messages use that name."""

import pytest
import torch

from odebench.bench.core.solvers import SOLVERS, solve
from odebench.bench.core.solvers.base import FixedStepSolver, register_solver


@pytest.fixture
def left_riemann():
    @register_solver("test_left_riemann")
    class LeftRiemann(FixedStepSolver):
        """Euler written again: x + dt f(x, t)."""

        def step(self, f, x, t, dt, *, dyn, gen, last):
            return x + dt * f(x, t)

    yield LeftRiemann
    SOLVERS._items.pop("test_left_riemann", None)


def test_a_registered_solver_is_found_by_name_and_carries_it(left_riemann):
    solver = SOLVERS.get("test_left_riemann")
    assert isinstance(solver, left_riemann)
    assert solver.name == left_riemann.name == "test_left_riemann"
    x0 = torch.ones(3, 2, dtype=torch.float64)
    res = solve(lambda x, t: -x, x0, "test_left_riemann", nfe=4)
    torch.testing.assert_close(res.x, x0 * 0.75**4, rtol=0, atol=1e-15)
    assert res.nfe == 4
    with pytest.raises(ValueError, match="solver 'test_left_riemann' needs an NFE budget"):
        solve(lambda x, t: -x, x0, "test_left_riemann")
