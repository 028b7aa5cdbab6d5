"""The sweep harness: train once, resume in-process, failure isolation, corrupt cache, determinism, Ray."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest
import torch
from harness_tiny import tiny_spec, to_toml
from threads import torch_threads

import odebench.bench.harness.execution.run
import odebench.bench.harness.training.train
from odebench.bench.cli import main
from odebench.bench.harness.execution.executors import ExecutorUnavailable, get_executor
from odebench.bench.harness.execution.plan import JobContext, TrainOutcome
from odebench.bench.harness.execution.run import cell_job, run_sweep
from odebench.bench.harness.spec.sweep import parse_spec
from odebench.bench.harness.store.records import RecordStore
from odebench.methods.base import METHODS, Dynamics, Method, register_method

ROOT = Path(__file__).resolve().parents[2]
SPEC = tiny_spec(methods=[{"name": "fm_ot"}, {"name": "rf", "k": [1, 2], "n_pairs": 64}],
                 solvers=[{"name": "euler", "nfe": [4]}, {"name": "heun", "nfe": [1, 4]}])


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny models run fastest on one thread, and a busy machine makes more threads slower still."""
    with torch_threads(1):
        yield


def metrics_by_cell(out: Path, name: str) -> dict[str, tuple]:
    records = RecordStore(out / name).records()
    return {r["cell_id"]: (r["status"], r.get("nfe"), r["metrics"]) for r in records}


@pytest.fixture(scope="module")
def first_run(tmp_path_factory):
    """The tiny sweep, run once in this process; later tests compare against it."""
    out = tmp_path_factory.mktemp("first")
    odebench.bench.harness.execution.run._MODELS.clear()
    summary = run_sweep(parse_spec(SPEC), out, progress=False)
    return out, summary, metrics_by_cell(out, "tiny")


def test_each_model_is_trained_once_and_reused(first_run, count_fits):
    out, summary, records = first_run
    # fm_ot, rf round 1, rf round 2 (whose parent is round 1): three trainings for 9 cells
    assert (summary.n_trainings, summary.trained, summary.loaded) == (3, 3, 0)
    assert summary.status_counts == {"ok": 6, "skipped": 3}
    assert len(list((out / ".cache" / "models").glob("*.safetensors"))) == 3
    assert all(s == "skipped" and "needs at least 2 NFE" in RecordStore(out / "tiny").read(cid)["reason"]
               for cid, (s, nfe, _) in records.items() if nfe is None)

    again = run_sweep(parse_spec(SPEC), out, progress=False)  # everything finished: nothing to do
    assert (again.already_done, again.n_trainings, sum(again.status_counts.values())) == (9, 0, 0)

    # a new sweep name: new records, the same models
    renamed = run_sweep(parse_spec({**SPEC, "name": "renamed"}), out, progress=False)
    assert (renamed.trained, renamed.loaded) == (0, 3)
    assert count_fits == []
    assert metrics_by_cell(out, "renamed") == records


def test_same_spec_and_seed_give_identical_metrics(first_run, tmp_path, count_fits):
    odebench.bench.harness.execution.run._MODELS.clear()
    run_sweep(parse_spec(SPEC), tmp_path, progress=False)  # a fresh cache: everything trained again
    assert len(count_fits) == 3
    assert metrics_by_cell(tmp_path, "tiny") == first_run[2]


def test_corrupt_cached_model_is_moved_aside_and_retrained(first_run, tmp_path, count_fits):
    out = tmp_path / "out"
    shutil.copytree(first_run[0] / ".cache", out / ".cache")
    spec = tiny_spec(solvers=[{"name": "euler", "nfe": [4]}])  # one cell of the first run, its model cached
    meta = next(p for p in (out / ".cache" / "models").glob("*.json") if json.loads(p.read_text())
                ["method"]["name"] == "fm_ot")
    model = meta.with_name(json.loads(meta.read_text())["weights"])  # <key>.<sha16>.pt, named by the meta
    model.write_bytes(model.read_bytes()[:-16] + b"\0" * 16)
    odebench.bench.harness.execution.run._MODELS.clear()
    summary = run_sweep(parse_spec(spec), out, progress=False)
    assert len(count_fits) == 1 and summary.trained == 1
    assert any("failed its SHA-256 check" in n for n in summary.notes)
    assert model.with_name(model.name + ".corrupt").exists()
    assert summary.status_counts == {"ok": 1}
    [(cell_id, result)] = metrics_by_cell(out, "tiny").items()
    assert first_run[2][cell_id] == result  # retrained bit for bit

    # corrupted after its training, before an evaluation: that cell fails with the message, nothing crashes
    model = meta.with_name(json.loads(meta.read_text())["weights"])  # the retrained model's file
    model.write_bytes(b"garbage")
    odebench.bench.harness.execution.run._MODELS.clear()
    cell = parse_spec(spec).cells[0]
    rec = cell_job(cell, TrainOutcome(meta.stem, True), JobContext(str(out / ".cache" / "models")))
    assert rec["status"] == "failed" and "CorruptArtifact" in rec["reason"] and "re-run" in rec["reason"]


