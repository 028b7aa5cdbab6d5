"""Straightness / curvature and transport cost against hand-computed values."""

import math

import pytest
import torch

from odebench.bench.core.solvers import Dynamics, sample, solve
from odebench.metrics import METRICS, EvalContext
from odebench.metrics.registry import split_output
from odebench.metrics.trajectories import (
    ot_cost,
    reference_trajectory,
    straightness_from_velocities,
    straightness_secant,
    transport_cost,
)

OMEGA = math.pi / 2
M = torch.tensor([1.0, -2.0], dtype=torch.float64)
S = torch.tensor([0.5, 2.0], dtype=torch.float64)


def straight_field(x, t):
    """Displacement interpolation of the map x0 -> s x0 + m: straight lines at constant speed."""
    t = t[:, None]
    return M + (S - 1) * (x - t * M) / (1 + t * (S - 1))


def rotation(x, t):
    """v = omega J x: Z_t = R(omega t) Z_0, a circular arc."""
    return OMEGA * torch.stack([-x[:, 1], x[:, 0]], 1)


def rotation_straightness(z0):
    """integral E|v|^2 dt - E|Z1 - Z0|^2 = E|z|^2 (omega^2 - 2 (1 - cos omega)) for the rotation."""
    return z0.pow(2).sum(1).mean().item() * (OMEGA**2 - 2 * (1 - math.cos(OMEGA)))


def z0(n=256, seed=0):
    return torch.randn(n, 2, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def test_straight_field_has_zero_straightness_on_both_grids():
    x0 = z0()
    traj, t, vel = reference_trajectory(straight_field, x0, n_steps=50)
    torch.testing.assert_close(traj[-1], S * x0 + M)
    assert straightness_from_velocities(traj, t, vel).abs().max() < 1e-10
    euler = solve(straight_field, x0, "euler", nfe=7, trajectory=True)
    assert straightness_secant(euler.trajectory, euler.t).abs().max() < 1e-10


def test_rotation_matches_the_hand_computed_value():
    x0 = z0()
    expected = rotation_straightness(x0)
    assert expected > 0.5
    traj, t, vel = reference_trajectory(rotation, x0, n_steps=200)
    assert straightness_from_velocities(traj, t, vel).mean().item() == pytest.approx(expected, rel=1e-4)
    fine = solve(rotation, x0, "rk4", nfe=800, trajectory=True)
    assert straightness_secant(fine.trajectory, fine.t).mean().item() == pytest.approx(expected, rel=1e-4)


def test_secant_form_equals_lee_et_al_on_a_uniform_euler_path():
    x0 = z0(64)
    n = 10
    res = solve(rotation, x0, "euler", nfe=n, trajectory=True)
    traj = res.trajectory
    # Lee, Kim, Ye's estimator: mean over steps and over batch x dims of (secant - displacement)^2
    lee = torch.stack([((traj[i] - traj[i - 1]) * n - (traj[-1] - traj[0])).pow(2).mean()
                       for i in range(1, n + 1)]).mean()
    ours = straightness_secant(traj, res.t).mean() / 2
    torch.testing.assert_close(ours, lee)


def test_transport_cost_identity_is_zero_and_ot_excess_nonnegative():
    x = z0(200)
    assert transport_cost(x, x).item() == 0.0
    assert ot_cost(x, x) == pytest.approx(0.0, abs=1e-12)
    g = torch.Generator().manual_seed(1)
    for p in (1.0, 2.0):
        y = torch.randn(200, 2, generator=g, dtype=torch.float64) * 2 + 1
        excess = transport_cost(x, y, p).item() - ot_cost(x, y, p)
        assert excess >= -1e-12
        assert excess > 0.1  # an independent pairing is far from optimal
        # a pairing that is already optimal (monotone map x -> 2x + 1) has zero excess
        assert transport_cost(x, 2 * x + 1, p).item() == pytest.approx(ot_cost(x, 2 * x + 1, p), abs=1e-9)


def test_registered_metrics_on_a_context():
    x0 = z0(128).float()
    dyn = Dynamics(velocity=lambda x, t: rotation(x.double(), t).float())
    res = sample(dyn, x0, "rk4", nfe=400, trajectory=True)
    ctx = EvalContext(samples=res.x, reference=res.x, x0=x0, trajectory=res.trajectory, t_grid=res.t,
                      dynamics=dyn, options={"straightness": {"n_steps": 100}, "curvature": {"n_steps": 100}})
    expected = rotation_straightness(x0.double())
    vals, settings = split_output("straightness", METRICS.get("straightness").fn(ctx))
    assert vals["straightness"] == pytest.approx(expected, rel=1e-3)
    assert vals["straightness.solver_path"] == pytest.approx(expected, rel=1e-3)
    assert settings["n_paths"] == 128 and "rk4" in settings["reference"]
    vals, _ = split_output("curvature", METRICS.get("curvature").fn(ctx))
    assert vals["curvature"] == pytest.approx(expected / 2, rel=1e-3)
    assert METRICS.get("curvature").needs_trajectory and METRICS.get("straightness").needs_trajectory
    vals, settings = split_output("transport_cost", METRICS.get("transport_cost").fn(ctx))
    # a rotation by pi/2 moves every point by sqrt(2) |z|: cost 2 E|z|^2
    assert vals["transport_cost"] == pytest.approx(2 * x0.double().pow(2).sum(1).mean().item(), rel=1e-4)
    assert vals["transport_cost.excess"] >= 0 and settings["p"] == 2.0
    with pytest.raises(ValueError, match="unknown option"):
        METRICS.get("straightness").fn(EvalContext(samples=x0, reference=x0, x0=x0, dynamics=dyn,
                                                   options={"straightness": {"steps": 3}}))
