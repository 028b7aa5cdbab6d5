"""Sweep specs (TOML) -> a validated list of cells.

A spec names methods (with hparams; a list value expands into one method per value), datasets (target and source),
solvers with NFE budgets (fixed step) or tolerances (adaptive), seeds, metrics and the training budget.
``load_spec`` reports every problem at once, each with its key path and the allowed values. Validation is
total: whatever a TOML file holds (any nesting, any number, any string) ends in a Spec or a SpecError, never
in another exception; the types, ranges and policy bounds live in odebench.bench.harness.spec.limits, and the
bounds on the file and its text before parsing in odebench.bench.harness.spec.text.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import asdict, dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any

from odebench.bench.core.hashing import config_hash
from odebench.bench.core.solvers import GRIDS, SOLVERS
from odebench.bench.data import DATASETS, GAUSSIAN_SOURCE, dataset_kind
from odebench.bench.harness.guards.safe_paths import name_problem
from odebench.bench.harness.guards.suggest import did_you_mean
from odebench.bench.harness.spec import checks as sc
from odebench.bench.harness.spec import limits as lim
from odebench.bench.harness.spec.text import SpecTextError, loads, read_spec_file, tomllib  # noqa: F401 (tomllib)
from odebench.bench.harness.spec.train_config import train_key_fields

TOP_KEYS = {"name", "description", "seeds", "device", "data_seed", "train", "net", "eval", "methods",
            "datasets", "solvers", "precision", "compile", "budgets", "limits", "track"}
DATASET_KEYS = ("target", "source", "options", "methods", "train", "net", "eval")
SOLVER_KEYS = ("name", "nfe", "tolerances", "grid", "methods")
DEFAULT_METRICS = sc.DEFAULT_METRICS


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
    solvers, ``tol`` the rtol = atol of adaptive ones; ``grid`` the registered time grid of a fixed-step solver.
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
    grid: str = "uniform"

    def config(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def solver_label(self) -> str:
        """``euler`` on the uniform grid, ``euler/cosine`` on another."""
        return self.solver if self.grid == "uniform" else f"{self.solver}/{self.grid}"

    @property
    def id(self) -> str:
        cfg = self.config()
        cfg.pop("sweep")  # the same cell in two sweeps has the same result
        if not cfg["data_options"]:
            cfg.pop("data_options")  # cells without options keep the ids they always had
        if cfg["grid"] == "uniform":
            cfg.pop("grid")  # likewise cells on the uniform time grid
        cfg["train"] = train_key_fields(cfg["train"])  # and cells budgeted by steps
        return config_hash(cfg)

    @property
    def draws_id(self) -> str:
        """The id this cell would have at the default ``eval.batch_size``: it seeds the cell's metric draws (and
        its SDE noise), so the batch size, a memory setting, changes no metric value, and a cell at the default
        draws exactly what it always drew."""
        if self.eval.get("batch_size") == sc.EVAL_BATCH_DEFAULT:
            return self.id
        return replace(self, eval={**self.eval, "batch_size": sc.EVAL_BATCH_DEFAULT}).id

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
    #: what a run may spend (limits.RULES_BUDGETS): max_nfe, train_seconds, cell_seconds; not in cell ids
    budgets: dict[str, Any] = field(default_factory=lambda: dict(lim.DEFAULT_BUDGETS))
    #: the validated ``[track]`` table (sinks, experiment, ...): where curves and metrics are also logged
    track: dict[str, Any] = field(default_factory=dict)
    #: the ``--set`` overrides applied to the spec file, as given (odebench.bench.harness.spec.overrides)
    overrides: tuple[str, ...] = ()
    #: where the spec came from ("built-in 'quick'", a file path, with its --set), for messages and files
    origin: str = ""


def builtin_spec_names() -> list[str]:
    specs = resources.files("odebench.bench.harness.spec.builtin")
    return sorted(p.name[:-5] for p in specs.iterdir() if p.name.endswith(".toml"))


def read_spec_text(name_or_path: str) -> tuple[str, str]:
    """(text, where) for a built-in spec name or a path to a TOML file (a regular file of bounded size:
    odebench.bench.harness.spec.text)."""
    path = Path(name_or_path)
    try:
        # a built-in name stays the built-in spec when a folder of that name sits in the working folder: a run
        # with `--out .` makes one (./smoke), and the same command run again must resume, not fail
        is_file = path.suffix == ".toml" or (path.exists() and not (path.is_dir()
                                                                    and name_or_path in builtin_spec_names()))
    except (OSError, ValueError):  # a NUL in the path, a name too long
        is_file = True
    if is_file:
        try:
            return read_spec_file(path), str(path)
        except SpecTextError as exc:
            raise SpecError(repr(name_or_path), [f"spec: {exc}"]) from None
    names = builtin_spec_names()
    if name_or_path not in names:
        raise SpecError(repr(name_or_path), [f"spec: no built-in spec {lim.show(name_or_path)}"
                                             f"{did_you_mean(name_or_path, names)} and no such file; "
                                             f"built-in specs: {', '.join(names)}"])
    text = resources.files("odebench.bench.harness.spec.builtin").joinpath(f"{name_or_path}.toml").read_text()
    return text, f"built-in {lim.show(name_or_path)}"


def read_spec(name_or_path: str) -> tuple[dict[str, Any], str]:
    """(the parsed TOML table, where it came from) of a built-in spec name or a TOML path; not validated."""
    text, where = read_spec_text(name_or_path)
    try:
        return loads(text, where), where
    except SpecTextError as exc:
        raise SpecError(where, [str(exc)]) from None


def load_spec(name_or_path: str, overrides: dict[str, Any] | None = None, sets: tuple[str, ...] = ()) -> Spec:
    """Parse and validate a spec (built-in name or TOML path); ``overrides`` replace top-level keys, then
    ``sets`` (``--set KEY=VALUE``, odebench.bench.harness.spec.overrides) change single values, before validation."""
    from odebench.bench.harness.spec.overrides import OverrideError, apply_overrides

    raw, where = read_spec(name_or_path)
    raw.update(overrides or {})
    if sets:
        try:
            raw = apply_overrides(raw, sets)
        except OverrideError as exc:
            raise SpecError(where, [str(exc)]) from exc
        where = f"{where} with --set {' --set '.join(sets)}"
    return replace(parse_spec(raw, where), overrides=tuple(sets))


def _as_list(v: Any) -> list[Any]:
    return list(v) if isinstance(v, list) else [v]


def _method_variants(entry: dict[str, Any], where: str, problems: list[str]) -> list[dict[str, Any]]:
    """Expand one [[methods]] table into resolved method configs (validating name, hparams and types)."""
    from odebench.methods import METHODS, get_method

    name = entry.get("name")
    if not isinstance(name, str) or name not in METHODS:
        problems.append(f"{where}.name: unknown method {lim.show(name)}{did_you_mean(name, METHODS.names())}; "
                        f"known: {', '.join(METHODS.names())}")
        return []
    accepted = sc.method_hparams(name)
    rules = lim.method_rules(name)
    hp = {k: v for k, v in entry.items() if k != "name"}
    n_before = len(problems)
    for k, v in hp.items():
        rule = rules.get(k) or lim.generic_rule(accepted.get(k))
        if k not in accepted:
            problems.append(f"{where}.{k}: method {lim.show(name)} has no hparam {lim.show(k)}; accepted: "
                            f"{', '.join(accepted)}")
        elif v == []:
            problems.append(f"{where}.{k}: an empty list expands to no configs; give one value or a "
                            f"non-empty list")
        elif len(_as_list(v)) > lim.bound("grid_values"):
            problems.append(f"{where}.{k}: a grid of {len(v)} values. {lim.raise_hint('grid_values')}")
        elif rule is not None and (bad := next((p for x in _as_list(v) if (p := rule.problem(x))), None)):
            problems.append(f"{where}.{k}: {bad} (a list of such values sweeps them; default {lim.show(accepted[k])})")
    if len(problems) > n_before:
        return []
    keys = list(hp)
    n_configs = math.prod(len(_as_list(hp[k])) for k in keys)
    if n_configs > lim.bound("cells"):
        problems.append(f"{where}: its lists expand to {n_configs} method configs. {lim.raise_hint('cells')}")
        return []
    out = []
    for combo in itertools.product(*(_as_list(hp[k]) for k in keys)):
        try:
            out.append(get_method(name, **dict(zip(keys, combo, strict=True))).config())
        except Exception as exc:  # the method's own checks (relations between hparams), whatever they raise
            problems.append(f"{where}: {type(exc).__name__ + ': ' if not isinstance(exc, ValueError) else ''}"
                            f"{str(exc)[:300]}")
    return out


def _no_duplicates(items: list[tuple[str, Any]], what: str, problems: list[str]) -> None:
    """A problem for every value that two entries share; ``items`` are (path, value)."""
    seen: dict[str, str] = {}
    for path, value in items:
        key = config_hash(value)
        if key in seen:
            problems.append(f"{path}: the same {what} as {seen[key]} ({value}); each cell must be listed "
                            f"once, remove one of them")
        else:
            seen[key] = path


def _methods(raw: dict[str, Any], problems: list[str]) -> list[tuple[str, dict[str, Any]]]:
    """[(path, resolved method config)] over every [[methods]] entry, list values expanded."""
    out = []
    for where, entry in sc.array_of_tables(raw, "methods", problems, '[[methods]] name = "fm_ot"'):
        out += [(where, m) for m in _method_variants(entry, where, problems)]
    _no_duplicates(out, "method config", problems)
    return out


@dataclass
class _DatasetEntry:
    target: str
    source: str
    options: dict[str, Any]
    methods: list[str] | None
    train: dict[str, Any]
    net: dict[str, Any]
    eval: dict[str, Any]


def _datasets(raw: dict[str, Any], base: tuple[dict, dict, dict], method_names: set[str],
              problems: list[str]) -> list[tuple[str, _DatasetEntry]]:
    """[(path, entry)] for every [[datasets]] table; ``train``/``net``/``eval`` in one override the spec's."""
    out, uses = [], []
    for where, entry in sc.array_of_tables(raw, "datasets", problems, '[[datasets]] target = "moons"'):
        sc.unknown_keys(entry, DATASET_KEYS, where, problems)
        target, source = entry.get("target"), entry.get("source", GAUSSIAN_SOURCE)
        if not isinstance(target, str) or target not in DATASETS:
            problems.append(f"{where}.target: unknown dataset {lim.show(target)}"
                            f"{did_you_mean(target, DATASETS.names())}; known: "
                            f"{', '.join(DATASETS.names())}")
        if source != GAUSSIAN_SOURCE and (not isinstance(source, str) or source not in DATASETS):
            problems.append(f"{where}.source: unknown dataset {lim.show(source)}; known: {GAUSSIAN_SOURCE} (the "
                            f"method's prior, the default), {', '.join(DATASETS.names())}")
        options = _dataset_options(entry, target, where, problems)
        only = entry.get("methods")
        if only is not None:
            if not isinstance(only, list) or not only or not all(isinstance(m, str) for m in only):
                problems.append(f"{where}.methods: must be a non-empty list of method names from [[methods]] "
                                f"({', '.join(sorted(method_names))}); got {lim.show(only)}")
                only = None
            else:
                for m in only:
                    if m not in method_names:
                        problems.append(f"{where}.methods: {lim.show(m)} is not in this spec's [[methods]]; "
                                        f"choose from {', '.join(sorted(method_names))}")
        train = sc.check_train(entry.get("train", {}), f"{where}.train", problems, base[0])
        net = sc.check_net(entry.get("net", {}), f"{where}.net", problems, base[1])
        ev = sc.check_eval(entry.get("eval", {}), f"{where}.eval", problems, base[2])
        train = _dequantize_default(raw, entry, target, train, ev, f"{where}.train", problems)
        if isinstance(target, str) and target in DATASETS:
            own = isinstance(entry.get("eval"), dict) and "metrics" in entry["eval"]
            uses.append((f"{where}.eval.metrics" if own else "eval.metrics", target, dataset_kind(target), ev))
        out.append((where, _DatasetEntry(str(target), str(source), options, only, train, net, ev)))
    sc.check_metric_kinds(uses, problems)
    _no_duplicates([(w, (d.target, d.source)) for w, d in out], "target and source", problems)
    return out