# --------------------------------------------------------------------------------------- failure isolation
class _Tiny(Method):
    def dynamics(self, model):
        return Dynamics(velocity=model["v"])


class NaNLoss(_Tiny):
    def loss(self, model, x0, x1, gen):
        return model["v"](x1, torch.rand(len(x1), generator=gen)).mean() * float("nan")


class RaisingLoss(_Tiny):
    def loss(self, model, x0, x1, gen):
        raise RuntimeError("plugin loss exploded")


class RaisingDynamics(_Tiny):
    def loss(self, model, x0, x1, gen):
        return model["v"](x1, torch.rand(len(x1), generator=gen)).pow(2).mean()

    def dynamics(self, model):
        raise RuntimeError("plugin dynamics exploded")


@pytest.fixture
def broken_methods():
    names = {"test_nan_loss": NaNLoss, "test_raising_loss": RaisingLoss,
             "test_raising_dynamics": RaisingDynamics}
    for name, cls in names.items():
        register_method(name)(cls)
    yield list(names)
    for name in names:
        METHODS._items.pop(name, None)


def test_broken_methods_fail_their_cells_and_the_sweep_goes_on(broken_methods, tmp_path, capsys):
    spec = tiny_spec(name="broken", methods=[{"name": n} for n in broken_methods] + [{"name": "fm_ot"}])
    path = tmp_path / "broken.toml"
    path.write_text(to_toml(spec))
    # --jobs 1: the broken methods are registered in this process only, not in worker processes
    assert main(["run", "--spec", str(path), "--out", str(tmp_path), "--no-progress", "--jobs", "1"]) == 1
    captured = capsys.readouterr()
    by_method: dict[str, set] = {}
    for r in RecordStore(tmp_path / "broken").records():
        by_method.setdefault(r["config"]["method"]["name"], set()).add((r["status"], r.get("reason")))
    assert {s for s, _ in by_method["fm_ot"]} == {"ok"}
    [(status, reason)] = by_method["test_nan_loss"]
    assert status == "failed" and reason.startswith("training: DivergenceError") and "train.lr" in reason
    assert by_method["test_raising_loss"] == {("failed", "training: RuntimeError: plugin loss exploded")}
    assert by_method["test_raising_dynamics"] == {("failed",
                                                   "evaluation: RuntimeError: plugin dynamics exploded")}
    assert "DivergenceError" in captured.err and "plugin dynamics exploded" in captured.err
    assert "| test_nan_loss" in captured.out and "failed |" in captured.out  # the summary table
    assert "models: 4 needed, 2 trained" in captured.out  # the two raising in training saved nothing

    # a re-run retries only the failed cells; fm_ot's records stay as they were
    assert main(["run", "--spec", str(path), "--out", str(tmp_path), "--no-progress", "--jobs", "1"]) == 1
    assert "2 already done" in capsys.readouterr().out


# ----------------------------------------------------------------------------------------------- executors
def test_ray_executor_without_ray_says_how_to_install(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # makes `import ray` fail as if not installed
    with pytest.raises(ExecutorUnavailable, match=r"pip install"):
        get_executor("ray")
    path = tmp_path / "s.toml"
    path.write_text(to_toml(tiny_spec()))
    assert main(["run", "--spec", str(path), "--out", str(tmp_path), "--executor", "ray"]) == 2
    assert 'pip install "odebench[ray]"' in capsys.readouterr().err
    assert not (tmp_path / "tiny").exists()
    with pytest.raises(ExecutorUnavailable, match="--address only applies"):
        get_executor("local", "ray://host:10001")


@pytest.mark.slow
def test_ray_executor_records_equal_in_process_ones(first_run, tmp_path, monkeypatch):
    ray = pytest.importorskip("ray")
    monkeypatch.setenv("PYTHONPATH", str(ROOT))  # the workers import this checkout
    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    try:
        summary = run_sweep(parse_spec(SPEC), tmp_path, progress=False, executor="ray")
    finally:
        ray.shutdown()
    assert (summary.n_trainings, summary.trained, summary.executor) == (3, 3, "ray")
    assert metrics_by_cell(tmp_path, "tiny") == first_run[2]
