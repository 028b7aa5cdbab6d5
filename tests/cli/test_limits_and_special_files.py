"""Limits and special files on the command line: ``--jobs`` and ``--threads`` bounded by the machine, no more
workers than there is work, ``--spec`` a regular file of bounded size (a FIFO or ``/dev/zero`` must not hang),
and a Ray ``--address`` where nothing answers refused within seconds, each with one ``error:`` line and exit 2."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from harness_tiny import tiny_spec, to_toml

from odebench.bench.cli import main
from odebench.bench.harness.execution import pool_executor
from odebench.bench.harness.execution.executors import ExecutorUnavailable, check_ray_address
from odebench.bench.harness.execution.plan import JobContext, make_plan
from odebench.bench.harness.spec.sweep import parse_spec
from odebench.bench.harness.spec.text import MAX_SPEC_BYTES
from odebench.bench.harness.store.artifacts import ArtifactStore

ROOT = Path(__file__).resolve().parents[2]


def one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines and lines[0].startswith("error: ") and "Traceback" not in err, err
    return "\n".join(lines)


@pytest.mark.parametrize("option", ["--jobs", "--threads"])
@pytest.mark.parametrize("value", ["3", "100000", "9" * 400])
def test_jobs_and_threads_are_bounded_by_the_cpu_count(tmp_path, capsys, monkeypatch, option, value):
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    assert main(["run", "--spec", "smoke", "--out", str(tmp_path), option, value, "--dry-run"]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert f"{option} " in line and "at most 2, the CPU cores of this machine" in line
    assert not list(tmp_path.iterdir())


def test_eval_threads_are_bounded_too(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    assert main(["eval", "--model", "nowhere:make", "--dataset", "moons", "--out", str(tmp_path),
                 "--threads", "100000"]) == 2
    assert "at most 2" in one_error_line(capsys.readouterr().err)


def test_no_more_workers_start_than_the_plan_has_jobs(tmp_path, monkeypatch):
    started = []

    class Recording(pool_executor.ProcessPoolExecutor):
        def __init__(self, *args, max_workers=None, **kwargs):
            started.append(max_workers)
            super().__init__(*args, max_workers=max_workers, **kwargs)

    monkeypatch.setattr(pool_executor, "ProcessPoolExecutor", Recording)
    spec = parse_spec(tiny_spec(solvers=[{"name": "euler", "nfe": [2]}], train={"steps": 2, "batch_size": 16}))
    plan = make_plan(spec.cells, lambda cell_id: False, ArtifactStore(tmp_path / "models"))
    assert len(plan.trainings) + len(plan.todo) == 2  # one training, one cell

    class Sink:
        def training_done(self, job, outcome):
            pass

        def cell_done(self, cell, record):
            pass

    def train(job, ctx, parent=None):
        return pool_executor.TrainOutcome(job.key, False, "not trained in this test")

    def cell(c, outcome, ctx):
        return {}

    pool_executor.PoolExecutor(8).run(plan, JobContext(str(tmp_path), threads=1), train, cell, Sink())
    assert started == [2]


def _spec_run(spec: str, timeout: float = 60) -> subprocess.CompletedProcess:
    """``odebench run --spec SPEC --dry-run`` in a child process (a hang must not hang the tests)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-m", "odebench.bench.cli", "run", "--spec", spec, "--dry-run", "--out",
                           str(Path(spec).parent / "out")], capture_output=True, text=True, timeout=timeout, env=env)


def test_a_fifo_as_spec_is_refused_without_opening_it(tmp_path):
    fifo = tmp_path / "spec.toml"
    os.mkfifo(fifo)
    done = _spec_run(str(fifo))  # opening a FIFO for reading would block until a writer comes
    assert done.returncode == 2 and "is a FIFO (named pipe), not a regular file" in one_error_line(done.stderr)


def test_dev_zero_and_oversized_specs_are_refused(tmp_path, capsys):
    assert main(["run", "--spec", "/dev/zero", "--out", str(tmp_path / "o"), "--dry-run"]) == 2
    assert "is a character device, not a regular file" in one_error_line(capsys.readouterr().err)
    big = tmp_path / "big.toml"
    big.write_text(to_toml(tiny_spec()) + "# " + "x" * MAX_SPEC_BYTES + "\n")
    assert main(["run", "--spec", str(big), "--out", str(tmp_path / "o"), "--dry-run"]) == 2
    assert f"a spec file is at most {MAX_SPEC_BYTES:,} bytes" in one_error_line(capsys.readouterr().err)
    link = tmp_path / "link.toml"
    link.symlink_to("/dev/zero")
    assert main(["run", "--spec", str(link), "--out", str(tmp_path / "o"), "--dry-run"]) == 2
    assert "not a regular file" in one_error_line(capsys.readouterr().err)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # free once the socket is closed: nothing listens there


@pytest.mark.parametrize("address, words", [
    (None, None), ("auto", None), ("local", None),
    ("nonsense", "is not HOST:PORT"), ("127.0.0.1:99999", "is not HOST:PORT"), ("127.0.0.1:\u00b2", "is not HOST"),
    ("127.0.0.1:{port}", "no Ray cluster answers at 127.0.0.1:"),
    ("ray://127.0.0.1:{port}", "no Ray cluster answers at 127.0.0.1:"),
])
def test_a_ray_address_is_checked_with_a_short_timeout(address, words):
    if address is not None:
        address = address.format(port=_closed_port())
    start = time.monotonic()
    if words is None:
        check_ray_address(address)
        return
    with pytest.raises(ExecutorUnavailable, match=words):
        check_ray_address(address, timeout=2)
    assert time.monotonic() - start < 10


def test_run_with_a_ray_address_where_nothing_listens_ends_in_seconds(tmp_path):
    pytest.importorskip("ray")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-m", "odebench.bench.cli", "run", "--spec", "smoke", "--out",
                           str(tmp_path / "out"), "--executor", "ray", "--address", f"127.0.0.1:{_closed_port()}"],
                          capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 2 and "no Ray cluster answers" in one_error_line(done.stderr)
    assert not (tmp_path / "out" / "smoke").exists()
