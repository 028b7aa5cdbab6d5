"""The local executor on every core: worker processes give the records of an in-process run bit for bit,
keep the parent -> child training order, survive a dying worker, see the driver's environment, and never
outlive a killed driver."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from harness_tiny import tiny_spec, train_or_die
from threads import torch_threads

import odebench.bench.harness.execution.run
from odebench.bench.cli import main
from odebench.bench.harness.execution.plan import JobContext, make_plan
from odebench.bench.harness.execution.pool_executor import PoolExecutor
from odebench.bench.harness.execution.run import cell_job, run_sweep, train_job
from odebench.bench.harness.spec.sweep import parse_spec
from odebench.bench.harness.store.artifacts import ArtifactStore, read_safetensors
from odebench.bench.harness.store.records import RecordStore

ROOT = Path(__file__).resolve().parents[2]
SPEC = tiny_spec(methods=[{"name": "fm_ot"}, {"name": "rf", "k": [1, 2], "n_pairs": 64}],
                 targets=("moons", "8gaussians"),
                 solvers=[{"name": "euler", "nfe": [2, 4]}, {"name": "heun", "nfe": [1, 4]}])


def records(out: Path, name: str = "tiny") -> dict[str, tuple]:
    return {r["cell_id"]: (r["status"], r.get("reason"), r.get("nfe"), r["metrics"], r.get("model_key"),
                           r["environment"]["threads"]) for r in RecordStore(out / name).records()}


def model_hashes(out: Path) -> dict[str, str]:
    """Per model key, a hash of its weights (the files also embed the meta, whose wall times differ by run)."""
    hashes = {}
    for p in (out / ".cache" / "models").glob("*.safetensors"):
        state = read_safetensors(p)["state_dict"]
        blob = b"".join(k.encode() + v.numpy().tobytes() for k, v in sorted(state.items()))
        hashes[p.name.split(".")[0]] = hashlib.sha256(blob).hexdigest()
    return hashes


def test_pool_records_equal_in_process_records_bit_for_bit(tmp_path):
    with torch_threads(1):
        odebench.bench.harness.execution.run._MODELS.clear()
        alone = run_sweep(parse_spec(SPEC), tmp_path / "alone", progress=False, jobs=1)
        pooled = run_sweep(parse_spec(SPEC), tmp_path / "pooled", progress=False, jobs=2)
    assert (alone.jobs, pooled.jobs, pooled.threads) == (1, 2, 1)
    assert pooled.status_counts == alone.status_counts == {"ok": 18, "skipped": 6}
    assert (pooled.trained, pooled.n_trainings) == (6, 6)
    assert records(tmp_path / "pooled") == records(tmp_path / "alone")
    assert model_hashes(tmp_path / "pooled") == model_hashes(tmp_path / "alone")


class ListSink:
    def __init__(self):
        self.events: list[tuple[str, str]] = []
        self.records: dict[str, dict] = {}

    def training_done(self, job, outcome):
        self.events.append(("training", job.key))
        self.outcomes = getattr(self, "outcomes", {}) | {job.key: outcome}

    def cell_done(self, cell, record):
        self.events.append(("cell", cell.id))
        self.records[cell.id] = record


def test_parents_train_before_children_and_cells_after_their_model(tmp_path):
    spec = parse_spec(SPEC)
    plan = make_plan(spec.cells, lambda _: False, ArtifactStore(tmp_path / "models"))
    sink = ListSink()
    with torch_threads(1):
        PoolExecutor(2).run(plan, JobContext(str(tmp_path / "models"), threads=1), train_job, cell_job, sink)
    order = {key: i for i, (kind, key) in enumerate(sink.events) if kind == "training"}
    assert len(order) == len(plan.trainings) == 6
    for job in plan.trainings:
        if job.parent is not None:
            assert order[job.parent] < order[job.key]
    for cell in plan.todo:
        assert sink.events.index(("cell", cell.id)) > order[plan.cell_model[cell.id]]
    assert {r["status"] for r in sink.records.values()} == {"ok"}


def test_a_dying_worker_fails_its_jobs_and_the_run_goes_on(tmp_path):
    spec = parse_spec(tiny_spec(methods=[{"name": "fm_ot"}, {"name": "rf", "k": [1, 2], "n_pairs": 64}]))
    root = tmp_path / "models"
    plan = make_plan(spec.cells, lambda _: False, ArtifactStore(root))
    sink = ListSink()
    with torch_threads(1):
        PoolExecutor(2).run(plan, JobContext(str(root), threads=1), train_or_die, cell_job, sink)
    assert set(sink.records) == {c.id for c in plan.todo}  # every cell got a record
    rf = [r for r in sink.records.values() if r["config"]["method"]["name"] == "rf"]
    assert rf and all(r["status"] == "failed" for r in rf)
    assert any("worker process died" in r["reason"] for r in rf)
    # and a run after it finishes everything
    with torch_threads(1):
        summary = run_sweep(spec, tmp_path / "again", progress=False, jobs=2)
    assert summary.status_counts == {"ok": len(spec.cells)}


def test_workers_see_the_drivers_environment_and_folder_as_they_are_now(tmp_path, monkeypatch):
    ctx = JobContext(str(tmp_path), threads=1)
    executor = PoolExecutor(1)  # holds the pipes its workers watch: they leave when it is gone
    first = executor._pool(ctx)  # starts the forkserver (if this process had none yet)
    assert first.submit(os.getpid).result() != os.getpid()
    first.shutdown()
    monkeypatch.setenv("ODEBENCH_DATA", str(tmp_path / "data"))
    monkeypatch.chdir(tmp_path)
    second = executor._pool(ctx)
    try:
        assert second.submit(os.getenv, "ODEBENCH_DATA").result() == str(tmp_path / "data")
        assert second.submit(os.getcwd).result() == str(tmp_path)
        assert second.submit(os.getenv, "OMP_NUM_THREADS").result() == os.environ.get("OMP_NUM_THREADS")
    finally:
        second.shutdown()


DRIVER = """
import os, signal, sys
from odebench.bench.harness.execution.plan import JobContext
from odebench.bench.harness.execution.pool_executor import PoolExecutor
executor = PoolExecutor(2)
pool = executor._pool(JobContext(sys.argv[1], threads=1))
pids = {pool.submit(os.getpid).result() for _ in range(8)}
print(" ".join(map(str, pids)), flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "\nState:\tZ" not in state  # a zombie has exited


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads /proc")
def test_workers_exit_when_the_driver_is_killed(tmp_path):
    proc = subprocess.run([sys.executable, "-c", DRIVER, str(tmp_path)], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    pids = [int(p) for p in proc.stdout.split()]
    assert pids
    deadline = time.monotonic() + 10
    while any(map(_alive, pids)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(map(_alive, pids))


def test_the_command_uses_every_core_with_one_thread_each(tmp_path, capsys, monkeypatch):
    import odebench.bench.harness.execution.pool_executor as pool_executor

    monkeypatch.setattr(pool_executor, "available_cores", lambda: 2)
    with torch_threads(3):
        assert main(["run", "--spec", "smoke", "--out", str(tmp_path), "--no-progress"]) == 0
    assert "(local, 2 processes x 1 thread)" in capsys.readouterr().out
    threads = {r["environment"]["threads"] for r in RecordStore(tmp_path / "smoke").records()}
    assert threads == {1}
    with torch_threads(3):
        assert main(["run", "--spec", "smoke", "--out", str(tmp_path / "b"), "--no-progress", "--jobs", "1",
                     "--threads", "2"]) == 0
    assert "(local, 1 process x 2 threads)" in capsys.readouterr().out
