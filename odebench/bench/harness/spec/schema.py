"""A JSON Schema of sweep specs, generated from the validator's own definitions (``odebench schema``).

Nothing here restates a rule: the types and ranges come from the ``RULES_*`` tables and ``method_rules`` /
``metric_rules`` of odebench.bench.harness.spec.limits, the keys from ``TOP_KEYS``, ``DATASET_KEYS``,
``SOLVER_KEYS`` and ``EVAL_KEYS``, the accepted hparams and options from the same signatures the validator
reads (checks.method_hparams, net_options, loader_options, TrainConfig), and every name (methods, solvers,
time grids, datasets, networks, metrics, precisions, tracking sinks) from the registries, as enums. So the
schema cannot drift from the validator, and a plugin's names appear in it once installed.

The schema is what an editor can check while a spec is written: unknown keys (a misspelled ``stpes``), wrong
types, values out of their fixed range, unknown names. It accepts every spec the validator accepts; the
validator checks more: policy bounds (``steps`` <= 10^7 unless ``[limits]`` raises it: the schema leaves these
to the validator, since a spec may raise them), relations between values (a method's own checks, duplicate
cells, metrics that do not fit a dataset's kind), and the hparams of plugins that no rule names.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from odebench.bench.harness.guards.safe_paths import NAME_MAX, NAME_RE, NAME_RULE
from odebench.bench.harness.spec import checks as sc
from odebench.bench.harness.spec import limits as lim
from odebench.bench.harness.spec.sweep import DATASET_KEYS, SOLVER_KEYS, TOP_KEYS

DRAFT = "https://json-schema.org/draft/2020-12/schema"
SCHEMA_ID = "https://odebench.invalid/odebench-spec.schema.json"  # a name, not a place: nothing is fetched
Schema = dict[str, Any]


# ----------------------------------------------------------------------------------------------- one rule
def rule_schema(rule: lim.Rule | None, default: Any = None) -> Schema:
    """The JSON Schema of one Rule (None: any value; the shape walk alone applies). Policy bounds are left
    out (a spec's ``[limits]`` moves them); the description names them."""
    if rule is None:
        return {} if default is None else {"default": default}
    if rule.kind == "bool":
        one: Schema = {"type": "boolean"}
    elif rule.kind == "choice" or (rule.kind == "str" and rule.choices):
        one = {"enum": list(rule.choices)}
    elif rule.kind == "str":
        one = {"type": "string"}
    else:
        one = {"type": "integer" if rule.kind == "int" else "number"}
        if rule.lo is not None:
            one["exclusiveMinimum" if rule.lo_open else "minimum"] = rule.lo
        if rule.hi is not None:
            one["exclusiveMaximum" if rule.hi_open else "maximum"] = rule.hi
    if rule.also:
        one = {"anyOf": [one, {"enum": list(rule.also)}]}
    if rule.items:
        one = {"type": "array", "items": one, "minItems": rule.min_len, "maxItems": rule.max_len}
    text = rule.describe()
    if rule.limit:
        text += f"; the upper bound is a policy bound: `[limits] {rule.limit} = N` raises it"
    out = {**one, "description": text}
    if default is not None and not isinstance(default, tuple):
        out["default"] = default
    return out


def _table(properties: dict[str, Schema], description: str = "", required: list[str] | None = None) -> Schema:
    out: Schema = {"type": "object", "properties": properties, "additionalProperties": False}
    if description:
        out["description"] = description
    if required:
        out["required"] = required
    return out


def _names(names: list[str], what: str) -> Schema:
    return {"enum": list(names), "description": f"a registered {what} (`odebench list`)"}


def _one_or_list(one: Schema) -> Schema:
    """A value or a non-empty list of such values (a grid swept over)."""
    return {"anyOf": [one, {"type": "array", "items": one, "minItems": 1}]}


def _by_name(key: str, variants: dict[str, Schema], default: str | None = None) -> list[Schema]:
    """``if key == name then variant`` for each name; ``default`` also applies when ``key`` is absent."""
    out = []
    for name, then in variants.items():
        cond: Schema = {"properties": {key: {"const": name}}}
        if name != default:
            cond["required"] = [key]
        out.append({"if": cond, "then": then})
    return out


# --------------------------------------------------------------------------------------------- the tables
def train_schema() -> Schema:
    from odebench.bench.harness.spec.train_config import TrainConfig

    return _table({f.name: rule_schema(lim.RULES_TRAIN.get(f.name) or lim.generic_rule(f.default), f.default)
                   for f in fields(TrainConfig)}, "training settings (every model's cache key)")


def net_schema(default: str | None) -> Schema:
    """``[net]``: a registered name plus that network's options; ``default`` the name assumed when absent
    (None inside ``[[datasets]]``, where an absent name keeps the spec's network)."""
    from odebench.bench.nets import NETS

    variants = {}
    for name in NETS.names():
        rules = lim.RULES_NETS.get(name, {})
        opts = {k: rule_schema(rules.get(k) or lim.generic_rule(d), d) for k, d in sc.net_options(name).items()}
        variants[name] = _table({"name": {"const": name}, **opts})
    out: Schema = {"type": "object", "properties": {"name": _names(NETS.names(), "network")},
                   "description": "the network: `name` and its options",
                   "allOf": _by_name("name", variants, default)}
    if default is None:  # no name: the options of any network (the spec's network is not known here)
        out["anyOf"] = [{"required": ["name"]}, *({"properties": v["properties"], "additionalProperties": False}
                                                  for v in variants.values())]
    return out


def _metric_list(metrics: list[str]) -> Schema:
    return {"type": "array", "items": _names(metrics, "metric"), "minItems": 1, "uniqueItems": True}


def eval_schema() -> Schema:
    from odebench.metrics import METRICS

    metrics = METRICS.names()
    options = {}
    for m in metrics:
        rules = lim.metric_rules(m)
        options[m] = ({"type": "object"} if rules is None  # a plugin metric checks its own options
                      else _table({k: rule_schema(r) for k, r in rules.items()}))
    props = {k: rule_schema(lim.RULES_EVAL[k]) for k in ("n_samples", "batch_size")}
    props["metrics"] = {"anyOf": [_metric_list(metrics),
                                  _table({kind: _metric_list(metrics) for kind in sc.DATA_KINDS})],
                        "description": "metric names, or per kind of data: {points = [...], image = [...]}"}
    props["metric_options"] = _table(options, "options per metric: [eval.metric_options.NAME]")
    assert set(props) == set(sc.EVAL_KEYS)
    return _table(props, "evaluation: samples per cell, metrics and their options")


def methods_schema() -> Schema:
    from odebench.methods import METHODS

    variants = {}
    for name in METHODS.names():
        rules = lim.method_rules(name)
        hp = {k: {**_one_or_list(rule_schema(rules.get(k) or lim.generic_rule(d))),
                  **({"default": d} if d is not None and not isinstance(d, tuple) else {})}
              for k, d in sc.method_hparams(name).items()}
        variants[name] = _table({"name": {"const": name}, **hp})
    entry = {"type": "object", "required": ["name"], "properties": {"name": _names(METHODS.names(), "method")},
             "allOf": _by_name("name", variants)}
    return {"type": "array", "items": entry, "minItems": 1,
            "description": "[[methods]]: a name plus hparams; a list value sweeps the hparam"}


def datasets_schema() -> Schema:
    from odebench.bench.data import DATASETS, GAUSSIAN_SOURCE

    names = DATASETS.names()
    variants = {}
    for name in names:
        rules = lim.RULES_DATASETS.get(name, {})
        opts = {k: rule_schema(rules.get(k) or lim.generic_rule(d), d) for k, d in sc.loader_options(name).items()}
        variants[name] = {"properties": {"options": _table(opts, f"options of the {name} loader")}}
    props = {"target": _names(names, "dataset"),
             "source": {"enum": [GAUSSIAN_SOURCE, *names], "default": GAUSSIAN_SOURCE,
                        "description": "the source: the method's N(0, I) prior (default) or a dataset"},
             "options": {"type": "object", "description": "keyword options of the target's loader"},
             "methods": {"type": "array", "items": {"type": "string"}, "minItems": 1,
                         "description": "only these [[methods]] (by name) run on this dataset"},
             "train": train_schema(), "net": net_schema(None), "eval": eval_schema()}
    assert set(props) == set(DATASET_KEYS)
    entry = {**_table(props, required=["target"]), "allOf": _by_name("target", variants)}
    return {"type": "array", "items": entry, "minItems": 1,
            "description": "[[datasets]]: a target, optional source, loader options and overrides"}


def solvers_schema() -> Schema:
    from odebench.bench.core.solvers import GRIDS, SOLVERS

    adaptive = [n for n in SOLVERS.names() if SOLVERS.get(n).adaptive]
    grid = _names(GRIDS.names(), "time grid")
    props = {"name": _names(SOLVERS.names(), "solver"),
             "nfe": {"type": "array", "items": rule_schema(lim.integer(1, limit="nfe")), "minItems": 1,
                     "uniqueItems": True, "description": "NFE budgets of a fixed-step solver"},
             "tolerances": {"type": "array", "items": rule_schema(lim.TOLERANCE), "minItems": 1,
                            "uniqueItems": True, "description": "rtol = atol values of an adaptive solver"},
             "grid": {"anyOf": [grid, {"type": "array", "items": grid, "minItems": 1}], "default": "uniform",
                      "description": "time grid(s) of a fixed-step solver"},
             "methods": {"type": "array", "items": {"type": "string"}, "minItems": 1,
                         "description": "run this entry on these methods of [[methods]] only (default: all)"}}
    assert set(props) == set(SOLVER_KEYS)
    entry = {**_table(props, required=["name"]),
             "if": {"properties": {"name": {"enum": adaptive}}},
             "then": {"required": ["tolerances"], "properties": {"nfe": False, "grid": {"const": "uniform"}}},
             "else": {"required": ["nfe"], "properties": {"tolerances": False}}}
    return {"type": "array", "items": entry, "minItems": 1,
            "description": "[[solvers]]: fixed-step solvers with nfe = [...], adaptive ones with tolerances"}


def spec_schema() -> Schema:
    """The JSON Schema (draft 2020-12) of a sweep spec, as parsed from TOML."""
    from odebench.bench.harness.process.runtime import PRECISIONS

    seed = rule_schema(lim.SEED)
    props: dict[str, Schema] = {
        "name": {"type": "string", "pattern": f"^{NAME_RE.pattern}$", "maxLength": NAME_MAX,
                 "description": f"the results folder's name: {NAME_RULE}"},
        "description": {"type": "string"},
        "seeds": {"type": "array", "items": seed, "minItems": 1, "uniqueItems": True, "default": [0]},
        "data_seed": {"oneOf": [seed, {"const": sc.PER_SEED}], "default": 0,
                      "description": "one data draw for every seed (an integer), or each seed its own "
                                     f"(\"{sc.PER_SEED}\": data_seed = seed)"},
        "device": {"type": "string", "pattern": sc.DEVICE_RE.pattern, "default": "cpu"},
        "precision": {"enum": list(PRECISIONS), "default": "fp32"},
        "compile": {"type": "boolean", "default": False},
        "train": train_schema(),
        "net": net_schema("mlp"),
        "eval": eval_schema(),
        "methods": methods_schema(),
        "datasets": datasets_schema(),
        "solvers": solvers_schema(),
        "budgets": _table({k: rule_schema(r, lim.DEFAULT_BUDGETS.get(k)) for k, r in lim.RULES_BUDGETS.items()},
                          "what a run may spend (not part of cell ids)"),
        "limits": _table({k: {"type": "integer", "minimum": 1, "maximum": 2**53, "default": v}
                          for k, v in lim.POLICY.items()}, "policy bounds raised (or lowered) for this spec"),
        "track": _table({k: rule_schema(r) for k, r in lim.RULES_TRACK.items()},
                        "tracking sinks (optional extras); offline, under the sweep folder, by default"),
    }
    assert set(props) == set(TOP_KEYS)
    return {"$schema": DRAFT, "$id": SCHEMA_ID, "title": "odebench sweep spec",
            "description": "A sweep spec of odebench (TOML). Generated by `odebench schema` from the validator's "
                           "rules; `odebench run --dry-run` checks what a schema cannot (policy bounds, relations).",
            **_table(props, required=["solvers"])}

