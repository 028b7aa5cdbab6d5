"""``odebench schema``: the JSON Schema of specs is generated from the validator's rules and registries, so it
agrees with them rule by rule, accepts every spec the validator accepts, and catches a misspelled key."""

from __future__ import annotations

import json

import jsonschema
import pytest
from harness_tiny import tiny_spec
from hypothesis import HealthCheck, given, settings
from spec_fuzz import mutated_specs

from odebench.bench.cli import main
from odebench.bench.harness.spec import checks as sc
from odebench.bench.harness.spec import limits as lim
from odebench.bench.harness.spec.schema import spec_schema
from odebench.bench.harness.spec.sweep import SpecError, builtin_spec_names, parse_spec, read_spec

SCHEMA = spec_schema()
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)


def errors(raw) -> list[tuple[str, str]]:
    return [(e.json_path, e.message) for e in VALIDATOR.iter_errors(raw)]


def test_the_schema_is_a_valid_draft_2020_12_schema_printed_by_the_command(capsys):
    jsonschema.Draft202012Validator.check_schema(SCHEMA)
    assert main(["schema"]) == 0
    assert json.loads(capsys.readouterr().out) == SCHEMA


@pytest.mark.parametrize("name", builtin_spec_names())
def test_every_built_in_spec_passes(name):
    raw, _ = read_spec(name)
    assert errors(raw) == []


@pytest.mark.parametrize("edit, path, word", [
    (lambda s: s["train"].update(stpes=10), "$.train", "stpes"),
    (lambda s: s.update(seed=[1]), "$", "seed"),
    (lambda s: s["methods"].append({"name": "rf", "kk": 2}), "$.methods[1]", "kk"),
    (lambda s: s["methods"].append({"name": "fm_otx"}), "$.methods[1].name", "fm_otx"),
    (lambda s: s["solvers"][0].update(name="eulr"), "$.solvers[0].name", "eulr"),
    (lambda s: s["eval"].update(metrics=["w2", "mmdd"]), "$.eval.metrics", ""),
    (lambda s: s["datasets"][0].update(options={"n_trian": 5}), "$.datasets[0].options", "n_trian"),
    (lambda s: s["net"].update(hiden=8), "$.net", "hiden"),
    (lambda s: s.update(track={"sinks": ["tensorbord"]}), "$.track.sinks[0]", "tensorbord"),
    (lambda s: s["solvers"].append({"name": "dopri5", "nfe": [4]}), "$.solvers[1]", ""),
])
def test_a_misspelled_key_or_name_is_caught_where_the_validator_catches_it(edit, path, word):
    raw = tiny_spec()
    assert errors(raw) == []
    edit(raw)
    found = errors(raw)
    assert found and any(p.startswith(path) and word in m for p, m in found), found
    with pytest.raises(SpecError):
        parse_spec(raw)


# ------------------------------------------------------------------------- rule by rule, from the tables
def _branch(variants: list, key: str, name: str) -> dict:
    [then] = [v["then"] for v in variants if v["if"]["properties"][key].get("const") == name]
    return then


def _fragments():
    """(where, rule, the schema fragment generated for it) for every rule of every table."""
    from odebench.bench.data import DATASETS
    from odebench.bench.nets import NETS
    from odebench.methods import METHODS
    from odebench.metrics import METRICS

    p = SCHEMA["properties"]
    for table, rules in (("train", lim.RULES_TRAIN), ("eval", lim.RULES_EVAL), ("budgets", lim.RULES_BUDGETS),
                         ("track", lim.RULES_TRACK)):
        for k, rule in rules.items():
            yield f"{table}.{k}", rule, p[table]["properties"][k]
    for net in NETS.names():
        for k, rule in lim.RULES_NETS.get(net, {}).items():
            yield f"net({net}).{k}", rule, _branch(p["net"]["allOf"], "name", net)["properties"][k]
    for ds in DATASETS.names():
        for k, rule in lim.RULES_DATASETS.get(ds, {}).items():
            options = _branch(p["datasets"]["items"]["allOf"], "target", ds)["properties"]["options"]
            yield f"datasets({ds}).options.{k}", rule, options["properties"][k]
    for m in METHODS.names():
        for k, rule in lim.method_rules(m).items():
            yield f"methods({m}).{k}", rule, _branch(p["methods"]["items"]["allOf"], "name", m)["properties"][k]
    for m in METRICS.names():
        for k, rule in (lim.metric_rules(m) or {}).items():
            yield f"metric_options.{m}.{k}", rule, p["eval"]["properties"]["metric_options"]["properties"][m][
                "properties"][k]


def _probes(rule: lim.Rule) -> list:
    base = [True, False, "x", "data", "offline", None, [], {}, 0, 1, -1, 0.5, 2, 3, 7, 1e-5, 10**9, -(10**9)]
    for edge in (rule.lo, rule.hi):
        if edge is not None:
            base += [edge, edge + 1, edge - 1, edge * 0.999999, edge * 1.000001, edge + 1e-9, edge - 1e-9]
    base += list(rule.choices) + list(rule.also)
    if rule.items:
        return [[], [1], [1, 2], list(rule.choices[:1]), list(rule.choices), ["x"], [0], 1, "x",
                [1] * (rule.max_len + 1), list(rule.choices) * 2]
    return base


def test_the_schema_agrees_with_every_rule_of_the_validator():
    """Each value accepted by a rule (policy bounds raised out of the way) is accepted by its schema fragment,
    and each value it refuses is refused, for every key of every rules table. One exception, stated in the
    schema's module: JSON Schema counts 2.0 as an integer, TOML and the validator do not."""
    checked = 0
    with lim.policy({k: 2**62 for k in lim.POLICY}):
        for where, rule, fragment in _fragments():
            one = fragment["anyOf"][0] if where.startswith("methods(") else fragment  # a value or a grid of them
            check = jsonschema.Draft202012Validator(one)
            for v in _probes(rule):
                if v is None or (rule.kind == "int" and isinstance(v, float) and v.is_integer()):
                    continue
                if rule.items and isinstance(v, list) and any(isinstance(x, float) and x.is_integer() for x in v):
                    continue
                assert (rule.problem(v) is None) == check.is_valid(v), (where, v, rule.describe(), one)
                checked += 1
    assert checked > 1000


def test_every_key_the_validator_accepts_has_a_place_in_the_schema():
    from odebench.methods import METHODS

    p = SCHEMA["properties"]
    for m in METHODS.names():
        assert set(_branch(p["methods"]["items"]["allOf"], "name", m)["properties"]) == {"name",
                                                                                         *sc.method_hparams(m)}
    assert p["solvers"]["items"]["properties"]["name"]["enum"] and p["track"]["properties"]["sinks"]


@settings(max_examples=60, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(mutated_specs())
def test_a_spec_the_validator_accepts_passes_the_schema(raw):
    try:
        parse_spec(raw)
    except SpecError:
        return
    assert errors(raw) == []
