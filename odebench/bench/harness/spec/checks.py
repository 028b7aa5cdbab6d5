"""Field-by-field checks of a sweep spec: each returns the cleaned value and appends 'key.path: message'.

``sweep.parse_spec`` calls these in turn and raises one SpecError listing every problem, so a user
fixes a spec in one pass. A message always names the key path, what was wrong, and what is allowed.
Types and ranges come from odebench.bench.harness.spec.limits: every built-in key has a Rule there; keys of
plugins (and new fields) are checked against the type of their default (TrainConfig fields, a network's and
a method's keyword arguments), so a new field gets a type check without code here.
"""

from __future__ import annotations

import inspect
import re
from dataclasses import fields
from typing import Any

from odebench.bench.harness.guards.suggest import did_you_mean
from odebench.bench.harness.spec import limits as lim
from odebench.bench.harness.spec.train_config import TrainConfig

Problems = list[str]
Cfg = dict[str, Any]

EVAL_KEYS = ("n_samples", "metrics", "metric_options", "batch_size")
#: eval.batch_size when the spec gives none; the metrics' draws are seeded as at this size (Cell.draws_id)
EVAL_BATCH_DEFAULT = 10000
DATA_KINDS = ("points", "image")
DEFAULT_METRICS = {"points": ["w2", "sliced_w", "mmd"], "image": ["fd", "sliced_w"]}
DEVICE_RE = re.compile(r"^(cpu|cuda(:\d{1,3})?)$")


def type_name(v: Any) -> str:
    return {bool: "boolean", int: "integer", float: "float", str: "string", list: "list",
            dict: "table"}.get(type(v), type(v).__name__)


def table(value: Any, path: str, problems: Problems, example: str) -> dict[str, Any]:
    """``value`` if it is a TOML table, else a problem (and an empty table)."""
    if isinstance(value, dict):
        return value
    problems.append(f"{path}: must be a table, e.g. {example}; got {type_name(value)} {lim.show(value)}")
    return {}


def array_of_tables(raw: Cfg, key: str, problems: Problems, example: str) -> list[tuple[str, Cfg]]:
    """[(path, table)] for a required ``[[key]]`` array; every entry that is not a table is a problem."""
    value = raw.get(key)
    if value is None or value == []:
        problems.append(f"{key}: at least one [[{key}]] table is required, e.g. {example}")
        return []
    if not isinstance(value, list):
        problems.append(f"{key}: must be an array of tables ([[{key}]] blocks, e.g. {example}); got "
                        f"{type_name(value)} {lim.show(value)}")
        return []
    out = []
    for i, entry in enumerate(value):
        if isinstance(entry, dict):
            out.append((f"{key}[{i}]", entry))
        else:
            problems.append(f"{key}[{i}]: must be a table ([[{key}]] with keys, e.g. {example}); got "
                            f"{type_name(entry)} {lim.show(entry)}")
    return out


def unknown_keys(entry: dict[str, Any], allowed, path: str, problems: Problems) -> None:
    for k in sorted(set(entry) - set(allowed)):
        problems.append(f"{path}.{k}: unknown key; allowed: {', '.join(sorted(allowed))}")


def check_seeds(value: Any, problems: Problems) -> list[int]:
    ok = (isinstance(value, list) and 0 < len(value) <= lim.bound("grid_values")
          and all(lim.SEED.problem(s) is None for s in value))
    if not ok:
        problems.append(f"seeds: must be a non-empty list of integers >= 0 and <= {lim.SEED_MAX} (at most "
                        f"{lim.bound('grid_values')} of them), e.g. seeds = [0, 1, 2]; got {lim.show(value)}")
        return [0]
    dups = sorted({s for s in value if value.count(s) > 1})
    if dups:
        problems.append(f"seeds: {dups} listed more than once; list each seed once")
    return list(dict.fromkeys(value))


#: ``data_seed = "per_seed"``: every seed draws its own data (data_seed = seed), so the seeds vary the training
#: set and the held-out split with the initialisation
PER_SEED = "per_seed"


