"""EDM's samplers on any Gaussian path, against Algorithm 2 of Karras et al. written out below from the module's
formulas (a plain float64 loop in the scaled variables y = x / alpha, s = sigma / alpha): the levels of the grid
and s = 0, the churn inside [S_tmin, S_tmax] capped at sqrt(2) - 1 and held at the start, Euler from s = infinity
in DDIM form, Heun elsewhere but onto s = 0; the exact count of network calls, the trajectory and its times.

For Gaussian data N(m, c^2) the denoiser is exact in y: D(y; s) = m + c^2 / (c^2 + s^2) (y - m).
"""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
from gaussian_paths import Gaussian

from odebench.bench.core.fields import BudgetTooSmall, Churn
from odebench.bench.core.schedules import NoiseSchedule
from odebench.bench.core.solvers import SOLVERS, sample

M = torch.tensor([0.3, -0.5, 0.1], dtype=torch.float64)
C = torch.tensor([0.5, 0.2, 1.0], dtype=torch.float64)


class VE(NoiseSchedule):
    """alpha = 1, sigma from 80 down to 0.002: EDM's own variables (a finite start, a last level above 0)."""

    def alpha_sigma(self, t):
        return torch.ones_like(t), 80.0 * (1 - t) + 0.002 * t

    @staticmethod
    def alpha_of_level(s):
        return 1.0


class ScaledVE(VE):
    """The same path scaled by two: alpha = 2 throughout, so y = x / 2."""

    def alpha_sigma(self, t):
        return torch.full_like(t, 2.0), 2 * (80.0 * (1 - t) + 0.002 * t)

    @staticmethod
    def alpha_of_level(s):
        return 2.0


class Trig2(NoiseSchedule):
    """alpha = sin(pi t / 2), sigma = 2 cos(pi t / 2): alpha = 0 at t = 0 with sigma = 2 there (s = infinity),
    sigma = 0 at t = 1 (the grid ends on s = 0) where alpha = 1."""

    def alpha_sigma(self, t):
        return torch.sin(math.pi * t / 2), 2 * torch.cos(math.pi * t / 2)

    @staticmethod
    def alpha_of_level(s):
        return 2 / math.sqrt(4 + s * s)  # tan(pi t / 2) = 2 / s


class EndsAtTinyLevel(VE):
    """sigma ends exactly on the ratio below which a level counts as 0 (1e-10), which it is not."""

    def alpha_sigma(self, t):
        return torch.ones_like(t), 80.0 * (1 - t) + 1e-10 * t


# (schedule, t0, t1): a finite start at alpha = 1 and at alpha = 2; an infinite start; a finite start with alpha
# below 1 onto a data end with alpha = 1
PATHS = {"ve": (VE(), 0.0, 1.0), "scaled": (ScaledVE(), 0.0, 1.0), "trig": (Trig2(), 0.0, 1.0),
         "trig_late": (Trig2(), 0.2, 1.0)}


def denoise(y, s):
    return M + C**2 / (C**2 + s**2) * (y - M)


def levels(schedule, ts):
    """s = sigma / alpha on ts (infinity where alpha = 0, 0 where sigma is below 1e-10 alpha), then 0."""
    alpha, sigma = schedule.alpha_sigma(ts.to(torch.float64))
    a, sg = alpha.tolist(), sigma.tolist()
    sg = [0.0 if ai > 0 and si < 1e-10 * ai else si for ai, si in zip(a, sg, strict=True)]
    lev = [si / ai if ai > 0 else math.inf for ai, si in zip(a, sg, strict=True)]
    if lev[-1] > 0:
        a, sg, lev = [*a, 1.0], [*sg, 0.0], [*lev, 0.0]
    return a, sg, lev


