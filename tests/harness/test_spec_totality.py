"""Validation is total: every value a TOML file can hold ends in a Spec or in one clean error (exit 2).

The specs below are the ones an adversarial pass found ending in tracebacks, in runs that never end, or
accepted silently; each must now be refused with the key path and the fix.
"""

from __future__ import annotations

import pytest
from harness_tiny import tiny_spec, to_toml

from odebench.bench.cli import main
from odebench.bench.harness.spec.sweep import SpecError, load_spec, parse_spec


def problems_of(raw) -> list[str]:
    with pytest.raises(SpecError) as info:
        parse_spec(raw)
    return info.value.problems


def with_(path: tuple, value, **spec_kw) -> dict:
    raw = tiny_spec(**spec_kw)
    node = raw
    for k in path[:-1]:
        node = node[k] if not isinstance(node, dict) or k in node else node.setdefault(k, {})
    node[path[-1]] = value
    return raw


CASES = [
    # (key path, value, key path in the message, words of the message)
    (("train", "lr"), 10**400, "train.lr", "64 bits"),
    (("train", "lr"), 2**62, "train.lr", "a positive number <= 10"),
    (("solvers",), [{"name": "dopri5", "tolerances": [2**62]}], "solvers[0].tolerances", "below 1"),
    (("methods",), [{"name": "fm_ot", "sigma_min": 2**62}], "methods[0].sigma_min", "in [0, 1)"),
    (("data_seed",), 2**64, "data_seed", "64 bits"),
    (("data_seed",), 2**40, "data_seed", "<= 4294967295"),
    (("datasets",), [{"target": "moons", "options": {"n_train": "many"}}], "datasets[0].options.n_train",
     "must be an integer"),
    (("datasets",), [{"target": "moons", "options": {"n_train": 10**15}}], "datasets[0].options.n_train",
     "[limits] n_points"),
    (("datasets",), [{"target": "moons", "options": {"n_train": -5}}], "datasets[0].options.n_train", ">= 1"),
    (("datasets",), [{"target": "imagefolder", "options": {"channels": 2}}], "datasets[0].options.channels",
     "one of 1, 3"),
    (("datasets",), [{"target": "digits", "options": {"test_fraction": float("nan")}}],
     "datasets[0].options.test_fraction", "not a finite number"),
    (("datasets",), [{"target": "cifar10", "options": {"n_train": "all"}}], "datasets[0].options.n_train",
     "must be an integer"),
    (("methods",), [{"name": "rf", "k": 10**9}], "methods[0].k", "[limits] k"),
    (("net", "depth"), -1, "net.depth", ">= 1"),
    (("net", "hidden"), 0, "net.hidden", ">= 1"),
    (("eval", "metric_options"), {"w2": {"max_points": -1}}, "eval.metric_options.w2.max_points", ">= 2"),
    (("eval", "metric_options"), {"w2": {"max_pts": 5}}, "eval.metric_options.w2.max_pts", "accepted: max_points"),
    (("train", "steps"), 10**18, "train.steps", "[limits] steps"),
    (("eval", "n_samples"), 10**12, "eval.n_samples", "[limits] n_samples"),
    (("description",), "x\0y", "description", "NUL"),
    (("seeds",), [0, 2**40], "seeds", "<= 4294967295"),
    (("budgets",), {"max_nfe": 0}, "budgets.max_nfe", ">= 1"),
    (("budgets",), {"cell_seconds": -1.0}, "budgets.cell_seconds", "positive number"),
    (("budgets",), {"max_steps": 1}, "budgets.max_steps", "unknown key"),
    (("limits",), {"steps": "a lot"}, "limits.steps", "integer"),
    (("limits",), {"speed": 3}, "limits.speed", "not a policy bound"),
    (("device",), "cuda:99999999", "device", "cuda:N"),
]


@pytest.mark.parametrize("path, value, where, words", CASES, ids=[c[2] for c in CASES])
def test_each_bad_value_is_one_problem_with_its_path_and_the_fix(path, value, where, words):
    got = problems_of(with_(path, value))
    assert any(p.startswith(where) and words in p for p in got), got


def test_a_description_nested_2000_lists_deep_is_an_error_not_a_recursion(tmp_path, capsys):
    spec = tmp_path / "deep.toml"
    spec.write_text(to_toml(tiny_spec()) + "description = " + "[" * 2000 + "]" * 2000 + "\n")
    assert main(["run", "--spec", str(spec), "--out", str(tmp_path / "o"), "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "nested too deep" in err and "Traceback" not in err
    assert problems_of(tiny_spec(description=[[[[[[[["x"]]]]]]]]))[0].startswith("description")


def test_policy_bounds_are_raised_by_a_limits_table():
    raw = tiny_spec()
    raw["train"]["steps"] = 20_000_000
    assert any("[limits] steps = N" in p for p in problems_of(raw))
    raw["limits"] = {"steps": 50_000_000}
    assert parse_spec(raw).cells[0].train["steps"] == 20_000_000


def test_grids_that_expand_past_the_cell_bound_are_refused_before_expanding():
    raw = tiny_spec(methods=[{"name": "interpolant", "gamma": [0.1 * i for i in range(1, 101)],
                              "eps": [0.01 * i for i in range(1, 101)], "t_eps": [0.001 * i for i in range(1, 101)]}])
    got = problems_of(raw)
    assert any(p.startswith("methods[0]:") and "1000000 method configs" in p for p in got), got


@pytest.mark.parametrize("text", ["name = 'x'\nname = 'y'\n", "\x00\x01", "[[[", "a = 1979-05-27\n"])
def test_broken_toml_files_are_one_error_line(tmp_path, capsys, text):
    spec = tmp_path / "bad.toml"
    spec.write_text(text)
    assert main(["run", "--spec", str(spec), "--out", str(tmp_path / "o"), "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "Traceback" not in err


def test_unreadable_spec_paths_are_one_error_line(tmp_path, capsys):
    folder = tmp_path / "a_folder.toml"
    folder.mkdir()
    binary = tmp_path / "binary.toml"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    for path in (folder, binary):
        assert main(["run", "--spec", str(path), "--dry-run"]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error:") and "Traceback" not in err


def test_dry_run_of_an_image_set_without_its_folder_is_a_clean_error(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("ODEBENCH_DATA", raising=False)
    spec = tmp_path / "img.toml"
    raw = tiny_spec(targets=("imagefolder",))
    spec.write_text(to_toml(raw))
    assert main(["run", "--spec", str(spec), "--out", str(tmp_path / "o"), "--dry-run"]) == 2
    assert "reads a local directory" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["smoke", "quick", "standard", "images", "cifar10"])
def test_builtin_specs_still_validate_with_unchanged_cell_ids(name):
    assert load_spec(name).cells
