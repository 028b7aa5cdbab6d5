"""The two units of work of a sweep, shared by every executor: train one model, evaluate one cell.

A sweep becomes a :class:`Plan`: the cells still to evaluate, the cells whose skip is known before any
training (a budget below a solver's minimum, an SDE solver on an ODE-only method), and the trainings those
cells need -- one per distinct model key, parents (reflow rounds) included and listed before their
children. The jobs themselves (``odebench.bench.harness.execution.run.train_job`` and
``odebench.bench.harness.execution.run.cell_job``) take only the picklable objects defined here, so the in-process
executor calls them directly and the Ray executor ships them as tasks.

A cached model whose file is no regular file of a possible size, no longer matches its recorded SHA-256, or does
not load whatever its hash says is a cache miss: ``quarantine_corrupt`` (and ``train_model``, for a file that fails
to load) moves the files aside (``<weights file>.corrupt``, kept for inspection) and the model is trained again;
the plan lists it as "to train" with the reason. Only a file corrupted between its training and an evaluation
fails that cell, with the message of CorruptArtifact (the next run moves it aside and trains it again).
"""

from __future__ import annotations

import os
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from functools import lru_cache

import torch
from torch import Tensor

from odebench.bench.core.fields import GAUSSIAN_SOURCE_ONLY
from odebench.bench.core.solvers import SOLVERS, BudgetTooSmall
from odebench.bench.core.time_grids import grid_unmet
from odebench.bench.data import GAUSSIAN_SOURCE, Dataset, load_dataset
from odebench.bench.data.images import DATA_ENV
from odebench.bench.harness.process.runtime import Runtime
from odebench.bench.harness.spec.sweep import Cell
from odebench.bench.harness.store.artifacts import ArtifactStore
from odebench.bench.harness.training.train import Problem, TrainConfig, build_model, model_key
from odebench.methods import Method, get_method


@dataclass(frozen=True)
class JobContext:
    """Where jobs read and write models, and how they run (all picklable)."""

    artifacts_root: str
    device: str = "cpu"
    progress: bool = False
    threads: int | None = None  # torch intra-op threads; fixed on CPU so results match bit for bit
    precision: str = "fp32"
    compile: bool = False
    samples_dir: str | None = None  # where image cells save their sample grids
    out_root: str | None = None  # the folder every write stays in (--out); None: artifacts_root
    budgets: dict | None = None  # max_nfe, train_seconds, cell_seconds (Spec.budgets); None: no caps

    @property
    def write_root(self) -> str:
        return self.out_root or self.artifacts_root

    @property
    def runtime(self) -> Runtime:
        return Runtime(self.device, self.precision, self.compile)

    def enter(self) -> None:
        """Apply the context in the process that runs a job (a Ray worker starts with one thread)."""
        if self.threads and self.device == "cpu" and torch.get_num_threads() != self.threads:
            torch.set_num_threads(self.threads)


@dataclass(frozen=True)
class TrainingJob:
    """Train the model ``depth`` parent steps above ``cell``'s method (depth 0: the cell's own model).

    ``parent`` is the key of the job whose outcome this one waits for: its parent stage (a reflow round's
    previous round), or, for a member of a seed stack, the stack's leader. A leader (``stack`` not empty) trains
    its own model and the stack's other members together (odebench.bench.harness.training.seed_stack); a member
    (``led_by`` set) then reads its outcome from the leader's.
    """

    key: str
    cell: Cell
    depth: int
    parent: str | None
    label: str
    cached: bool = False
    #: why a cache entry of this key is not used (e.g. its weights file is a FIFO), for the dry run; the run
    #: moves it aside before training
    cache_note: str | None = None
    #: the other members of the seed stack this job leads (their own jobs, as planned before stacking)
    stack: tuple[TrainingJob, ...] = ()
    #: the key of the leader that trains this model in its seed stack (None: trained by this job)
    led_by: str | None = None


@dataclass
class TrainOutcome:
    """What a training job reports back: its model key, success, and which models it actually trained."""

    key: str
    ok: bool
    reason: str | None = None
    trained: list[str] = field(default_factory=list)
    seconds: float = 0.0
    total_train_seconds: float = 0.0
    traceback: str | None = None
    #: the model's training evidence as its cells record it (TrainedModel.evidence_record)
    evidence: dict = field(default_factory=dict)
    #: its training-loss curve (train.fit: one mean per chunk of steps), for the tracking sinks
    losses: list = field(default_factory=list)
    #: a seed stack's leader: the outcomes of the stack's other members, by key (each member's job reads its own)
    members: dict[str, TrainOutcome] = field(default_factory=dict)

    def of(self, key: str) -> TrainOutcome | None:
        """The outcome of model ``key``: this one, or a member's of the stack this job led (None: neither)."""
        return self if key == self.key else self.members.get(key)


