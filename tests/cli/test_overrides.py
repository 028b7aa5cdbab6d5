"""``odebench run --set KEY=VALUE``: one value of a spec changed from the command line, validated like the spec,
the effective spec written into the sweep folder (and runnable again); the TOML writer behind it."""

from __future__ import annotations

import json
import sys

import pytest
from harness_tiny import tiny_spec, to_toml
from hypothesis import HealthCheck, given, settings
from spec_fuzz import mutated_specs

from odebench.bench.cli import main
from odebench.bench.harness.spec.limits import shape_problems
from odebench.bench.harness.spec.overrides import OverrideError, apply_overrides
from odebench.bench.harness.spec.sweep import builtin_spec_names, load_spec, read_spec
from odebench.bench.harness.spec.toml import dumps
from odebench.bench.harness.store.records import RecordStore

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def _spec_file(tmp_path):
    raw = tiny_spec("ov", methods=[{"name": "fm_ot"}, {"name": "rf", "k": 1}],
                    solvers=[{"name": "euler", "nfe": [4]}, {"name": "dopri5", "tolerances": [1e-3]}])
    path = tmp_path / "ov.toml"
    path.write_text(to_toml(raw))
    return path


def test_set_changes_values_and_the_run_writes_the_effective_spec(tmp_path, capsys):
    spec, out = _spec_file(tmp_path), tmp_path / "out"
    sets = ["--set", "train.steps=12", "--set", "methods[fm_ot].sigma_min=[0.0, 0.01]", "--set",
            "solvers[euler].nfe=[2]", "--set", "datasets[moons].eval.n_samples=64", "--set", "description=edited"]
    assert main(["run", "--spec", str(spec), *sets, "--out", str(out), "--jobs", "1", "--no-progress"]) == 0
    capsys.readouterr()
    effective = out / "ov" / "effective_spec.toml"
    text = effective.read_text()
    assert "with --set train.steps=12 --set methods[fm_ot].sigma_min=[0.0, 0.01]" in text.splitlines()[0]
    raw = tomllib.loads(text)
    assert raw["train"]["steps"] == 12 and raw["methods"][0] == {"name": "fm_ot", "sigma_min": [0.0, 0.01]}
    assert raw["solvers"][0]["nfe"] == [2] and raw["datasets"][0]["eval"] == {"n_samples": 64}
    assert raw["description"] == "edited" and raw["methods"][1] == {"name": "rf", "k": 1}  # the rest as it was
    records = RecordStore(out / "ov").records()
    assert len(records) == 3 * 2 and {r["config"]["train"]["steps"] for r in records} == {12}
    assert {r["config"]["eval"]["n_samples"] for r in records} == {64}
    # the effective spec runs again as it is: the same cells, all finished
    again = load_spec(str(effective))
    assert {c.id for c in again.cells} == {r["cell_id"] for r in records}
    assert json.loads((out / "ov" / "sweep.json").read_text())["cells"] == sorted(c.id for c in again.cells)


def test_a_dry_run_plans_the_effective_spec_and_writes_nothing(tmp_path, capsys):
    spec, out = _spec_file(tmp_path), tmp_path / "out"
    assert main(["run", "--spec", str(spec), "--set", "methods[rf].k=[1, 2]", "--out", str(out), "--dry-run"]) == 0
    printed = capsys.readouterr().out
    assert "with --set methods[rf].k=[1, 2]" in printed and "effective_spec.toml" in printed
    assert "6 cells" in printed or "6 to run" in printed, printed
    assert not out.exists()


@pytest.mark.parametrize("override, words", [
    ("train.stpes=5", ["train.stpes: unknown key", "allowed: batch_size"]),
    ("train.steps=-1", ["train.steps: must be an integer >= 1"]),
    ("methods[rfx].k=2", ["no [[methods]] entry has name = 'rfx'", "methods[1] (name = 'rf')", "edit the spec"]),
    ("methods[5].k=2", ["methods[5] does not exist", "methods[0] to methods[1]"]),
    ("methods.k=2", ["methods is an array of tables: select an entry, e.g. methods[0]"]),
    ("seeds.first=1", ["seeds is [0], not a table"]),
    ("train.steps", ["expected --set KEY=VALUE, e.g. --set train.steps=500"]),
    ("train.steps=[1, 2", ["cannot read '[1, 2' as a TOML value", "in quotes"]),
    ("train steps=3", ["'train steps' is not a key"]),
    ("methods[rf]=3", ["name a key of the entry, e.g. methods[rf].KEY=VALUE"]),
    ("train[0].steps=3", ["train is not an array of tables", "drop the brackets"]),
])
def test_a_bad_set_is_one_clear_error_naming_the_key_and_the_fix(tmp_path, capsys, override, words):
    out = tmp_path / "out"
    for dry in ([], ["--dry-run"]):
        assert main(["run", "--spec", str(_spec_file(tmp_path)), "--set", override, "--out", str(out), *dry]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and "Traceback" not in err
        for word in words:
            assert word in err, err
    assert not out.exists()


def test_values_are_toml_and_plain_words_are_strings():
    raw = {"name": "a", "train": {}, "methods": [{"name": "rf"}, {"name": "rf", "k": 2}]}
    out = apply_overrides(raw, ["device=cuda:0", "train.lr=1e-3", "compile=true", "methods[1].k=3",
                                "eval.metric_options.w2.max_points=5", 'description="two words"',
                                "eval.metrics={points = [\"w2\"]}"])
    assert out["device"] == "cuda:0" and out["train"]["lr"] == 1e-3 and out["compile"] is True
    assert out["methods"][1]["k"] == 3 and out["eval"]["metric_options"] == {"w2": {"max_points": 5}}
    assert out["description"] == "two words" and out["eval"]["metrics"] == {"points": ["w2"]}
    assert raw == {"name": "a", "train": {}, "methods": [{"name": "rf"}, {"name": "rf", "k": 2}]}  # a copy
    with pytest.raises(OverrideError, match=r"2 \[\[methods\]\] entries have name = 'rf'; select one by position"):
        apply_overrides(raw, ["methods[rf].k=1"])


@pytest.mark.parametrize("name", builtin_spec_names())
def test_the_toml_writer_round_trips_every_built_in_spec(name):
    raw, _ = read_spec(name)
    assert tomllib.loads(dumps(raw, "a header\nof two lines")) == raw


@settings(max_examples=80, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(mutated_specs())
def test_the_toml_writer_round_trips_whatever_a_spec_can_hold(raw):
    if not isinstance(raw, dict) or shape_problems(raw):
        return
    assert tomllib.loads(dumps(raw)) == raw
