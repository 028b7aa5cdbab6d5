"""Train the models of one configuration that differ only in their seed (and data seed) together: a seed stack.

Each member is prepared as ``train_model`` prepares one (cache look-up, its data, its seeded initialisation,
its measured step cost), the members still to train are optimised together by
``odebench.bench.harness.stacked_fit.fit_stacked``, and each is judged, recorded and saved as its own
training would be, under its own key: the cache, resume, ``odebench eval`` and the report see one artifact per
seed, with the same weights, loss curve and held-out curve as a training of its own (bit for bit on CPU in
float32). A member's ``seconds`` are its own preparation plus its share of the stack's optimisation (the
stack's wall time over its members).

Where the members cannot stack (a network other than the MLP, a step budget that differs between them), they
train one after the other in this process, exactly as ``train_model`` trains them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from odebench.bench.harness.artifacts import ArtifactStore
from odebench.bench.harness.progress import report_steps
from odebench.bench.harness.runtime import Runtime
from odebench.bench.harness.stacked_fit import fit_stacked, stack_reason
from odebench.bench.harness.train import (
    PendingTraining,
    Problem,
    TrainConfig,
    TrainedModel,
    finish_training,
    fit,
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
    """The trained (or cached) model of each member, in order, or the error that member's training raised."""
    prepared: list[TrainedModel | PendingTraining | Exception] = []
    prep_seconds: dict[int, float] = {}
    for i, m in enumerate(members):
        try:
            prepared.append(prepare_training(method, m.problem, cfg, m.seed, store, runtime, m.parent))
        except Exception as exc:  # isolate: this member fails, the others train
            prepared.append(exc)
            continue
        if isinstance(prepared[-1], PendingTraining):
            prep_seconds[i] = time.perf_counter() - prepared[-1].start
    pending = [i for i in prep_seconds]
    results: list = list(prepared)
    if len(pending) >= 2 and stack_reason([prepared[i].model for i in pending]) is None \
            and len({prepared[i].run_cfg for i in pending}) == 1:
        jobs = [prepared[i] for i in pending]
        curves: list[list[tuple[int, float]]] = [[] for _ in jobs]
        start = time.perf_counter()

        def report(done: int, total: int) -> None:
            for job in jobs:
                report_steps(job.key, done, total)

        out = fit_stacked(method, [j.model for j in jobs], [j.data.coupling for j in jobs], jobs[0].run_cfg,
                          [j.batch_generator() for j in jobs], [j.heldout() for j in jobs], curves, report)
        share = (time.perf_counter() - start) / len(jobs)
        for i, job, result, curve in zip(pending, jobs, out, curves, strict=True):
            results[i] = result if isinstance(result, Exception) else \
                finish_training(job, *result, curve, prep_seconds[i] + share, store)
        return results
    for i in pending:  # one at a time, as train_model trains them
        job = prepared[i]
        try:
            curve: list[tuple[int, float]] = []
            start = time.perf_counter()
            ema, losses = fit(method, job.model, job.data.coupling, job.run_cfg, job.batch_generator(),
                              runtime=runtime, heldout=job.heldout(), heldout_curve=curve,
                              report=lambda done, total, key=job.key: report_steps(key, done, total))
            results[i] = finish_training(job, ema, losses, curve, prep_seconds[i] + time.perf_counter() - start,
                                         store)
        except Exception as exc:
            results[i] = exc
    return results