def algorithm2(schedule, ts, x0, churn=None, gen=None):
    """(x, number of denoiser calls, states on ts) of Algorithm 2 from x0 at ts[0]; churn None: deterministic."""
    a, sg, lev = levels(schedule, ts)
    n_levels = sum(v > 0 for v in lev)
    x, calls, states = x0, 0, [x0]
    for i in range(len(lev) - 1):
        s_i, s_n = lev[i], lev[i + 1]
        z = torch.randn(x.shape, generator=gen, dtype=x.dtype) if churn is not None else None
        gamma = 0.0
        if churn is not None and churn.s_tmin <= s_i <= churn.s_tmax:
            gamma = min(churn.s_churn / n_levels, math.sqrt(2) - 1)
        s_h = min(s_i * (1 + gamma), lev[0])  # a raised level beyond the start is held at the start
        if s_i == math.inf:  # x' = (sigma' / sigma) x + alpha' D, D = m where alpha = 0
            x, calls = sg[i + 1] / sg[i] * x + a[i + 1] * M, calls + 1
        else:
            y = x / a[i]
            if s_h > s_i:
                y = y + math.sqrt(s_h**2 - s_i**2) * churn.s_noise * z
            d = (y - denoise(y, s_h)) / s_h
            y_next, calls = y + (s_n - s_h) * d, calls + 1
            if s_n > 0:
                d2 = (y_next - denoise(y_next, s_n)) / s_n
                y_next, calls = y + (s_n - s_h) * (d + d2) / 2, calls + 1
            x = a[i + 1] * y_next
        states.append(x)
    if len(states) > len(ts):
        del states[-2]  # the step onto 0 ends at t1: its result stands for the grid's last time
    return x, calls, torch.stack(states)