def _dequantize_default(raw: dict[str, Any], entry: dict[str, Any], target: Any, train: dict[str, Any],
                        ev: dict[str, Any], where: str, problems: list[str]) -> dict[str, Any]:
    """``train`` with ``dequantize`` resolved: on by default where the dataset is of images (whose pixels take
    ``meta["levels"]`` grey levels) and the spec measures ``nll`` on it, since a density fitted to the lattice
    scores the dequantized test points without meaning; what the spec or the [[datasets]] table says wins.
    Refused on points, which have no grey levels."""
    given = any(isinstance(t, dict) and "dequantize" in t for t in (raw.get("train"), entry.get("train")))
    kind = dataset_kind(target) if isinstance(target, str) and target in DATASETS else None
    if given:
        if train.get("dequantize") and kind == "points":
            problems.append(f"{where}.dequantize: dataset {lim.show(target)} holds points, which have no grey "
                            f"levels to dequantize; drop train.dequantize for it")
        return train
    metrics = ev.get("metrics", {})
    measured = metrics.get("image", []) if isinstance(metrics, dict) else []
    if kind == "image" and "nll" in measured:
        return {**train, "dequantize": True}
    return train


def _time_grids(entry: dict[str, Any], where: str, adaptive: bool, problems: list[str]) -> list[str]:
    """The entry's ``grid`` (a name or a list of names; default uniform), checked against the registry."""
    grids = entry.get("grid", ["uniform"])
    grids = [grids] if isinstance(grids, str) else grids
    if not isinstance(grids, list) or not grids or not all(isinstance(g, str) for g in grids):
        problems.append(f"{where}.grid: a time-grid name or a non-empty list of names, e.g. grid = "
                        f"[\"uniform\", \"cosine\"]; got {lim.show(grids)}")
        return ["uniform"]
    unknown = [g for g in grids if g not in GRIDS]
    if unknown:
        problems.append(f"{where}.grid: unknown time grid(s) {unknown}; known: {', '.join(GRIDS.names())}")
    if adaptive and grids != ["uniform"]:
        problems.append(f"{where}.grid: an adaptive solver chooses its own steps; drop grid for "
                        f"{lim.show(entry['name'])}")
    return [g for g in dict.fromkeys(grids) if g not in unknown] or ["uniform"]


