"""The new metrics run inside the harness and their records carry the settings that produced them."""

import pytest

from bench.run import run_sweep
from bench.spec import parse_spec
from bench.store import RecordStore


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
    summary = run_sweep(parse_spec(raw), tmp_path, progress=False, log=lambda *a: None)
    assert summary.ok, summary.failures
    (rec,) = RecordStore(tmp_path / "metrics_e2e").records()
    m, info = rec["metrics"], rec["metric_info"]
    assert rec["status"] == "ok"
    for key in ("nll", "nll.bpd", "straightness", "straightness.solver_path", "curvature",
                "transport_cost", "transport_cost.excess", "precision"):
        assert key in m, key
    assert m["transport_cost.excess"] >= -1e-9
    assert m["curvature"] == pytest.approx(m["straightness"] / 2)
    assert info["nll"]["settings"]["divergence"] == "hutchinson" and info["nll"]["settings"]["n_probes"] == 2
    assert info["nll"]["settings"]["n_points"] == 16 and info["nll"]["settings"]["nfe"] == 8
    assert info["straightness"]["settings"]["solver_path_points"] == 5  # euler, 4 steps
    assert info["transport_cost"]["settings"]["n_pairs"] == 48
