"""Metrics refuse what they cannot estimate: never a NaN recorded as ok."""

from __future__ import annotations

import pytest
import torch
from harness_tiny import tiny_spec

import odebench.bench.harness.run
from odebench.bench.harness.records import RecordStore
from odebench.bench.harness.run import run_sweep
from odebench.bench.harness.spec import parse_spec
from odebench.metrics import METRICS, EvalContext, MetricUndefined


@pytest.mark.parametrize("name", ["mmd", "fd"])
def test_one_point_is_refused_not_nan(name):
    ctx = EvalContext(samples=torch.zeros(1, 2), reference=torch.randn(50, 2))
    with pytest.raises(MetricUndefined, match="at least 2 points"):
        METRICS.get(name).fn(ctx)


def test_mmd_of_coincident_points_is_refused():
    ctx = EvalContext(samples=torch.ones(5, 2), reference=torch.ones(5, 2))
    with pytest.raises(MetricUndefined, match="coincide"):
        METRICS.get("mmd").fn(ctx)


@pytest.mark.parametrize("name", ["precision", "recall"])
def test_knn_metrics_refuse_sets_no_larger_than_k(name):
    ctx = EvalContext(samples=torch.randn(3, 2), reference=torch.randn(50, 2))
    with pytest.raises(MetricUndefined, match="k = 3"):
        METRICS.get(name).fn(ctx)


def test_a_cell_with_one_sample_records_mmd_as_failed_and_keeps_the_rest(tmp_path):
    raw = tiny_spec(name="one", solvers=[{"name": "euler", "nfe": [2]}])
    raw["eval"] = {"n_samples": 1, "metrics": ["w2", "mmd", "fd"]}
    odebench.bench.harness.run._MODELS.clear()
    summary = run_sweep(parse_spec(raw), tmp_path, progress=False)
    [rec] = RecordStore(tmp_path / "one").records()
    assert rec["status"] == "ok" and summary.ok
    assert set(rec["metrics"]) == {"w2"}  # no NaN anywhere
    assert rec["metric_info"]["mmd"]["status"] == "failed" and "at least 2" in rec["metric_info"]["mmd"]["reason"]
    assert set(rec["metric_failures"]) == {"mmd", "fd"}
    assert any(n.startswith("metric mmd failed in 1 cell(s)") for n in summary.notes)


def test_a_metric_that_returns_nan_is_failed_for_the_cell(monkeypatch):
    import dataclasses

    from odebench.bench.harness.run import measure_cell

    cell = parse_spec(tiny_spec()).cells[0]
    nan_metric = dataclasses.replace(METRICS.get("sliced_w"), fn=lambda ctx: float("nan"))

    class Registry:  # the harness's view of the registry, with sliced_w broken
        def get(self, name):
            return nan_metric if name == "sliced_w" else METRICS.get(name)

    monkeypatch.setattr(odebench.bench.harness.run, "METRICS", Registry())
    ctx = EvalContext(samples=torch.randn(8, 2), reference=torch.randn(8, 2))
    values, info, _ = measure_cell(cell, ctx, ["w2", "sliced_w"], "key", "cpu")
    assert set(values) == {"w2"} and info["sliced_w"]["status"] == "failed"
    assert "NaN/inf" in info["sliced_w"]["reason"]
