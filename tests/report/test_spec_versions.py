"""Editing a spec and re-running into the same folder never mixes configurations: the run and the dry run
name the cells of the earlier version, the report leaves them out and lists them, and without a manifest
(an older folder) rows of different configurations are kept apart and labelled."""

from __future__ import annotations

import copy

import pandas as pd
import pytest
from harness_tiny import tiny_spec, to_toml
from threads import torch_threads

from odebench.bench.cli import main
from odebench.bench.harness.execution.run import run_sweep
from odebench.bench.harness.spec.sweep import parse_spec
from odebench.bench.harness.store.versions import MANIFEST, change_of, current_cell_ids, flat_config
from odebench.bench.report.build import write_report
from odebench.bench.report.tables import variant_labels

SPEC = tiny_spec(name="edited", methods=[{"name": "fm_ot"}, {"name": "rf", "n_pairs": 64}],
                 solvers=[{"name": "euler", "nfe": [2, 4]}])


def edited(steps: int) -> dict:
    spec = copy.deepcopy(SPEC)
    spec["train"]["steps"] = steps
    return spec


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """The issue's story: train.steps 30, then 20, one seed, the same sweep name and folder."""
    out = tmp_path_factory.mktemp("versions")
    with torch_threads(1):
        first = run_sweep(parse_spec(edited(30)), out, progress=False)
        second = run_sweep(parse_spec(edited(20)), out, progress=False)
    return out, first, second


def test_the_run_names_the_cells_of_the_earlier_version(folder):
    out, first, second = folder
    assert not any("earlier version" in n for n in first.notes)
    [note] = [n for n in second.notes if "earlier version" in n]
    assert note.startswith("4 cells from an earlier version of this spec: train.steps=30 (now 20) [4 cells]")
    assert "left out of the leaderboard" in note and "--out" in note
    assert current_cell_ids(out / "edited") == {c.id for c in parse_spec(edited(20)).cells}


def test_the_dry_run_names_them_too(folder, tmp_path, capsys):
    out, _, _ = folder
    path = tmp_path / "edited.toml"
    path.write_text(to_toml(edited(10)))
    assert main(["run", "--spec", str(path), "--out", str(out), "--dry-run"]) == 0
    text = capsys.readouterr().out
    assert "already done: 0 cells" in text
    line = next(line for line in text.splitlines() if "earlier version" in line)
    assert line.strip().startswith("8 cells from an earlier version of this spec: ")
    assert "train.steps=20 (now 10) [4 cells]" in line and "train.steps=30 (now 10) [4 cells]" in line


def test_the_report_leaves_them_out_and_lists_them(folder):
    out, _, _ = folder
    report = write_report(out / "edited", figures=False)
    csv = pd.read_csv(out / "edited" / "leaderboard.csv")
    assert len(csv) == 4 and set(csv["n_seeds"]) == {1}  # one seed per configuration, nothing pooled
    assert csv["w2_std"].isna().all()
    md = (out / "edited" / "leaderboard.md").read_text()
    last_table = md.split("## Cells from an earlier version")[0].split("mean ± std over seeds")[-1]
    # one seed per configuration: no ± anywhere but in the two-sample floor's row and legend (over its draws)
    assert "±" not in "\n".join(line for line in last_table.splitlines()
                                 if "two-sample floor" not in line and "Floor row" not in line)
    assert report.earlier is not None and list(report.earlier.frame["cells"]) == [2, 2]
    assert set(report.earlier.frame["what changed since"]) == {"train.steps=30 (now 20)"}
    html = (out / "edited" / "index.html").read_text()
    assert 'class="warn"' in html and "4 cells in this folder come from an earlier version" in html


