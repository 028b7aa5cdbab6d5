"""One generic training loop (Adam, EMA, gradient clipping, progress bar) and the train-once cache.

``train_model`` resolves a method's parent chain (reflow round k needs round k - 1), trains what is not
cached yet, and returns the EMA weights. Every random draw comes from generators derived from the seed.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from functools import partial
from typing import Any

import torch
from torch import nn

from odebench.bench.core import budgets, seeding
from odebench.bench.core.hashing import config_hash
from odebench.bench.data import GAUSSIAN_SOURCE, Dataset
from odebench.bench.data.dequantization import uniform_dequantize
from odebench.bench.harness.process import distributed
from odebench.bench.harness.process.progress import report_steps
from odebench.bench.harness.process.runtime import Runtime, compile_modules
from odebench.bench.harness.spec.train_config import TrainConfig, train_key_fields
from odebench.bench.harness.store.artifacts import ArtifactStore, CorruptArtifact
from odebench.bench.harness.training import evidence as ev
from odebench.bench.nets import build_net
from odebench.methods.base import Method
from odebench.methods.couplings import IndependentCoupling, PairCoupling


class DivergenceError(RuntimeError):
    """The training loss became NaN or infinite."""


def diverged(label: str, value: float, steps: int, cfg) -> DivergenceError:
    """The error of a training whose mean loss over the chunk ending at ``steps`` completed steps is ``value``."""
    return DivergenceError(f"{label}: the training loss became {value} by step {steps}; lower the learning rate "
                           f"(train.lr = {cfg.lr}) or set train.grad_clip")


def ema_weight(cfg, step: int) -> float:
    """The EMA's step towards the weights after step ``step`` (0-based): ``1 - ema_decay``, with a warm-up so that
    a short run is not dominated by its random initialisation."""
    return 1 - min(cfg.ema_decay, (1 + step) / (10 + step))


def budgeted_steps(cfg: TrainConfig, forward_equivalents_per_step: float | None) -> int:
    """The steps a training runs: ``cfg.steps``, or its compute budget divided by the per-step cost."""
    if not cfg.forward_equivalents:
        return cfg.steps
    if not forward_equivalents_per_step:
        raise ValueError("train.forward_equivalents needs the per-step cost, and torch's FLOP counter saw no "
                         "FLOPs in this network's forward pass; budget this training by train.steps")
    return max(1, round(cfg.forward_equivalents / forward_equivalents_per_step))


@dataclass
class Problem:
    """What a model is trained on: the target data, an optional source dataset, and the net config."""

    target: Dataset
    source: Dataset | None
    net: dict[str, Any]
    data_seed: int = 0

    def source_name(self) -> str:
        return GAUSSIAN_SOURCE if self.source is None else self.source.name


@dataclass
class TrainedModel:
    """A trained (EMA) model with its cache key, timings and loss curve."""

    model: nn.ModuleDict
    key: str
    seconds: float
    cached: bool
    losses: list[float] = field(default_factory=list)
    parent: TrainedModel | None = None
    #: cost, held-out loss curve and convergence verdict (odebench.bench.harness.training.evidence); empty for
    #: models cached before these were recorded
    evidence: dict[str, Any] = field(default_factory=dict)
    #: the method whose dynamics sample this model when it is not the cell's registered method: the adapter of
    #: a given model (``odebench eval``); None: ``get_method(**cell.method)``
    method: Method | None = None
    #: what happened to this model's cache entry (a file that failed to load, moved aside before training again)
    notes: list[str] = field(default_factory=list)

    def total_train_seconds(self) -> float:
        return self.seconds + (self.parent.total_train_seconds() if self.parent else 0.0)

    def total_flops(self) -> int | None:
        """Training FLOPs of this model and every parent it was trained from (None if any is unknown)."""
        own = (self.evidence.get("cost") or {}).get("flops")
        if own is None:
            return None
        if self.parent is None:
            return own
        up = self.parent.total_flops()
        return None if up is None else own + up

    def evidence_record(self) -> dict[str, Any]:
        """What a cell's record says about the training of its model (cost with the parents' included)."""
        if not self.evidence:
            return {}
        cost = dict(self.evidence.get("cost", {}))
        if self.parent is not None or "total_flops" not in cost:  # else: already the record form
            cost.update(total_flops=self.total_flops(), total_seconds=self.total_train_seconds())
        return {**self.evidence, "cost": cost}


def source_sampler(method: Method, problem: Problem, device):
    """``(n, gen) -> x0`` from the source dataset if one is named, else from the method's prior."""
    if problem.source is not None:
        return lambda n, gen: problem.source.sample(n, gen, device)
    prior = method.prior(problem.target.shape)
    # draw where the generator lives (a CUDA generator draws on the GPU), then move if needed
    return lambda n, gen: prior.sample(n, gen, device=gen.device if gen is not None else None).to(device)


