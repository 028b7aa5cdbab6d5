"""train.until_converged: a training stops at the first held-out evaluation that reads converged, with the
weights a training of that many steps has, and its records say how many steps it took; a rerun reads the same."""

from __future__ import annotations

import json

import pytest
import torch
from harness_tiny import tiny_spec, to_toml
from threads import torch_threads

from odebench.bench.cli import main
from odebench.bench.data import load_dataset
from odebench.bench.harness.execution.run import run_sweep
from odebench.bench.harness.spec.sweep import SpecError, parse_spec
from odebench.bench.harness.store.artifacts import ArtifactStore
from odebench.bench.harness.training import evidence as ev
from odebench.bench.harness.training.train import Problem, TrainConfig, model_key, train_model
from odebench.methods import get_method

NET = {"name": "mlp", "hidden": 32, "depth": 2}
# fm_ot on moons at lr 1e-2 settles well inside 1000 steps (the rule reads it converged at step 400)
UNTIL = {"steps": 1000, "batch_size": 64, "lr": 1e-2, "until_converged": True}


@pytest.fixture(scope="module")
def problem() -> Problem:
    return Problem(load_dataset("moons", n_train=2000, n_test=512), None, NET)


def test_a_training_stops_when_converged_and_records_the_steps_it_took(problem, tmp_path):
    store = ArtifactStore(tmp_path / "store")
    with torch_threads(1):
        stopped = train_model(get_method("fm_ot"), problem, TrainConfig(**UNTIL), 0, store)
    evidence = stopped.evidence_record()
    steps = evidence["cost"]["steps"]
    curve = list(zip(evidence["heldout"]["steps"], evidence["heldout"]["loss"], strict=True))
    assert steps < 1000 and curve[-1][0] == steps  # it stopped at an evaluation, before the budget
    assert evidence["cost"]["budget"] == {"by": "steps", "until_converged": True, "max_steps": 1000,
                                          "stopped_converged": True}
    assert evidence["cost"]["flops"] == evidence["cost"]["flops_per_step"] * steps
    assert [s for s, _ in curve] == [s for s in ev.eval_steps(1000) if s <= steps]  # the budget's evaluations
    assert ev.settled(curve) and not ev.settled(curve[:-1])  # the first evaluation that reads converged
    assert evidence["convergence"]["converged"] is True
    assert evidence["convergence"]["rule_version"] == ev.CONVERGENCE_RULE_VERSION
    again = train_model(get_method("fm_ot"), problem, TrainConfig(**UNTIL), 0, store)
    assert again.cached and again.evidence_record() == evidence  # kept with the model: a rerun reads the same


def test_a_stopped_model_has_the_weights_of_a_training_of_that_many_steps(problem, tmp_path):
    from odebench.bench.harness.training import train

    method = get_method("fm_ot")
    cfg = TrainConfig(**UNTIL)

    def run(run_cfg):  # one prepared model (key, data, initialisation of the stopped run) on each budget
        with torch_threads(1):
            job = train.prepare_training(method, problem, cfg, 0, ArtifactStore(tmp_path),
                                         train.Runtime("cpu"), None)
            job.run_cfg = run_cfg
            ema, losses, curve = train.fit_pending(job)
        return ema, curve

    stopped, curve = run(cfg)
    full, full_curve = run(TrainConfig(**{**UNTIL, "until_converged": False}))
    plain, _ = run(TrainConfig(**{**UNTIL, "until_converged": False, "steps": curve[-1][0]}))
    assert curve[-1][0] < 1000 and full_curve[:len(curve)] == curve  # a prefix of the full budget's curve
    assert all(torch.equal(a, b) for a, b in zip(stopped.state_dict().values(), plain.state_dict().values(),
                                                strict=True))
    assert not all(torch.equal(a, b) for a, b in zip(stopped.state_dict().values(), full.state_dict().values(),
                                                    strict=True))