def test_without_a_manifest_configurations_stay_apart_and_labelled(folder, tmp_path):
    import shutil

    shutil.copytree(folder[0] / "edited", tmp_path / "edited")
    (tmp_path / "edited" / MANIFEST).unlink()  # a folder written before manifests: every record counts
    write_report(tmp_path / "edited", figures=False)
    csv = pd.read_csv(tmp_path / "edited" / "leaderboard.csv")
    assert len(csv) == 8 and set(csv["n_seeds"]) == {1} and csv["w2_std"].isna().all()
    assert {"fm_ot [train.steps=20]", "fm_ot [train.steps=30]", "rf [train.steps=20]",
            "rf [train.steps=30]"} == set(csv["method"])
    assert csv.groupby("method")["config_key"].nunique().eq(1).all()


def test_change_of_says_what_changed():
    rf2 = {"name": "rf", "k": 2, "n_pairs": 64}
    cells = parse_spec(tiny_spec(methods=[rf2], solvers=[{"name": "euler", "nfe": [2, 4]}], seeds=[0])).cells
    now = [c.config() for c in cells]
    more_pairs = parse_spec(tiny_spec(methods=[{**rf2, "n_pairs": 128}])).cells[0].config()
    assert change_of(more_pairs, now) == "method.n_pairs=128 (now 64)"
    dropped_budget = parse_spec(tiny_spec(methods=[rf2], solvers=[{"name": "heun", "nfe": [8]}])).cells[0].config()
    assert change_of(dropped_budget, now) == "heun@8 seed 0: no longer swept"
    other_method = parse_spec(tiny_spec()).cells[0].config()
    assert change_of(other_method, now) == "fm_ot on moons: not in the spec now"
    bigger_net = parse_spec({**tiny_spec(methods=[rf2]), "net": {"name": "mlp", "hidden": 32, "depth": 1}}
                            ).cells[0].config()
    assert change_of(bigger_net, now) == "net.hidden=32 (now 16)"


def test_flat_config_leaves_out_seed_data_seed_and_budget_but_keeps_everything_else():
    a, b = parse_spec(tiny_spec(seeds=[0, 1], solvers=[{"name": "euler", "nfe": [4]}])).cells
    assert flat_config(a.config()) == flat_config(b.config())
    flat = flat_config(a.config())
    assert {"train.steps", "net.hidden", "eval.n_samples", "method.name", "target"} <= set(flat)
    assert not {"seed", "data_seed", "nfe", "solver", "tol", "sweep"} & set(flat)
    assert flat_config(a.config(), "bf16")["runtime.precision"] == '"bf16"'


def test_a_new_data_draw_is_named_as_such_and_is_no_variant():
    """data_seed 0 -> "per_seed": seed 1's old cell is named by its data seed, and the data seed, like the seed,
    never labels a configuration (it is a replicate axis)."""
    old = parse_spec(edited(30)).cells[0].config()
    new = parse_spec({**edited(30), "seeds": [0, 1], "data_seed": "per_seed"}).cells
    seed1 = [c.config() for c in new if c.seed == 1]
    assert change_of({**old, "seed": 1, "data_seed": 0}, seed1) == "seed 1: data_seed=0 (now 1)"
    assert flat_config(seed1[0]) == flat_config({**seed1[0], "data_seed": 0})


def test_a_training_option_that_is_off_reads_as_absent():
    """A record written before ``train.dequantize`` existed (a skipped cell of an older run, resumed) and one written
    after with it off are one configuration: no 'train.dequantize=unset' variant splits the method's rows."""
    new = parse_spec(tiny_spec()).cells[0].config()
    new = {**new, "train": {**new["train"], "dequantize": False, "until_converged": False, "forward_equivalents": 0}}
    old = {**new, "train": {k: v for k, v in new["train"].items() if k not in ("dequantize", "until_converged")}}
    assert flat_config(old) == flat_config(new)
    assert variant_labels(["moons", "moons"], [flat_config(old), flat_config(new)]) == ["", ""]
    on = {**new, "train": {**new["train"], "dequantize": True}}
    assert variant_labels(["moons", "moons"], [flat_config(old), flat_config(on)]) == ["train.dequantize=unset",
                                                                                       "train.dequantize=true"]
