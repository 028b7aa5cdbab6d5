"""Reflow pairs keep their coupling: x1[i] is the parent flow's image of x0[i], and the reflowed flow is
straighter than its parent. (Pairs shuffled against their sources once passed every test.)"""

from __future__ import annotations

import pytest
import torch

from odebench.bench.core.solvers import sample
from odebench.bench.data import load_dataset
from odebench.bench.harness.store.artifacts import ArtifactStore
from odebench.bench.harness.training.train import Problem, TrainConfig, train_model
from odebench.methods import get_method
from odebench.metrics.trajectories import reference_trajectory, straightness_from_velocities


def _moons_problem(net) -> Problem:
    return Problem(target=load_dataset("moons", n_train=2000, n_test=256), source=None, net=net)


PAIRS = {"n_pairs": 512, "pair_solver": "euler", "pair_nfe": 16}


@pytest.fixture(scope="module")
def reflow_models(tmp_path_factory):
    torch.set_num_threads(1)
    problem = _moons_problem({"name": "mlp", "hidden": 64, "depth": 2})
    store = ArtifactStore(tmp_path_factory.mktemp("reflow"))
    cfg = TrainConfig(steps=600, batch_size=256, lr=3e-3, ema_decay=0.99)
    rf2 = train_model(get_method("rf", k=2, **PAIRS), problem, cfg, 0, store)
    return problem, rf2.parent, rf2


def test_reflow_pairs_are_the_parent_flow_of_each_source_point(reflow_models):
    _, rf1, _ = reflow_models
    method = get_method("rf", k=2, **PAIRS)
    x0 = torch.randn(64, 2, generator=torch.Generator().manual_seed(3))
    x1 = method.make_pairs(rf1.model, x0, torch.Generator().manual_seed(4))
    assert x1.shape == x0.shape
    with torch.no_grad():  # each pair solved alone: x1[i] = ODE(x0[i]) of the parent's field
        alone = torch.cat([sample(method.dynamics_of(rf1.model), x0[i:i + 1], "euler", nfe=16).x
                           for i in range(len(x0))])
    torch.testing.assert_close(x1, alone, rtol=1e-5, atol=1e-5)


def _straightness(model, method) -> float:
    x0 = torch.randn(256, 2, generator=torch.Generator().manual_seed(9))
    field = method.dynamics(model).velocity
    traj, t, vel = reference_trajectory(field, x0, n_steps=50)
    return float(straightness_from_velocities(traj, t, vel).mean())


def test_a_reflowed_flow_is_straighter_than_its_parent(reflow_models):
    _, rf1, rf2 = reflow_models
    s1 = _straightness(rf1.model, get_method("rf", k=1))
    s2 = _straightness(rf2.model, get_method("rf", k=2, **PAIRS))
    assert s2 < 0.3 * s1, (s1, s2)