def check_data_seed(value: Any, problems: Problems) -> int | str:
    """An integer data seed (one data draw for every seed) or :data:`PER_SEED` (each seed its own draw)."""
    if value == PER_SEED or lim.SEED.problem(value) is None:
        return value
    problems.append(f"data_seed: must be an integer >= 0 and <= {lim.SEED_MAX} (one data draw for every seed) or "
                    f"\"{PER_SEED}\" (each seed draws its own data: data_seed = seed); got {lim.show(value)}")
    return 0


def data_seed_of(rule: int | str, seed: int) -> int:
    """The data seed of a cell of training seed ``seed`` under a checked ``data_seed`` rule."""
    return seed if rule == PER_SEED else int(rule)


def check_int(value: Any, path: str, problems: Problems, minimum: int = 0, maximum: int | None = None) -> int:
    rule = lim.integer(minimum, maximum)
    if (problem := rule.problem(value)) is None:
        return value
    problems.append(f"{path}: {problem}")
    return minimum


def check_value(value: Any, rule: lim.Rule | None, path: str, problems: Problems) -> bool:
    """Whether ``value`` fits ``rule`` (None: anything the shape walk let through); else a problem."""
    problem = rule.problem(value) if rule is not None else None
    if problem is not None:
        problems.append(f"{path}: {problem}")
    return problem is None


def check_device(value: Any, problems: Problems) -> str:
    if isinstance(value, str) and DEVICE_RE.match(value):
        return value
    problems.append(f"device: must be \"cpu\", \"cuda\" or \"cuda:N\"; got {lim.show(value)}")
    return "cpu"


def check_train(value: Any, path: str, problems: Problems, base: Cfg | None = None) -> Cfg:
    """Resolved TrainConfig fields (``base`` first, then ``value``) as a dict."""
    entry = table(value, path, problems, "[train] steps = 2000")
    defaults = {f.name: f.default for f in fields(TrainConfig)}
    out = dict(base) if base is not None else dict(defaults)
    unknown_keys(entry, defaults, path, problems)
    for k, v in entry.items():
        if k not in defaults:
            continue
        rule = lim.RULES_TRAIN.get(k) or lim.generic_rule(defaults[k])
        if check_value(v, rule, f"{path}.{k}", problems):
            out[k] = type(defaults[k])(v) if isinstance(defaults[k], float) else v
    return out


# ---------------------------------------------------- the keys a registered name accepts (validator and schema)
def method_hparams(name: str) -> dict[str, Any]:
    """{hparam: default} of a registered method: the keyword arguments of its ``__init__``."""
    from odebench.methods import METHODS

    params = inspect.signature(METHODS.get(name).__init__).parameters
    return {k: p.default for k, p in params.items() if k not in ("self", "args", "kwargs")}


def net_options(name: str) -> dict[str, Any]:
    """{option: default} of a registered network (its keyword arguments less the shape the harness passes)."""
    from odebench.bench.nets import NETS

    params = inspect.signature(NETS.get(name).__init__).parameters
    return {k: p.default for k, p in params.items() if k not in ("self", "shape", "out_mult")
            and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}


def loader_options(name: str) -> dict[str, Any]:
    """{option: default} of a registered dataset loader (less ``data_seed``, which the spec sets once)."""
    from odebench.bench.data import DATASETS

    params = inspect.signature(DATASETS.get(name)).parameters
    return {k: p.default for k, p in params.items() if k != "data_seed"
            and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}


def check_net(value: Any, path: str, problems: Problems, base: Cfg | None = None) -> Cfg:
    """Network config: a registered ``name`` plus keyword arguments that network accepts."""
    from odebench.bench.nets import NETS

    entry = table(value, path, problems, "[net] name = \"mlp\"")
    out = dict(base) if base is not None else {"name": "mlp"}
    if base is not None and "name" in entry and entry["name"] != base.get("name"):
        out = {}  # another network: the base's options belong to the base's network
    out.update(entry)
    name = out.get("name", "mlp")
    if not isinstance(name, str) or name not in NETS:
        problems.append(f"{path}.name: unknown network {lim.show(name)}; known: {', '.join(NETS.names())}")
        return out
    accepted = net_options(name)
    rules = lim.RULES_NETS.get(name, {})
    for k, v in entry.items():
        if k == "name":
            continue
        if k not in accepted:
            problems.append(f"{path}.{k}: network {lim.show(name)} has no option {lim.show(k)}; accepted: "
                            f"{', '.join(sorted(accepted))}")
        else:
            check_value(v, rules.get(k) or lim.generic_rule(accepted[k]), f"{path}.{k}", problems)
    return out


