"""Spec validation reports every problem at once, each with its key path and the fix; --dry-run plans."""

from __future__ import annotations

import pytest
from harness_tiny import tiny_spec, to_toml

from odebench.bench.cli import main
from odebench.bench.harness.spec.sweep import SpecError, builtin_spec_names, load_spec, parse_spec


def problems_of(raw) -> list[str]:
    with pytest.raises(SpecError) as info:
        parse_spec(raw)
    return info.value.problems


def test_tiny_spec_expands_to_the_full_grid():
    raw = tiny_spec(methods=[{"name": "fm_ot"}, {"name": "rf", "k": [1, 2]}], targets=("moons", "8gaussians"),
                    solvers=[{"name": "euler", "nfe": [1, 4]}, {"name": "dopri5", "tolerances": [1e-3]}],
                    seeds=[0, 1])
    spec = parse_spec(raw)
    assert len(spec.cells) == 3 * 2 * 3 * 2
    assert len({c.id for c in spec.cells}) == len(spec.cells)
    assert {c.method["k"] for c in spec.cells if c.method["name"] == "rf"} == {1, 2}


def test_every_problem_is_reported_at_once_with_its_key_path():
    raw = tiny_spec(
        bogus=1, device="gpu", seeds=[0, 0],
        methods=[{"name": "fm_ot"}, "rf", {"k": 2}, {"name": "rf", "k": "two"}, {"name": "rf", "k": []},
                 {"name": "fm_ot"}, {"name": "rf", "kk": 1}],
        solvers=[{"name": "euler", "nfe": [4, 4]}, {"name": "dopri5", "nfe": [8]}, {"name": "heun"},
                 {"name": "euler", "tolerances": [1e-3], "nfe": [4]}],
    )
    raw["train"] = {"steps": "ten", "lr": -1.0, "ema_decay": 1.5, "batchsize": 3}
    raw["net"] = {"name": "mlp", "hidden": "big", "width": 3}
    raw["eval"] = {"n_samples": 0, "metrics": ["w2", "nope"], "metric_options": {"w3": {}}}
    raw["datasets"] = [{"target": "moons"}, {"source": "moons"}, {"target": "moons"}, 7]
    got = problems_of(raw)
    expected = [
        ("bogus", "allowed top-level keys"),
        ("device", '"cpu", "cuda" or "cuda:N"'),
        ("seeds", "more than once"),
        ("train.steps", "must be an integer"),
        ("train.lr", "a positive number"),
        ("train.ema_decay", "[0, 1)"),
        ("train.batchsize", "allowed: batch_size"),
        ("net.hidden", "must be an integer"),
        ("net.width", "accepted: depth, hidden"),
        ("eval.n_samples", "integer >= 1"),
        ("eval.metrics", "unknown metric 'nope'"),
        ("eval.metric_options.w3", "unknown metric 'w3'"),
        ("methods[1]", "must be a table"),
        ("methods[2].name", "unknown method None"),
        ("methods[3].k", "must be an integer"),
        ("methods[4].k", "empty list"),
        ("methods[5]", "same method config as methods[0]"),
        ("methods[6].kk", "accepted: k, distill"),
        ("datasets[1].target", "unknown dataset None"),
        ("datasets[2]", "same target and source as datasets[0]"),
        ("datasets[3]", "must be a table"),
        ("solvers[0].nfe", "more than once"),
        ("solvers[1].nfe", "adaptive solver: give tolerances"),
        ("solvers[1].tolerances", "needs a non-empty list of positive floats"),
        ("solvers[2].nfe", "needs a non-empty list of positive integer NFE budgets"),
        ("solvers[3].tolerances", "fixed-step solver: give nfe"),
        ("solvers (euler)", "same solver, grid and budget"),
    ]
    for path, fix in expected:
        assert any(p.startswith(path + ":") and fix in p for p in got), (path, fix, got)