def _solver_methods(entry: dict[str, Any], where: str, method_names: set[str] | None,
                    problems: list[str]) -> frozenset[str] | None:
    """The entry's ``methods`` (the method names it applies to; None: every method), checked against the spec's
    [[methods]] (``method_names``; None: not checked, as in ``odebench eval``)."""
    only = entry.get("methods")
    if only is None:
        return None
    if not isinstance(only, list) or not only or not all(isinstance(m, str) for m in only):
        problems.append(f"{where}.methods: must be a non-empty list of method names (the methods this solver entry "
                        f"runs on), e.g. methods = [\"edm\"]; got {lim.show(only)}")
        return None
    for m in only:
        if method_names is not None and m not in method_names:
            problems.append(f"{where}.methods: {lim.show(m)} is not in this spec's [[methods]]; choose from "
                            f"{', '.join(sorted(method_names))}")
    return frozenset(only)


SolverCell = tuple[str, str, int | None, float | None, frozenset[str] | None]


def _solvers(raw: dict[str, Any], problems: list[str],
             method_names: set[str] | None = None) -> list[SolverCell]:
    """[(solver, time grid, nfe, tol, methods)]: fixed-step solvers by grid and NFE budget, adaptive ones by
    tolerance; ``methods`` the method names the entry is restricted to (None: all)."""
    out: list[SolverCell] = []
    example = '[[solvers]] name = "euler" nfe = [4, 8]'
    for where, entry in sc.array_of_tables(raw, "solvers", problems, example):
        sc.unknown_keys(entry, SOLVER_KEYS, where, problems)
        sname = entry.get("name")
        if not isinstance(sname, str) or sname not in SOLVERS:
            problems.append(f"{where}.name: unknown solver {lim.show(sname)}{did_you_mean(sname, SOLVERS.names())}; "
                            f"known: {', '.join(SOLVERS.names())}")
            continue
        adaptive = SOLVERS.get(sname).adaptive
        key, other = ("tolerances", "nfe") if adaptive else ("nfe", "tolerances")
        if other in entry:
            kind = "an adaptive solver: give tolerances" if adaptive else "a fixed-step solver: give nfe"
            problems.append(f"{where}.{other}: {lim.show(sname)} is {kind} = [...], not {other}")
        grids = _time_grids(entry, where, adaptive, problems)
        only = _solver_methods(entry, where, method_names, problems)
        values = entry.get(key)
        if adaptive:
            rule = lim.TOLERANCE
            wanted = "a non-empty list of positive floats below 1 (rtol = atol), e.g. tolerances = [1e-5]"
        else:
            rule = lim.integer(1, limit="nfe")
            wanted = (f"a non-empty list of positive integer NFE budgets (each <= {lim.bound('nfe')}), e.g. "
                      f"nfe = [4, 8, 16]")
        good = (isinstance(values, list) and 0 < len(values) <= lim.bound("grid_values")
                and all(rule.problem(v) is None for v in values))
        if not good:
            hint = ""
            if isinstance(values, list) and len(values) > lim.bound("grid_values"):
                hint = f". {lim.raise_hint('grid_values')}"
            elif not adaptive and isinstance(values, list) and any(
                    isinstance(v, int) and not isinstance(v, bool) and v > lim.bound("nfe") for v in values):
                hint = f". {lim.raise_hint('nfe')}"
            problems.append(f"{where}.{key}: solver {lim.show(sname)} needs {wanted}; got {lim.show(values)}{hint}")
            continue
        dups = sorted({v for v in values if values.count(v) > 1})
        if dups:
            problems.append(f"{where}.{key}: {dups} listed more than once; list each value once")
        out += [(sname, g, None, float(v), only) if adaptive else (sname, g, v, None, only)
                for g in grids for v in dict.fromkeys(values)]
    _no_duplicates([(f"solvers ({s})", (s, g, n, t)) for s, g, n, t, _ in out], "solver, grid and budget", problems)
    return out