def model_key(method: Method, problem: Problem, cfg: TrainConfig, seed: int, parent_key: str | None,
              precision: str = "fp32") -> str:
    return config_hash({
        "method": method.training_config(), "target": problem.target.name, "source": problem.source_name(),
        "data_seed": problem.data_seed, "net": problem.net, "train": train_key_fields(asdict(cfg)), "seed": seed,
        "parent": parent_key,
        # where a training stops depends on the convergence rule: a new rule version trains anew
        **({"convergence_rule": ev.CONVERGENCE_RULE_VERSION} if cfg.until_converged else {}),
        # bf16 training gives other weights; fp32 adds nothing, so fp32 keys are what they always were
        **({"precision": precision} if precision != "fp32" else {}),
    })


def build_model(method: Method, problem: Problem) -> nn.ModuleDict:
    shape = problem.target.shape
    return method.networks(lambda out_mult=1, width=1.0, depth=1.0: build_net(problem.net, shape, out_mult, width,
                                                                              depth), shape)


@dataclass
class TrainingData:
    """What one training draws from: its coupling, a fixed held-out batch (x0, x1) for the convergence curve,
    and the FLOPs spent generating reflow pairs (0 without a parent)."""

    coupling: IndependentCoupling | PairCoupling
    heldout: tuple[torch.Tensor, torch.Tensor]
    pair_flops: int = 0


def training_data(method: Method, problem: Problem, parent: TrainedModel | None, seed: int, key: str,
                  device, dequantize: bool = False) -> TrainingData:
    """The independent coupling of source and data, or, under a parent, pairs (x0, parent flow of x0); the
    held-out batch is the data's held-out split, or fresh pairs of the parent's flow. ``dequantize``
    (``train.dequantize``): every data draw, the held-out batch included, is uniformly dequantized
    (``Dataset.sample``); a parent's pairs are the parent's samples, continuous already."""
    sample_source = source_sampler(method, problem, device)
    if parent is None or not method.trains_on_pairs():
        x1_held = problem.target.test[:ev.N_HELDOUT].to(device)
        if dequantize:
            x1_held = uniform_dequantize(x1_held, problem.target.levels_for_dequantization(),
                                         seeding.derive(seed, key, "heldout-dequantization"))
        x0_held = sample_source(len(x1_held), seeding.derive(seed, key, "heldout-sources"))
        if dequantize:
            coupling = IndependentCoupling(sample_source,
                                           lambda n, gen: problem.target.sample(n, gen, device, dequantize=True))
        else:  # the plain call, as it always was (a stand-in dataset need not know the option)
            coupling = IndependentCoupling(sample_source, lambda n, gen: problem.target.sample(n, gen, device))
        return TrainingData(coupling, (x0_held, x1_held))
    x0 = sample_source(method.n_pairs(), seeding.derive(seed, key, "pair-sources"))
    x1, pair_flops = ev.count_flops(lambda: method.make_pairs(parent.model, x0, seeding.derive(seed, key, "pairs")))
    x0_held = sample_source(ev.N_HELDOUT, seeding.derive(seed, key, "heldout-sources"))
    x1_held = method.make_pairs(parent.model, x0_held, seeding.derive(seed, key, "heldout-pairs"))
    return TrainingData(PairCoupling(x0.detach(), x1.detach()), (x0_held, x1_held), pair_flops)


