"""The local executor on every core: a plan's trainings and cells in ``jobs`` worker processes on this machine.

Each worker runs torch on ``JobContext.threads`` intra-op threads (one by default): many small independent
jobs fill the cores better than one process's threads, and one thread per process never spin-waits on a
busy machine. The jobs are the same two functions the in-process executor calls, with the same context, so
the records are bit-identical to an in-process run at the same thread count; the driver alone writes them.

Scheduling: a training is submitted once its parent (a reflow round's previous round) has finished, a cell
once its model has; trainings go first, those with children before the others (they are on the longest
path), and at most ``jobs`` tasks are in the workers at any time, so a newly ready training never waits
behind a queue of cells; no more workers are started than the plan has jobs. The cells of a model whose metrics
include a per-model one (NLL) go to one worker together, so the per-model value is computed once. A worker that
dies (killed, out of memory) fails the jobs it held, with the reason, and the run goes on in a fresh pool.

Workers are started with ``forkserver`` where the platform has it (the server imports the harness once; each
worker forks from it in milliseconds), else ``spawn``. Workers ignore SIGINT: on Ctrl-C the driver stops them
and leaves, so the terminal shows one line and no worker tracebacks. The server and every worker are started
inside :func:`odebench.bench.harness.process.interrupts.deferred`: they start with SIGINT blocked (the server until it
ignores it, a worker until its initializer does), and the driver takes a Ctrl-C that lands meanwhile once the
process is started and known to the pool, so that stopping the pool stops it.

Training steps come back while a training runs, not only when it ends: when the driver's progress line listens
(odebench.bench.harness.process.progress), each worker forwards its step reports to a queue of the pool, and the driver,
which wakes at least every ``WAKE_SECONDS``, drains it into the line.
"""

from __future__ import annotations

import multiprocessing
import os
import queue
import signal
import sys
import threading
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from typing import Any

from odebench.bench.harness.execution.plan import JobContext, Plan, TrainingJob, TrainOutcome
from odebench.bench.harness.process import progress
from odebench.bench.harness.process.interrupts import deferred
from odebench.bench.harness.spec.sweep import Cell
from odebench.bench.harness.store.records import failed_record

#: what the forkserver imports once, so that workers start with the harness already loaded
PRELOAD = ["odebench.bench.harness.execution.run"]
#: how often the driver drains the workers' step reports while their jobs run (when a progress line listens)
WAKE_SECONDS = 0.5


def available_cores() -> int:
    """CPU cores this process may run on (its affinity mask where the platform has one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS, Windows
        return max(1, os.cpu_count() or 1)


def _start_worker(threads: int | None, environ: dict[str, str], path: list[str], cwd: str, lifeline,
                  steps=None) -> None:
    """In each worker, before any job: Ctrl-C is the driver's to handle; the worker sees the driver's
    environment (``--data-dir`` sets ODEBENCH_DATA), import path and folder as they are now (a forkserver was
    started earlier, perhaps with others); torch gets its thread count; training steps go to the ``steps``
    queue (when the driver shows progress); and the worker exits as soon as the driver is gone (``lifeline``:
    the read end of a pipe whose only write end the driver holds, so it reads end-of-file when the driver dies,
    SIGKILL included), instead of waiting for work forever."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if steps is not None:
        progress.forward_to(steps)
    os.environ.clear()
    os.environ.update(environ)
    sys.path[:] = path
    os.chdir(cwd)
    if threads:
        import torch

        torch.set_num_threads(threads)

    def watch() -> None:
        try:
            lifeline.recv()  # nothing is ever sent: this returns only by end-of-file
        except (EOFError, OSError):
            pass
        os._exit(1)

    threading.Thread(target=watch, name="odebench-driver-watch", daemon=True).start()


def _evaluate_cells(cell_fn: Callable, cells: list[Cell], outcome: TrainOutcome, ctx: JobContext) -> list:
    """Several cells of one model in one worker (so that a per-model metric is computed once)."""
    return [cell_fn(c, outcome, ctx) for c in cells]