@dataclass
class Plan:
    """The work of a sweep: cells to evaluate, skips known in advance, trainings (parents first)."""

    done: list[Cell]
    skips: dict[str, str]  # cell id -> reason, for cells skipped without training
    todo: list[Cell]
    trainings: list[TrainingJob]
    cell_model: dict[str, str]  # cell id -> key of the model it evaluates
    by_model: dict[str, list[Cell]] = field(init=False)

    def __post_init__(self):
        self.by_model = {}
        for c in self.todo:
            self.by_model.setdefault(self.cell_model[c.id], []).append(c)

    def cells_of(self, key: str) -> list[Cell]:
        """The cells evaluated on model ``key`` (none for a parent only its children use)."""
        return self.by_model.get(key, [])


# ------------------------------------------------------------------------------------------------ planning
@lru_cache(maxsize=16)
def _dataset(name: str, data_seed: int, options: tuple = (), data_root: str | None = None) -> Dataset:
    return load_dataset(name, data_seed, **dict(options))  # data_root only keys the cache ($ODEBENCH_DATA)


def training_split(target: str, data_seed: int, options: tuple = ()) -> Tensor:
    """[N, *shape] training split of a dataset, loaded once per process (``options``: sorted (key, value) pairs)."""
    return _dataset(target, data_seed, options, os.environ.get(DATA_ENV)).train


def problem_of(cell: Cell) -> Problem:
    root = os.environ.get(DATA_ENV)
    source = None if cell.source == GAUSSIAN_SOURCE else _dataset(cell.source, cell.data_seed, (), root)
    target = _dataset(cell.target, cell.data_seed, tuple(sorted(cell.data_options.items())), root)
    return Problem(target=target, source=source, net=cell.net, data_seed=cell.data_seed)


def method_at(cell: Cell, depth: int) -> Method:
    """The cell's method, or its parent ``depth`` stages up."""
    method = get_method(**cell.method)
    for _ in range(depth):
        method = method.parent()
    return method


def model_chain(cell: Cell, precision: str = "fp32") -> list[tuple[int, str, Method]]:
    """[(depth, model key, method)] from the root stage (largest depth) to the cell's own model."""
    stages = [get_method(**cell.method)]
    while (parent := stages[-1].parent()) is not None:
        stages.append(parent)
    problem, cfg = problem_of(cell), TrainConfig(**cell.train)
    chain, parent_key = [], None
    for depth in range(len(stages) - 1, -1, -1):
        parent_key = model_key(stages[depth], problem, cfg, cell.seed, parent_key, precision)
        chain.append((depth, parent_key, stages[depth]))
    return chain


def skip_reason(cell: Cell, method: Method | None = None) -> str | None:
    """The reason a cell will be skipped, if it is known without a trained model (``method``: the cell's
    registered method by default, or a given model's adapter)."""
    solver = SOLVERS.get(cell.solver)
    if not solver.adaptive:
        try:
            solver.steps_for(cell.nfe)
        except BudgetTooSmall as exc:
            return str(exc)
    if method is None:
        method = get_method(**cell.method)
    offered, who = method.offers(), f"method {cell.method['name']!r}"  # declared: no network is built
    if cell.method.get("coupling", "independent") != "independent":  # a given model trained on re-paired draws
        who = (f"{who} (coupling {cell.method['coupling']!r}: its training paired x0 with x1, so x_t given x1 is "
               f"not the path's Gaussian)")
    if cell.source != GAUSSIAN_SOURCE and offered & GAUSSIAN_SOURCE_ONLY:
        offered, who = offered - GAUSSIAN_SOURCE_ONLY, f"{who} from source {cell.source!r} (not N(0, I))"
    reason = solver.unmet(offered, who)
    if reason is None and not solver.adaptive:
        reason = grid_unmet(cell.grid, offered, who)
    return reason or method.refuses(cell.solver, None if solver.adaptive else cell.nfe)


