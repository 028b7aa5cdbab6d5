"""The report shows each model's training cost and convergence, draws the held-out loss curves, and marks in the
leaderboards every method whose model was still improving."""

from __future__ import annotations

import re

import pandas as pd
from harness_tiny import tiny_spec
from threads import torch_threads

from odebench.bench.harness.execution.run import run_sweep
from odebench.bench.harness.spec.sweep import parse_spec
from odebench.bench.harness.training.evidence import CONVERGENCE_RULE_VERSION
from odebench.bench.report.build import write_report
from odebench.bench.report.training import STILL_IMPROVING, current_verdict, verdict_by_cell


def test_unconverged_models_are_marked_and_their_training_reported(tmp_path):
    spec = tiny_spec(name="conv", methods=[{"name": "fm_ot"}],
                     train={"steps": 30, "batch_size": 64, "lr": 1e-4})  # far from done
    with torch_threads(1):
        run_sweep(parse_spec(spec), tmp_path, progress=False)
        report = write_report(tmp_path / "conv", figures=True)
    md = (tmp_path / "conv" / "leaderboard.md").read_text()
    assert f"fm_ot{STILL_IMPROVING}" in md
    assert "Training: cost and convergence" in md and "0/1 converged" in md and "fwd-eq / step" in md
    assert (tmp_path / "conv" / "figures" / "heldout_loss_moons.png").stat().st_size > 0
    html = (tmp_path / "conv" / "index.html").read_text()
    assert "held-out loss during training" in html and STILL_IMPROVING.strip() in html
    assert report.sections


def test_the_leaderboards_mark_unconverged_models_with_a_legend_and_a_csv_column(tmp_path):
    spec = tiny_spec(name="conv", methods=[{"name": "fm_ot"}],
                     train={"steps": 30, "batch_size": 64, "lr": 1e-4})  # far from done
    with torch_threads(1):
        run_sweep(parse_spec(spec), tmp_path, progress=False)
        write_report(tmp_path / "conv")
    version = f"v{CONVERGENCE_RULE_VERSION}"
    md = (tmp_path / "conv" / "leaderboard.md").read_text()
    legend = f"{STILL_IMPROVING.strip()}: at least one model (seed) of this method was still improving"
    assert legend in md and f"convergence rule {version}" in md
    html = (tmp_path / "conv" / "leaderboard.html").read_text()
    assert legend in html
    csv = pd.read_csv(tmp_path / "conv" / "leaderboard.csv")
    assert (csv["n_still_improving"] == 1).all() and (csv["convergence_rule"] == version).all()
    assert re.search(rf"\|\s*{version}\s*\|", md)  # the training table names the rule version that judged


def _training(stored: dict | None) -> dict:
    """A training block with a straight falling held-out curve (still improving by today's rule)."""
    curve = {"steps": [i * 10 for i in range(21)], "loss": [3 - 0.05 * i for i in range(21)]}
    return {"heldout": curve, **({"convergence": stored} if stored is not None else {})}


def test_a_stored_verdict_of_todays_rule_version_is_used_and_another_version_is_judged_again():
    today = {"converged": True, "converged_at_step": 120, "rule_version": CONVERGENCE_RULE_VERSION}
    assert current_verdict(_training(today)) == today  # stored by today's rule: used as it is
    for older in ({"converged": True, "converged_at_step": 120, "rule_version": CONVERGENCE_RULE_VERSION - 1},
                  {"converged": True, "converged_at_step": 120, "relative_drop": 0.01}):  # no version: rule v1
        again = current_verdict(_training(older))
        assert again["converged"] is False and again["converged_at_step"] is None
        assert again["rule_version"] == CONVERGENCE_RULE_VERSION
    without_curve = {"convergence": {"converged": True, "converged_at_step": 120}}
    assert current_verdict(without_curve) == {"converged": True, "converged_at_step": 120, "rule_version": 1}


def test_the_verdict_of_every_cell_follows_its_model():
    records = [{"cell_id": "a", "model_key": "m1", "training": _training(None)},
               {"cell_id": "b", "model_key": "m1", "training": _training(None)},
               {"cell_id": "c", "model_key": "m2", "training": _training({"converged": True,
                                                                        "rule_version": CONVERGENCE_RULE_VERSION})},
               {"cell_id": "d", "model_key": None}]
    verdicts = verdict_by_cell(records)
    assert set(verdicts) == {"a", "b", "c"}
    assert verdicts["a"]["converged"] is False and verdicts["b"] is verdicts["a"] and verdicts["c"]["converged"]


def test_a_method_whose_held_out_loss_is_no_progress_measure_is_never_judged():
    """Whatever a record stored (records from before the method said so), MeanFlow's convergence is not judged."""
    today = {"converged": True, "converged_at_step": 120, "rule_version": CONVERGENCE_RULE_VERSION}
    verdict = current_verdict(_training(today), "meanflow")
    assert verdict["converged"] is None and verdict["reason"].startswith("not judged: MeanFlow's target")
    assert current_verdict(_training(today), "fm_ot") == today