def _metric_names(names: Any, path: str, problems: Problems) -> list[str]:
    from odebench.metrics import METRICS

    if not isinstance(names, list) or not names or not all(isinstance(m, str) for m in names):
        problems.append(f"{path}: must be a non-empty list of metric names, e.g. [\"w2\", \"mmd\"]; "
                        f"got {lim.show(names)}")
        return []
    for m in names:
        if m not in METRICS:
            problems.append(f"{path}: unknown metric {lim.show(m)}{did_you_mean(m, METRICS.names())}; known: "
                            f"{', '.join(METRICS.names())}")
    dups = sorted({m for m in names if names.count(m) > 1})
    if dups:
        problems.append(f"{path}: {dups} listed more than once; list each metric once")
    return list(dict.fromkeys(names))


def _metric_lists(value: Any, path: str, problems: Problems) -> dict[str, list[str]]:
    """{data kind: metric names}; a plain list applies to every kind of data."""
    if isinstance(value, list):
        names = _metric_names(value, path, problems)
        return {kind: names for kind in DATA_KINDS}
    if not isinstance(value, dict):
        problems.append(f"{path}: must be a list of metric names, or a table "
                        f"{{points = [...], image = [...]}}; got {type_name(value)} {lim.show(value)}")
        return dict(DEFAULT_METRICS)
    unknown_keys(value, DATA_KINDS, path, problems)
    return {kind: _metric_names(names, f"{path}.{kind}", problems) for kind, names in value.items()
            if kind in DATA_KINDS}


def check_metric_kinds(uses: list[tuple[str, str, str | None, Cfg]], problems: Problems) -> None:
    """A problem for every metric that would run on a dataset whose kind of data it does not measure
    (``fd_digits`` on moons): it could only fail, on every cell. ``uses`` holds (key path of the metric list,
    dataset name, its declared kind, its resolved eval table). A kind the loader does not declare is not
    checked here (such a metric then fails alone, at evaluation, with its reason)."""
    from odebench.metrics import METRICS

    misfits: dict[tuple[str, str, str], list[str]] = {}
    empty: dict[tuple[str, str], list[str]] = {}
    for path, target, kind, ev in uses:
        if kind is None:
            continue
        if not ev.get("metrics", {}).get(kind):
            empty.setdefault((path, kind), []).append(target)
        _feature_misfits(path, target, kind, ev, problems)
        for m in ev.get("metrics", {}).get(kind, []):
            if m in METRICS and kind not in METRICS.get(m).kinds:
                misfits.setdefault((path, m, kind), []).append(target)
    for (path, kind), targets in empty.items():
        fitting = [n for n in METRICS.names() if kind in METRICS.get(n).kinds]
        problems.append(f"{path}: no metric for {kind} data, so the cells of {', '.join(map(repr, targets))} would "
                        f"measure nothing; list some, e.g. metrics = {{{kind} = {DEFAULT_METRICS[kind]}}} (metrics "
                        f"for {kind} data: {', '.join(fitting)})".replace("'", '"'))
    for (path, m, kind), targets in misfits.items():
        kinds = METRICS.get(m).kinds
        fitting = [n for n in METRICS.names() if kind in METRICS.get(n).kinds]
        which = f"dataset {targets[0]!r} is" if len(targets) == 1 else f"datasets {', '.join(map(repr, targets))} are"
        problems.append(f"{path}: metric {m!r} measures {' or '.join(kinds)} data, but {which} {kind} data; give "
                        f"metrics per kind, e.g. metrics = {{{kind} = [...], {kinds[0]} = [\"{m}\"]}}, or drop "
                        f"it. Metrics for {kind} data: {', '.join(fitting)}")


#: metric options that only fit one kind of data: (metric, option, value) -> that kind
KIND_OPTIONS = {("precision", "features", "digits"): "image", ("recall", "features", "digits"): "image"}


