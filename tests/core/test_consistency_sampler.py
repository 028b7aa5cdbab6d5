"""The multistep consistency sampler (odebench.bench.core.solvers.consistency): one flow-map call per jump,
re-noising to the grid's next level with sqrt(s^2 - s_end^2) fresh noise, and refusals."""

from __future__ import annotations

import math

import pytest
import torch

from odebench.bench.core.fields import BudgetTooSmall, Dynamics, Unsupported
from odebench.bench.core.schedules import karras_levels
from odebench.bench.core.solvers import SOLVERS, sample
from odebench.methods.consistency import VarianceExplodingTime

SIGMA_MIN, SIGMA_MAX = 0.002, 80.0


def recording_dynamics(value: float = 0.0):
    """A flow map to the data end that returns ``value`` everywhere and records (r, t) of every call."""
    calls = []

    def flow_map(x, r, t):
        calls.append((r.clone(), t.clone()))
        return torch.full_like(x, value)

    return Dynamics(flow_map=flow_map, schedule=VarianceExplodingTime(SIGMA_MIN, SIGMA_MAX)), calls


@pytest.mark.parametrize("nfe", [1, 2, 4, 8])
def test_nfe_is_the_number_of_jumps_each_to_the_data_end(nfe):
    dyn, calls = recording_dynamics()
    res = sample(dyn, torch.randn(5, 2), "consistency", nfe=nfe, grid="edm", gen=torch.Generator().manual_seed(0))
    assert res.nfe == nfe == len(calls)
    assert all(bool((t == 1).all()) for _, t in calls)
    # the jumps start at the first nfe levels of the (nfe + 1)-point Karras grid: sigma_max first
    sched = dyn.schedule
    starts = torch.stack([r[0] for r, _ in calls]).double()
    expected = karras_levels(nfe, SIGMA_MAX, SIGMA_MIN)[:nfe]
    assert torch.allclose(sched.sigma(starts), expected, rtol=1e-5, atol=1e-5)  # float32 times: 80 x 6e-8
    assert float(starts[0]) == 0.0


def test_renoising_draws_fresh_noise_scaled_to_the_next_level():
    dyn, _ = recording_dynamics(value=0.0)  # jumps land on 0: the re-noised states are the noise itself
    gen = torch.Generator().manual_seed(7)
    res = sample(dyn, torch.randn(1000, 2), "consistency", nfe=3, grid="edm", gen=gen, trajectory=True)
    replay = torch.Generator().manual_seed(7)
    levels = karras_levels(3, SIGMA_MAX, SIGMA_MIN)
    for i in (1, 2):
        z = torch.randn(1000, 2, generator=replay)
        scale = math.sqrt(float(levels[i]) ** 2 - SIGMA_MIN**2)
        assert torch.allclose(res.trajectory[i], scale * z, rtol=1e-5)
    assert torch.equal(res.x, torch.zeros(1000, 2)) and torch.equal(res.trajectory[-1], res.x)
    assert res.t.shape == (4,) and float(res.t[-1]) == 1.0


def test_a_seed_gives_the_same_samples():
    dyn, _ = recording_dynamics(value=1.0)
    x0 = torch.randn(4, 2)
    a = sample(dyn, x0, "consistency", nfe=4, grid="edm", gen=torch.Generator().manual_seed(3)).x
    b = sample(dyn, x0, "consistency", nfe=4, grid="edm", gen=torch.Generator().manual_seed(3)).x
    assert torch.equal(a, b)


def test_refusals():
    dyn, _ = recording_dynamics()
    with pytest.raises(BudgetTooSmall):
        sample(dyn, torch.randn(2, 2), "consistency", nfe=0, grid="edm")
    with pytest.raises(Unsupported, match="flow_map"):
        sample(Dynamics(velocity=lambda x, t: x), torch.randn(2, 2), "consistency", nfe=2, grid="edm")
    assert SOLVERS.get("consistency").requires == {"flow_map", "noise_schedule"}
    assert SOLVERS.get("consistency").kind == "sde"  # it draws noise: never an ODE solver (pair or NLL solves)


def test_a_flow_path_re_noises_on_its_own_schedule():
    """On a flow's path (alpha_t = t, sigma_t = 1 - t: s infinite at the source, 0 at the data) a jump lands on
    the data end and re-noising gives x = alpha x_hat + sigma z."""
    from odebench.methods.probability_paths import LinearPath, path_schedule

    calls = []

    def flow_map(x, r, t):
        calls.append(r.clone())
        return torch.full_like(x, 2.0)

    dyn = Dynamics(flow_map=flow_map, schedule=path_schedule(LinearPath()))
    gen = torch.Generator().manual_seed(1)
    res = sample(dyn, torch.randn(500, 2), "consistency", nfe=2, grid="uniform", gen=gen, trajectory=True)
    z = torch.randn(500, 2, generator=torch.Generator().manual_seed(1))
    assert torch.allclose(res.trajectory[1], 0.5 * 2.0 + 0.5 * z, atol=1e-6)
    assert res.nfe == 2 and float(calls[1][0]) == 0.5