def _check_sources(methods, datasets, problems: list[str]) -> None:
    """Methods whose maths assumes a Gaussian source must not be paired with a source dataset."""
    from odebench.methods import METHODS

    for mpath, m in methods:
        cls = METHODS.get(m["name"])
        for dpath, d in datasets:
            if d.source == GAUSSIAN_SOURCE or not cls.needs_gaussian_source:
                continue
            if d.methods is not None and m["name"] not in d.methods:
                continue
            problems.append(f"{dpath}.source: method {lim.show(m['name'])} ({mpath}) needs a Gaussian source but is "
                            f"paired with source {lim.show(d.source)}; restrict this dataset to methods that allow "
                            f"any source (methods = [...], e.g. rf) or use source = \"gaussian\"")


def parse_spec(raw: dict[str, Any], where: str = "spec") -> Spec:
    """Validate a parsed spec dict and expand it into cells; raises SpecError listing every problem."""
    if not isinstance(raw, dict):
        raise SpecError(where, [f"spec: must be a table of keys, got {lim.kind_of(raw)}"])
    shape = lim.shape_problems(raw)
    if shape:  # values the per-key checks must never meet (deep nesting, huge integers, nan, NUL, dates)
        raise SpecError(where, shape)
    problems: list[str] = []
    limits = lim.check_limits(raw.get("limits", {}), problems)
    with lim.policy(limits):
        return _parse(raw, where, problems)


