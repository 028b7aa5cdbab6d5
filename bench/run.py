"""Run a sweep: group cells by trained model, train each model once, evaluate every cell, write records.

Data flows one way: spec -> cells -> (cached) training -> sampling -> metrics -> record. A failure in one
training or one cell is written as a "failed" record and the sweep goes on; budgets a solver cannot use and
samplers a method lacks become "skipped" records with the reason.
"""

from __future__ import annotations

import os
import time
import traceback
from collections import defaultdict
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch

from bench import distributed, seeding
from bench.artifacts import ArtifactStore
from bench.data import GAUSSIAN_SOURCE, Dataset, load_dataset
from bench.device import Runtime, compile_modules, resolve_device
from bench.grids import save_sample_grid
from bench.image_data import DATA_ENV
from bench.solvers import BudgetTooSmall, Unsupported, sample
from bench.spec import Cell, Spec
from bench.store import SCHEMA_VERSION, RecordStore, environment
from bench.train import Problem, TrainConfig, TrainedModel, source_sampler, train_model
from methods import get_method
from metrics import METRICS, EvalContext
from metrics.registry import split_output


@dataclass
class SweepSummary:
    """Counts and wall time of one ``run_sweep`` call."""

    sweep: str
    out_dir: Path
    n_cells: int = 0
    already_done: int = 0
    status_counts: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    trained: int = 0
    loaded: int = 0
    seconds: float = 0.0
    failures: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures


@lru_cache(maxsize=16)
def _dataset(name: str, data_seed: int, options: tuple = (), data_root: str | None = None) -> Dataset:
    return load_dataset(name, data_seed, **dict(options))  # data_root only keys the cache ($ODEBENCH_DATA)


def problem_of(cell: Cell) -> Problem:
    root = os.environ.get(DATA_ENV)
    source = None if cell.source == GAUSSIAN_SOURCE else _dataset(cell.source, cell.data_seed, (), root)
    target = _dataset(cell.target, cell.data_seed, tuple(sorted(cell.data_options.items())), root)
    return Problem(target=target, source=source, net=cell.net, data_seed=cell.data_seed)


def group_by_model(cells: list[Cell]) -> dict[str, list[Cell]]:
    groups: dict[str, list[Cell]] = defaultdict(list)
    for c in cells:
        groups[c.training_key()].append(c)
    return groups


def base_record(cell: Cell, device: str) -> dict[str, Any]:
    return {"schema_version": SCHEMA_VERSION, "cell_id": cell.id, "config": cell.config(),
            "config_hash": cell.id, "environment": environment(device), "created": time.time()}


def failed_record(cell: Cell, device: str, reason: str, stage: str) -> dict[str, Any]:
    return {**base_record(cell, device), "status": "failed", "reason": f"{stage}: {reason}", "metrics": {},
            "timings": {}}


def draw_sources(cell: Cell, method, problem: Problem) -> torch.Tensor:
    """[n_samples, *shape] source draws; sample i depends only on (seed, i), never on batching."""
    draw = source_sampler(method, problem, "cpu")
    return seeding.per_sample(lambda g: draw(1, g), cell.seed, f"x0/{cell.source}", 0, cell.eval["n_samples"])


