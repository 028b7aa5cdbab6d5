"""Sweep specs (TOML) -> a validated list of cells.

A spec names methods (with hparams; a list value expands into a grid), datasets (target and source),
solvers with NFE budgets (fixed step) or tolerances (adaptive), seeds, metrics and the training budget.
``load_spec`` reports every problem at once, each with its key path and the allowed values.
"""

from __future__ import annotations

import inspect
import itertools
import sys
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from bench.artifacts import config_hash
from bench.data import DATASETS, GAUSSIAN_SOURCE
from bench.solvers import SOLVERS
from bench.train import TrainConfig

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

TOP_KEYS = {"name", "description", "seeds", "device", "data_seed", "train", "net", "eval", "methods",
            "datasets", "solvers", "precision", "compile"}
DATASET_KEYS = {"target", "source", "options"}
EVAL_KEYS = {"n_samples", "metrics", "metric_options", "batch_size"}
DEFAULT_METRICS = {"points": ["w2", "sliced_w", "mmd"], "image": ["fd", "sliced_w"]}


class SpecError(ValueError):
    """A spec with one or more problems; ``problems`` lists each as 'key.path: message'."""

    def __init__(self, source: str, problems: list[str]):
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"invalid sweep spec {source} ({len(problems)} problem(s)):\n{lines}")