def _header(raw: dict[str, Any], problems: list[str], name: Any = None) -> tuple:
    """The top-level keys every spec shares, checked: (name, description, seeds, data_seed, device, budgets);
    ``data_seed`` is an integer or checks.PER_SEED (each cell's own is ``checks.data_seed_of(rule, seed)``)."""
    for k in sorted(set(raw) - TOP_KEYS):
        problems.append(f"{k}: unknown key; allowed top-level keys: {', '.join(sorted(TOP_KEYS))}")
    name = raw.get("name") if name is None else name
    if (problem := name_problem(name)) is not None:
        problems.append(f"name: {problem}")
        name = "unnamed"
    description = raw.get("description", "")
    if not isinstance(description, str):
        problems.append(f"description: must be a string; got {lim.kind_of(description)} {lim.show(description)}")
    return (name, description, sc.check_seeds(raw.get("seeds", [0]), problems),
            sc.check_data_seed(raw.get("data_seed", 0), problems),
            sc.check_device(raw.get("device", "cpu"), problems), sc.check_budgets(raw.get("budgets", {}), problems))


def _parse(raw: dict[str, Any], where: str, problems: list[str]) -> Spec:
    name, description, seeds, data_seed, device, budgets = _header(raw, problems)
    track = sc.check_track(raw.get("track", {}), problems)
    base = (sc.check_train(raw.get("train", {}), "train", problems),
            sc.check_net(raw.get("net", {"name": "mlp"}), "net", problems),
            sc.check_eval(raw.get("eval", {}), "eval", problems))
    methods = _methods(raw, problems)
    datasets = _datasets(raw, base, {m["name"] for _, m in methods}, problems)
    solver_cells = _solvers(raw, problems, {m["name"] for _, m in methods})
    _check_sources(methods, datasets, problems)
    for k in ("precision", "compile"):
        problems += _runtime_problem(k, raw)
    n_cells = len(seeds) * sum((d.methods is None or m["name"] in d.methods) and (only is None or m["name"] in only)
                               for _, m in methods for _, d in datasets for *_, only in solver_cells)
    if n_cells > lim.bound("cells"):
        problems.append(f"spec: {n_cells} cells (methods x datasets x solver budgets x seeds). "
                        f"{lim.raise_hint('cells')}")
    if problems:
        raise SpecError(where, problems)

    product = itertools.product(methods, datasets, solver_cells, seeds)
    cells = [Cell(sweep=name, method=m, target=d.target, source=d.source, solver=sv, nfe=n, tol=tol,
                  seed=seed, data_seed=sc.data_seed_of(data_seed, seed), train=d.train, net=d.net, eval=d.eval,
                  data_options=d.options, grid=g)
             for (_, m), (_, d), (sv, g, n, tol, only), seed in product
             if (d.methods is None or m["name"] in d.methods) and (only is None or m["name"] in only)]
    return Spec(name=name, description=description, cells=cells, device=device, raw=raw,
                precision=raw.get("precision", "fp32"), compile=bool(raw.get("compile", False)), budgets=budgets,
                track=track, origin=where)