def train_model(method: Method, problem: Problem, cfg: TrainConfig, seed: int, store: ArtifactStore,
                device: str = "cpu", progress: bool = False, runtime: Runtime | None = None) -> TrainedModel:
    """Train ``method`` (and its parents) on ``problem`` unless cached; return the EMA model.

    ``runtime`` (device, precision, compile) overrides ``device`` when given. Under torchrun with several
    processes the training is data parallel (odebench.bench.harness.process.distributed) and rank 0 alone saves the
    model.
    """
    runtime = runtime or Runtime(device)
    if distributed.is_distributed():
        runtime = Runtime(distributed.init(runtime.device), runtime.precision, runtime.compile)
    device = runtime.device
    parent_method = method.parent()
    parent = (train_model(parent_method, problem, cfg, seed, store, device, progress, runtime)
              if parent_method else None)
    job = prepare_training(method, problem, cfg, seed, store, runtime, parent)
    if isinstance(job, TrainedModel):
        return job
    ema, losses, curve = fit_pending(job, progress)
    return finish_training(job, ema, losses, curve, time.perf_counter() - job.start, store)


def fit_pending(job: PendingTraining, progress: bool = False) -> tuple[nn.ModuleDict, list[float],
                                                                        list[tuple[int, float]]]:
    """``fit`` for one prepared model: (EMA model, loss curve, held-out curve), the steps reported by its key."""
    curve: list[tuple[int, float]] = []
    ema, losses = fit(job.method, job.model, job.data.coupling, job.run_cfg, job.batch_generator(), progress,
                      label=f"train {job.method.name}", runtime=job.runtime, heldout=job.heldout(),
                      heldout_curve=curve, report=partial(report_steps, job.key))
    return ema, losses, curve


@dataclass
class PendingTraining:
    """A model that is not cached yet, ready for its optimisation: its key, initialised networks, training data,
    measured step cost and the configuration it runs (steps budgeted), with the wall clock started."""

    method: Method
    problem: Problem
    cfg: TrainConfig
    seed: int
    key: str
    model: nn.ModuleDict
    data: TrainingData
    cost: dict[str, Any]
    run_cfg: TrainConfig
    runtime: Runtime
    parent: TrainedModel | None
    notes: list[str]
    start: float

    def heldout(self) -> Callable[[nn.Module], float]:
        return ev.heldout_evaluator(self.method, *self.data.heldout, self.seed, self.key)

    def batch_generator(self) -> torch.Generator:
        # batches are drawn on the training device (data stays there); each rank of a distributed run has its own
        tags = ("batches", distributed.rank()) if distributed.is_distributed() else ("batches",)
        return seeding.derive(self.seed, self.key, *tags, device=self.runtime.device)


def prepare_training(method: Method, problem: Problem, cfg: TrainConfig, seed: int, store: ArtifactStore,
                     runtime: Runtime, parent: TrainedModel | None) -> TrainedModel | PendingTraining:
    """The cached model of this configuration, or everything its optimisation needs (``parent``: the trained
    parent stage, None without one). A cache entry that does not load is moved aside and trained again."""
    device = runtime.device
    key = model_key(method, problem, cfg, seed, parent.key if parent else None, runtime.precision)
    model = build_model(method, problem).to(device)
    notes = []
    if store.has(key):
        try:
            meta = store.load(key, model, device)
        except CorruptArtifact as exc:
            # whatever its hash says, a file that does not load is no model: moved aside (never deleted, rank 0
            # alone), with the reason, and trained again; a store that may not write keeps the failure
            if store.read_only:
                raise
            note = store.quarantine(key, exc) if distributed.is_main() else None
            notes += [note] if note else []  # None: another process moved it first
        else:
            model.eval()
            return TrainedModel(model, key, meta.get("train_seconds", 0.0), True, meta.get("losses", []), parent,
                                meta.get("evidence") or {})

    start = time.perf_counter()
    data = training_data(method, problem, parent, seed, key, device, cfg.dequantize)
    torch.manual_seed(seeding.seed_of(seed, key, "init"))  # network initialisation is seeded too
    model = build_model(method, problem).to(device)
    if parent is not None and method.init_from_parent():
        model.load_state_dict(parent.model.state_dict())  # fine-tune the parent (its EMA weights)
    parent_model = parent.model if parent is not None else None
    method.prepare(model, cfg.steps, parent_model)  # before the cost: a teacher the loss calls is in it
    with torch.random.fork_rng(devices=[]):  # measuring the cost must not move the RNG that dropout uses
        cost = ev.step_cost(method, model, build_net(problem.net, problem.target.shape).to(device),
                            *data.coupling.draw(cfg.batch_size, seeding.derive(seed, key, "cost-batch", device=device)),
                            seeding.derive(seed, key, "cost-loss", device=device))
    run_cfg = replace(cfg, steps=budgeted_steps(cfg, cost["forward_equivalents_per_step"]))
    if run_cfg.steps != cfg.steps:  # a compute budget: a schedule over the training spans the steps it will run
        method.prepare(model, run_cfg.steps, parent_model)
    return PendingTraining(method, problem, cfg, seed, key, model, data, cost, run_cfg, runtime, parent, notes,
                           start)


