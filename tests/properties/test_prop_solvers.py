"""Solvers: empirical convergence order on random stable linear ODEs with an exact answer.

dx/dt = (1 + c t) A x has the exact solution x(t) = expm((t + c t^2 / 2) A) x(0): the rate changes in time,
so a solver that evaluates the field at the wrong stage times loses its order too. Halving the step of an
order-p method divides the global error by about 2^p once the step is small enough (h |lambda| < ~0.4 here).
"""

from __future__ import annotations

import math

import torch
from _strategies import F64, generator, seeds
from hypothesis import given, settings
from hypothesis import strategies as st

from odebench.bench.core.solvers import SOLVERS, solve

ORDERS = {"euler": 1, "midpoint": 2, "heun": 2, "rk4": 4}
#: coarsest number of steps per solver: small enough that the error is far above float64 round-off at the
#: finest level (4x the steps), large enough to be in the asymptotic regime
BASE_STEPS = {"euler": 32, "midpoint": 16, "heun": 16, "rk4": 8}


@st.composite
def linear_odes(draw):
    """(A [D, D], c): A = S - P with S skew and P symmetric positive definite, so Re(eig A) <= -p_min < 0."""
    d = draw(st.integers(1, 4))
    gen = generator(draw(seeds))
    m = torch.randn(d, d, generator=gen, dtype=F64)
    skew = draw(st.floats(0.0, 1.5)) * (m - m.T) / math.sqrt(2 * d)
    q = torch.randn(d, d, generator=gen, dtype=F64)
    damp = draw(st.floats(0.1, 1.5)) * (q @ q.T / d + 0.2 * torch.eye(d, dtype=F64))
    a = skew - damp
    scale = float(torch.linalg.matrix_norm(a, ord=2))
    a = a * min(1.0, 2.5 / scale)  # keep h |lambda| in the asymptotic regime for the coarsest step
    return a, draw(st.floats(-0.5, 1.0))


def _field(a: torch.Tensor, c: float):
    return lambda x, t: (1 + c * t)[:, None] * (x @ a.T)


def _exact(a: torch.Tensor, c: float, x0: torch.Tensor, t: float) -> torch.Tensor:
    return x0 @ torch.linalg.matrix_exp((t + c * t**2 / 2) * a).T


@settings(max_examples=20)
@given(problem=linear_odes(), solver=st.sampled_from(sorted(ORDERS)),
       grid=st.sampled_from(["uniform", "cosine"]))
def test_fixed_step_solvers_converge_at_their_order(problem, solver, grid):
    a, c = problem
    x0 = torch.eye(a.shape[0], dtype=F64)  # every basis vector: the error of the whole propagator
    exact = _exact(a, c, x0, 1.0)
    per_step = SOLVERS.get(solver).evals_per_step
    errors = []
    for steps in (BASE_STEPS[solver] * 2**i for i in range(3)):
        res = solve(_field(a, c), x0, solver, nfe=steps * per_step, grid=grid)
        assert res.nfe == steps * per_step  # counted calls, one budget's worth
        errors.append(float((res.x - exact).norm()))
    orders = [math.log2(errors[i] / errors[i + 1]) for i in range(2)]
    # the finer pair is closer to the asymptotic order; the coarser one may still be settling
    assert abs(orders[1] - ORDERS[solver]) < 0.3, (solver, grid, errors, orders)
    assert abs(orders[0] - ORDERS[solver]) < 0.6, (solver, grid, errors, orders)


@settings(max_examples=10)
@given(problem=linear_odes(), t_split=st.floats(0.2, 0.8))
def test_solve_backwards_inverts_and_composes(problem, t_split):
    """Integrating 1 -> 0 undoes 0 -> 1, and 0 -> s -> 1 equals the exact propagator (rk4, fine steps)."""
    a, c = problem
    x0 = torch.eye(a.shape[0], dtype=F64)
    forward = solve(_field(a, c), x0, "rk4", nfe=256).x
    back = solve(_field(a, c), forward, "rk4", nfe=256, t0=1.0, t1=0.0).x
    assert torch.allclose(back, x0, atol=1e-8)
    mid = solve(_field(a, c), x0, "rk4", nfe=128, t1=t_split).x
    assert torch.allclose(mid, _exact(a, c, x0, t_split), atol=1e-8)
    end = solve(_field(a, c), mid, "rk4", nfe=128, t0=t_split).x
    assert torch.allclose(end, _exact(a, c, x0, 1.0), atol=1e-8)


@settings(max_examples=8)
@given(problem=linear_odes(), tol=st.sampled_from([1e-5, 1e-7, 1e-9]))
def test_dopri5_meets_its_tolerance(problem, tol):
    """The adaptive solver's global error stays within a small multiple of its tolerance on |x| ~ 1."""
    a, c = problem
    x0 = torch.eye(a.shape[0], dtype=F64)
    res = solve(_field(a, c), x0, "dopri5", rtol=tol, atol=tol)
    assert float((res.x - _exact(a, c, x0, 1.0)).abs().max()) < 100 * tol
    assert res.nfe >= 6  # at least one Dormand-Prince step, counted