def _feature_misfits(path: str, target: str, kind: str, ev: Cfg, problems: Problems) -> None:
    """A problem for a metric option that cannot apply to the dataset's kind (``features = "digits"``, the 8x8
    digits classifier's features, on 2-D points) when that metric runs on it."""
    wanted = set(ev.get("metrics", {}).get(kind, []))
    for (metric, option, value), fits in KIND_OPTIONS.items():
        opts = ev.get("metric_options", {}).get(metric)
        if metric in wanted and isinstance(opts, dict) and opts.get(option) == value and kind != fits:
            where = path.rsplit(".", 1)[0] + f".metric_options.{metric}.{option}"
            problems.append(f"{where}: {option} = {value!r} needs {fits} data, but dataset {target!r} is {kind} "
                            f"data; use {option} = \"raw\" or drop it for this dataset".replace("'", '"'))


def check_eval(value: Any, path: str, problems: Problems, base: Cfg | None = None) -> Cfg:
    """Evaluation settings: sample count, batch size, metrics (per data kind) and metric options."""
    from odebench.metrics import METRICS

    entry = table(value, path, problems, "[eval] n_samples = 2000")
    unknown_keys(entry, EVAL_KEYS, path, problems)
    out = dict(base) if base is not None else {"n_samples": 2000, "metrics": dict(DEFAULT_METRICS),
                                               "metric_options": {}, "batch_size": EVAL_BATCH_DEFAULT}
    for k in ("n_samples", "batch_size"):
        if k in entry and check_value(entry[k], lim.RULES_EVAL[k], f"{path}.{k}", problems):
            out[k] = entry[k]
    if "metrics" in entry:
        out["metrics"] = _metric_lists(entry["metrics"], f"{path}.metrics", problems)
    if "metric_options" in entry:
        opts = table(entry["metric_options"], f"{path}.metric_options", problems,
                     "[eval.metric_options.sliced_w] n_projections = 64")
        for m, o in opts.items():
            if m not in METRICS:
                problems.append(f"{path}.metric_options.{m}: unknown metric {lim.show(m)}"
                                f"{did_you_mean(m, METRICS.names())}; known: "
                                f"{', '.join(METRICS.names())}")
            else:
                o = table(o, f"{path}.metric_options.{m}", problems, f"[eval.metric_options.{m}] key = value")
                check_metric_options(m, o, f"{path}.metric_options.{m}", problems)
        out["metric_options"] = opts
    return out


def check_metric_options(metric: str, opts: Cfg, path: str, problems: Problems) -> None:
    """A built-in metric's options against its rules (unknown keys included); plugin metrics check their own."""
    rules = lim.metric_rules(metric)
    if rules is None:
        return
    for k, v in opts.items():
        if k not in rules:
            problems.append(f"{path}.{k}: metric {lim.show(metric)} has no option {lim.show(k)}; accepted: "
                            f"{', '.join(sorted(rules)) or 'none'}")
        else:
            check_value(v, rules[k], f"{path}.{k}", problems)


def check_budgets(value: Any, problems: Problems) -> Cfg:
    """The spec's ``[budgets]`` over the defaults: max_nfe, train_seconds, cell_seconds (see limits)."""
    entry = table(value, "budgets", problems, "[budgets] max_nfe = 20000")
    unknown_keys(entry, lim.RULES_BUDGETS, "budgets", problems)
    out = dict(lim.DEFAULT_BUDGETS)
    for k, v in entry.items():
        if k in lim.RULES_BUDGETS and check_value(v, lim.RULES_BUDGETS[k], f"budgets.{k}", problems):
            out[k] = float(v) if k.endswith("seconds") else v
    return out


def check_track(value: Any, problems: Problems) -> Cfg:
    """The spec's ``[track]`` table (limits.RULES_TRACK): which tracking sinks, and their few settings."""
    entry = table(value, "track", problems, "[track] sinks = [\"tensorboard\"]")
    unknown_keys(entry, lim.RULES_TRACK, "track", problems)
    out: Cfg = {}
    for k, v in entry.items():
        if k in lim.RULES_TRACK and check_value(v, lim.RULES_TRACK[k], f"track.{k}", problems):
            out[k] = list(dict.fromkeys(v)) if k == "sinks" else v
    return out