@pytest.mark.parametrize("key, value, fix", [
    ("methods", "fm_ot", "array of tables"),
    ("methods", [], "at least one [[methods]] table"),
    ("datasets", {"target": "moons"}, "array of tables"),
    ("solvers", None, "at least one [[solvers]] table"),
    ("train", [1], "must be a table"),
    ("eval", {"metrics": "w2"}, "list of metric names"),
    ("eval", {"metrics": {"pixels": ["w2"]}}, "allowed: image, points"),
    ("seeds", [], "non-empty list of integers"),
])
def test_malformed_sections_name_the_key_and_the_fix(key, value, fix):
    raw = tiny_spec()
    if value is None:
        raw.pop(key)
    else:
        raw[key] = value
    got = problems_of(raw)
    assert any(p.startswith(key) and fix in p for p in got), got


def test_gaussian_only_method_cannot_take_a_source_dataset_unless_filtered_out():
    raw = tiny_spec(methods=[{"name": "fm_ot"}, {"name": "rf"}])
    raw["datasets"] = [{"target": "moons"}, {"target": "moons", "source": "8gaussians"}]
    got = problems_of(raw)
    assert any(p.startswith("datasets[1].source") and "needs a Gaussian source" in p for p in got)
    raw["datasets"][1]["methods"] = ["rf"]
    spec = parse_spec(raw)
    transfer = [c for c in spec.cells if c.source == "8gaussians"]
    assert transfer and {c.method["name"] for c in transfer} == {"rf"}
    raw["datasets"][1]["methods"] = ["ddpm_typo"]
    assert any("not in this spec's [[methods]]" in p for p in problems_of(raw))


def test_per_dataset_overrides_touch_only_that_dataset():
    raw = tiny_spec(targets=("moons", "8gaussians"))
    raw["datasets"][1]["train"] = {"steps": 7}
    raw["datasets"][1]["eval"] = {"n_samples": 32}
    spec = parse_spec(raw)
    by_target = {c.target: c for c in spec.cells}
    assert by_target["moons"].train["steps"] == 30 and by_target["8gaussians"].train["steps"] == 7
    assert by_target["8gaussians"].train["lr"] == 2e-3  # the rest is inherited
    assert by_target["8gaussians"].eval["n_samples"] == 32
    assert by_target["8gaussians"].eval["metrics"] == by_target["moons"].eval["metrics"]


@pytest.mark.parametrize("name", ["smoke", "quick", "images", "cifar10"])
def test_builtin_specs_validate(name):
    assert load_spec(name).cells


def test_builtin_specs_sweep_the_data_prediction_samplers():
    """quick: DPM-Solver++(2M) on the log-SNR grid for the diffusion pair (and every other method it serves);
    images and cifar10: edm and EDM's sampler; every grid in a spec is a registered one."""
    quick = {(c.method["name"], c.solver_label) for c in load_spec("quick").cells}
    assert {("ddpm", "dpmpp_2m/logsnr"), ("edm", "dpmpp_2m/logsnr"), ("fm_ot", "dpmpp_2m/logsnr")} <= quick
    for name in ("images", "cifar10"):
        cells = {(c.method["name"], c.solver_label, c.nfe) for c in load_spec(name).cells}
        assert ("edm", "edm_heun/edm", 35 if name == "cifar10" else 17) in cells
        assert ("ddpm", "dpmpp_2m/logsnr", 20 if name == "cifar10" else 16) in cells


def test_standard_spec_validates_once_its_methods_exist():
    from importlib import resources

    from odebench.bench.harness.spec.sweep import tomllib
    from odebench.methods import METHODS
    from odebench.metrics import METRICS

    assert "standard" in builtin_spec_names()
    raw = tomllib.loads(resources.files("odebench.bench.harness.spec.builtin").joinpath("standard.toml").read_text())
    missing = sorted({m["name"] for m in raw["methods"]} - set(METHODS.names()))
    missing += sorted({m for names in raw["eval"]["metrics"].values() for m in names} - set(METRICS.names()))
    if missing:
        pytest.skip(f"standard names methods/metrics not registered in this checkout: {', '.join(missing)}")
    spec = load_spec("standard")
    assert {c.source for c in spec.cells} == {"gaussian", "8gaussians"}
    assert "digits" in {c.target for c in spec.cells}


