"""What a freshly trained model says about its training, field by field: the cost measured before training with
the steps the budget bought, the budget itself ({"by": "steps"} or {"by": "forward_equivalents", ...}), the FLOPs
of the run (steps times the per-step cost, plus what making reflow pairs cost), the seconds, the held-out curve
at ``eval_steps`` on the model's own held-out stream and the convergence verdict on that curve; the same dict is
stored with the weights."""

from __future__ import annotations

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
    budgeted_steps,
    build_model,
    train_model,
    training_data,
)
from odebench.methods import get_method

RF2 = {"k": 2, "n_pairs": 16, "pair_solver": "euler", "pair_nfe": 1}


@pytest.fixture(autouse=True)
def one_thread():
    with torch_threads(1):
        yield


def _problem() -> Problem:
    return Problem(
        target=load_dataset("moons", n_train=256, n_test=32), source=None, net={"name": "mlp", "hidden": 8, "depth": 1}
    )


def _measured_costs(monkeypatch) -> list[dict]:
    """Record what every step_cost call of the training measures."""
    costs, real = [], ev.step_cost

    def spy(*args):
        out = real(*args)
        costs.append(dict(out))
        return out

    monkeypatch.setattr(ev, "step_cost", spy)
    return costs


@pytest.mark.parametrize(
    ("method_args", "cfg", "budget"),
    [
        (("fm_ot", {}), TrainConfig(steps=4, batch_size=16), {"by": "steps"}),
        (
            ("fm_ot", {}),
            TrainConfig(steps=50, batch_size=16, forward_equivalents=12),
            {"by": "forward_equivalents", "forward_equivalents": 12},
        ),
        (("rf", RF2), TrainConfig(steps=3, batch_size=16), {"by": "steps"}),
    ],
    ids=["by-steps", "by-compute", "reflow-pairs"],
)
def test_a_fresh_model_records_its_cost_budget_curve_and_verdict(tmp_path, monkeypatch, method_args, cfg, budget):
    costs = _measured_costs(monkeypatch)
    name, hparams = method_args
    method, problem, store = get_method(name, **hparams), _problem(), ArtifactStore(tmp_path)
    tm = train_model(method, problem, cfg, 2, store)
    measured = costs[-1]  # a reflow parent is measured first
    steps = budgeted_steps(cfg, measured["forward_equivalents_per_step"])
    if cfg.forward_equivalents:
        assert steps != cfg.steps  # the budget, not train.steps, set the length of the run
    assert len(tm.losses) == steps  # fewer than 200 steps: one loss point per step
    data = training_data(method, problem, tm.parent, 2, tm.key, "cpu")
    pair_flops = tm.evidence["cost"]["pair_flops"]
    assert pair_flops == data.pair_flops
    assert (pair_flops > 0) == (tm.parent is not None)
    cost = {
        **measured,
        "steps": steps,
        "budget": budget,
        "pair_flops": pair_flops,
        "flops": measured["flops_per_step"] * steps + pair_flops,
        "seconds": tm.seconds,
    }
    assert tm.evidence["cost"] == cost
    # the held-out curve: the EMA's loss on the model's held-out batch and stream, from the initial weights
    # (step 0) to the returned ones (the last step)
    curve = tm.evidence["heldout"]
    assert set(tm.evidence) == {"cost", "heldout", "convergence"} and set(curve) == {"steps", "loss"}
    assert curve["steps"] == ev.eval_steps(steps) and len(curve["loss"]) == len(curve["steps"])
    evaluate = ev.heldout_evaluator(method, *data.heldout, 2, tm.key)
    assert curve["loss"][-1] == pytest.approx(evaluate(tm.model), rel=1e-6)
    if tm.parent is None:
        torch.manual_seed(seeding.seed_of(2, tm.key, "init"))
        assert curve["loss"][0] == pytest.approx(evaluate(build_model(method, problem)), rel=1e-6)
    assert tm.evidence["convergence"] == ev.judge_convergence(list(zip(curve["steps"], curve["loss"], strict=True)))
    meta = store.load(tm.key, build_model(method, problem), "cpu")
    assert meta["evidence"] == tm.evidence  # stored with the weights, as the model reports it


def test_a_compute_budget_runs_the_steps_it_buys(tmp_path, monkeypatch):
    """fit runs round(budget / per-step cost) steps, not train.steps."""
    seen, real = [], train.fit
    monkeypatch.setattr(train, "fit", lambda *a, **k: seen.append(a[3].steps) or real(*a, **k))
    costs = _measured_costs(monkeypatch)
    cfg = TrainConfig(steps=50, batch_size=16, forward_equivalents=9)
    train_model(get_method("fm_ot"), _problem(), cfg, 0, ArtifactStore(tmp_path))
    assert seen == [round(9 / costs[0]["forward_equivalents_per_step"])] and seen != [50]
