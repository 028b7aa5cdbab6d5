"""Reflow and distillation start from the parent's weights by default (``init = "parent"``, as in Liu et al.'s
reflow code), or from a fresh network with ``init = "scratch"``; the choice keys the model cache."""

from __future__ import annotations

import pytest
import torch
from threads import torch_threads

import odebench.bench.harness.training.train as train_module
from odebench.bench.data import load_dataset
from odebench.bench.harness.store.artifacts import ArtifactStore
from odebench.bench.harness.training.train import Problem, TrainConfig, train_model
from odebench.methods import get_method

PAIRS = {"n_pairs": 256, "pair_solver": "euler", "pair_nfe": 8}
CFG = TrainConfig(steps=200, batch_size=128, lr=3e-3, ema_decay=0.99)


@pytest.fixture
def starts(monkeypatch):
    """The weights each training starts from and its loss curve, by method label."""
    seen = {}
    real_fit = train_module.fit

    def spying_fit(method, model, coupling, *args, **kwargs):
        start = {k: v.detach().clone() for k, v in model.state_dict().items()}
        ema, losses = real_fit(method, model, coupling, *args, **kwargs)
        seen[(method.hparams["k"], method.hparams["distill"], method.hparams["init"])] = (start, coupling)
        return ema, losses

    monkeypatch.setattr(train_module, "fit", spying_fit)
    return seen


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_reflow_and_distillation_fine_tune_the_parent_unless_asked_for_scratch(tmp_path, starts):
    problem = Problem(load_dataset("moons", n_train=2000, n_test=200), None, {"name": "mlp", "hidden": 32, "depth": 2})
    store = ArtifactStore(tmp_path)
    with torch_threads(1):
        rf2 = train_model(get_method("rf", k=2, **PAIRS), problem, CFG, 0, store)
        distilled = train_model(get_method("rf", k=2, distill=True, **PAIRS), problem, CFG, 0, store)
        scratch = train_model(get_method("rf", k=2, init="scratch", **PAIRS), problem, CFG, 0, store)
    parent_weights = rf2.parent.model.state_dict()
    start2, pairs2 = starts[(2, False, "parent")]
    assert _same(start2, parent_weights)  # round 2 begins where round 1 ended (its EMA weights)
    assert _same(starts[(2, True, "parent")][0], rf2.model.state_dict())  # distillation begins at 2-RF
    start_scratch, _ = starts[(2, False, "scratch")]
    assert not _same(start_scratch, parent_weights)
    # so round 2's first loss on its own pairs is round 1's loss there, not a fresh network's
    method = get_method("rf", k=2, **PAIRS)
    fresh = train_module.build_model(method, problem)
    fresh.load_state_dict(start_scratch)

    def loss_on_pairs(model) -> float:
        gen = torch.Generator().manual_seed(0)
        x0, x1 = pairs2.draw(2048, gen)
        with torch.no_grad():
            return float(method.loss(model, x0, x1, gen))

    started = train_module.build_model(method, problem)
    started.load_state_dict(start2)
    assert loss_on_pairs(started) == loss_on_pairs(rf2.parent.model) != loss_on_pairs(fresh)
    assert scratch.key != rf2.key and distilled.parent.key == rf2.key
    assert scratch.parent.key == rf2.parent.key  # round 1 is shared: init does not key it


def test_round_one_ignores_init():
    assert get_method("rf", k=1, init="scratch").config() == get_method("rf", k=1).config()
    with pytest.raises(ValueError, match="init must be one of"):
        get_method("rf", k=2, init="warm")