def _dataset_options(entry: dict[str, Any], target: Any, where: str, problems: list[str]) -> dict[str, Any]:
    """Validate a [[datasets]] table's ``options`` against the target loader's signature."""
    options = entry.get("options", {})
    if not isinstance(options, dict):
        problems.append(f"{where}.options: must be a table of loader options, got {lim.show(options)}")
        return {}
    if options and isinstance(target, str) and target in DATASETS:
        accepted = sc.loader_options(target)
        rules = lim.RULES_DATASETS.get(target, {})
        for k in sorted(options):
            if k not in accepted:
                problems.append(f"{where}.options.{k}: dataset {lim.show(target)} has no option {lim.show(k)}; "
                                f"accepted: {', '.join(accepted) or 'none'}")
            else:
                sc.check_value(options[k], rules.get(k) or lim.generic_rule(accepted[k]), f"{where}.options.{k}",
                               problems)
    return dict(options)


def _runtime_problem(key: str, raw: dict[str, Any]) -> list[str]:
    from odebench.bench.harness.process.runtime import PRECISIONS

    if key == "precision" and raw.get(key, "fp32") not in PRECISIONS:
        return [f"precision: must be one of {', '.join(PRECISIONS)}, got {lim.show(raw[key])}"]
    if key == "compile" and not isinstance(raw.get(key, False), bool):
        return [f"compile: must be true or false, got {lim.show(raw[key])}"]
    return []


