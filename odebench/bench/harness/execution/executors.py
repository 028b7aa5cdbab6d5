"""Where a sweep's jobs run: in this process, in worker processes on this machine, or as Ray tasks on a local
or remote Ray cluster.

Both executors take the same plan and the same two job functions (``odebench.bench.harness.execution.run.train_job`` and
``odebench.bench.harness.execution.run.cell_job``) and report every finished job to the same sink, which writes the
records in the driver. They differ only in scheduling:

- ``local``: each training in plan order (parents first), then that model's cells, one at a time; with
  ``jobs`` > 1, the same jobs in that many worker processes (``odebench.bench.harness.execution.pool_executor``).
- ``ray``: every training is a task whose parent's result is one of its arguments, so Ray starts it only
  once the parent is done; every cell is a task taking its model's training result. Records are written as
  tasks finish, so a killed driver loses nothing that was reported. With ``device = "cuda"`` each task asks
  Ray for one GPU. Trained models go to the artifact folder under ``--out``, which every node must see
  (a shared file system) when the cluster has more than one machine.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import Any

from odebench.bench.harness.execution.plan import JobContext, Plan, TrainOutcome
from odebench.bench.harness.store.records import failed_record

EXECUTORS = ("local", "ray")
RAY_INSTALL = 'pip install "odebench[ray]"  (or: pip install "ray>=2.9")'

TrainFn = Callable[..., TrainOutcome]
CellFn = Callable[..., dict[str, Any]]


class ExecutorUnavailable(RuntimeError):
    """The chosen executor cannot run here (Ray missing, options that do not fit); nothing has run yet."""


class Executor(ABC):
    """Runs a plan's trainings and cells and reports each result to ``sink`` as it finishes."""

    #: whether training progress bars make sense (they do not in remote workers)
    shows_training_progress: bool = True

    @abstractmethod
    def run(self, plan: Plan, ctx: JobContext, train_fn: TrainFn, cell_fn: CellFn, sink) -> None:
        """``sink.training_done(job, outcome)`` and ``sink.cell_done(cell, record)`` for every job."""


class LocalExecutor(Executor):
    """Everything in this process, in plan order: a model's cells right after its training."""

    def run(self, plan, ctx, train_fn, cell_fn, sink):
        outcomes: dict[str, TrainOutcome] = {}
        for job in plan.trainings:
            outcome = train_fn(job, ctx, outcomes.get(job.parent))
            outcomes[job.key] = outcome
            sink.training_done(job, outcome)
            for cell in plan.cells_of(job.key):
                sink.cell_done(cell, cell_fn(cell, outcome, ctx))