def finish_training(job: PendingTraining, ema: nn.ModuleDict, losses: list[float], curve: list[tuple[int, float]],
                    seconds: float, store: ArtifactStore) -> TrainedModel:
    """Judge, record and save a finished optimisation (rank 0 alone saves); ``seconds``: its wall time."""
    cfg, run_cfg, cost, parent = job.cfg, job.run_cfg, job.cost, job.parent
    budget = ({"by": "forward_equivalents", "forward_equivalents": cfg.forward_equivalents}
              if cfg.forward_equivalents else {"by": "steps"})
    steps = steps_taken(run_cfg, curve)
    if cfg.until_converged:  # the budget was the most steps; the record says where the training stopped
        budget.update(until_converged=True, max_steps=run_cfg.steps, stopped_converged=steps < run_cfg.steps)
        if not stops_early(job.method, cfg):
            budget["trained_whole_budget"] = ("its held-out loss is no progress measure: "
                                              + job.method.heldout_not_progress)
    evidence = {"cost": {**cost, "steps": steps, "budget": budget, "pair_flops": job.data.pair_flops,
                         "flops": cost["flops_per_step"] * steps + job.data.pair_flops, "seconds": seconds},
                "heldout": {"steps": [s for s, _ in curve], "loss": [v for _, v in curve]},
                "convergence": ev.judge_convergence(curve, job.method.heldout_not_progress)}
    if distributed.is_main():
        store.save(job.key, ema, {"method": job.method.training_config(), "target": job.problem.target.name,
                                  "source": job.problem.source_name(), "train": asdict(cfg), "seed": job.seed,
                                  "parent": parent.key if parent else None, "train_seconds": seconds,
                                  "losses": losses, "runtime": job.runtime.record(), "evidence": evidence})
    distributed.barrier()
    return TrainedModel(ema, job.key, seconds, False, losses, parent, evidence, notes=job.notes)


def stops_early(method: Method, cfg: TrainConfig) -> bool:
    """Whether a training stops at its first converged held-out evaluation: under ``train.until_converged``,
    unless the method's held-out loss is no progress measure (``Method.heldout_not_progress``), which then trains
    the whole budget (its record says why)."""
    return bool(cfg.until_converged) and not method.heldout_not_progress


def steps_taken(cfg: TrainConfig, curve: list[tuple[int, float]]) -> int:
    """The steps a finished ``fit`` took: ``cfg.steps``, or, training until converged, the step of its last
    held-out evaluation (where it stopped)."""
    return curve[-1][0] if cfg.until_converged and curve else cfg.steps


def make_train_step(method: Method, model: nn.ModuleDict, ema: nn.ModuleDict, coupling, cfg: TrainConfig,
                    gen: torch.Generator, runtime: Runtime):
    """One optimisation step of ``fit`` as a function ``step(i) -> loss`` (a device tensor, not read back).

    Draws a batch from ``coupling``, evaluates the method's loss (under bf16 autocast if asked),
    back-propagates, clips the gradient norm, takes an Adam step and updates the EMA with a warm-up, so that a
    short run is not dominated by its random initialisation. ``scripts/gpu_throughput.py`` times this
    function.
    """
    net = compile_modules(model) if runtime.compile else model  # same parameters, compiled forward
    if distributed.is_distributed():
        net = distributed.wrap(net)
    batch = distributed.local_batch(cfg.batch_size)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    ema_params, params = list(ema.parameters()), list(model.parameters())

    def step(i: int) -> torch.Tensor:
        x0, x1 = coupling.draw(batch, gen)
        with runtime.autocast():
            loss = method.loss(net, x0, x1, gen)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip > 0:
            nn.utils.clip_grad_norm_(params, cfg.grad_clip)
        opt.step()
        with torch.no_grad():
            torch._foreach_lerp_(ema_params, params, ema_weight(cfg, i))
        return loss.detach()

    return step


