"""The holes an adversarial pass found in spec validation, each closed: an image folder that walks the file system,
integers past Python's conversion limit, dotted keys quadratic in the TOML parser, ``--set`` positions in
non-ASCII digits, specs accepted but wrong (no metric for a dataset's kind, a source of another shape, sizes only
the run refused, an option for another kind of data, tolerances no solve can reach, method hparams without a
range), and checkpoints whose dtypes ``odebench eval`` cast silently.
"""

from __future__ import annotations

import os

import pytest
import torch
from harness_tiny import tiny_spec, to_toml
from torch import nn

from odebench.bench.cli import main
from odebench.bench.data import images
from odebench.bench.data.images import DataDirError
from odebench.bench.harness.execution.given import GivenModelError, fill, load_given
from odebench.bench.harness.spec import limits as lim
from odebench.bench.harness.spec.checks import method_hparams
from odebench.bench.harness.spec.sweep import SpecError, parse_spec
from odebench.methods import METHODS


def dry_run(tmp_path, capsys, text: str, *extra: str) -> tuple[int, str]:
    spec = tmp_path / "spec.toml"
    spec.write_text(text)
    code = main(["run", "--spec", str(spec), "--out", str(tmp_path / "out"), "--dry-run", *extra])
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    return code, err


def problems_of(raw) -> list[str]:
    with pytest.raises(SpecError) as info:
        parse_spec(raw)
    return info.value.problems


# ------------------------------------------------------------------------------------ file-system walks
@pytest.mark.parametrize("data_dir", ["/proc", "../" * 20])
def test_an_image_folder_above_everything_is_a_clean_refusal(tmp_path, capsys, monkeypatch, data_dir):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(images, "MAX_WALK_ENTRIES", 5_000)  # the bound, small: the test walks a little of /
    raw = tiny_spec(targets=("imagefolder",), eval={"n_samples": 8, "metrics": ["sliced_w"]})
    raw["datasets"] = [{"target": "imagefolder", "options": {"data_dir": data_dir}}]
    code, err = dry_run(tmp_path, capsys, to_toml(raw))
    assert code == 2 and err.startswith("error: ") and "imagefolder" in err
    assert "more than 5,000 files and folders" in err or "cannot read" in err


def test_the_walk_stays_in_the_folder_and_is_bounded(tmp_path, monkeypatch):
    from PIL import Image

    outside = tmp_path / "outside"
    outside.mkdir()
    for name in ("far.png", "away.png"):
        Image.new("L", (8, 8), 50).save(outside / name)
    root = tmp_path / "images"
    (root / "deep").mkdir(parents=True)
    Image.new("L", (8, 8), 10).save(root / "a.png")
    Image.new("L", (8, 8), 90).save(root / "deep" / "b.png")
    (root / "link").symlink_to(outside, target_is_directory=True)  # a folder elsewhere: not entered
    (root / "loop").symlink_to(root, target_is_directory=True)  # nor a loop
    os.mkfifo(root / "pipe.png")  # not a regular file: not read
    assert [p.name for p in images.image_files(root)] == ["a.png", "b.png"]
    monkeypatch.setattr(images, "MAX_WALK_ENTRIES", 3)
    with pytest.raises(DataDirError, match="more than 3 files and folders"):
        images.image_files(root)
    monkeypatch.setattr(images, "MAX_WALK_ENTRIES", 1000)
    monkeypatch.setattr(images, "MAX_WALK_DEPTH", 0)
    with pytest.raises(DataDirError, match="more than 0 folders below"):
        images.image_files(root)


@pytest.mark.parametrize("data_dir", ["x" * 300, "~no_such_user_odebench/images"])
def test_a_data_dir_no_folder_can_have_is_a_clean_refusal(data_dir):
    with pytest.raises(DataDirError, match="cannot be used"):
        images.imagefolder(data_dir=data_dir)


# --------------------------------------------------------------------------------- the text before parsing
def test_an_integer_of_5000_digits_is_refused_before_python_converts_it(tmp_path, capsys):
    code, err = dry_run(tmp_path, capsys, "data_seed = " + "1" * 5000 + "\n" + to_toml(tiny_spec()))
    assert code == 2 and "more than 100 digits" in err


def test_a_dotted_key_of_thousands_of_parts_is_refused_before_parsing(tmp_path, capsys):
    code, err = dry_run(tmp_path, capsys, ".".join(["k"] * 5000) + " = 1\n" + to_toml(tiny_spec()))
    assert code == 2 and "dotted key of more than 32 parts" in err


def test_dots_and_digits_inside_strings_and_comments_are_not_counted(tmp_path, capsys):
    text = f'description = "{".".join(["v"] * 200)} {"7" * 300}"  # {"." * 50}\n' + to_toml(tiny_spec())
    assert dry_run(tmp_path, capsys, text)[0] == 0


@pytest.mark.parametrize("override, words", [
    ("methods[\u00b2].k=1", "positions are written in ASCII digits"),
    ("methods[\u0663].k=1", "positions are written in ASCII digits"),
    ("methods[" + "9" * 40 + "].k=1", "does not exist"),
    ("train.steps=" + "1" * 5000, "more than 100 digits"),
    ("eval.metric_options={ " + ".".join(["k"] * 4000) + " = 1 }", "dotted key of more than 32 parts"),
])
def test_bad_set_overrides_are_one_error_line(tmp_path, capsys, override, words):
    code, err = dry_run(tmp_path, capsys, to_toml(tiny_spec()), "--set", override)
    assert code == 2 and err.startswith("error: ") and words in err