def test_unknown_builtin_spec_lists_the_known_ones(capsys):
    assert main(["run", "--spec", "no_such_spec", "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert "built-in specs:" in err and "smoke" in err


def test_dry_run_prints_skips_parents_and_done_cells_without_training(tmp_path, capsys):
    raw = tiny_spec(methods=[{"name": "fm_ot"}, {"name": "rf", "k": 2, "n_pairs": 64}],
                    solvers=[{"name": "euler", "nfe": [1, 4]}, {"name": "heun", "nfe": [1, 4]},
                             {"name": "euler_maruyama", "nfe": [4]}])
    path = tmp_path / "plan.toml"
    path.write_text(to_toml(raw))
    out = tmp_path / "out"
    assert main(["run", "--spec", str(path), "--out", str(out), "--dry-run"]) == 0
    text = capsys.readouterr().out
    assert "10 cells over 2 trained models" in text
    assert "already done: 0 cells" in text
    assert "skipped without training: 4 cells" in text
    assert "heun@1: solver 'heun' needs at least 2 NFE per step" in text
    assert "euler_maruyama@4: solver 'euler_maruyama' needs sde" in text
    # rf(k=2) needs its parent, rf round 1, which no cell asked for: 3 trainings for 2 models
    assert "trainings: 3 (3 to train, 0 cached)" in text
    assert "rf(k=2, n_pairs=64) on moons seed 0, from rf on moons seed 0: 3 cells" in text
    assert "rf on moons seed 0: 0 cells" in text
    assert not out.exists()  # nothing trained, nothing written


def test_data_seed_per_seed_gives_each_seed_its_own_data_draw():
    """data_seed = "per_seed": every cell's data seed is its seed; an integer keeps one draw for all; seed 0's
    cells keep the ids they have under data_seed = 0."""
    raw = tiny_spec(seeds=[0, 3, 7])
    fixed = parse_spec({**raw, "data_seed": 0})
    per_seed = parse_spec({**raw, "data_seed": "per_seed"})
    assert {(c.seed, c.data_seed) for c in per_seed.cells} == {(0, 0), (3, 3), (7, 7)}
    assert {c.data_seed for c in fixed.cells} == {0}
    assert {c.id for c in per_seed.cells if c.seed == 0} == {c.id for c in fixed.cells if c.seed == 0}
    assert all(c.config()["data_seed"] == c.seed for c in per_seed.cells)  # what the records' configs carry
    assert {c.training_key() for c in per_seed.cells if c.seed == 3}.isdisjoint(
        {c.training_key() for c in fixed.cells if c.seed == 3})


@pytest.mark.parametrize("value", ["each", -1, 1.5, True, [0, 1]])
def test_a_bad_data_seed_names_both_forms(value):
    (problem,) = problems_of(tiny_spec(data_seed=value))
    assert problem.startswith("data_seed:") and '"per_seed"' in problem and "integer" in problem


def test_a_bad_data_seed_is_exit_2_without_a_traceback(tmp_path, capsys):
    spec = tmp_path / "s.toml"
    spec.write_text(to_toml(tiny_spec(data_seed="seed")))
    assert main(["run", "--spec", str(spec), "--out", str(tmp_path / "out"), "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert "data_seed" in err and "per_seed" in err and "Traceback" not in err


def test_a_solver_entry_may_name_the_methods_it_runs_on():
    raw = tiny_spec(methods=[{"name": "fm_ot"}, {"name": "edm"}], seeds=[0, 1],
                    solvers=[{"name": "euler", "nfe": [4]},
                             {"name": "edm_heun", "nfe": [4, 16], "grid": "edm", "methods": ["edm"]}])
    cells = parse_spec(raw).cells
    assert {(c.method["name"], c.solver_label) for c in cells} == {
        ("fm_ot", "euler"), ("edm", "euler"), ("edm", "edm_heun/edm")}
    assert len([c for c in cells if c.solver == "edm_heun"]) == 2 * 2  # two budgets, two seeds
    (problem,) = problems_of({**raw, "solvers": [{"name": "euler", "nfe": [4], "methods": ["edmm"]}]})
    assert problem.startswith("solvers[0].methods:") and "'edmm'" in problem and "edm, fm_ot" in problem
    (problem,) = problems_of({**raw, "solvers": [{"name": "euler", "nfe": [4], "methods": "edm"}]})
    assert problem.startswith("solvers[0].methods:") and "non-empty list" in problem