def evaluate_cell(cell: Cell, trained: TrainedModel, device: str = "cpu", runtime: Runtime | None = None,
                  samples_dir: Path | None = None) -> dict[str, Any]:
    """Sample with the cell's solver and budget, compute its metrics, and return its record.

    ``runtime`` (overriding ``device``) adds bf16 autocast around sampling; image cells save a grid of their
    samples to ``samples_dir/<cell_id>.png`` when a folder is given.
    """
    runtime = runtime or Runtime(device)
    device = runtime.device
    method = get_method(**cell.method)
    problem = problem_of(cell)
    dyn = method.dynamics(trained.model)
    record = base_record(cell, device)
    record["model_key"] = trained.key
    record["runtime"] = runtime.record()
    metric_names = cell.eval["metrics"].get(problem.target.kind, [])
    need_traj = any(METRICS.get(m).needs_trajectory for m in metric_names)
    x0_all = draw_sources(cell, method, problem)

    start = time.perf_counter()
    xs, trajs, nfe, t_grid = [], [], 0, None
    bs = cell.eval["batch_size"]
    try:
        with torch.inference_mode(), runtime.autocast():
            for i, x0 in enumerate(x0_all.split(bs)):
                res = sample(dyn, x0.to(device), cell.solver, nfe=cell.nfe, rtol=cell.tol, atol=cell.tol,
                             gen=seeding.derive(cell.seed, cell.id, "sde", i, device=device),
                             trajectory=need_traj)
                xs.append(res.x.float().cpu())
                if need_traj:
                    trajs.append(res.trajectory.float().cpu())
                nfe = max(nfe, res.nfe)  # every chunk uses the same grid; adaptive chunks may differ
                t_grid = res.t.cpu()
    except (BudgetTooSmall, Unsupported) as exc:
        return {**record, "status": "skipped", "reason": str(exc), "metrics": {}, "nfe": None,
                "timings": {"train_seconds": trained.total_train_seconds()}}
    sample_seconds = time.perf_counter() - start
    samples = torch.cat(xs)
    timings = {"train_seconds": trained.total_train_seconds(), "sample_seconds": sample_seconds}
    if not torch.isfinite(samples).all():
        bad = int((~torch.isfinite(samples.flatten(1))).any(1).sum())
        return {**record, "status": "failed", "nfe": nfe, "metrics": {}, "timings": timings,
                "reason": f"sampling: {bad} of {len(samples)} samples are NaN/inf (the trained field or the "
                          f"solver diverged); try a smaller step or check the training loss"}

    prior = method.prior(problem.target.shape)
    ctx = EvalContext(samples=samples, reference=problem.target.test, x0=x0_all,
                      trajectory=torch.cat(trajs, 1) if trajs else None, t_grid=t_grid, dynamics=dyn,
                      log_prob_source=None if problem.source is not None else prior.log_prob,
                      data_kind=problem.target.kind, data_meta=problem.target.meta,
                      gen=seeding.derive(cell.seed, cell.id, "metrics"), options=cell.eval["metric_options"])
    values, info = {}, {}
    start = time.perf_counter()
    for name in metric_names:
        metric = METRICS.get(name)
        metric_values, settings = split_output(name, metric.fn(ctx))
        values.update(metric_values)
        info[name] = {**metric.metadata(), "options": ctx.opts(name), "settings": settings}
    timings["metric_seconds"] = time.perf_counter() - start
    if samples_dir is not None and problem.target.kind == "image":
        record["sample_grid"] = save_sample_grid(samples, Path(samples_dir) / f"{cell.id}.png")
    return {**record, "status": "ok", "reason": None, "nfe": nfe, "nfe_requested": cell.nfe,
            "metrics": values, "metric_info": info, "timings": timings}


def run_sweep(spec: Spec, out_root: str | Path = "results", device: str | None = None,
              progress: bool = True, log=print, precision: str | None = None,
              compile: bool | None = None) -> SweepSummary:
    """Evaluate every unfinished cell of ``spec`` in this process; returns the summary.

    Records go to ``<out_root>/<spec.name>/cells``; trained models to ``<out_root>/.cache/models``; sample
    grids of image cells to ``<out_root>/<spec.name>/samples``. ``device``, ``precision`` and ``compile``
    default to the spec's.
    """
    from tqdm.auto import tqdm

    runtime = Runtime(resolve_device(device or spec.device), precision or spec.precision,
                      spec.compile if compile is None else compile)
    device = runtime.device
    progress = progress and distributed.is_main()
    out_dir = Path(out_root) / spec.name
    store = RecordStore(out_dir)
    artifacts = ArtifactStore(Path(out_root) / ".cache" / "models")
    summary = SweepSummary(sweep=spec.name, out_dir=out_dir, n_cells=len(spec.cells))
    todo = [c for c in spec.cells if not store.finished(c.id)]
    summary.already_done = len(spec.cells) - len(todo)
    start = time.perf_counter()
    bar = tqdm(total=len(todo), desc=f"{spec.name} cells", disable=not progress, mininterval=0.5)
    for cells in group_by_model(todo).values():
        first = cells[0]
        try:
            trained = train_model(get_method(**first.method), problem_of(first), TrainConfig(**first.train),
                                  first.seed, artifacts, device, progress, runtime)
            summary.loaded += trained.cached
            summary.trained += not trained.cached
        except Exception as exc:  # isolate: this model's cells fail, the sweep goes on
            reason = f"{type(exc).__name__}: {exc}"
            for c in cells:
                if distributed.is_main():
                    store.write(failed_record(c, device, reason, "training"))
                summary.status_counts["failed"] += 1
            summary.failures.append(f"{first.method} on {first.target}: {reason}")
            bar.update(len(cells))
            continue
        if not distributed.is_main():
            continue  # under torchrun, rank 0 evaluates and writes; the others go on to the next training
        if runtime.compile:
            compile_modules(trained.model)
        for c in cells:
            try:
                rec = evaluate_cell(c, trained, device, runtime, out_dir / "samples")
            except Exception as exc:
                rec = failed_record(c, device, f"{type(exc).__name__}: {exc}", "evaluation")
                rec["traceback"] = traceback.format_exc(limit=5)
            store.write(rec)
            summary.status_counts[rec["status"]] += 1
            if rec["status"] == "failed":
                summary.failures.append(f"cell {c.id} ({c.method['name']}, {c.solver}): {rec['reason']}")
            bar.update(1)
    bar.close()
    summary.seconds = time.perf_counter() - start
    return summary
