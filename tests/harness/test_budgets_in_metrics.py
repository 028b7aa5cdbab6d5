"""A cell's wall-clock budget holds inside its metrics and its source draws: an exact OT solve (or an n x n
distance matrix) estimated not to fit what is left is refused before it starts, the metric failed with the
estimate and the way out; a metric that still runs past the budget fails the cell, never recorded ``ok``; and
200,000 per-sample source draws stop at the deadline. Without a budget nothing is timed and no value changes."""

from __future__ import annotations

import time

import numpy as np
import ot
import pytest
import torch
from harness_tiny import tiny_spec

import odebench.bench.harness.execution.run
from odebench.bench.core import budgets, seeding
from odebench.bench.harness.execution.run import run_sweep
from odebench.bench.harness.spec.sweep import parse_spec
from odebench.bench.harness.store.records import RecordStore
from odebench.metrics import METRICS, EvalContext, MetricUndefined, register_metric
from odebench.metrics.budget_guard import PROBE_POINTS, MetricOverBudget


@pytest.fixture
def emd_sizes(monkeypatch):
    """The sizes of the exact OT solves POT is asked for."""
    sizes = []
    real = ot.emd2

    def counting(a, b, cost, *args, **kwargs):
        sizes.append(len(a))
        return real(a, b, cost, *args, **kwargs)

    monkeypatch.setattr(ot, "emd2", counting)
    return sizes


def _context(n: int) -> EvalContext:
    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(n, 2, generator=g)
    return EvalContext(samples=x0 + 1, reference=torch.randn(n, 2, generator=g) + 1, x0=x0,
                       options={"w2": {"max_points": n}, "transport_cost": {"max_points": n},
                                "mmd": {"max_points": n}, "energy": {"max_points": n}})


@pytest.fixture
def slow_trials(monkeypatch):
    """Each timed trial on PROBE_POINTS points seems to take 10 s (the clock the guard reads moves 10 s a call)."""
    import odebench.metrics.budget_guard as guard

    monkeypatch.setattr(guard.time, "perf_counter", iter(range(0, 10**6, 10)).__next__)


@pytest.mark.parametrize("name, what", [("w2", "exact OT"), ("transport_cost", "exact OT"),
                                        ("mmd", "the kernel matrix"), ("energy", "the distance matrices")])
def test_work_that_cannot_fit_the_budget_left_is_refused_before_it_starts(name, what, emd_sizes, slow_trials):
    """10 s on 512 points: at least 10 x (2000 / 512)^2 = 153 s on 2000, more than the 60 s of the budget."""
    with budgets.limits(seconds=60.0, what="cell"), pytest.raises(
            MetricOverBudget, match=rf"{name}: {what} on 2000 points would take at least 152\.6 s .*"
                                    rf"budgets\.cell_seconds.*metric_options\.{name}\.max_points"):
        METRICS.get(name).fn(_context(2000))
    assert isinstance(MetricOverBudget("x"), MetricUndefined)  # the harness fails the metric alone
    assert all(size <= PROBE_POINTS for size in emd_sizes)  # only the timed trial ran, never the full solve


def test_work_that_fits_runs_whatever_the_trial_took(emd_sizes, slow_trials):
    with budgets.limits(seconds=600.0, what="cell"):
        METRICS.get("w2").fn(_context(1000))  # at least 10 x (1000 / 512)^2 = 38 s: fits in 600
    assert emd_sizes == [PROBE_POINTS, 1000]


@pytest.mark.parametrize("name", ["w2", "transport_cost", "mmd", "energy"])
def test_a_budget_that_suffices_changes_no_value(name):
    free = METRICS.get(name).fn(_context(800))
    with budgets.limits(seconds=600.0, what="cell"):
        assert METRICS.get(name).fn(_context(800)) == free


def test_per_sample_draws_stop_at_the_deadline():
    draw = lambda g: torch.randn(1, 2, generator=g)  # noqa: E731
    start = time.perf_counter()
    with budgets.limits(seconds=0.05, what="cell"), pytest.raises(budgets.BudgetExceeded, match="cell_seconds"):
        seeding.per_sample(draw, 0, "x0", 0, 200_000)
    assert time.perf_counter() - start < 5  # all 200,000 draws take far longer on this machine's CPU
    with budgets.limits(seconds=600.0, what="cell"):  # within the budget: the same draws as without
        assert torch.equal(seeding.per_sample(draw, 0, "x0", 0, 600), seeding.per_sample(draw, 0, "x0", 0, 600))


@pytest.fixture
def slow_metric():
    """A metric that takes 1.5 s and cannot be interrupted (as an exact OT solve the estimate let through)."""

    def slow(ctx):
        time.sleep(1.5)
        return float(np.float64(1.0))

    register_metric("test_slow", higher_is_better=False)(slow)
    yield "test_slow"
    METRICS._items.pop("test_slow", None)


def test_a_metric_that_runs_past_the_cell_budget_fails_the_cell_and_is_never_recorded_ok(tmp_path, slow_metric):
    raw = tiny_spec(name="late", solvers=[{"name": "euler", "nfe": [2]}], budgets={"cell_seconds": 1.0})
    raw["eval"] = {**raw["eval"], "metrics": ["w2", slow_metric]}  # the slow one last: nothing checks after it
    odebench.bench.harness.execution.run._MODELS.clear()
    run_sweep(parse_spec(raw), tmp_path, progress=False)
    [rec] = RecordStore(tmp_path / "late").records()
    assert rec["status"] == "failed", rec
    assert rec["reason"].startswith("evaluation: BudgetExceeded") and "cell_seconds" in rec["reason"]


def test_a_refused_metric_fails_alone_and_the_cell_keeps_the_others(tmp_path, monkeypatch):
    """An estimate over the budget left fails that metric with the reason; sliced_w is still recorded."""
    import odebench.metrics.budget_guard as guard

    monkeypatch.setattr(guard, "PROBE_POINTS", 8)  # a tiny cell's 96 points count as large
    monkeypatch.setattr(guard.time, "perf_counter", iter(range(0, 10**6, 1000)).__next__)  # each trial: 1000 s
    raw = tiny_spec(name="refused", solvers=[{"name": "euler", "nfe": [2]}], budgets={"cell_seconds": 300.0})
    odebench.bench.harness.execution.run._MODELS.clear()
    run_sweep(parse_spec(raw), tmp_path, progress=False)
    [rec] = RecordStore(tmp_path / "refused").records()
    assert rec["status"] == "ok" and set(rec["metrics"]) == {"sliced_w"}
    assert rec["metric_info"]["w2"]["status"] == "failed"
    assert "w2: exact OT on 96 points would take at least" in rec["metric_failures"]["w2"]
