"""Ctrl-C at any moment ends cleanly: an interrupt inside an import is taken once the import is done, one while the
worker server or the workers start is taken once they are known (never lost, never a worker left behind), and a
handful of real interrupts at random moments of a pooled run's start-up print no traceback."""

from __future__ import annotations

import multiprocessing
import os
import random
import signal
import subprocess
import sys
import time
from concurrent.futures import Future
from pathlib import Path

import pytest
from harness_tiny import tiny_spec

from odebench.bench.harness.execution.plan import JobContext, make_plan
from odebench.bench.harness.execution.pool_executor import PoolExecutor
from odebench.bench.harness.execution.run import cell_job, train_job
from odebench.bench.harness.process import interrupts
from odebench.bench.harness.spec.sweep import parse_spec
from odebench.bench.harness.store.artifacts import ArtifactStore
from odebench.bench.harness.store.records import RecordStore

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def python_sigint():
    """SIGINT as Python sets it up in a terminal. A suite started in the background (`&`, nohup) inherits SIGINT
    ignored, and an ignored interrupt is rightly never raised: these tests would then fail for the wrong reason."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


@pytest.fixture
def import_safe_handler():
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    assert interrupts.install()
    yield
    signal.signal(signal.SIGINT, previous)


def test_an_interrupt_inside_an_import_is_raised_once_the_import_is_done(tmp_path, monkeypatch,
                                                                          import_safe_handler):
    """Python raises KeyboardInterrupt mid-import, which leaves a C extension half-initialised (numpy then fails
    with an ImportError traceback); the handler lets the import finish and raises right after it."""
    (tmp_path / "slow_module_under_test.py").write_text(
        "import os, signal, time\n"
        "os.kill(os.getpid(), signal.SIGINT)\n"
        "end = time.monotonic() + 0.2\n"
        "while time.monotonic() < end:\n"
        "    pass\n"
        "FINISHED = True\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(KeyboardInterrupt):
        import slow_module_under_test  # noqa: F401

        time.sleep(2)  # the re-check comes within RECHECK_SECONDS of the import's end
    assert sys.modules.pop("slow_module_under_test").FINISHED  # the whole module ran


def test_outside_an_import_the_interrupt_is_raised_at_once(import_safe_handler):
    start = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(5)
    assert time.monotonic() - start < 1


def test_deferred_holds_the_interrupt_to_the_end_of_the_block_and_children_start_with_it_blocked():
    reached, before = False, signal.getsignal(signal.SIGINT)
    with pytest.raises(KeyboardInterrupt):
        with interrupts.deferred():
            os.kill(os.getpid(), signal.SIGINT)
            blocked = subprocess.run([sys.executable, "-c", "import signal; print(signal.SIGINT in "
                                      "signal.pthread_sigmask(signal.SIG_BLOCK, []))"],
                                     capture_output=True, text=True).stdout.strip()
            reached = True
    assert reached and blocked == "True"
    assert signal.getsignal(signal.SIGINT) is before  # the handler before the block is back
    assert signal.SIGINT not in signal.pthread_sigmask(signal.SIG_BLOCK, [])
    with interrupts.deferred():  # and without an interrupt, nothing is raised
        pass


def _tiny(tmp_path):
    spec = parse_spec(tiny_spec(methods=[{"name": "fm_ot"}], targets=("moons",),
                                solvers=[{"name": "euler", "nfe": [2]}]))
    plan = make_plan(spec.cells, RecordStore(tmp_path / "tiny").finished, ArtifactStore(tmp_path / ".cache" / "models"),
                     spec.precision)
    return plan, JobContext(artifacts_root=str(tmp_path / ".cache" / "models"), device="cpu", threads=1,
                            out_root=str(tmp_path))


class _Sink:
    def training_done(self, job, outcome):
        pass

    def cell_done(self, cell, record):
        pass


@pytest.mark.skipif("forkserver" not in multiprocessing.get_all_start_methods(), reason="needs forkserver")
def test_ctrl_c_while_the_worker_server_starts_is_not_lost(tmp_path, monkeypatch):
    """The server used to be started with SIGINT ignored in the driver: an interrupt then was lost and the run
    finished with exit 0."""
    from multiprocessing import forkserver

    started = []

    def interrupted_start():
        os.kill(os.getpid(), signal.SIGINT)
        started.append(True)  # the start itself is not cut short

    monkeypatch.setattr(forkserver, "ensure_running", interrupted_start)
    plan, ctx = _tiny(tmp_path)
    with pytest.raises(KeyboardInterrupt):
        PoolExecutor(2).run(plan, ctx, train_job, cell_job, _Sink())
    assert started == [True]


def test_ctrl_c_while_the_workers_start_stops_every_worker(tmp_path, monkeypatch):
    """A Ctrl-C while the driver waits for its workers to come up stops them all (one left starting would fail on
    the semaphores the driver removes when it leaves, with a traceback) and no worker outlives the pool."""
    real_result = Future.result
    calls = []

    def interrupted_result(self, timeout=None):
        if not calls:
            calls.append(len(multiprocessing.active_children()))
            os.kill(os.getpid(), signal.SIGINT)
        return real_result(self, timeout)

    monkeypatch.setattr(Future, "result", interrupted_result)
    plan, ctx = _tiny(tmp_path)
    with pytest.raises(KeyboardInterrupt):
        PoolExecutor(2).run(plan, ctx, train_job, cell_job, _Sink())
    monkeypatch.undo()
    assert calls == [2]  # both workers had been started when the interrupt came
    assert multiprocessing.active_children() == []


@pytest.mark.slow
def test_a_handful_of_interrupts_during_start_up_print_no_traceback(tmp_path):
    """Real Ctrl-Cs (SIGINT to the process group, as a terminal sends it) at random moments of a pooled run's
    first seconds: imports, the worker server, the workers' start, the first trainings. Each ends with exit 130
    (or 0, if the run was done first), the one line, no traceback and no process of the run left behind.
    scripts/interrupt_trial.py does the same 50 times and more."""
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import interrupt_trial
    finally:
        sys.path.remove(str(ROOT / "scripts"))
    rng = random.Random(7)
    for delay in [0.0, 0.15, *(rng.uniform(0.3, 4.0) for _ in range(4))]:
        code, err, left = interrupt_trial.one_try(delay, "smoke", 2, [sys.executable, "-m", "odebench"])
        assert code in (130, -signal.SIGINT, 0) and "Traceback" not in err and not left, (delay, code, err)
        if code == 130:
            assert "re-run the same command to resume" in err