def test_until_converged_keys_another_model_with_the_rule_version(problem):
    method = get_method("fm_ot")
    by_budget = model_key(method, problem, TrainConfig(**{**UNTIL, "until_converged": False}), 0, None)
    legacy = model_key(method, problem, TrainConfig(**{k: v for k, v in UNTIL.items() if k != "until_converged"}),
                       0, None)
    assert by_budget == legacy  # off: the keys models always had
    until = model_key(method, problem, TrainConfig(**UNTIL), 0, None)
    assert until != by_budget


def test_a_sweep_until_converged_records_its_steps_and_resumes_to_the_same_records(tmp_path):
    raw = tiny_spec(name="until", methods=[{"name": "fm_ot"}], solvers=[{"name": "euler", "nfe": [2]}],
                    net=dict(NET), train=dict(UNTIL))
    with torch_threads(1):
        summary = run_sweep(parse_spec(raw), tmp_path, progress=False)
    cells = sorted((summary.out_dir / "cells").glob("*.json"))
    first = {p.name: json.loads(p.read_text())["training"] for p in cells}
    assert all(t["cost"]["steps"] < 1000 and t["cost"]["budget"]["max_steps"] == 1000 for t in first.values())
    for p in cells:  # an interrupted run: the model is in the cache, the cells' records are not
        p.unlink()
    with torch_threads(1):
        run_sweep(parse_spec(raw), tmp_path, progress=False)
    again = {p.name: json.loads(p.read_text())["training"] for p in sorted((summary.out_dir / "cells").glob("*.json"))}
    strip = lambda t: {**t, "cost": {k: v for k, v in t["cost"].items() if "seconds" not in k}}  # noqa: E731
    assert {k: strip(v) for k, v in again.items()} == {k: strip(v) for k, v in first.items()}


@pytest.mark.parametrize("value", ["yes", 1])
def test_a_value_other_than_true_or_false_is_a_spec_error(tmp_path, capsys, value):
    raw = tiny_spec(name="bad", train={"until_converged": value})
    with pytest.raises(SpecError, match=r"train\.until_converged: must be true or false"):
        parse_spec(raw)
    path = tmp_path / "bad.toml"
    path.write_text(to_toml(raw))
    assert main(["run", "--spec", str(path), "--out", str(tmp_path / "out"), "--dry-run", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "until_converged" in err and "true or false" in err and "Traceback" not in err


def test_the_loss_curve_of_a_stopped_training_keeps_the_budgets_chunks():
    from odebench.bench.harness.training.train import loss_chunk, loss_steps

    assert loss_chunk(1000) == 10
    # stopped at 405 of 1000: chunks of 10 (the budget's), the last one ending at the stop
    assert loss_steps(405, 41, max_steps=1000)[-2:] == [400, 405]
    assert loss_steps(400, 40, max_steps=1000) == loss_steps(1000, 100)[:40]  # the full budget's points
    assert loss_steps(400, 100) == [4 * (i + 1) for i in range(100)]  # no budget given: chunks of the steps


def test_a_method_whose_held_out_loss_is_no_progress_measure_trains_the_whole_budget(problem, tmp_path):
    """MeanFlow's and the consistency models' held-out losses say nothing of their samples: until_converged never
    stops them, and their convergence is not judged (None, with the method's reason)."""
    assert get_method("meanflow").heldout_not_progress
    assert get_method("consistency_training").heldout_not_progress
    assert get_method("consistency_distillation", teacher="fm_ot").heldout_not_progress
    assert not get_method("fm_ot").heldout_not_progress and not get_method("shortcut").heldout_not_progress
    method = get_method("fm_ot")
    method.heldout_not_progress = "constructed: this fm_ot stands for a method whose loss is no progress measure"
    with torch_threads(1):
        full = train_model(method, problem, TrainConfig(**UNTIL), 0, ArtifactStore(tmp_path / "store"))
    evidence = full.evidence_record()
    assert evidence["cost"]["steps"] == 1000 and evidence["heldout"]["steps"][-1] == 1000  # fm_ot alone stops at 400
    assert evidence["cost"]["budget"]["stopped_converged"] is False
    assert "no progress measure" in evidence["cost"]["budget"]["trained_whole_budget"]
    assert evidence["convergence"]["converged"] is None
    assert evidence["convergence"]["reason"].startswith("not judged: constructed")
