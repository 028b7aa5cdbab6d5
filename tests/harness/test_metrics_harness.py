"""The new metrics run inside the harness and their records carry the settings that produced them."""

import pytest

from odebench.bench.harness.execution.run import run_sweep
from odebench.bench.harness.spec.sweep import parse_spec
from odebench.bench.harness.store.records import RecordStore


@pytest.mark.slow
def test_records_hold_path_and_likelihood_metrics_with_settings(tmp_path):
    raw = {
        "name": "metrics_e2e", "seeds": [0],
        "train": {"steps": 20, "batch_size": 64},
        "net": {"name": "mlp", "hidden": 16, "depth": 2},
        "eval": {"n_samples": 48,
                 "metrics": ["nll", "straightness", "curvature", "transport_cost", "precision"],
                 "metric_options": {"nll": {"max_points": 16, "divergence": "hutchinson", "n_probes": 2,
                                            "solver": "rk4", "nfe": 8},
                                    "straightness": {"n_steps": 10}, "curvature": {"n_steps": 10}}},
        "methods": [{"name": "fm_ot"}], "datasets": [{"target": "moons"}],
        "solvers": [{"name": "euler", "nfe": [4]}],
    }
    summary = run_sweep(parse_spec(raw), tmp_path, progress=False)
    assert summary.ok, summary.failures
    (rec,) = RecordStore(tmp_path / "metrics_e2e").records()
    m, info = rec["metrics"], rec["metric_info"]
    assert rec["status"] == "ok"
    for key in ("nll", "nll.bpd", "straightness", "straightness.solver_path", "curvature",
                "transport_cost", "transport_cost.excess", "transport_cost.excess_ot",
                "transport_cost.reference", "precision"):
        assert key in m, key
    assert m["transport_cost.excess_ot"] >= -1e-9
    assert m["transport_cost.excess"] == pytest.approx(m["transport_cost"] - m["transport_cost.reference"])
    assert info["transport_cost"]["settings"]["reference"]["laws"] == "N(0, 1^2 I)->moons/data_seed=0"
    assert m["curvature"] == pytest.approx(m["straightness"] / 2)
    assert info["nll"]["settings"]["divergence"] == "hutchinson" and info["nll"]["settings"]["n_probes"] == 2
    assert info["nll"]["settings"]["n_points"] == 16 and info["nll"]["settings"]["nfe"] == 8
    assert info["straightness"]["settings"]["solver_path_points"] == 5  # euler, 4 steps
    assert info["transport_cost"]["settings"]["n_pairs"] == 48


def test_nll_is_solved_once_per_model_and_equal_across_its_cells(tmp_path, monkeypatch):
    """NLL uses its own solver, so it is a property of the model: two solver budgets of one model share one
    NLL solve and record the same value; a second seed (another model) gets its own solve."""
    from collections import OrderedDict

    import odebench.bench.harness.execution.run
    import odebench.metrics.likelihood

    calls = []
    real = odebench.metrics.likelihood.nll
    monkeypatch.setattr(odebench.metrics.likelihood, "nll", lambda *a, **k: calls.append(1) or real(*a, **k))
    # nothing remembered from other tests
    monkeypatch.setattr(odebench.bench.harness.execution.run, "_MODEL_METRICS", OrderedDict())
    raw = {
        "name": "nll_once", "seeds": [0, 1],
        "train": {"steps": 10, "batch_size": 32},
        "net": {"name": "mlp", "hidden": 16, "depth": 2},
        "eval": {"n_samples": 32, "metrics": ["nll", "w2"],
                 "metric_options": {"nll": {"max_points": 16, "divergence": "exact", "solver": "rk4", "nfe": 8}}},
        "methods": [{"name": "fm_ot"}], "datasets": [{"target": "moons"}],
        "solvers": [{"name": "euler", "nfe": [2, 4]}],
    }
    summary = run_sweep(parse_spec(raw), tmp_path, progress=False)
    assert summary.ok, summary.failures
    records = RecordStore(tmp_path / "nll_once").records()
    assert len(records) == 4 and len(calls) == 2
    by_seed = {}
    for r in records:
        by_seed.setdefault(r["config"]["seed"], set()).add(r["metrics"]["nll"])
        assert r["metric_info"]["nll"]["per_model"] is True
    assert all(len(v) == 1 for v in by_seed.values()) and by_seed[0] != by_seed[1]
    assert len({r["metrics"]["w2"] for r in records}) == 4  # per-cell metrics still differ per cell