@dataclass(frozen=True)
class GivenModel:
    """A model evaluated as it is (``odebench eval``): no training; one "training" job loads it.

    ``key`` is its identity (odebench.bench.harness.execution.given: the weights' SHA-256 with the factory and the
    adapter's settings), which every cell of it records as ``model_key``; ``method`` is its adapter, whose
    ``dynamics(model)`` sample it; ``model`` the networks (``nn.ModuleDict``); ``label`` names it in messages.
    """

    key: str
    method: Method
    model: torch.nn.Module
    label: str


def make_plan(cells: list[Cell], finished, artifacts: ArtifactStore | None, precision: str = "fp32",
              given: GivenModel | None = None, stack_seeds: bool = False, workers: int = 1) -> Plan:
    """Split ``cells`` into done / skipped / to evaluate, and list the trainings the latter need (with
    ``given``, the one job that loads the given model instead). ``stack_seeds``: models to train that differ
    only in their seed (and data seed) train together as seed stacks (:func:`stack_seeds_of`, which cuts them
    so that ``workers`` processes have a training each where there are too few to go round)."""
    done, skips, todo, cell_model = [], {}, [], {}
    jobs: OrderedDict[str, TrainingJob] = OrderedDict()
    for c in cells:
        if finished(c.id):
            done.append(c)
            continue
        reason = skip_reason(c, given.method if given is not None else None)
        if reason is not None:
            skips[c.id] = reason
            continue
        todo.append(c)
        parent = None
        chain = [(0, given.key, given.method)] if given is not None else model_chain(c, precision)
        for depth, key, method in chain:
            if key not in jobs:
                name = given.label if given is not None else method_label_of(method)
                cached = given is not None or artifacts.has(key)
                note = None if cached else artifacts.cache_problem(key)
                jobs[key] = TrainingJob(key, c, depth, parent, f"{name} on {dataset_label(c)} seed {c.seed}", cached,
                                        note)
            parent = key
        cell_model[c.id] = parent
    # parents come first: a job is inserted only after its whole chain above it
    trainings = (stack_seeds_of(list(jobs.values()), workers) if stack_seeds and given is None
                 else list(jobs.values()))
    return Plan(done=done, skips=skips, todo=todo, trainings=trainings, cell_model=cell_model)


#: training FLOPs per member and step above which a seed stack gains too little to give up the pool's
#: parallelism: the batched products are compute-bound there, and a stack runs on one core. Measured on one
#: thread (docs/performance.md; fm_ot, MLP depth 3, the time of M members stacked over one alone): 2-D hidden 64,
#: batch 256 (0.03 GFLOP a step): 2.4 for 5; hidden 128 (0.06): 2.9 for 5; 64-D hidden 128 (0.08): 3.4 for 5;
#: 64-D hidden 256 at batch 128 (0.13): 2.75 for 3; at batch 256 (0.26): 4.5 to 5.3 for 5; 2-D hidden 256 (0.22):
#: 5.8 for 5
STACK_MAX_FLOPS = 1.0e8


def stack_key(job: TrainingJob) -> str | None:
    """What a model shares with the others of its seed stack: everything its training depends on but the seed
    and the data seed (None: it does not stack; only the MLP has a stacked form, odebench.bench.nets.stacked, and
    only a small one gains: :data:`STACK_MAX_FLOPS`)."""
    cell = job.cell
    if job.cached or cell.net.get("name", "mlp") != "mlp":
        return None
    stage = method_at(cell, job.depth)
    key = repr((stage.training_config(), job.depth, cell.target, cell.source, sorted(cell.data_options.items()),
                sorted(cell.net.items()), sorted(cell.train.items())))
    return key if step_flops(key, stage, cell) <= STACK_MAX_FLOPS else None


_STEP_FLOPS: dict[str, float] = {}


def step_flops(key: str, stage: Method, cell: Cell) -> float:
    """Training FLOPs of one step of one model: its linear layers, forward and backward, at the batch size (an
    estimate from the networks' shapes, built on the meta device; once per stack key ``key``; infinite for a
    network that cannot be built)."""
    if key not in _STEP_FLOPS:
        try:
            with torch.device("meta"):  # shapes only: a network too large to hold allocates nothing here
                model = build_model(stage, problem_of(cell))
        except Exception:  # a configuration the network refuses: its training reports the reason, alone
            return float("inf")
        macs = sum(m.in_features * m.out_features for m in model.modules() if isinstance(m, torch.nn.Linear))
        _STEP_FLOPS[key] = 6.0 * macs * TrainConfig(**cell.train).batch_size  # 2 FLOPs a multiply-add; bwd = 2 fwd
    return _STEP_FLOPS[key]


