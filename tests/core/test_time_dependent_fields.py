"""Fixed-step ODE solvers on fields that depend on t only: each step is a quadrature rule, so the solver must
evaluate the field at the right times. The midpoint, trapezoid (Heun) and Runge-Kutta rules integrate a field
linear in t exactly, at any step count; a wrong evaluation time leaves an O(dt) error."""

import pytest
import torch

from odebench.bench.core.solvers import SOLVERS, solve

A, B = 0.7, -2.4  # dx/dt = A + B t, so x(t1) - x(t0) = A (t1 - t0) + B (t1^2 - t0^2) / 2


def affine_in_time(x, t):
    return (A + B * t)[:, None].expand_as(x)


@pytest.mark.parametrize("name", ["midpoint", "heun", "rk4"])
@pytest.mark.parametrize("steps", [1, 3, 8])
@pytest.mark.parametrize("t0,t1", [(0.0, 1.0), (1.0, 0.25)])
def test_second_order_rules_integrate_a_field_linear_in_time_exactly(name, steps, t0, t1):
    x0 = torch.tensor([[0.5, -1.0], [2.0, 0.0]], dtype=torch.float64)
    res = solve(affine_in_time, x0, name, nfe=steps * SOLVERS.get(name).evals_per_step, t0=t0, t1=t1)
    exact = x0 + A * (t1 - t0) + B * (t1**2 - t0**2) / 2
    torch.testing.assert_close(res.x, exact, rtol=0, atol=1e-13)