def loss_chunk(steps: int) -> int:
    """Steps per point of ``fit``'s loss curve: each point is the mean loss over this many steps."""
    return max(1, min(steps // 100, 50))


def loss_steps(steps: int, n: int, max_steps: int | None = None) -> list[int]:
    """The completed-step count at which each of the ``n`` points of a loss curve of ``steps`` steps ends;
    ``max_steps``: the budget of a training until converged that stopped at ``steps`` (its chunks are the
    budget's)."""
    chunk = loss_chunk(max_steps or steps)
    return [min((i + 1) * chunk, steps) for i in range(n)]


def fit(method: Method, model: nn.ModuleDict, coupling, cfg: TrainConfig, gen: torch.Generator,
        progress: bool = False, label: str = "train", runtime: Runtime | None = None,
        heldout: Callable[[nn.Module], float] | None = None,
        heldout_curve: list[tuple[int, float]] | None = None,
        report: Callable[[int, int], None] | None = None) -> tuple[nn.ModuleDict, list[float]]:
    """Adam + EMA + gradient clipping for ``cfg.steps`` steps; returns (EMA model in eval mode, loss curve).

    With ``cfg.until_converged`` the training stops after the first held-out evaluation at which
    ``evidence.settled`` calls the curve so far converged (``heldout`` is then required); the loss of the
    chunk it stops in is recorded as a last, shorter chunk, as at the end of a full budget. Nothing else
    depends on where it stops, so the model is the one a full training has at that step.

    The loss curve holds the mean loss over each chunk of ``min(steps // 100, 50)`` steps. The loss is read
    back to the host once per chunk (not per step), and a non-finite chunk raises DivergenceError.
    ``runtime`` adds bf16 autocast around the loss and torch.compile of the networks; under torchrun the
    networks train behind DistributedDataParallel on this rank's share of the batch. ``heldout(ema)``, if
    given, is evaluated on the EMA weights at ``evidence.eval_steps(cfg.steps)`` and appended to
    ``heldout_curve`` as (completed steps, loss); it draws from its own generator, so training is unchanged.
    ``report(done, total)``, if given, is called at every loss read-back with the completed steps (the sweep's
    progress line counts them: odebench.bench.harness.process.progress).
    """
    from tqdm.auto import tqdm

    runtime = runtime or Runtime(str(next(model.parameters()).device))
    ema = copy.deepcopy(model).requires_grad_(False)
    train_step = make_train_step(method, model, ema, coupling, cfg, gen, runtime)
    chunk = loss_chunk(cfg.steps)
    losses: list[float] = []
    running = torch.zeros((), device=next(model.parameters()).device)
    checkpoints = set(ev.eval_steps(cfg.steps)) if heldout is not None else set()
    if cfg.until_converged and heldout is None:
        raise ValueError("train.until_converged needs the held-out evaluation (fit's heldout) to judge convergence")
    if 0 in checkpoints:
        heldout_curve.append((0, heldout(ema)))
    model.train()
    bar = tqdm(range(cfg.steps), desc=label, disable=not progress, leave=False, mininterval=0.5)
    for step in bar:
        budgets.check_deadline()  # a wall-clock budget in force (train_seconds) stops the training here
        running += train_step(step)
        if (step + 1) % chunk == 0 or step + 1 == cfg.steps:
            value = running.item() / ((step % chunk) + 1)
            running.zero_()
            if not math.isfinite(value):
                raise diverged(label, value, step + 1, cfg)
            losses.append(value)
            bar.set_postfix(loss=f"{value:.4f}", refresh=False)
            if report is not None:
                report(step + 1, cfg.steps)
        if step + 1 in checkpoints:
            heldout_curve.append((step + 1, heldout(ema)))
            if stops_early(method, cfg) and step + 1 < cfg.steps and ev.settled(heldout_curve):
                if (step + 1) % chunk:  # the chunk it stops in, as the last chunk of a full budget
                    value = running.item() / ((step % chunk) + 1)
                    if not math.isfinite(value):
                        raise diverged(label, value, step + 1, cfg)
                    losses.append(value)
                if report is not None:
                    report(cfg.steps, cfg.steps)  # done: the progress line counts the budget as spent
                break
    with torch.no_grad():
        for b_ema, b in zip(ema.buffers(), model.buffers(), strict=True):  # buffers are not averaged, just copied
            b_ema.copy_(b)
    return ema.eval(), losses