@dataclass(frozen=True)
class Cell:
    """One evaluated point of a sweep: a trained model x solver x budget.

    ``method`` is the resolved method config (name + hparams); ``nfe`` is the requested budget of fixed-step
    solvers, ``tol`` the rtol = atol of adaptive ones.
    """

    sweep: str
    method: dict[str, Any]
    target: str
    source: str
    solver: str
    nfe: int | None
    tol: float | None
    seed: int
    data_seed: int
    train: dict[str, Any]
    net: dict[str, Any]
    eval: dict[str, Any]
    #: keyword options of the target's loader (e.g. imagefolder's resolution); empty for most datasets
    data_options: dict[str, Any] = field(default_factory=dict)

    def config(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def id(self) -> str:
        cfg = self.config()
        cfg.pop("sweep")  # the same cell in two sweeps has the same result
        if not cfg["data_options"]:
            cfg.pop("data_options")  # cells without options keep the ids they always had
        return config_hash(cfg)

    def training_key(self) -> str:
        """Cells sharing this key share one trained model."""
        return config_hash([self.method, self.target, self.source, self.seed, self.data_seed, self.train,
                            self.net] + ([self.data_options] if self.data_options else []))


@dataclass
class Spec:
    name: str
    description: str
    cells: list[Cell]
    device: str = "cpu"
    raw: dict[str, Any] = field(default_factory=dict)
    precision: str = "fp32"
    compile: bool = False


def builtin_spec_names() -> list[str]:
    return sorted(p.name[:-5] for p in resources.files("bench.specs").iterdir() if p.name.endswith(".toml"))


def read_spec_text(name_or_path: str) -> tuple[str, str]:
    """(text, where) for a built-in spec name or a path to a TOML file."""
    path = Path(name_or_path)
    if path.suffix == ".toml" or path.exists():
        if not path.exists():
            raise FileNotFoundError(f"spec file {path} does not exist")
        return path.read_text(), str(path)
    names = builtin_spec_names()
    if name_or_path not in names:
        raise SpecError(repr(name_or_path), [f"spec: no built-in spec {name_or_path!r} and no such file; "
                                             f"built-in specs: {', '.join(names)}"])
    return resources.files("bench.specs").joinpath(f"{name_or_path}.toml").read_text(), f"built-in {name_or_path!r}"


def load_spec(name_or_path: str, overrides: dict[str, Any] | None = None) -> Spec:
    """Parse and validate a spec (built-in name or TOML path); ``overrides`` replace top-level keys."""
    text, where = read_spec_text(name_or_path)
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(where, [f"TOML syntax: {exc}"]) from exc
    raw.update(overrides or {})
    return parse_spec(raw, where)


def _as_list(v: Any) -> list[Any]:
    return list(v) if isinstance(v, list) else [v]


def _method_grid(entry: dict[str, Any], where: str, problems: list[str]) -> list[dict[str, Any]]:
    """Expand one [[methods]] table into resolved method configs (validating name and hparams)."""
    from methods import METHODS, get_method

    name = entry.get("name")
    if name not in METHODS:
        problems.append(f"{where}.name: unknown method {name!r}; known: {', '.join(METHODS.names())}")
        return []
    cls = METHODS.get(name)
    accepted = [p for p in inspect.signature(cls.__init__).parameters if p not in ("self", "args", "kwargs")]
    hp = {k: v for k, v in entry.items() if k != "name"}
    bad = [k for k in hp if k not in accepted]
    for k in bad:
        problems.append(f"{where}.{k}: method {name!r} has no hparam {k!r}; accepted: {', '.join(accepted)}")
    if bad:
        return []
    keys = list(hp)
    out = []
    for combo in itertools.product(*(_as_list(hp[k]) for k in keys)):
        try:
            out.append(get_method(name, **dict(zip(keys, combo, strict=True))).config())
        except (ValueError, TypeError) as exc:
            problems.append(f"{where}: {exc}")
    return out


def parse_spec(raw: dict[str, Any], where: str = "spec") -> Spec:  # noqa: C901  (one flat checklist)
    """Validate a parsed spec dict and expand it into cells; raises SpecError listing every problem."""
    from methods import METHODS
    from metrics import METRICS

    problems: list[str] = []
    for k in sorted(set(raw) - TOP_KEYS):
        problems.append(f"{k}: unknown key; allowed top-level keys: {', '.join(sorted(TOP_KEYS))}")
    name = raw.get("name")
    if not isinstance(name, str) or not name:
        problems.append("name: required, a non-empty string (the results folder is named after it)")
        name = "unnamed"
    seeds = raw.get("seeds", [0])
    if not isinstance(seeds, list) or not seeds or not all(isinstance(s, int) for s in seeds):
        problems.append(f"seeds: must be a non-empty list of integers, got {seeds!r}")
        seeds = [0]
    data_seed = raw.get("data_seed", 0)

    train_raw = raw.get("train", {})
    train_fields = set(TrainConfig.__dataclass_fields__)
    for k in sorted(set(train_raw) - train_fields):
        problems.append(f"train.{k}: unknown key; allowed: {', '.join(sorted(train_fields))}")
    train = asdict(TrainConfig(**{k: v for k, v in train_raw.items() if k in train_fields}))
    net = dict(raw.get("net", {"name": "mlp"}))

    eval_raw = dict(raw.get("eval", {}))
    for k in sorted(set(eval_raw) - EVAL_KEYS):
        problems.append(f"eval.{k}: unknown key; allowed: {', '.join(sorted(EVAL_KEYS))}")
    metrics_cfg = eval_raw.get("metrics", DEFAULT_METRICS)
    if isinstance(metrics_cfg, list):
        metrics_cfg = {"points": metrics_cfg, "image": metrics_cfg}
    for kind, names in metrics_cfg.items():
        for m in names:
            if m not in METRICS:
                problems.append(f"eval.metrics.{kind}: unknown metric {m!r}; known: {', '.join(METRICS.names())}")
    eval_cfg = {"n_samples": int(eval_raw.get("n_samples", 2000)), "metrics": metrics_cfg,
                "metric_options": eval_raw.get("metric_options", {}),
                "batch_size": int(eval_raw.get("batch_size", 10000))}

    methods: list[dict[str, Any]] = []
    for i, entry in enumerate(raw.get("methods", [])):
        methods += _method_grid(entry, f"methods[{i}]", problems)
    if not raw.get("methods"):
        problems.append("methods: at least one [[methods]] table is required")

    datasets: list[tuple[str, str, dict[str, Any]]] = []
    for i, entry in enumerate(raw.get("datasets", [])):
        target, source = entry.get("target"), entry.get("source", GAUSSIAN_SOURCE)
        options = _dataset_options(entry, target, f"datasets[{i}]", problems)
        if target not in DATASETS:
            problems.append(f"datasets[{i}].target: unknown dataset {target!r}; known: {', '.join(DATASETS.names())}")
        if source != GAUSSIAN_SOURCE and source not in DATASETS:
            problems.append(f"datasets[{i}].source: unknown dataset {source!r}; known: {GAUSSIAN_SOURCE}, "
                            f"{', '.join(DATASETS.names())}")
        datasets.append((target, source, options))
    if not raw.get("datasets"):
        problems.append("datasets: at least one [[datasets]] table is required")

    solver_cells: list[tuple[str, int | None, float | None]] = []
    for i, entry in enumerate(raw.get("solvers", [])):
        sname = entry.get("name")
        if sname not in SOLVERS:
            problems.append(f"solvers[{i}].name: unknown solver {sname!r}; known: {', '.join(SOLVERS.names())}")
            continue
        if SOLVERS.get(sname).adaptive:
            tols = entry.get("tolerances")
            if not isinstance(tols, list) or not tols or not all(isinstance(t, float) and t > 0 for t in tols):
                problems.append(f"solvers[{i}].tolerances: adaptive solver {sname!r} needs a list of positive "
                                f"floats (rtol = atol), got {tols!r}")
                continue
            solver_cells += [(sname, None, t) for t in tols]
        else:
            nfes = entry.get("nfe")
            if not isinstance(nfes, list) or not nfes or not all(isinstance(n, int) and n > 0 for n in nfes):
                problems.append(f"solvers[{i}].nfe: solver {sname!r} needs a list of positive integer NFE "
                                f"budgets, got {nfes!r}")
                continue
            solver_cells += [(sname, n, None) for n in nfes]
    if not raw.get("solvers"):
        problems.append("solvers: at least one [[solvers]] table is required")

    for k in ("precision", "compile"):
        problems += _runtime_problem(k, raw)
    for m in methods:
        cls = METHODS.get(m["name"])
        for target, source, _ in datasets:
            if source != GAUSSIAN_SOURCE and cls.needs_gaussian_source:
                problems.append(f"datasets: method {m['name']!r} needs a Gaussian source but the spec pairs "
                                f"it with source {source!r} (target {target!r}); use a method that allows "
                                f"arbitrary sources (rf, interpolant) or source = \"gaussian\"")
    if problems:
        raise SpecError(where, problems)

    cells = [Cell(sweep=name, method=m, target=t, source=s, solver=sv, nfe=n, tol=tol, seed=seed,
                  data_seed=data_seed, train=train, net=net, eval=eval_cfg, data_options=opts)
             for m, (t, s, opts), (sv, n, tol), seed
             in itertools.product(methods, datasets, solver_cells, seeds)]
    return Spec(name=name, description=raw.get("description", ""), cells=cells,
                device=raw.get("device", "cpu"), raw=raw, precision=raw.get("precision", "fp32"),
                compile=bool(raw.get("compile", False)))


def _dataset_options(entry: dict[str, Any], target: Any, where: str, problems: list[str]) -> dict[str, Any]:
    """Validate a [[datasets]] table's keys and its ``options`` against the target loader's signature."""
    for k in sorted(set(entry) - DATASET_KEYS):
        problems.append(f"{where}.{k}: unknown key; allowed: {', '.join(sorted(DATASET_KEYS))}")
    options = entry.get("options", {})
    if not isinstance(options, dict):
        problems.append(f"{where}.options: must be a table of loader options, got {options!r}")
        return {}
    if options and target in DATASETS:
        accepted = [p for p in inspect.signature(DATASETS.get(target)).parameters if p != "data_seed"]
        for k in sorted(set(options) - set(accepted)):
            problems.append(f"{where}.options.{k}: dataset {target!r} has no option {k!r}; accepted: "
                            f"{', '.join(accepted) or 'none'}")
    return dict(options)


def _runtime_problem(key: str, raw: dict[str, Any]) -> list[str]:
    from bench.device import PRECISIONS

    if key == "precision" and raw.get(key, "fp32") not in PRECISIONS:
        return [f"precision: must be one of {', '.join(PRECISIONS)}, got {raw[key]!r}"]
    if key == "compile" and not isinstance(raw.get(key, False), bool):
        return [f"compile: must be true or false, got {raw[key]!r}"]
    return []
