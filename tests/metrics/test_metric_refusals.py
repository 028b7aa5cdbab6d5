"""Metrics refuse what they cannot estimate: never a NaN recorded as ok."""

from __future__ import annotations

import pytest
import torch
from harness_tiny import tiny_spec

import odebench.bench.harness.execution.run
from odebench.bench.harness.execution.run import run_sweep
from odebench.bench.harness.spec.sweep import parse_spec
from odebench.bench.harness.store.records import RecordStore
from odebench.metrics import METRICS, EvalContext, MetricUndefined


@pytest.mark.parametrize("name", ["mmd", "fd"])
def test_one_point_is_refused_not_nan(name):
    ctx = EvalContext(samples=torch.zeros(1, 2), reference=torch.randn(50, 2))
    with pytest.raises(MetricUndefined, match="at least 2 points"):
        METRICS.get(name).fn(ctx)


def _one_sample_context(n_samples: int, n_reference: int = 50, options=None) -> EvalContext:
    """A cell's context with ``n_samples`` samples (and their source draws and paths) under a straight field."""
    from odebench.bench.core.solvers import Dynamics

    x0 = torch.randn(n_samples, 2, generator=torch.Generator().manual_seed(0))
    t = torch.linspace(0, 1, 5)
    return EvalContext(samples=x0 + 1, reference=torch.randn(n_reference, 2), x0=x0,
                       trajectory=torch.stack([x0 + ti for ti in t]), t_grid=t,
                       dynamics=Dynamics(velocity=lambda x, t: torch.ones_like(x)),
                       gen=torch.Generator().manual_seed(1), options=options or {})


ONE_POINT_METRICS = ["w2", "sliced_w", "energy", "transport_cost", "straightness", "curvature"]


@pytest.mark.parametrize("name", ONE_POINT_METRICS)
def test_distances_and_path_statistics_from_one_sample_are_refused_with_the_minimum(name):
    """Each gave a number from one sample (a distance between two points, a mean over one path): no estimate."""
    with pytest.raises(MetricUndefined, match=rf"{name} needs at least 2 points.*got 1 samples.*eval\.n_samples"):
        METRICS.get(name).fn(_one_sample_context(1))
    out = METRICS.get(name).fn(_one_sample_context(2))  # two are enough
    assert out is not None


@pytest.mark.parametrize("name", ["w2", "sliced_w", "energy"])
def test_one_held_out_point_is_refused_too(name):
    with pytest.raises(MetricUndefined, match="got 20 samples and 1 held-out points"):
        METRICS.get(name).fn(_one_sample_context(20, n_reference=1))


@pytest.mark.parametrize("name", ["w2", "energy", "transport_cost", "straightness", "curvature"])
def test_max_points_of_one_is_refused(name):
    ctx = _one_sample_context(20, options={name: {"max_points": 1}})
    with pytest.raises(MetricUndefined, match=rf"eval\.metric_options\.{name}\.max_points"):
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
    """The NLL reads the held-out data, not the samples: one sample leaves it well defined."""
    raw = tiny_spec(name="one", solvers=[{"name": "euler", "nfe": [2]}])
    raw["eval"] = {"n_samples": 1, "metrics": ["w2", "mmd", "fd", "nll"],
                   "metric_options": {"nll": {"max_points": 8, "solver": "euler", "nfe": 4}}}
    odebench.bench.harness.execution.run._MODELS.clear()
    summary = run_sweep(parse_spec(raw), tmp_path, progress=False)
    [rec] = RecordStore(tmp_path / "one").records()
    assert rec["status"] == "ok" and summary.ok
    assert {k.split(".")[0] for k in rec["metrics"]} == {"nll"}  # no NaN anywhere, no distance from one point
    assert rec["metric_info"]["mmd"]["status"] == "failed" and "at least 2" in rec["metric_info"]["mmd"]["reason"]
    w2 = rec["metric_info"]["w2"]
    assert w2["status"] == "failed" and "w2 needs at least 2" in w2["reason"]
    assert set(rec["metric_failures"]) == {"w2", "mmd", "fd"}
    assert any(n.startswith("metric mmd failed in 1 cell(s)") for n in summary.notes)


def test_a_metric_that_returns_nan_is_failed_for_the_cell(monkeypatch):
    import dataclasses

    from odebench.bench.harness.execution.run import measure_cell

    cell = parse_spec(tiny_spec()).cells[0]
    nan_metric = dataclasses.replace(METRICS.get("sliced_w"), fn=lambda ctx: float("nan"))

    class Registry:  # the harness's view of the registry, with sliced_w broken
        def get(self, name):
            return nan_metric if name == "sliced_w" else METRICS.get(name)

    monkeypatch.setattr(odebench.bench.harness.execution.run, "METRICS", Registry())
    ctx = EvalContext(samples=torch.randn(8, 2), reference=torch.randn(8, 2))
    values, info, _ = measure_cell(cell, ctx, ["w2", "sliced_w"], "key", "cpu")
    assert set(values) == {"w2"} and info["sliced_w"]["status"] == "failed"
    assert "NaN/inf" in info["sliced_w"]["reason"]
