"""A metric that does not fit a dataset is refused by the spec check; one that fails at evaluation fails alone,
keeps the cell's other metrics, and the report names the real cause."""

from __future__ import annotations

import pandas as pd
import pytest
from harness_tiny import tiny_spec
from threads import torch_threads

import odebench.bench.harness.execution.run
from odebench.bench.harness.execution.plan import make_plan
from odebench.bench.harness.execution.run import run_sweep
from odebench.bench.harness.spec.sweep import SpecError, parse_spec
from odebench.bench.harness.store.artifacts import ArtifactStore
from odebench.bench.harness.store.records import RecordStore, is_finished
from odebench.bench.report.build import build_report
from odebench.bench.report.model_figures import why_no_model
from odebench.metrics import METRICS
from odebench.metrics.registry import register_metric


def test_a_metric_of_another_data_kind_is_refused_before_any_work():
    with pytest.raises(SpecError) as err:
        parse_spec(tiny_spec(targets=("moons", "8gaussians"), eval={"metrics": ["w2", "fd_digits"]}))
    [problem] = err.value.problems
    assert problem.startswith("eval.metrics: metric 'fd_digits' measures image data")
    assert "'moons', '8gaussians' are points data" in problem and "image = [\"fd_digits\"]" in problem
    # per kind, the same metric is fine: it runs on image data only
    parse_spec(tiny_spec(eval={"metrics": {"points": ["w2"], "image": ["fd_digits"]}}))
    spec = tiny_spec()
    spec["datasets"] = [{"target": "moons", "eval": {"metrics": ["fid"]}}]
    with pytest.raises(SpecError, match=r"datasets\[0\]\.eval\.metrics: metric 'fid' measures image data"):
        parse_spec(spec)


@pytest.fixture
def boom_metric():
    @register_metric("test_boom", higher_is_better=False)
    def _boom(ctx):
        """Always fails (a test metric)."""
        raise ValueError("needs 8x8 images")

    yield "test_boom"
    METRICS._items.pop("test_boom", None)


def test_a_failing_metric_fails_alone_and_the_report_names_it(boom_metric, tmp_path):
    raw = tiny_spec(name="boom", solvers=[{"name": "euler", "nfe": [4]}],
                    eval={"n_samples": 64, "metrics": ["w2", "test_boom"]})
    with torch_threads(1):
        odebench.bench.harness.execution.run._MODELS.clear()
        summary = run_sweep(parse_spec(raw), tmp_path, progress=False)
    (rec,) = RecordStore(tmp_path / "boom").records()
    assert rec["status"] == "ok" and rec["metrics"]["w2"] > 0  # the other metric is kept
    assert rec["metric_failures"] == {"test_boom": "ValueError: needs 8x8 images"}
    assert any("metric test_boom failed in 1 cell(s)" in n and "needs 8x8 images" in n for n in summary.notes)
    assert not is_finished(rec)  # tried again by the next run, like a failed cell
    plan = make_plan(parse_spec(raw).cells, lambda cid: is_finished(RecordStore(tmp_path / "boom").read(cid)),
                     ArtifactStore(tmp_path / ".cache" / "models"))
    assert len(plan.todo) == 1

    report = build_report(tmp_path / "boom", figures=True)
    assert any("metric test_boom failed on 1 cell(s)" in n and "needs 8x8 images" in n for n in report.notes)
    assert not any("training failed" in n or "no record names" in n for n in report.notes)
    issues = next(t for t in report.sections[0].tables if t.title == "Failed and skipped cells").frame
    assert list(issues["status"]) == ["metric failed"] and "needs 8x8 images" in issues["reason"].iloc[0]


def test_a_cell_whose_every_metric_fails_is_failed_with_the_reasons(boom_metric, tmp_path):
    raw = tiny_spec(name="allboom", solvers=[{"name": "euler", "nfe": [4]}],
                    eval={"n_samples": 64, "metrics": ["test_boom"]})
    with torch_threads(1):
        run_sweep(parse_spec(raw), tmp_path, progress=False)
    (rec,) = RecordStore(tmp_path / "allboom").records()
    assert rec["status"] == "failed" and rec["reason"] == "metrics: test_boom: ValueError: needs 8x8 images"
    assert rec["model_key"]  # the model trained: the figures can still show it


def test_figure_note_names_the_real_cause():
    training = pd.DataFrame({"status": ["failed", "failed"], "reason": ["training: DivergenceError: loss is nan"] * 2})
    assert why_no_model(training) == "its training failed (2 failed): training: DivergenceError: loss is nan"
    skipped = pd.DataFrame({"status": ["skipped"], "reason": ["solver 'pc' needs corrector"]})
    text = why_no_model(skipped)
    assert "training" not in text and "1 skipped" in text and "needs corrector" in text
