"""Solvers: empirical order of convergence on linear ODEs, and NFE equal to the real number of field calls."""

import math

import pytest
import torch

from odebench.bench.core.solvers import SOLVERS, BudgetTooSmall, Dynamics, sample, solve

ORDERS = {"euler": 1, "midpoint": 2, "heun": 2, "rk4": 4}


def linear_field(a: float):
    return lambda x, t: a * x


@pytest.mark.parametrize("name,order", ORDERS.items())
def test_empirical_order_on_linear_ode(name, order):
    """dx/dt = -1.3 x from x(0) = 1: the error halves `order` times per doubling of the step count."""
    a = -1.3
    x0 = torch.ones(4, 3, dtype=torch.float64)
    exact = math.exp(a)
    per_step = SOLVERS.get(name).evals_per_step
    errors = []
    for steps in (8, 16, 32):
        res = solve(linear_field(a), x0, name, nfe=steps * per_step)
        errors.append((res.x - exact).abs().max().item())
    rates = [math.log2(errors[i] / errors[i + 1]) for i in range(2)]
    assert all(abs(r - order) < 0.25 for r in rates), rates


@pytest.mark.parametrize("name", list(ORDERS))
@pytest.mark.parametrize("nfe", [1, 4, 7, 16])
def test_nfe_counts_real_calls(name, nfe):
    calls = []

    def field(x, t):
        calls.append(1)
        assert t.shape == (x.shape[0],)
        return -x

    per_step = SOLVERS.get(name).evals_per_step
    if nfe < per_step:
        with pytest.raises(BudgetTooSmall):
            solve(field, torch.ones(5, 2), name, nfe=nfe)
        return
    res = solve(field, torch.ones(5, 2), name, nfe=nfe)
    assert res.nfe == len(calls) == (nfe // per_step) * per_step
    assert res.trajectory is None
    assert res.t.shape == (nfe // per_step + 1,)


def test_dopri5_counts_real_calls_and_is_accurate():
    calls = []

    def field(x, t):
        calls.append(1)
        return -0.7 * x

    x0 = torch.ones(3, 2, dtype=torch.float64)
    res = solve(field, x0, "dopri5", rtol=1e-9, atol=1e-9)
    assert res.nfe == len(calls) > 0
    assert torch.allclose(res.x, x0 * math.exp(-0.7), atol=1e-8)


@pytest.mark.parametrize("trajectory", [False, True])
def test_dopri5_never_calls_the_field_outside_its_interval(trajectory):
    """Dynamics end at t1 because the field may be singular beyond (ddpm stops at s = 1e-3); the adaptive
    solver must not step past t1 and interpolate back. The end state is still exact."""
    seen = []

    def field(x, t):
        seen.append(t)
        return -0.7 * x

    dyn = Dynamics(velocity=field, t0=0.0, t1=0.999)
    x0 = torch.ones(3, 2, dtype=torch.float64)
    for tol in (1e-3, 1e-5, 1e-9):
        seen.clear()
        res = sample(dyn, x0, "dopri5", rtol=tol, atol=tol, trajectory=trajectory)
        times = torch.cat(seen)
        assert times.min() >= 0.0 and times.max() <= 0.999, (tol, times.max().item())
        assert torch.allclose(res.x, x0 * math.exp(-0.7 * 0.999), atol=10 * tol)


def test_trajectory_holds_every_step_and_matches_final_state():
    res = solve(linear_field(-1.0), torch.ones(2, 1), "heun", nfe=8, trajectory=True)
    assert res.trajectory.shape == (5, 2, 1)
    assert torch.equal(res.trajectory[-1], res.x)
    assert torch.equal(res.trajectory[0], torch.ones(2, 1))


def test_backwards_integration_inverts_forward():
    x0 = torch.randn(6, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    f = lambda x, t: torch.sin(3 * t)[:, None] * x  # noqa: E731
    fwd = solve(f, x0, "rk4", nfe=400)
    back = solve(f, fwd.x, "rk4", nfe=400, t0=1.0, t1=0.0)
    assert torch.allclose(back.x, x0, atol=1e-9)


def test_unknown_solver_names_the_known_ones():
    with pytest.raises(KeyError, match="Did you mean 'heun'"):
        solve(linear_field(1.0), torch.ones(1, 1), "heunn", nfe=4)


def test_euler_maruyama_needs_sde_dynamics():
    from odebench.bench.core.solvers import Unsupported

    with pytest.raises(Unsupported):
        sample(Dynamics(velocity=linear_field(1.0)), torch.ones(2, 1), "euler_maruyama", nfe=4)


def test_euler_maruyama_matches_ornstein_uhlenbeck_variance():
    """dX = -X dt + sqrt(2) dW from X0 = 0 over [0, 1]: Var X1 = 1 - e^{-2} (fine steps, many paths)."""
    dyn = Dynamics(velocity=linear_field(-1.0), drift=linear_field(-1.0),
                   diffusion=lambda t: torch.full_like(t, math.sqrt(2.0)))
    gen = torch.Generator().manual_seed(1)
    res = sample(dyn, torch.zeros(20000, 1, dtype=torch.float64), "euler_maruyama", nfe=200, gen=gen)
    assert res.nfe == 200
    # the last step adds no noise, so the exact target is the variance one step before the end, decayed
    dt = 1 / 200
    expected = (1 - math.exp(-2 * (1 - dt))) * (1 - dt) ** 2
    assert abs(res.x.var().item() - expected) < 0.03