class RayExecutor(Executor):
    """Trainings and then their cells as Ray tasks; connects to ``address`` or starts a local instance."""

    shows_training_progress = False

    def __init__(self, address: str | None = None):
        try:
            import ray
        except ImportError as exc:
            raise ExecutorUnavailable(f"--executor ray needs Ray, which is not installed; install it with "
                               f"{RAY_INSTALL}") from exc
        self.ray = ray
        self.address = address
        check_ray_address(address if address is not None else os.environ.get("RAY_ADDRESS"))

    def _connect(self) -> bool:
        """Connect (or start a local Ray); returns whether this executor started it and must shut it down."""
        if self.ray.is_initialized():
            return False
        # workers import odebench from the same checkout as the driver: the folder that holds the package
        import odebench

        root = str(Path(odebench.__file__).resolve().parents[1])
        path = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)
        try:
            self.ray.init(address=self.address, include_dashboard=False, log_to_driver=True,
                          runtime_env={"env_vars": {"PYTHONPATH": path}})
        except ConnectionError as exc:  # a port that answers but is no Ray cluster's
            raise ExecutorUnavailable(f"--address {self.address}: {exc}; start the cluster (ray start --head) and "
                                      f"give the address it prints, or drop --address to start a local Ray") from None
        return True

    def run(self, plan, ctx, train_fn, cell_fn, sink):
        ray = self.ray
        started = self._connect()
        try:
            gpus = 1 if ctx.device.startswith("cuda") else 0
            train_task = ray.remote(num_gpus=gpus, max_retries=0)(train_fn)
            cell_task = ray.remote(num_gpus=gpus, max_retries=0)(cell_fn)
            ctx_ref = ray.put(ctx)
            trainings: dict[str, Any] = {}
            pending: dict[Any, tuple[str, Any]] = {}
            for job in plan.trainings:
                parent = trainings.get(job.parent)
                trainings[job.key] = train_task.remote(job, ctx_ref, parent)
                pending[trainings[job.key]] = ("training", job)
            for cell in plan.todo:
                ref = cell_task.remote(cell, trainings[plan.cell_model[cell.id]], ctx_ref)
                pending[ref] = ("cell", cell)
            self._drain(pending, sink, ctx)
        finally:
            if started:
                ray.shutdown()

    def _drain(self, pending: dict, sink, ctx: JobContext) -> None:
        """Report results in the order they finish; a task Ray itself lost becomes a failed result."""

        ray = self.ray
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            kind, item = pending.pop(done[0])
            try:
                result = ray.get(done[0])
            except ray.exceptions.RayError as exc:  # a crashed worker or a lost node, not a job's own error
                reason = f"Ray task failed: {type(exc).__name__}: {exc}"
                result = (TrainOutcome(item.key, False, reason) if kind == "training"
                          else failed_record(item, ctx.device, reason, "ray"))
            if kind == "training":
                sink.training_done(item, result)
            else:
                sink.cell_done(item, result)


#: seconds to wait for a Ray cluster's port to answer before the run is refused (ray.init itself retries for
#: minutes on an address where nothing listens)
RAY_CONNECT_SECONDS = 3.0


def check_ray_address(address: str | None, timeout: float = RAY_CONNECT_SECONDS) -> None:
    """Refuse an ``--address`` where no Ray cluster answers: a TCP connection to its host and port (the GCS port,
    or the client server's for ``ray://``) must open within ``timeout`` seconds. ``None``, ``auto`` and
    ``local`` are Ray's own to resolve."""
    if address is None or address.strip() in ("", "auto", "local"):
        return
    hint = ("start the cluster (ray start --head) and give the address it prints (host:6379, or ray://host:10001 "
            "for Ray Client), or drop --address to start a local Ray")
    rest = address.strip().removeprefix("ray://")
    host, sep, port_text = rest.rpartition(":")
    host = host.strip("[]")  # [::1]:6379
    if not sep or not host or not port_text.isascii() or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ExecutorUnavailable(f"--address {address!r} is not HOST:PORT (or ray://HOST:PORT); {hint}")
    import socket

    try:
        with socket.create_connection((host, int(port_text)), timeout=timeout):
            pass
    except (OSError, UnicodeError) as exc:  # refused, unreachable, timed out, a host that does not resolve
        reason = "no answer" if isinstance(exc, TimeoutError) else (getattr(exc, "strerror", None) or str(exc))
        raise ExecutorUnavailable(f"--address {address}: no Ray cluster answers at {host}:{port_text} ({reason}, "
                                  f"within {timeout:g} s); {hint}") from None


def get_executor(name: str, address: str | None = None, jobs: int = 1) -> Executor:
    """The executor called ``name``; unknown names and a missing Ray raise with the fix.

    ``local`` with ``jobs`` > 1 runs the jobs in that many worker processes
    (:class:`odebench.bench.harness.execution.pool_executor.PoolExecutor`), with 1 in this process.
    """
    if name == "local":
        if address:
            raise ExecutorUnavailable("--address only applies to --executor ray; add --executor ray or drop "
                                      "--address")
        if jobs > 1:
            from odebench.bench.harness.execution.pool_executor import PoolExecutor

            return PoolExecutor(jobs)
        return LocalExecutor()
    if name == "ray":
        return RayExecutor(address)
    raise ExecutorUnavailable(f"unknown executor {name!r}; choose from {', '.join(EXECUTORS)}")