def _x0(schedule, t0, n=6):
    a, sg = (v.item() for v in schedule.alpha_sigma(torch.tensor([t0], dtype=torch.float64)))
    z = torch.randn(n, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    return a * M + math.sqrt(a**2 * 0.25 + sg**2) * z


def _dynamics(path, churn=None):
    schedule, t0, t1 = PATHS[path]
    return dataclasses.replace(Gaussian(M, C).dynamics(schedule, t0, t1), churn=churn)


@pytest.mark.parametrize("path", list(PATHS))
@pytest.mark.parametrize("nfe", [4, 9, 12])
def test_edm_heun_is_algorithm_2_with_its_calls_and_trajectory(path, nfe):
    schedule, t0, _ = PATHS[path]
    dyn = _dynamics(path)
    x0 = _x0(schedule, t0)
    res = sample(dyn, x0, "edm_heun", nfe=nfe, trajectory=True)
    x, calls, states = algorithm2(schedule, res.t, x0)
    torch.testing.assert_close(res.x, x, rtol=1e-10, atol=1e-10)
    assert res.nfe == calls and nfe - 1 <= calls <= nfe  # the most levels the budget pays for
    assert res.trajectory.shape == (len(res.t), *x0.shape)
    torch.testing.assert_close(res.trajectory, states, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(res.trajectory[-1], res.x, rtol=0, atol=0)


def _churns(path, nfe):
    """Churn settings whose window [S_tmin, S_tmax] starts and ends exactly on levels of the grid, with a small
    S_churn (gamma = S_churn / N) and a large one (gamma capped at sqrt(2) - 1)."""
    schedule, t0, t1 = PATHS[path]
    n = SOLVERS.get("edm_sde").levels_for(nfe, path == "trig", path != "ve" and path != "scaled")
    ts = torch.linspace(t0, t1, n + 1, dtype=torch.float64)
    lev = levels(schedule, ts)[2]
    inner = [v for v in lev if 0 < v < math.inf]
    return [Churn(s_churn=0.5, s_tmin=inner[-2], s_tmax=inner[1], s_noise=1.3),
            Churn(s_churn=40.0, s_tmin=inner[2], s_tmax=inner[0], s_noise=0.7),
            Churn()]


@pytest.mark.parametrize("path", list(PATHS))
@pytest.mark.parametrize("setting", [0, 1, 2])
def test_edm_sde_is_algorithm_2_with_churn(path, setting):
    nfe = 12
    churn = _churns(path, nfe)[setting]
    schedule, t0, _ = PATHS[path]
    dyn = _dynamics(path, churn)
    x0 = _x0(schedule, t0)
    res = sample(dyn, x0, "edm_sde", nfe=nfe, gen=torch.Generator().manual_seed(5), trajectory=True)
    x, calls, states = algorithm2(schedule, res.t, x0, churn, torch.Generator().manual_seed(5))
    torch.testing.assert_close(res.x, x, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(res.trajectory, states, rtol=1e-9, atol=1e-9)
    assert res.nfe == calls
    det = algorithm2(schedule, res.t, x0)[0]
    assert not torch.allclose(res.x, det)  # the churn did act


@pytest.mark.parametrize("path", list(PATHS))
def test_without_churn_the_denoiser_is_called_at_the_grid_times_only(path):
    schedule, t0, _ = PATHS[path]
    dyn = _dynamics(path)
    seen = []
    field = dyn.x1_hat

    def recording(x, t):
        seen.extend(t.tolist())
        return field(x, t)

    dyn = dataclasses.replace(dyn, x1_hat=recording)
    res = sample(dyn, _x0(schedule, t0), "edm_heun", nfe=9)
    assert set(seen) <= set(res.t.tolist())


def test_the_deterministic_sampler_draws_no_noise():
    """edm_heun leaves the generator (and the global one) as it found it: later draws do not depend on it."""
    gen = torch.Generator().manual_seed(1)
    before, global_before = gen.get_state(), torch.get_rng_state()
    sample(_dynamics("ve"), _x0(VE(), 0.0), "edm_heun", nfe=7, gen=gen)
    assert torch.equal(gen.get_state(), before)
    assert torch.equal(torch.get_rng_state(), global_before)


@pytest.mark.parametrize("solver", ["edm_heun", "edm_sde"])
def test_no_trajectory_unless_asked(solver):
    dyn = _dynamics("trig")
    x0 = _x0(Trig2(), 0.0)
    assert sample(dyn, x0, solver, nfe=6, gen=torch.Generator().manual_seed(0)).trajectory is None
    ts = torch.linspace(0.0, 1.0, 4, dtype=torch.float64)
    assert SOLVERS.get(solver).integrate(dyn, x0, ts, gen=torch.Generator().manual_seed(0)).trajectory is None


@pytest.mark.parametrize("path", ["ve", "trig"])
def test_the_times_come_back_in_the_state_dtype(path):
    schedule, t0, _ = PATHS[path]
    x0 = _x0(schedule, t0).float()
    res = sample(_dynamics(path), x0, "edm_heun", nfe=7, trajectory=True)
    assert res.t.dtype == torch.float32
    assert res.t[0].item() == t0 and res.t[-1].item() == 1.0


def test_levels_are_computed_in_float64_whatever_the_times_dtype():
    """Times given in float32 are the same times in float64: the levels come from them in float64 on the host."""
    solver = SOLVERS.get("edm_heun")
    dyn = _dynamics("ve")
    x0 = _x0(VE(), 0.0)
    ts = torch.tensor([0.0, 0.1, 0.35, 0.7, 0.93], dtype=torch.float32)
    res32 = solver.integrate(dyn, x0, ts)
    res64 = solver.integrate(dyn, x0, ts.to(torch.float64))
    torch.testing.assert_close(res32.x, res64.x, rtol=0, atol=0)
    torch.testing.assert_close(res32.x, algorithm2(VE(), ts, x0)[0], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("infinite_start,zero_end,least", [
    (False, False, 3),  # a Heun step and the step onto 0
    (True, False, 2),  # an Euler step from s = infinity, then onto 0
    (False, True, 1),  # one step onto the grid's own s = 0
    (True, True, 1),  # one step from s = infinity straight onto s = 0
])
def test_the_least_budget_is_named_in_the_refusal(infinite_start, zero_end, least):
    solver = SOLVERS.get("edm_heun")
    assert solver.levels_for(least, infinite_start, zero_end) == 1
    with pytest.raises(BudgetTooSmall, match=f"at least {least} NFE"):
        solver.levels_for(least - 1 - (infinite_start and zero_end), infinite_start, zero_end)


@pytest.mark.parametrize("solver", ["edm_heun", "edm_sde"])
def test_a_budget_is_required(solver):
    with pytest.raises(ValueError, match=r"NFE budget \(nfe="):
        sample(_dynamics("ve"), _x0(VE(), 0.0), solver)


@pytest.mark.parametrize("nfe", [3, 8, 13])
def test_a_last_level_just_at_the_zero_threshold_still_steps_onto_zero_within_budget(nfe):
    """sigma / alpha = 1e-10 at t1 is not 0: the step onto s = 0 follows the grid, and the budget pays for it."""
    schedule = EndsAtTinyLevel()
    dyn = Gaussian(M, C).dynamics(schedule, 0.0, 1.0)
    x0 = _x0(schedule, 0.0)
    res = sample(dyn, x0, "edm_heun", nfe=nfe)
    x, calls, _ = algorithm2(schedule, res.t, x0)
    assert res.nfe == calls and nfe - 1 <= calls <= nfe
    torch.testing.assert_close(res.x, x, rtol=1e-10, atol=1e-10)