# ------------------------------------------------------------------------------- accepted but wrong
@pytest.mark.parametrize("metrics", [{}, {"image": ["fd"]}, {"points": []}])
def test_every_dataset_gets_metrics_for_its_kind(metrics):
    raw = tiny_spec()
    raw["eval"] = {"metrics": metrics}
    assert any(p.startswith("eval.metrics") and ("no metric for points data" in p or "non-empty" in p)
               for p in problems_of(raw))


def test_digits_features_on_points_are_refused():
    raw = tiny_spec()
    raw["eval"] = {"metrics": ["w2", "precision"], "metric_options": {"precision": {"features": "digits"}}}
    assert any(p.startswith("eval.metric_options.precision.features") and "needs image data" in p
               for p in problems_of(raw))
    raw["datasets"] = [{"target": "digits"}]
    raw["eval"]["metrics"] = ["sliced_w", "precision"]
    assert parse_spec(raw).cells  # the digits' own features, on the digits


@pytest.mark.parametrize("target, source", [("moons", "digits"), ("digits", "moons")])
def test_a_source_of_another_shape_is_refused_by_the_dry_run_and_the_run(tmp_path, capsys, target, source):
    raw = tiny_spec(methods=[{"name": "rf", "k": 1}])
    raw["datasets"] = [{"target": target, "source": source}]
    raw["eval"] = {"n_samples": 16, "metrics": ["sliced_w"]}
    code, err = dry_run(tmp_path, capsys, to_toml(raw))
    assert code == 2 and f"dataset '{target}' with source '{source}'" in err and "shape" in err
    spec = tmp_path / "spec.toml"
    assert main(["run", "--spec", str(spec), "--out", str(tmp_path / "out"), "--jobs", "1", "--no-progress"]) == 2
    assert "shape" in capsys.readouterr().err
    assert not (tmp_path / "out" / raw["name"] / "cells").exists()


def test_the_dry_run_refuses_networks_the_run_refuses(tmp_path, capsys):
    raw = tiny_spec()
    raw["net"] = {"name": "mlp", "hidden": 65536, "depth": 256}
    code, err = dry_run(tmp_path, capsys, to_toml(raw))
    assert code == 2 and "parameters" in err and "[limits] parameters" in err


@pytest.mark.parametrize("tol", [1e-300, 1e-13, 0.0])
def test_tolerances_no_solve_can_reach_are_refused(tol):
    raw = tiny_spec(solvers=[{"name": "dopri5", "tolerances": [tol]}])
    assert any(p.startswith("solvers[0].tolerances") for p in problems_of(raw))
    raw = tiny_spec(methods=[{"name": "rf", "k": 2, "pair_rtol": tol}])
    assert any(p.startswith("methods[0].pair_rtol") for p in problems_of(raw))


@pytest.mark.parametrize("hparam, value", [("sigma_data", 1e9), ("p_std", 1e9), ("s_churn", 1e9), ("s_noise", 1e9),
                                           ("p_mean", -1e9), ("sigma_max", 1e11)])
def test_edm_hparams_have_ranges(hparam, value):
    raw = tiny_spec(methods=[{"name": "edm", hparam: value}])
    assert any(p.startswith(f"methods[0].{hparam}") and "must be" in p for p in problems_of(raw))


def test_every_hparam_of_every_built_in_method_has_a_rule():
    built_in = [n for n in METHODS.names() if METHODS.get(n).__module__.startswith("odebench.methods.")]
    missing = {n: [k for k in method_hparams(n) if k not in lim.method_rules(n)] for n in built_in}
    assert not {n: ks for n, ks in missing.items() if ks}


# ----------------------------------------------------------------------------------------- checkpoints
def _state(make):
    torch.manual_seed(0)
    net = nn.Linear(2, 2)
    return net, {k: make(v.detach().clone()) for k, v in net.state_dict().items()}


@pytest.mark.parametrize("make, words", [
    (lambda t: t.to(torch.complex64), "weight is complex64 where the network holds float32"),
    (lambda t: t.long(), "weight is int64 where the network holds float32"),
    (lambda t: t.to_sparse(), "weight is a sparse_coo tensor"),
])
def test_checkpoint_entries_the_network_cannot_take_are_refused(make, words):
    net, state = _state(make)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    with pytest.raises(GivenModelError, match=words):
        fill(net, state, "ckpt.pt", "m:f")
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())  # nothing was loaded


def test_a_floating_point_cast_is_said_and_kept_in_the_identity(factory_module, tmp_path):
    module = factory_module("from torch import nn\n\n\ndef make():\n    return nn.Linear(3, 2)\n")
    torch.manual_seed(0)
    torch.save({k: v.double() for k, v in nn.Linear(3, 2).state_dict().items()}, tmp_path / "f64.pt")
    _, method = load_given(f"{module}:make", tmp_path / "f64.pt", adapter="plain")
    assert method["cast"] == "float64 -> float32: 2 entries"
    torch.save(nn.Linear(3, 2).state_dict(), tmp_path / "f32.pt")
    assert "cast" not in load_given(f"{module}:make", tmp_path / "f32.pt", adapter="plain")[1]


def test_odebench_eval_refuses_a_complex_checkpoint_with_one_line(factory_module, tmp_path, capsys):
    module = factory_module("from torch import nn\n\n\ndef make():\n    return nn.Linear(3, 2)\n")
    torch.save({k: v.to(torch.complex64) for k, v in nn.Linear(3, 2).state_dict().items()}, tmp_path / "c.pt")
    code = main(["eval", "--model", f"{module}:make", "--checkpoint", str(tmp_path / "c.pt"), "--dataset", "moons",
                 "--out", str(tmp_path / "out"), "--no-progress", "--no-figures"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and "complex64" in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()
