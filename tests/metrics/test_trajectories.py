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
    assert vals["transport_cost.excess_ot"] >= 0 and settings["p"] == 2.0
    assert "transport_cost.reference" not in vals  # no source law in this context: no reference
    with pytest.raises(ValueError, match="unknown option"):
        METRICS.get("straightness").fn(EvalContext(samples=x0, reference=x0, x0=x0, dynamics=dyn,
                                                   options={"straightness": {"steps": 3}}))


def test_straightness_from_velocities_by_hand_on_a_shifted_interval():
    """One 1-D path on t = (1, 1.5, 3): base = (2 - 0) / 2 = 1, v = (1, 3, 0), so the squared deviations are
    (0, 4, 1) and the trapezoid rule gives 0.5 (0 + 4) / 2 + 1.5 (4 + 1) / 2 = 4.75."""
    t = torch.tensor([1.0, 1.5, 3.0], dtype=torch.float64)
    traj = torch.tensor([0.0, 0.7, 2.0], dtype=torch.float64)[:, None, None]
    vel = torch.tensor([1.0, 3.0, 0.0], dtype=torch.float64)[:, None, None]
    torch.testing.assert_close(straightness_from_velocities(traj, t, vel),
                               torch.tensor([4.75], dtype=torch.float64))


def test_straightness_secant_by_hand_on_a_non_uniform_grid():
    """One 1-D path through (0, 1, 1) at t = (1, 1.25, 3): base = 1 / 2, secants (4, 0), so
    S = 0.25 (4 - 0.5)^2 + 1.75 (0 - 0.5)^2 = 3.5; one value per path."""
    t = torch.tensor([1.0, 1.25, 3.0], dtype=torch.float64)
    traj = torch.tensor([0.0, 1.0, 1.0], dtype=torch.float64)[:, None, None]
    torch.testing.assert_close(straightness_secant(traj, t), torch.tensor([3.5], dtype=torch.float64))
    two = torch.cat([traj, 2 * traj], 1)  # [3, 2, 1]: a second path, twice as far, scores four times as much
    torch.testing.assert_close(straightness_secant(two, t), torch.tensor([3.5, 14.0], dtype=torch.float64))


def test_straightness_keeps_the_paths_dtype_on_a_float64_grid():
    """A float32 path on a float64 time grid gives float32 straightness (the grid does not promote it)."""
    x0 = z0(8)
    traj, t, vel = reference_trajectory(rotation, x0, n_steps=4)
    assert straightness_from_velocities(traj.float(), t, vel.float()).dtype == torch.float32
    assert straightness_secant(traj.float(), t).dtype == torch.float32


def test_rotation_straightness_on_a_shifted_interval():
    """The rotation over [t0, t1] = [0.5, 2]: S = E|z|^2 (omega^2 L - 2 (1 - cos(omega L)) / L), L = t1 - t0."""
    x0 = z0(32)
    length = 1.5
    traj, t, vel = reference_trajectory(rotation, x0, n_steps=150, t0=0.5, t1=2.0)
    expected = x0.pow(2).sum(1).mean().item() * (OMEGA**2 * length - 2 * (1 - math.cos(OMEGA * length)) / length)
    assert straightness_from_velocities(traj, t, vel).mean().item() == pytest.approx(expected, rel=1e-4)
    fine = solve(rotation, x0, "rk4", nfe=600, t0=0.5, t1=2.0, trajectory=True)
    assert straightness_secant(fine.trajectory, fine.t).mean().item() == pytest.approx(expected, rel=1e-4)


def test_reference_trajectory_of_a_linear_field_is_its_exponential_on_the_grid():
    """v = a x over [t0, t1]: n_steps + 1 uniform times (200 steps by default), Z_t = x0 exp(a (t - t0)), and
    the velocities evaluated on those states."""
    a = -0.7
    x0 = z0(5)
    traj, t, vel = reference_trajectory(lambda x, s: a * x, x0, n_steps=10, t0=0.5, t1=2.0)
    torch.testing.assert_close(t, torch.linspace(0.5, 2.0, 11, dtype=torch.float64))
    want = torch.exp(a * (t - 0.5))[:, None, None] * x0
    torch.testing.assert_close(traj, want, atol=1e-6, rtol=0)
    torch.testing.assert_close(vel, a * traj)
    traj, t, vel = reference_trajectory(lambda x, s: a * x, x0)
    assert traj.shape == (201, 5, 2) and len(t) == len(vel) == 201


def test_transport_and_ot_cost_default_to_squared_distances_by_hand():
    """p = 2 by default. Pairs (0 -> 3, 1 -> 1) in 1-D cost (9 + 0) / 2 as given; the best pairing
    (0 -> 1, 1 -> 3) costs (1 + 4) / 2; float32 points are costed in float64."""
    x0 = torch.tensor([[0.0], [1.0]])
    x1 = torch.tensor([[3.0], [1.0]])
    assert transport_cost(x0, x1).item() == 4.5
    assert ot_cost(x0, x1) == pytest.approx(2.5, rel=1e-12)
    a = torch.tensor([[0.1, 0.2], [0.7, -0.3]])
    b = torch.tensor([[0.3, 0.9], [-0.2, 0.4]])
    a64, b64 = a.double(), b.double()
    sq = lambda p, q: float((p - q).pow(2).sum())  # noqa: E731
    best = min(sq(a64[0], b64[0]) + sq(a64[1], b64[1]), sq(a64[0], b64[1]) + sq(a64[1], b64[0])) / 2
    assert ot_cost(a, b) == pytest.approx(best, rel=1e-13)


