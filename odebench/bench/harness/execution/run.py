"""Run a sweep: plan it, train each model once, evaluate every cell, write records.

Data flows one way: spec -> cells -> (cached) training -> sampling -> metrics -> record. ``train_job`` and
``cell_job`` are the two units of work; an executor (odebench.bench.harness.execution.executors: in-process or Ray) runs
them and the driver writes each record as it arrives. A failure in one training or one cell is written as a "failed"
record and the sweep goes on; budgets a solver cannot use and samplers a method lacks become "skipped"
records with the reason.

Before any of that, ``run_sweep`` takes the results folder's lock (odebench.bench.harness.store.lock: a second run
on the same ``--out`` is refused), removes temp files a killed run left (stale_files), and moves corrupt
records aside (records.RecordStore.quarantine) so that their cells run again. Every job runs inside the
spec's budgets (odebench.bench.core.budgets: an NFE cap per adaptive solve, wall-clock limits per training
and per cell), which every record stores under ``budgets``.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import time
import traceback
from collections import OrderedDict, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from odebench.bench.core import budgets, seeding
from odebench.bench.core.solvers import BudgetTooSmall, Unsupported, sample
from odebench.bench.harness.execution.data_shapes import check_data_shapes
from odebench.bench.harness.execution.model_size import check_model_sizes
from odebench.bench.harness.execution.plan import (
    GivenModel,
    JobContext,
    TrainingJob,
    TrainOutcome,
    make_plan,
    method_at,
    model_chain,
    problem_of,
    quarantine_corrupt,
)
from odebench.bench.harness.guards.errors import RunRefused
from odebench.bench.harness.guards.safe_paths import inside, sweep_dir
from odebench.bench.harness.process import distributed
from odebench.bench.harness.process.progress import SweepProgress, listening
from odebench.bench.harness.process.runtime import Runtime, compile_modules, resolve_device
from odebench.bench.harness.spec.limits import limits_of
from odebench.bench.harness.spec.sweep import Cell, Spec
from odebench.bench.harness.store.artifacts import ArtifactStore
from odebench.bench.harness.store.effective_spec import write_effective_spec
from odebench.bench.harness.store.lock import acquire
from odebench.bench.harness.store.records import RecordStore, base_record, failed_record, is_finished, skipped_record
from odebench.bench.harness.store.sample_sheets import save_sample_sheet
from odebench.bench.harness.store.stale_files import remove_stale_temps
from odebench.bench.harness.store.versions import earlier_configs, earlier_note, write_manifest
from odebench.bench.harness.training.seed_stack import StackMember, stacks_on, train_seed_stack
from odebench.bench.harness.training.train import (
    Problem,
    TrainConfig,
    TrainedModel,
    build_model,
    source_sampler,
    train_model,
)
from odebench.methods import get_method
from odebench.metrics import METRICS, EvalContext
from odebench.metrics.registry import MetricUndefined, split_output


class PrecisionMismatch(ValueError):
    """A sweep folder holds finished cells computed at another precision than the one asked for."""


def check_precision(existing: dict[str, dict[str, Any] | None], sweep_dir: Path, precision: str) -> None:
    """Refuse to resume a sweep folder whose finished cells ran at another precision.

    ``existing`` maps the spec's cell ids to their records (None: not run yet). Cell ids do not include the
    precision (fp32 ids are what they always were), so without this check a bf16 run in an fp32 folder would
    take the fp32 records as its own finished cells.
    """
    clash: dict[str, int] = defaultdict(int)
    for rec in existing.values():
        if rec is not None and rec.get("status") == "ok":  # skips (budget, no SDE) hold at any precision
            theirs = (rec.get("runtime") or {}).get("precision", "fp32")
            if theirs != precision:
                clash[theirs] += 1
    if clash:
        found = ", ".join(f"{n} in {p}" for p, n in sorted(clash.items()))
        raise PrecisionMismatch(
            f"{sweep_dir} already holds finished cells of this spec computed at another precision ({found}); "
            f"this run asks for {precision}, and those records would be taken as its results. Use another "
            f"--out folder for {precision} (e.g. --out results_{precision}) or run at the folder's precision.")


@dataclass
class SweepSummary:
    """Counts and wall time of one ``run_sweep`` call."""

    sweep: str
    out_dir: Path
    n_cells: int = 0
    already_done: int = 0
    status_counts: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    n_trainings: int = 0  # models the plan needed (parents included)
    trained: int = 0  # of which trained in this run
    loaded: int = 0  # of which found in the cache
    seconds: float = 0.0
    executor: str = "local"
    jobs: int = 1  # worker processes of the local executor (1: in this process)
    threads: int = 1  # torch intra-op threads per process
    failures: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures


def group_by_model(cells: list[Cell]) -> dict[str, list[Cell]]:
    groups: dict[str, list[Cell]] = defaultdict(list)
    for c in cells:
        groups[c.training_key()].append(c)
    return groups


def draw_sources(cell: Cell, method, problem: Problem) -> torch.Tensor:
    """[n_samples, *shape] source draws; sample i depends only on (seed, i), never on batching."""
    draw = source_sampler(method, problem, "cpu")
    return seeding.per_sample(lambda g: draw(1, g), cell.seed, f"x0/{cell.source}", 0, cell.eval["n_samples"])


@dataclass
class CellSamples:
    """What one cell's sampling produced: samples [N, *shape] (float32, CPU), the solver's trajectory
    [T + 1, N, *shape] on ``t_grid`` if a metric needs it, the NFE used and the wall seconds."""

    samples: torch.Tensor
    trajectory: torch.Tensor | None
    t_grid: torch.Tensor | None
    nfe: int
    seconds: float


def sample_cell(cell: Cell, dyn, x0_all: torch.Tensor, runtime: Runtime, need_trajectory: bool) -> CellSamples:
    """Move the source draws x0_all [N, *shape] to the data side with the cell's solver, grid and budget, in
    chunks of ``eval.batch_size``; SDE noise of chunk i comes from (seed, Cell.draws_id, i), so a batch size that
    holds all N samples draws the same noise as the default (a smaller one splits the draws). Raises
    BudgetTooSmall / Unsupported when the solver cannot take the cell's budget or the method's dynamics."""
    device = runtime.device
    start = time.perf_counter()
    xs, trajs, nfe, t_grid = [], [], 0, None
    with torch.inference_mode(), runtime.autocast():
        for i, x0 in enumerate(x0_all.split(cell.eval["batch_size"])):
            res = sample(dyn, x0.to(device), cell.solver, nfe=cell.nfe, rtol=cell.tol, atol=cell.tol,
                         grid=cell.grid, gen=seeding.derive(cell.seed, cell.draws_id, "sde", i, device=device),
                         trajectory=need_trajectory)
            xs.append(res.x.float().cpu())
            if need_trajectory:
                trajs.append(res.trajectory.float().cpu())
            nfe = max(nfe, res.nfe)  # every chunk uses the same grid; adaptive chunks may differ
            t_grid = res.t.cpu()
    return CellSamples(torch.cat(xs), torch.cat(trajs, 1) if trajs else None, t_grid, nfe,
                       time.perf_counter() - start)


def measure_cell(cell: Cell, ctx: EvalContext, metric_names: list[str], model_key: str,
                 device: str) -> tuple[dict[str, float], dict[str, Any], dict[str, str]]:
    """Every metric of the cell on its samples: (values by column, metric_info by metric, failures).

    The cell's wall-clock budget is checked before and after every metric (one that ran past it fails the cell,
    BudgetExceeded); a metric whose uninterruptible work is estimated not to fit what is left refuses up front
    (odebench.metrics.budget_guard) and fails alone. A metric that raises (MetricUndefined when it cannot be
    estimated here, e.g. MMD from one sample, or any other error) or returns NaN/inf *fails alone*: no value,
    ``metric_info[name]`` holds ``status = "failed"`` with the reason, ``failures`` maps it to the reason, and
    the cell's other metrics are kept. A metric the
    model's dynamics cannot answer (``Unsupported``: e.g. a path metric of a one-step map) is recorded as
    ``status = "not applicable"`` with the reason and is no failure: the cell is finished without it.
    """
    values, info, failures = {}, {}, {}
    for name in metric_names:
        budgets.check_deadline()  # between metrics: a cell's wall-clock budget also covers its metrics
        metric = METRICS.get(name)
        meta = {**metric.metadata(), "options": ctx.opts(name)}
        try:
            out = per_model_value(metric, ctx, model_key, cell.seed, device) if metric.per_model else metric.fn(ctx)
            metric_values, settings = split_output(name, out)
            budgets.check_deadline()  # after it too: a metric that ran past the budget is never recorded ok
        except budgets.BudgetExceeded:
            raise  # the cell's wall-clock budget ends the cell, not one metric
        except Unsupported as exc:
            # the model's dynamics cannot answer what the metric asks (a distilled flow is a one-step map, no
            # path to measure): a property of the method, not a failure, so re-running would not change it
            info[name] = {**meta, "status": "not applicable", "reason": str(exc)}
            continue
        except Exception as exc:
            reason = str(exc) if isinstance(exc, MetricUndefined) else f"{type(exc).__name__}: {exc}"
            info[name], failures[name] = {**meta, "status": "failed", "reason": reason}, reason
            continue
        bad = sorted(k for k, v in metric_values.items() if not math.isfinite(v))
        if bad:
            reason = (f"{', '.join(bad)} came out NaN/inf: the metric cannot be estimated on these samples (too few "
                      f"points, or degenerate ones)")
            info[name], failures[name] = {**meta, "status": "failed", "settings": settings, "reason": reason}, reason
            continue
        values.update(metric_values)
        info[name] = {**meta, "settings": settings}
    return values, info, failures


def evaluate_cell(cell: Cell, trained: TrainedModel, device: str = "cpu", runtime: Runtime | None = None,
                  samples_dir: Path | None = None, write_root: str | Path | None = None,
                  cache_dir: str | Path | None = None) -> dict[str, Any]:
    """Sample with the cell's solver and budget, compute its metrics, and return its record.

    ``runtime`` (overriding ``device``) adds bf16 autocast around sampling; image cells save a sheet of their
    samples to ``samples_dir/<cell_id>.png`` when a folder is given (checked to lie in ``write_root``,
    default ``samples_dir``). ``cache_dir`` (the run's ``<out>/.cache``, checked to lie in ``write_root``) is
    where metrics keep what they compute once (EvalContext.cache_dir).
    """
    runtime = runtime or Runtime(device)
    method = trained.method if trained.method is not None else get_method(**cell.method)
    problem = problem_of(cell)
    dyn = method.dynamics(trained.model)
    record = {**base_record(cell, runtime.device), "model_key": trained.key, "runtime": runtime.record(),
              "training": trained.evidence_record()}
    metric_names = cell.eval["metrics"].get(problem.target.kind, [])
    x0_all = draw_sources(cell, method, problem)
    timings = {"train_seconds": trained.total_train_seconds()}
    try:
        drawn = sample_cell(cell, dyn, x0_all, runtime, any(METRICS.get(m).needs_trajectory for m in metric_names))
    except (BudgetTooSmall, Unsupported) as exc:
        return {**record, "status": "skipped", "reason": str(exc), "metrics": {}, "nfe": None, "timings": timings}
    timings["sample_seconds"] = drawn.seconds
    samples = drawn.samples
    if not torch.isfinite(samples).all():
        bad = int((~torch.isfinite(samples.flatten(1))).any(1).sum())
        return {**record, "status": "failed", "nfe": drawn.nfe, "metrics": {}, "timings": timings,
                "reason": f"sampling: {bad} of {len(samples)} samples are NaN/inf (the trained field or the "
                          f"solver diverged); try a smaller step or check the training loss"}

    prior = method.prior(problem.target.shape)
    ctx = EvalContext(samples=samples, reference=problem.target.test, x0=x0_all, trajectory=drawn.trajectory,
                      t_grid=drawn.t_grid, dynamics=dyn,
                      log_prob_source=None if problem.source is not None else prior.log_prob,
                      data_kind=problem.target.kind, data_meta=problem.target.meta,
                      gen=seeding.derive(cell.seed, cell.draws_id, "metrics"), options=cell.eval["metric_options"],
                      train_reference=problem.target.train, source_sample=source_sampler(method, problem, "cpu"),
                      law_key=law_key(cell, prior, problem),
                      cache_dir=_checked(cache_dir, write_root),
                      dynamics_key=json.dumps([trained.key, cell.method, runtime.device], sort_keys=True))
    start = time.perf_counter()
    values, info, failures = measure_cell(cell, ctx, metric_names, trained.key, runtime.device)
    timings["metric_seconds"] = time.perf_counter() - start
    if samples_dir is not None and problem.target.kind == "image":
        root = write_root if write_root is not None else samples_dir
        record["sample_sheet"] = save_sample_sheet(samples, Path(samples_dir) / f"{cell.id}.png", root=root)
    status, reason = "ok", None
    if failures:
        record["metric_failures"] = failures  # the cell runs again next time (records.is_finished)
        if len(failures) == len(metric_names):
            status = "failed"
            reason = "metrics: " + "; ".join(f"{m}: {why}" for m, why in failures.items())
    return {**record, "status": status, "reason": reason, "nfe": drawn.nfe, "nfe_requested": cell.nfe,
            "metrics": values, "metric_info": info, "timings": timings}


def _checked(folder: str | Path | None, root: str | Path | None) -> Path | None:
    """``folder`` resolved, once checked to lie inside ``root`` (as given when there is no root to check)."""
    if folder is None:
        return None
    return Path(folder) if root is None else inside(root, folder)


def law_key(cell: Cell, prior, problem: Problem) -> str:
    """Names the pair (source law, data law) of a cell: 'N(0, 1^2 I)->moons/data_seed=0' or
    '8gaussians->moons/data_seed=0', with the target's loader options when it has any. Methods with the same
    source law share it (and so the transport reference keyed by it)."""
    if problem.source is not None:
        source = problem.source.name
    else:
        scale = getattr(prior, "scale", None)
        source = f"N(0, {scale:g}^2 I)" if scale is not None else type(prior).__name__
    options = json.dumps(cell.data_options, sort_keys=True) if cell.data_options else ""
    return f"{source}->{problem.target.name}/data_seed={cell.data_seed}{'/' + options if options else ''}"


#: outputs of per-model metrics (NLL) this process computed, by (model key, metric, options, device)
_MODEL_METRICS: OrderedDict[tuple[str, str, str, str], Any] = OrderedDict()
_MODEL_METRICS_KEPT = 64


def per_model_value(metric, ctx: EvalContext, model_key: str, seed: int, device: str) -> Any:
    """Output of a ``per_model`` metric, computed once per (model, options, device) in this process.

    Its generator is derived from the model key, not the cell, so every cell of a model -- in this process or
    in a Ray worker -- records the same value, and a sweep over 20 solver budgets solves the NLL once, not 20
    times. Only the model's fields, the reference data and the options reach it (see Metric.per_model).
    """
    memo = (model_key, metric.name, json.dumps(ctx.opts(metric.name), sort_keys=True, default=str), device)
    if memo in _MODEL_METRICS:
        _MODEL_METRICS.move_to_end(memo)
    else:
        own = dataclasses.replace(ctx, gen=seeding.derive(seed, model_key, "metrics", metric.name), cache={})
        _MODEL_METRICS[memo] = metric.fn(own)
        while len(_MODEL_METRICS) > _MODEL_METRICS_KEPT:
            _MODEL_METRICS.popitem(last=False)
    return copy.deepcopy(_MODEL_METRICS[memo])


# ----------------------------------------------------------------- the two jobs every executor runs
#: the last few models this process trained or loaded, by (artifact folder, key, device)
_MODELS: OrderedDict[tuple[str, str, str], TrainedModel] = OrderedDict()
_MODELS_KEPT = 4


def _remember(trained: TrainedModel, ctx: JobContext) -> TrainedModel:
    slot = (ctx.artifacts_root, trained.key, ctx.device)
    _MODELS[slot] = trained
    _MODELS.move_to_end(slot)
    while len(_MODELS) > _MODELS_KEPT:
        _MODELS.popitem(last=False)
    return trained


def train_job(job: TrainingJob, ctx: JobContext, parent: TrainOutcome | None = None) -> TrainOutcome:
    """Train (or load) one model of the plan; failures come back as ``ok=False`` with the reason.

    A seed stack's leader trains its members too (their outcomes ride in its own, ``members``); a member's job
    returns its outcome from the leader's (``parent``) without further work.
    """
    ctx.enter()
    if job.led_by is not None:
        mine = parent.of(job.key) if parent is not None else None
        if mine is not None:
            return mine
        reason = parent.reason if parent is not None else "its leader did not run"
        return TrainOutcome(job.key, False, f"its seed stack's training (led by {job.led_by}) failed: {reason}")
    if job.stack:
        return _train_stack(job, ctx, parent)
    if parent is not None and not parent.ok:
        return TrainOutcome(job.key, False, f"its parent model ({parent.key}) failed: {parent.reason}")
    store = ArtifactStore(ctx.artifacts_root, out_root=ctx.write_root)
    start = time.perf_counter()
    caps = ctx.budgets or {}
    try:
        notes = _quarantined(store, job, ctx)
        with budgets.limits(caps.get("max_nfe"), caps.get("train_seconds"), "training"):
            trained = train_model(method_at(job.cell, job.depth), problem_of(job.cell),
                                  TrainConfig(**job.cell.train), job.cell.seed, store, ctx.device, ctx.progress,
                                  ctx.runtime)
        _check_key(job, trained)
    except Exception as exc:  # isolate: this model's cells fail, the sweep goes on
        return _failed(job, exc, start)
    return _outcome(job, trained, notes, ctx, start)


def _quarantined(store: ArtifactStore, job: TrainingJob, ctx: JobContext) -> list[str]:
    """Cache entries of the job's chain that fail their hash check, moved aside (the notes say which)."""
    return [n for depth, key, _ in model_chain(job.cell, ctx.precision) if depth >= job.depth
            if (n := quarantine_corrupt(store, key))]


def _check_key(job: TrainingJob, trained: TrainedModel) -> None:
    if trained.key != job.key:
        raise RuntimeError(f"planned model key {job.key} but training produced {trained.key}; the "
                           f"method's config() or parent() is not deterministic")


def _failed(job: TrainingJob, exc: Exception, start: float) -> TrainOutcome:
    return TrainOutcome(job.key, False, f"{type(exc).__name__}: {exc}", seconds=time.perf_counter() - start,
                        traceback="".join(traceback.format_exception(exc, limit=8)))


def _outcome(job: TrainingJob, trained: TrainedModel, notes: list[str], ctx: JobContext, start: float) -> TrainOutcome:
    fresh, node = [], trained
    while node is not None:
        if not node.cached:
            fresh.append(node.key)
        notes += node.notes  # files that passed their hash check and still failed to load, moved aside
        node = node.parent
    _remember(trained, ctx)
    return TrainOutcome(job.key, True, "; ".join(notes) or None, fresh, time.perf_counter() - start,
                        trained.total_train_seconds(), evidence=trained.evidence_record(),
                        losses=list(trained.losses))


def _train_stack(leader: TrainingJob, ctx: JobContext, parent: TrainOutcome | None) -> TrainOutcome:
    """The leader's and its members' trainings as one seed stack (odebench.bench.harness.training.seed_stack); each
    member fails alone (its parent failed, its loss diverged), as its own job would have."""
    store = ArtifactStore(ctx.artifacts_root, out_root=ctx.write_root)
    start = time.perf_counter()
    jobs = (leader, *leader.stack)
    method = method_at(leader.cell, leader.depth)
    outcomes: dict[str, TrainOutcome] = {}
    members, ready = [], []
    for job in jobs:
        up = parent.of(job.parent) if parent is not None and job.parent is not None else None
        if up is not None and not up.ok:
            outcomes[job.key] = TrainOutcome(job.key, False, f"its parent model ({up.key}) failed: {up.reason}")
            continue
        try:
            notes = _quarantined(store, job, ctx)
            problem, stage = problem_of(job.cell), method.parent()
            up_model = (train_model(stage, problem, TrainConfig(**job.cell.train), job.cell.seed, store, ctx.device,
                                    False, ctx.runtime) if stage is not None else None)
        except Exception as exc:
            outcomes[job.key] = _failed(job, exc, start)
            continue
        members.append(StackMember(problem, job.cell.seed, up_model))
        ready.append((job, notes))
    if members:
        with budgets.limits((ctx.budgets or {}).get("max_nfe"), None, "training"):
            results = train_seed_stack(method, members, TrainConfig(**leader.cell.train), store, ctx.runtime)
        for (job, notes), result in zip(ready, results, strict=True):
            try:
                if isinstance(result, Exception):
                    raise result
                _check_key(job, result)
            except Exception as exc:
                outcomes[job.key] = _failed(job, exc, start)
                continue
            outcomes[job.key] = _outcome(job, result, notes, ctx, start)
    own = outcomes.pop(leader.key)
    own.members = outcomes
    return own


def _trained_for(cell: Cell, outcome: TrainOutcome, ctx: JobContext) -> TrainedModel:
    """The cell's model: from this process's memory, else from the artifact store (hash-checked)."""
    if (ctx.artifacts_root, outcome.key, ctx.device) in _MODELS:
        return _MODELS[(ctx.artifacts_root, outcome.key, ctx.device)]
    method = get_method(**cell.method)
    model = build_model(method, problem_of(cell)).to(ctx.device)
    meta = ArtifactStore(ctx.artifacts_root, out_root=ctx.write_root).load(outcome.key, model, ctx.device)
    model.eval()
    trained = TrainedModel(model, outcome.key, outcome.total_train_seconds, True, meta.get("losses", []),
                           evidence=outcome.evidence)  # already the record form, parents' cost included
    return _remember(trained, ctx)


def given_job(given: GivenModel):
    """The job that stands in for the training of a given model (``odebench eval``): it puts the model on the
    run's device as it is and keeps it in this process for the cells (the local executor runs every job here)."""

    def load(job: TrainingJob, ctx: JobContext, parent: TrainOutcome | None = None) -> TrainOutcome:
        ctx.enter()
        start = time.perf_counter()
        model = given.model.to(ctx.device).eval()
        _remember(TrainedModel(model, given.key, 0.0, True, method=given.method), ctx)
        return TrainOutcome(job.key, True, seconds=time.perf_counter() - start)

    return load


def cell_job(cell: Cell, outcome: TrainOutcome, ctx: JobContext) -> dict[str, Any]:
    """Evaluate one cell on its trained model; returns its record (failed records carry the reason)."""
    ctx.enter()
    if not distributed.is_main():
        return None  # under torchrun every rank trains; rank 0 alone evaluates and writes
    caps = ctx.budgets or {}
    if not outcome.ok:
        rec = failed_record(cell, ctx.device, outcome.reason or "unknown", "training")
        rec["traceback"] = outcome.traceback
    else:
        try:
            trained = _trained_for(cell, outcome, ctx)
            if ctx.compile:
                compile_modules(trained.model)
            with budgets.limits(caps.get("max_nfe"), caps.get("cell_seconds"), "cell"):
                rec = evaluate_cell(cell, trained, ctx.device, ctx.runtime, ctx.samples_dir, ctx.write_root,
                                    _metric_cache(ctx))
        except Exception as exc:
            rec = failed_record(cell, ctx.device, f"{type(exc).__name__}: {exc}", "evaluation")
            rec["traceback"] = traceback.format_exc(limit=8)
    if outcome.ok and outcome.reason:  # the model's cache entry was moved aside and trained again: why
        rec["model_cache_note"] = outcome.reason
    if ctx.budgets is not None:
        rec["budgets"] = dict(ctx.budgets)
    return rec


def _metric_cache(ctx: JobContext) -> Path:
    """Where metrics keep what they compute once: ``<out>/.cache`` beside the models, or the model folder itself
    when the job may write only there."""
    cache, root = Path(ctx.artifacts_root).absolute().parent, Path(ctx.write_root).absolute()
    return cache if cache != root and cache.is_relative_to(root) else Path(ctx.artifacts_root) / "metric_cache"


class _Sink:
    """Receives finished jobs in the driver: writes records, counts, advances the progress line."""

    def __init__(self, store: RecordStore, summary: SweepSummary, progress: SweepProgress, tracker=None):
        self.store, self.summary, self.progress = store, summary, progress
        self.metric_failures: dict[str, list] = {}  # metric -> [cells, first reason]
        #: odebench.bench.harness.tracking.Tracker, or None (no tracking: nothing below calls it); it sees each
        #: record after it is written and never raises
        self.tracker = tracker

    def close(self) -> None:
        """Add a note per metric that failed in some cells (the report lists each cell)."""
        for name, (n, reason) in sorted(self.metric_failures.items()):
            self.summary.notes.append(f"metric {name} failed in {n} cell(s), e.g.: {reason}")

    def training_done(self, job: TrainingJob, outcome: TrainOutcome) -> None:
        s = self.summary
        s.trained += len(outcome.trained)
        s.loaded += outcome.ok and job.key not in outcome.trained
        self.progress.training_done(job.key, outcome.ok, job.key in outcome.trained, outcome.seconds)
        if not outcome.ok:
            s.failures.append(f"training {job.label}: {outcome.reason}")
        elif outcome.reason:
            s.notes.append(outcome.reason)
        if self.tracker is not None:
            self.tracker.model(job, outcome)

    def cell_done(self, cell: Cell, record: dict[str, Any] | None) -> None:
        if record is None or not distributed.is_main():  # under torchrun, rank 0 alone writes
            self.progress.cell_done(cell.id, record)
            return
        self.store.write(record)
        if self.tracker is not None:  # after the write: the record is safe whatever a sink does
            self.tracker.cell(record)
        self.summary.status_counts[record["status"]] += 1
        for name, reason in (record.get("metric_failures") or {}).items():
            self.metric_failures.setdefault(name, [0, reason])[0] += 1
        where = f"{cell.method['name']} on {cell.target}, {cell.solver_label}@{cell.nfe or cell.tol}"
        if record["status"] == "failed" and not str(record.get("reason")).startswith("training:"):
            self.summary.failures.append(f"cell {cell.id} ({where}): {record['reason']}")
        self.progress.cell_done(cell.id, record)


def run_sweep(spec: Spec, out_root: str | Path = "results", device: str | None = None,
              progress: bool = True, executor: str = "local", address: str | None = None,
              precision: str | None = None, compile: bool | None = None, jobs: int = 1,
              given: GivenModel | None = None, tracker=None, seed_stacks: bool = True) -> SweepSummary:
    """Evaluate every unfinished cell of ``spec``; returns the summary.

    Records go to ``<out_root>/<spec.name>/cells``; trained models to ``<out_root>/.cache/models``. Each model
    is trained once (parents first) and shared by all of its cells; ``executor`` ("local" or "ray") decides
    where the jobs run, the records are always written here, one atomic file per cell as it finishes.
    ``device``, ``precision`` ("fp32" | "bf16") and ``compile`` default to the spec's; image cells also save
    a grid of their samples under ``<out_root>/<spec.name>/samples``. ``jobs`` > 1 runs the local executor's
    jobs in that many worker processes, each with this process's torch thread count (records are
    bit-identical to ``jobs=1``). ``seed_stacks``: models that differ only in their seed train together where
    that is bit-exact (odebench.bench.harness.training.seed_stack; the records are the same either way).

    ``given`` (``odebench eval``): the spec's cells all evaluate this model, as it is, instead of training
    one; its job and cells run in this process (the local executor, one job at a time).

    ``tracker`` (odebench.bench.harness.tracking.Tracker, opened by the caller, who also closes it) mirrors each
    training's curves and each record, after it is written, to TensorBoard, MLflow or W&B; its notes (a sink
    that failed) join the summary's. None: no tracking, and nothing in the run differs.
    """
    from odebench.bench.harness.execution.data_hparams import resolve_spec
    from odebench.bench.harness.execution.executors import get_executor

    spec, _ = resolve_spec(spec)  # a no-op when the caller resolved it (the CLI does, to print the values)
    check_data_shapes(spec.cells)  # a source of another shape than its target would fail every training
    runtime = Runtime(resolve_device(device or spec.device), precision or spec.precision,
                      spec.compile if compile is None else compile)
    device = runtime.device
    progress = progress and distributed.is_main()
    out_root = Path(out_root).absolute()  # every path below is built from it; a relative one would nest twice
    out_dir = sweep_dir(out_root, spec.name)  # a name that would leave out_root is refused here
    if given is not None and (executor != "local" or jobs > 1):
        raise RunRefused("a given model is evaluated in this process: use the local executor with one job")
    runner = get_executor(executor, address, jobs)  # fails early, before any work, if Ray is missing
    # rank 0 alone writes (under torchrun every rank runs this): it alone holds the folder and tidies it
    lock = acquire(out_root) if distributed.is_main() else None
    try:
        return _run_locked(spec, out_root, out_dir, runtime, progress, executor, runner, lock, jobs, given, tracker,
                           seed_stacks)
    finally:
        if lock is not None:
            lock.release()


def _tidy(out_root: Path, store: RecordStore, cells: list[Cell]) -> tuple[dict[str, Any], list[str]]:
    """Remove stale temp files, read the cells' records and move corrupt ones aside: (records, notes)."""
    notes = []
    removed = remove_stale_temps(out_root, sweeps=(store.dir.name,))
    if removed:
        notes.append(f"removed {len(removed)} temp file(s) a killed run left under {out_root}")
    existing = {}
    for c in cells:
        existing[c.id] = store.read(c.id)
        if existing[c.id] is None and (note := store.quarantine(c.id)):
            notes.append(note)
    return existing, notes


def _run_locked(spec, out_root, out_dir, runtime, progress, executor, runner, lock, jobs,
                given=None, tracker=None, seed_stacks=True) -> SweepSummary:
    device = runtime.device
    store = RecordStore(out_dir, root=out_root)
    artifacts = ArtifactStore(out_root / ".cache" / "models", out_root=out_root)
    if lock is not None:
        existing, notes = _tidy(out_root, store, spec.cells)
        notes = lock.notes + notes
    else:
        existing, notes = {c.id: store.read(c.id) for c in spec.cells}, []
    check_precision(existing, out_dir, runtime.precision)
    earlier = earlier_note(out_dir, earlier_configs(out_dir, set(existing)), [c.config() for c in spec.cells])
    if distributed.is_main():
        write_manifest(out_dir, spec.name, existing, root=out_root)  # the report shows these cells only
        if given is None:  # what ran, --set overrides applied: `odebench run --spec` on it runs it again
            write_effective_spec(out_dir, spec.raw, spec.origin, root=out_root)
    # seeds stack where it is bit-exact, and not under a wall-clock budget per training (a stack is one clock)
    stack = seed_stacks and stacks_on(runtime) and not spec.budgets.get("train_seconds") \
        and not distributed.is_distributed()
    plan = make_plan(spec.cells, lambda cell_id: is_finished(existing[cell_id]), artifacts, runtime.precision,
                     given, stack_seeds=stack, workers=jobs if executor == "local" else 1)
    if given is None:
        check_model_sizes(plan, limits_of(spec.raw))  # before any training: networks no machine could hold
    summary = SweepSummary(sweep=spec.name, out_dir=out_dir, n_cells=len(spec.cells),
                           already_done=len(plan.done), n_trainings=len(plan.trainings), executor=executor,
                           notes=notes, jobs=jobs if executor == "local" else 1,
                           threads=torch.get_num_threads())
    if earlier:
        summary.notes.append(earlier)
    ctx = JobContext(str(artifacts.root), device, progress and runner.shows_training_progress,
                     torch.get_num_threads(), runtime.precision, runtime.compile, str(out_dir / "samples"),
                     str(out_root), dict(spec.budgets))
    start = time.perf_counter()
    planned = {j.key: TrainConfig(**j.cell.train).steps for j in plan.trainings if not j.cached}
    bar = SweepProgress(spec.name, planned, len(plan.todo), set(plan.skips), enabled=progress)
    sink = _Sink(store, summary, bar, tracker)
    for cell in spec.cells:
        if cell.id in plan.skips:
            sink.cell_done(cell, skipped_record(cell, device, plan.skips[cell.id]))
    try:
        with listening(bar.steps):
            runner.run(plan, ctx, train_job if given is None else given_job(given), cell_job, sink)
        sink.close()
    finally:  # on Ctrl-C too: the line ends before the interruption is reported
        bar.close()
    if tracker is not None:
        summary.notes += tracker.notes
        tracker.notes.clear()
    summary.seconds = time.perf_counter() - start
    return summary
