"""Train the models of one configuration that differ only in their seed (and data seed) together: a seed stack.

Each member is prepared as ``train_model`` prepares one (cache look-up, its data, its seeded initialisation,
its measured step cost), the members still to train are optimised together by
``odebench.bench.harness.training.stacked_fit.fit_stacked``, and each is judged, recorded and saved as its own
training would be, under its own key: the cache, resume, ``odebench eval`` and the report see one artifact per
seed, with the same weights, loss curve and held-out curve as a training of its own (bit for bit on CPU in
float32). A member's ``seconds`` are its own preparation plus its share of the stack's optimisation (the
stack's wall time over its members). Under ``train.until_converged`` each member stops at its own converged
evaluation, as its own training would (``fit_stacked``); the stack runs until its last member stops.

Where the members cannot stack exactly (a network other than the MLP, more than one torch thread, a batch and
width that torch's vector loops do not divide: odebench.bench.nets.stacked; a step budget that differs between
them), they train one after the other in this process, exactly as ``train_model`` trains them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from odebench.bench.harness.process.progress import report_steps
from odebench.bench.harness.process.runtime import Runtime
from odebench.bench.harness.store.artifacts import ArtifactStore
from odebench.bench.harness.training.stacked_fit import fit_stacked, stack_reason, stack_size
from odebench.bench.harness.training.train import (
    PendingTraining,
    Problem,
    TrainConfig,
    TrainedModel,
    finish_training,
    fit_pending,
    prepare_training,
)
from odebench.methods.base import Method


@dataclass
class StackMember:
    """One model of a stack: its problem (data seed included), seed and trained parent stage (None: none)."""

    problem: Problem
    seed: int
    parent: TrainedModel | None = None


def stacks_on(runtime: Runtime) -> bool:
    """Whether this runtime trains seed stacks: CPU in float32, no torch.compile (where they are bit-exact)."""
    return runtime.device == "cpu" and runtime.precision == "fp32" and not runtime.compile


def train_seed_stack(method: Method, members: list[StackMember], cfg: TrainConfig, store: ArtifactStore,
                     runtime: Runtime) -> list[TrainedModel | Exception]:
    """The trained (or cached) model of each member, in order, or the error that member's training raised.

    The members still to train go in stacks of at most ``stacked_fit.stack_size`` members (the most that stay
    exact); a stack that cannot be exact trains its members one at a time.
    """
    results: list[TrainedModel | PendingTraining | Exception] = []
    prep_seconds: dict[int, float] = {}
    for i, m in enumerate(members):
        try:
            results.append(prepare_training(method, m.problem, cfg, m.seed, store, runtime, m.parent))
        except Exception as exc:  # isolate: this member fails, the others train
            results.append(exc)
            continue
        if isinstance(results[-1], PendingTraining):
            prep_seconds[i] = time.perf_counter() - results[-1].start
    pending = list(prep_seconds)
    size = stack_size([results[i].model for i in pending]) if pending else 1
    for chunk in (pending[k:k + size] for k in range(0, len(pending), size)):
        jobs = [results[i] for i in chunk]
        if len(jobs) >= 2 and len({j.run_cfg for j in jobs}) == 1 \
                and stack_reason([j.model for j in jobs], jobs[0].run_cfg.batch_size) is None:
            trained = _fit_together(method, jobs, [prep_seconds[i] for i in chunk], store)
        else:
            trained = [_fit_alone(job, prep_seconds[i], store) for i, job in zip(chunk, jobs, strict=True)]
        for i, result in zip(chunk, trained, strict=True):
            results[i] = result
    return results


def _fit_together(method: Method, jobs: list[PendingTraining], prep_seconds: list[float],
                  store: ArtifactStore) -> list[TrainedModel | Exception]:
    curves: list[list[tuple[int, float]]] = [[] for _ in jobs]
    start = time.perf_counter()

    def report(done: int, total: int) -> None:
        for job in jobs:
            report_steps(job.key, done, total)

    out = fit_stacked(method, [j.model for j in jobs], [j.data.coupling for j in jobs], jobs[0].run_cfg,
                      [j.batch_generator() for j in jobs], [j.heldout() for j in jobs], curves, report)
    share = (time.perf_counter() - start) / len(jobs)
    return [result if isinstance(result, Exception) else finish_training(job, *result, curve, prep + share, store)
            for job, result, curve, prep in zip(jobs, out, curves, prep_seconds, strict=True)]


def _fit_alone(job: PendingTraining, prep_seconds: float, store: ArtifactStore) -> TrainedModel | Exception:
    """One member as ``train_model`` trains it."""
    try:
        start = time.perf_counter()
        ema, losses, curve = fit_pending(job)
        return finish_training(job, ema, losses, curve, prep_seconds + time.perf_counter() - start, store)
    except Exception as exc:
        return exc