def _rotation_ctx(n=6, **kw):
    x0 = z0(n)
    dyn = Dynamics(velocity=rotation)
    return x0, dyn, EvalContext(samples=x0, reference=x0, x0=x0, dynamics=dyn, **kw)


def test_straightness_options_reach_the_reference_solve():
    """max_points keeps the first paths and n_steps sets the reference grid (1000 paths and 200 steps by
    default); the settings name both, and the value is the mean over the kept paths."""
    from odebench.metrics.trajectories import _straightness_values

    x0, dyn, ctx = _rotation_ctx(options={"straightness": {"max_points": 3, "n_steps": 7}})
    ref, path, settings = _straightness_values(ctx, "straightness")
    traj, t, vel = reference_trajectory(rotation, x0[:3].float(), 7)
    want = straightness_from_velocities(traj.double(), t.double(), vel.double()).mean().item()
    assert ref == pytest.approx(want, rel=1e-12)
    assert settings["n_paths"] == 3
    assert settings["reference"] == "rk4, 7 uniform steps, trapezoid rule on v at the 8 states"
    assert math.isnan(path) and settings["solver_path_points"] is None
    _, dyn, ctx = _rotation_ctx(1001, options={"straightness": {"n_steps": 1}})
    assert _straightness_values(ctx, "straightness")[2]["n_paths"] == 1000
    _, dyn, ctx = _rotation_ctx(2)
    settings = _straightness_values(ctx, "straightness")[2]
    assert settings["reference"] == "rk4, 200 uniform steps, trapezoid rule on v at the 201 states"


def test_straightness_and_curvature_with_different_options_do_not_share_a_cached_solve():
    """The reference solve is cached per (max_points, n_steps): curvature with another grid is its own value."""
    x0, dyn, ctx = _rotation_ctx(options={"straightness": {"n_steps": 1}, "curvature": {"n_steps": 50}})
    s = METRICS.get("straightness").fn(ctx)["straightness"]
    c = METRICS.get("curvature").fn(ctx)["curvature"]
    assert s != pytest.approx(2 * c, rel=1e-3)
    assert c == pytest.approx(rotation_straightness(x0) / 2, rel=1e-3)


def test_straightness_reference_spans_the_dynamics_interval():
    """Dynamics that stop at t1 < 1 are re-simulated over [t0, t1]: the rotation's closed form for that length."""
    x0 = z0(16)
    dyn = Dynamics(velocity=rotation, t0=0.0, t1=0.6)
    ctx = EvalContext(samples=x0, reference=x0, x0=x0, dynamics=dyn, options={"straightness": {"n_steps": 60}})
    length = 0.6
    expected = x0.pow(2).sum(1).mean().item() * (OMEGA**2 * length - 2 * (1 - math.cos(OMEGA * length)) / length)
    # the reference solve runs in float32 (the model's precision)
    assert METRICS.get("straightness").fn(ctx)["straightness"] == pytest.approx(expected, rel=2e-3)


def test_solver_path_straightness_needs_a_trajectory_and_a_grid_of_two_points_or_more():
    """The solver-path value is NaN without a trajectory, without a grid, or with a one-point grid; a one-step
    path is its own secant (0); the settings carry the grid's length."""
    from odebench.metrics.trajectories import _straightness_values

    x0, dyn, _ = _rotation_ctx()
    one_step = solve(rotation, x0, "euler", nfe=1, trajectory=True)
    cases = [dict(t_grid=one_step.t), dict(trajectory=one_step.trajectory),
             dict(trajectory=one_step.trajectory[:1], t_grid=one_step.t[:1])]
    for kw in cases:
        ctx = EvalContext(samples=x0, reference=x0, x0=x0, dynamics=dyn, options={"curvature": {"n_steps": 2}},
                          **kw)
        _, path, settings = _straightness_values(ctx, "curvature")
        assert math.isnan(path)
        assert settings["solver_path_points"] == (None if "t_grid" not in kw else len(kw["t_grid"]))
        assert math.isnan(METRICS.get("curvature").fn(ctx)["solver_path"])
    ctx = EvalContext(samples=x0, reference=x0, x0=x0, dynamics=dyn, trajectory=one_step.trajectory,
                      t_grid=one_step.t, options={"curvature": {"n_steps": 2}})
    _, path, settings = _straightness_values(ctx, "curvature")
    assert path == pytest.approx(0.0, abs=1e-12) and settings["solver_path_points"] == 2
    assert "secant" in settings["solver_path"]


def test_straightness_needs_dynamics_and_source_draws():
    """Without the dynamics, or without x0, the path metrics refuse with a ValueError."""
    x0, dyn, _ = _rotation_ctx()
    for kw in (dict(x0=x0), dict(dynamics=dyn)):
        with pytest.raises(ValueError, match="dynamics and the source draws"):
            METRICS.get("straightness").fn(EvalContext(samples=x0, reference=x0, **kw))