def stack_seeds_of(jobs: list[TrainingJob], workers: int = 1) -> list[TrainingJob]:
    """The jobs with every group of two or more models of one :func:`stack_key` made a seed stack.

    The leader is the member whose parent job leads the parent stage's stack (so that it waits for all of the
    members' parents), else the first; the others wait for it. Returned parents first, leaders before members.

    ``workers``: the processes the trainings run in. When fewer trainings could start at once than there are
    workers (one configuration's seeds, say), every group is cut into that many stacks (:func:`stack_parts`), so
    that no worker idles while one stack trains: five seeds on two workers train as stacks of 3 and 2.
    """
    groups: dict[str, list[TrainingJob]] = {}
    for job in jobs:
        if (k := stack_key(job)) is not None:
            groups.setdefault(k, []).append(job)
    by_key = {job.key: job for job in jobs}
    parts = stack_parts(list(groups.values()), jobs, by_key, workers)
    # consecutive runs of the seed order: a later stage's cut falls where its parents' did (same seeds, same order)
    chunks = [members[i * len(members) // cut:(i + 1) * len(members) // cut]
              for members in groups.values() for cut in [min(parts, len(members))] for i in range(cut)]
    for members in chunks:  # parents' stacks first: jobs are in parent-first order
        if len(members) < 2:
            continue
        parent_leaders = [m for m in members if m.parent is not None and by_key[m.parent].stack]
        leader = parent_leaders[0] if parent_leaders else members[0]

        others = tuple(m for m in members if m is not leader and _covered(m, leader, by_key))
        if not others:
            continue
        by_key[leader.key] = replace(leader, stack=others)
        for m in others:
            by_key[m.key] = replace(m, parent=leader.key, led_by=leader.key)
    ordered, placed = [], set()

    def place(job: TrainingJob) -> None:
        if job.key in placed:
            return
        if job.parent is not None and job.parent in by_key:
            place(by_key[job.parent])
        placed.add(job.key)
        ordered.append(job)

    for job in jobs:
        place(by_key[job.key])
    return ordered


def stack_parts(groups: list[list[TrainingJob]], jobs: list[TrainingJob], by_key: dict[str, TrainingJob],
                workers: int) -> int:
    """Into how many stacks each group of one stack key is cut: 1 when at least ``workers`` trainings can start
    at once (stacks of whole groups use the least arithmetic), else ``workers`` // those trainings.

    A training can start at once when its parent is none or cached: each group holding such a job counts one,
    and so does each such job that stacks with no other. A stack of M costs about 0.4 + 0.5 M single trainings
    of the toy MLP on one core (measured 1.45 and 1.86 for M = 2 and 3, 2.9 to 3.3 for 5), so cutting five
    into 3 + 2 on two workers ends the training at about 1.9 instead of 2.9, for about 0.4 of a training more in
    all.
    """
    if workers <= 1:
        return 1

    def ready(job: TrainingJob) -> bool:
        return not job.cached and (job.parent is None or by_key[job.parent].cached)

    grouped = {job.key for members in groups if len(members) > 1 for job in members}
    starting = sum(any(ready(j) for j in members) for members in groups if len(members) > 1) \
        + sum(ready(j) for j in jobs if j.key not in grouped)
    return max(1, workers // max(starting, 1))


def _covered(member: TrainingJob, leader: TrainingJob, by_key: dict[str, TrainingJob]) -> bool:
    """Whether ``member``'s parent is done once ``leader``'s parent job is (it is cached, or in that stack)."""
    if member.parent is None:
        return True
    up = by_key[member.parent]
    return up.cached or up.key == leader.parent or (up.led_by is not None and up.led_by == leader.parent)


def method_label_of(method: Method) -> str:
    from odebench.bench.harness.store.records import method_label

    return method_label(method.config())


def dataset_label(cell: Cell) -> str:
    return cell.target if cell.source == GAUSSIAN_SOURCE else f"{cell.source}->{cell.target}"


def quarantine_corrupt(store: ArtifactStore, key: str) -> str | None:
    """If cached model ``key`` fails its hash check, move its files aside and say so (None: it is fine)."""
    return store.quarantine(key)
