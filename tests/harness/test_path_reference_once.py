"""The path metrics' reference solve (rk4 from the cell's source draws) depends only on the model's dynamics and
the draws, which every cell of a model shares: a sweep solves it once per model and sampling setting, and the
cells of one model record the same reference value."""

from odebench.bench.harness.execution.run import run_sweep
from odebench.bench.harness.spec.sweep import parse_spec
from odebench.bench.harness.store.records import RecordStore


def _sweep(tmp_path, name, methods, seeds, monkeypatch):
    import odebench.metrics.trajectories as trajectories

    calls = []
    real = trajectories.reference_trajectory
    monkeypatch.setattr(trajectories, "reference_trajectory", lambda *a, **k: calls.append(1) or real(*a, **k))
    monkeypatch.setattr(trajectories, "_REFERENCE", type(trajectories._REFERENCE)())  # nothing from other tests
    raw = {
        "name": name, "seeds": seeds,
        "train": {"steps": 10, "batch_size": 32},
        "net": {"name": "mlp", "hidden": 16, "depth": 2},
        "eval": {"n_samples": 32, "metrics": ["straightness", "curvature"],
                 "metric_options": {"straightness": {"n_steps": 10}, "curvature": {"n_steps": 10}}},
        "methods": methods, "datasets": [{"target": "moons"}],
        "solvers": [{"name": "euler", "nfe": [2, 4]}],
    }
    summary = run_sweep(parse_spec(raw), tmp_path, progress=False)
    assert summary.ok, summary.failures
    return RecordStore(tmp_path / name).records(), calls


def test_reference_straightness_is_solved_once_per_model(tmp_path, monkeypatch):
    records, calls = _sweep(tmp_path, "ref_once", [{"name": "fm_ot"}], [0, 1], monkeypatch)
    assert len(records) == 4 and len(calls) == 2  # two models, two solver budgets each
    by_seed = {}
    for r in records:
        by_seed.setdefault(r["config"]["seed"], set()).add(r["metrics"]["straightness"])
    assert all(len(v) == 1 for v in by_seed.values()) and by_seed[0] != by_seed[1]
    assert len({r["metrics"]["straightness.solver_path"] for r in records}) == 4  # the sampler's own path: per cell


def test_a_sampling_setting_of_one_trained_model_gets_its_own_reference(tmp_path, monkeypatch, count_fits):
    """Sampling-only hparams (ddpm's sampling_eps) leave the trained model alone but change its dynamics."""
    records, calls = _sweep(tmp_path, "ref_sampling", [{"name": "ddpm", "sampling_eps": [1e-3, 0.1]}], [0],
                            monkeypatch)
    assert count_fits == ["ddpm"] and len(records) == 4 and len(calls) == 2
    by_eps = {}
    for r in records:
        by_eps.setdefault(r["config"]["method"]["sampling_eps"], set()).add(r["metrics"]["straightness"])
    assert all(len(v) == 1 for v in by_eps.values()) and by_eps[1e-3] != by_eps[0.1]