def _uses_per_model_metric(cell: Cell) -> bool:
    from odebench.metrics import METRICS

    names = {m for ms in cell.eval["metrics"].values() for m in ms}
    return any(METRICS.get(m).per_model for m in names if m in METRICS)


@dataclass
class _Work:
    """One task: a training, or one or more cells of one model."""

    order: tuple  # sort key: lower runs first
    training: TrainingJob | None = None
    cells: list[Cell] = field(default_factory=list)
    model: str | None = None  # the key of the model the cells evaluate


class PoolExecutor:
    """Trainings and cells in ``jobs`` worker processes (see the module docstring)."""

    shows_training_progress = False

    def __init__(self, jobs: int):
        if jobs < 1:
            raise ValueError(f"jobs must be at least 1, got {jobs}")
        self.jobs = jobs
        self._lifelines: list = []  # write ends the workers watch; closed once their pool is done
        self._steps = None  # the queue the workers send their training steps to (None: nobody listens)

    def _pool(self, ctx: JobContext, workers: int | None = None) -> ProcessPoolExecutor:
        workers = workers or self.jobs
        methods = multiprocessing.get_all_start_methods()
        mp = multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
        if mp.get_start_method() == "forkserver":
            mp.set_forkserver_preload(PRELOAD)
            from multiprocessing import forkserver, resource_tracker

            # the resource tracker first: starting it unblocks SIGINT in this thread when it is done (whatever the
            # mask was before), which inside the block below would let the server start with SIGINT unblocked
            resource_tracker.ensure_running()
            # start the server now, with SIGINT blocked in it (the mask survives its exec) until it ignores it
            # itself, after its preload imports: an interrupt meanwhile is the driver's alone, taken once the
            # server is up (an ignored one would be lost, and the run would go on)
            with deferred():
                forkserver.ensure_running()
        reader, writer = mp.Pipe(duplex=False)
        self._lifelines.append(writer)
        # a new queue per pool: a worker killed while it was sending could leave the old one's lock taken
        self._steps = mp.Queue() if progress.is_listening() else None
        pool = ProcessPoolExecutor(max_workers=workers, mp_context=mp, initializer=_start_worker,
                                   initargs=(ctx.threads, dict(os.environ), list(sys.path), os.getcwd(), reader,
                                             self._steps))
        # start every worker now, before any real work, each known to the pool before a Ctrl-C is taken (a
        # worker forked but not yet in the pool's list could not be stopped, and would fail on the semaphores
        # the driver removes when it leaves); an interrupt while they start up stops them all
        try:
            with deferred():
                started = [pool.submit(os.getpid) for _ in range(workers)]
            for future in started:
                future.result()
        except BaseException:
            _stop(pool)
            raise
        return pool

    def _close_lifelines(self) -> None:
        while self._lifelines:
            self._lifelines.pop().close()

    def run(self, plan: Plan, ctx: JobContext, train_fn, cell_fn, sink) -> None:
        children: dict[str | None, list[TrainingJob]] = {}
        for job in plan.trainings:
            children.setdefault(job.parent, []).append(job)
        index = {job.key: i for i, job in enumerate(plan.trainings)}
        outcomes: dict[str, TrainOutcome] = {}
        ready: list[_Work] = [self._training(j, children, index) for j in children.get(None, [])]
        running: dict[Future, _Work] = {}
        workers = min(self.jobs, len(plan.trainings) + len(plan.todo))  # never more workers than jobs to run
        if workers == 0:
            return
        try:
            pool = self._pool(ctx, workers)
        except BaseException:  # Ctrl-C while the workers start: _pool has stopped them
            self._close_lifelines()
            raise
        try:
            while ready or running:
                ready.sort(key=lambda w: w.order)
                while ready and len(running) < workers:
                    work = ready.pop(0)
                    running[self._submit(pool, work, outcomes, ctx, train_fn, cell_fn)] = work
                wake = WAKE_SECONDS if self._steps is not None else None  # to draw the steps of trainings under way
                done, _ = wait(running, timeout=wake, return_when=FIRST_COMPLETED)
                self._drain_steps()
                broken = False
                for fut in done:
                    work = running.pop(fut)
                    try:
                        result = fut.result()
                    except BrokenProcessPool as exc:
                        broken = True
                        result = self._lost(work, ctx, f"a worker process died ({exc}); re-run to retry")
                    except Exception as exc:  # the job functions catch their own errors: this is pickling etc.
                        result = self._lost(work, ctx, f"{type(exc).__name__}: {exc}")
                    ready += self._report(work, result, plan, children, index, outcomes, sink)
                if broken:  # every task still in the old pool is lost with it
                    for work in list(running.values()):
                        result = self._lost(work, ctx, "a worker process died; re-run to retry")
                        ready += self._report(work, result, plan, children, index, outcomes, sink)
                    running.clear()
                    pool.shutdown(wait=False, cancel_futures=True)
                    pool = self._pool(ctx, workers)
        except BaseException:
            _stop(pool)
            self._close_lifelines()
            raise
        pool.shutdown(wait=True)
        self._close_lifelines()

    # ------------------------------------------------------------------------------------------- helpers
    def _drain_steps(self) -> None:
        """Hand the step reports the workers sent to this process's listener (the progress line)."""
        while self._steps is not None:
            try:
                key, done, total = self._steps.get_nowait()
            except (queue.Empty, OSError, EOFError, ValueError):  # nothing more, or a queue a dead worker broke
                return
            progress.report_steps(key, done, total)

    @staticmethod
    def _training(job: TrainingJob, children: dict, index: dict) -> _Work:
        # trainings first; those with children (reflow rounds to come) before the others, then plan order
        return _Work((0, 0 if children.get(job.key) else 1, index[job.key]), training=job)

    @staticmethod
    def _submit(pool, work: _Work, outcomes, ctx, train_fn, cell_fn) -> Future:
        if work.training is not None:
            job = work.training
            return pool.submit(train_fn, job, ctx, outcomes.get(job.parent))
        return pool.submit(_evaluate_cells, cell_fn, work.cells, outcomes[work.model], ctx)

    @staticmethod
    def _lost(work: _Work, ctx: JobContext, reason: str):
        if work.training is not None:
            return TrainOutcome(work.training.key, False, reason)
        return [failed_record(c, ctx.device, reason, "worker") for c in work.cells]

    def _report(self, work: _Work, result: Any, plan: Plan, children: dict, index: dict,
                outcomes: dict[str, TrainOutcome], sink) -> list[_Work]:
        """Hand a finished task to the sink; returns the work it made ready."""
        if work.training is None:
            for cell, record in zip(work.cells, result, strict=True):
                sink.cell_done(cell, record)
            return []
        job = work.training
        outcomes[job.key] = result
        sink.training_done(job, result)
        more = [self._training(child, children, index) for child in children.get(job.key, [])]
        cells = plan.cells_of(job.key)
        if any(_uses_per_model_metric(c) for c in cells):
            more.append(_Work((1, index[job.key]), cells=list(cells), model=job.key))
        else:
            more += [_Work((1, index[job.key], i), cells=[c], model=job.key) for i, c in enumerate(cells)]
        return more


def _stop(pool: ProcessPoolExecutor) -> None:
    """Stop the workers now (Ctrl-C, or an error in the driver): running jobs are abandoned, not waited for."""
    processes = getattr(pool, "_processes", None) or {}  # a private attribute: Python 3.14 has terminate_workers
    for proc in list(processes.values()):
        if proc.is_alive():
            proc.terminate()
    for proc in list(processes.values()):
        proc.join(timeout=5)  # gone before the driver removes the semaphores a starting worker would still read
    pool.shutdown(wait=True, cancel_futures=True)
