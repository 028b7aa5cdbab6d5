"""train_model's cache and cost measurement: a cached model comes back with its training evidence, a model cached
before timings, losses and evidence were recorded loads with empty ones, a reflow parent trains with the
progress setting of its child, and the per-step cost is measured on draws from the model's own streams."""

from __future__ import annotations

import copy

import pytest
import torch
from threads import torch_threads

import odebench.bench.harness.training.train as train
from odebench.bench.core import seeding
from odebench.bench.data import load_dataset
from odebench.bench.harness.store.artifacts import ArtifactStore
from odebench.bench.harness.training import evidence as ev
from odebench.bench.harness.training.train import (
    Problem,
    TrainConfig,
    build_model,
    model_key,
    train_model,
    training_data,
)
from odebench.methods import get_method

TINY = TrainConfig(steps=4, batch_size=16)


@pytest.fixture(autouse=True)
def one_thread():
    with torch_threads(1):
        yield


def _problem() -> Problem:
    return Problem(target=load_dataset("moons", n_train=256, n_test=32), source=None,
                   net={"name": "mlp", "hidden": 8, "depth": 1})


def _fake_fit(progress: list):
    """A stand-in for ``fit`` that records its progress flag and returns the initial weights."""

    def fake(method, model, coupling, cfg, gen, progress_flag=False, **kw):
        progress.append(progress_flag)
        return copy.deepcopy(model).eval(), [0.5]

    return fake


def test_a_cached_model_comes_back_with_its_training_evidence(tmp_path):
    store, method, problem = ArtifactStore(tmp_path), get_method("fm_ot"), _problem()
    first = train_model(method, problem, TINY, 0, store)
    again = train_model(method, problem, TINY, 0, store)
    assert again.cached and {"cost", "heldout", "convergence"} <= set(first.evidence)
    assert again.evidence == first.evidence
    assert again.evidence_record() == first.evidence_record()


def test_a_model_cached_before_timings_losses_and_evidence_were_recorded_loads_with_empty_ones(tmp_path):
    """An old cache entry whose meta lacks train_seconds, losses and evidence still loads: 0 seconds, no loss
    curve, no evidence, so the totals over a chain and the record stay computable."""
    store, method, problem = ArtifactStore(tmp_path), get_method("fm_ot"), _problem()
    key = model_key(method, problem, TINY, 0, None)
    torch.manual_seed(0)
    weights = build_model(method, problem)
    store.save(key, weights, {"seed": 0})
    old = train_model(method, problem, TINY, 0, store)
    assert old.cached and old.key == key
    assert old.seconds == 0.0 and old.total_train_seconds() == 0.0
    assert old.losses == [] and old.evidence == {} and old.evidence_record() == {}
    assert all(torch.equal(a, b) for a, b in zip(old.model.state_dict().values(),
                                                 weights.state_dict().values(), strict=True))


@pytest.mark.parametrize("progress", [True, False])
def test_a_reflow_parent_trains_with_the_progress_setting_of_its_child(tmp_path, monkeypatch, progress):
    seen: list = []
    monkeypatch.setattr(train, "fit", _fake_fit(seen))
    method = get_method("rf", k=2, n_pairs=16, pair_solver="euler", pair_nfe=1)
    train_model(method, _problem(), TINY, 0, ArtifactStore(tmp_path), progress=progress)
    assert seen == [progress, progress]


def test_the_step_cost_is_measured_on_draws_from_the_models_own_streams(tmp_path, monkeypatch):
    """The cost-measuring batch is coupling.draw(batch_size, derive(seed, key, "cost-batch")) and its loss
    noise derive(seed, key, "cost-loss"): seeded, and apart from the training batches."""
    monkeypatch.setattr(train, "fit", _fake_fit([]))
    seen = {}
    real = ev.step_cost

    def spy(method, model, reference_net, x0, x1, gen):
        seen.update(x0=x0, x1=x1, gen_state=gen.get_state())
        return real(method, model, reference_net, x0, x1, gen)

    monkeypatch.setattr(ev, "step_cost", spy)
    method, problem = get_method("fm_ot"), _problem()
    tm = train_model(method, problem, TINY, 3, ArtifactStore(tmp_path))
    assert torch.equal(seen["gen_state"], seeding.derive(3, tm.key, "cost-loss").get_state())
    coupling = training_data(method, problem, None, 3, tm.key, "cpu").coupling
    x0, x1 = coupling.draw(TINY.batch_size, seeding.derive(3, tm.key, "cost-batch"))
    assert torch.equal(seen["x0"], x0) and torch.equal(seen["x1"], x1)