# ------------------------------------------------------------------------------------- specs of odebench eval
#: top-level keys only ``odebench run`` reads (what to train, on which datasets): ``odebench eval`` accepts a
#: sweep spec that holds them and leaves them alone, since the model and the dataset come from its options
RUN_ONLY_KEYS = frozenset({"train", "net", "methods", "datasets", "compile"})


def parse_eval_spec(raw: dict[str, Any], where: str, method: dict[str, Any], target: Any,
                    source: Any = GAUSSIAN_SOURCE, name: str | None = None) -> Spec:
    """The cells of ``odebench eval``: one given model (``method``, its identity) on ``target`` (and
    ``source``), swept over the spec's ``[[solvers]]`` and seeds and measured as its ``[eval]`` says. The same
    checks as :func:`parse_spec` for those keys; ``name`` (the results folder) replaces the spec's ``name``.
    Cells have empty ``train`` and ``net``: nothing is trained."""
    if not isinstance(raw, dict):
        raise SpecError(where, [f"spec: must be a table of keys, got {lim.kind_of(raw)}"])
    shape = lim.shape_problems(raw)
    if shape:
        raise SpecError(where, shape)
    problems: list[str] = []
    limits = lim.check_limits(raw.get("limits", {}), problems)
    with lim.policy(limits):
        return _parse_eval(raw, where, problems, method, target, source, name)


def _parse_eval(raw, where, problems, method, target, source, name) -> Spec:
    name, description, seeds, data_seed, device, budgets = _header(raw, problems, name)
    ev = sc.check_eval(raw.get("eval", {}), "eval", problems)
    if not isinstance(target, str) or target not in DATASETS:
        problems.append(f"dataset: unknown dataset {lim.show(target)}{did_you_mean(target, DATASETS.names())}; "
                        f"known: {', '.join(DATASETS.names())}")
    else:
        sc.check_metric_kinds([("eval.metrics", target, dataset_kind(target), ev)], problems)
    if source != GAUSSIAN_SOURCE and (not isinstance(source, str) or source not in DATASETS):
        problems.append(f"source: unknown dataset {lim.show(source)}; known: {GAUSSIAN_SOURCE} (the model's "
                        f"N(0, I), the default), {', '.join(DATASETS.names())}")
    name_of = method.get("name") if isinstance(method, dict) else None
    solver_cells = [c for c in _solvers(raw, problems) if c[4] is None or name_of in c[4]]
    problems += _runtime_problem("precision", raw)
    n_cells = len(seeds) * len(solver_cells)
    if n_cells > lim.bound("cells"):
        problems.append(f"spec: {n_cells} cells (solver budgets x seeds). {lim.raise_hint('cells')}")
    if problems:
        raise SpecError(where, problems)
    cells = [Cell(sweep=name, method=dict(method), target=target, source=source, solver=sv, nfe=n, tol=tol,
                  seed=seed, data_seed=sc.data_seed_of(data_seed, seed), train={}, net={}, eval=ev, grid=g)
             for (sv, g, n, tol, _), seed in itertools.product(solver_cells, seeds)]
    return Spec(name=name, description=description, cells=cells, device=device, raw=raw,
                precision=raw.get("precision", "fp32"), compile=False, budgets=budgets)
