"""The small things a newcomer meets first: the README's `.venv` is ignored by git, a dry run refuses what the
run refuses, a misspelt name gets a "did you mean", `odebench list` prints whole sentences in plain text, the
built-in specs and the docs say what they hold, and the dry run lists budgets in numeric order."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import torch

from odebench.bench.cli import main
from odebench.bench.harness.spec import catalog
from odebench.bench.harness.spec.sweep import load_spec

ROOT = Path(__file__).resolve().parents[2]


def one_error(capsys) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    return lines[0]


def test_git_ignores_the_readmes_virtual_environment():
    proc = subprocess.run(["git", "check-ignore", "-q", ".venv/bin/python"], cwd=ROOT)
    if proc.returncode == 128:
        pytest.skip("not a git checkout")
    assert proc.returncode == 0


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks a machine without CUDA")
def test_a_dry_run_refuses_a_device_the_run_refuses(tmp_path, capsys):
    assert main(["run", "--spec", "smoke", "--out", str(tmp_path), "--device", "cuda", "--dry-run"]) == 2
    assert "CUDA is not available here" in one_error(capsys)
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("dry", [True, False])
def test_address_without_ray_and_a_missing_weights_file_are_refused(tmp_path, capsys, dry):
    extra = ["--dry-run"] if dry else []
    assert main(["run", "--spec", "smoke", "--out", str(tmp_path), "--address", "10.0.0.1:6379", *extra]) == 2
    assert "--address 10.0.0.1:6379 only applies to --executor ray" in one_error(capsys)
    missing = tmp_path / "inception.pth"
    assert main(["run", "--spec", "smoke", "--out", str(tmp_path), "--inception-weights", str(missing),
                 "--no-progress", *extra]) == 2
    assert f"--inception-weights {missing}: no such file" in one_error(capsys)
    assert not (tmp_path / "smoke").exists()


def test_unknown_names_say_which_name_was_meant(tmp_path, capsys):
    assert main(["run", "--spec", "smok", "--dry-run"]) == 2
    assert "no built-in spec 'smok' (did you mean smoke?)" in capsys.readouterr().err
    assert main(["run", "--spec", "smoke", "--dry-run", "--out", str(tmp_path), "--set", 'methods[0].name="fm_o"',
                 "--set", 'eval.metrics=["w22"]', "--set", 'solvers[0].name="eulr"']) == 2
    err = capsys.readouterr().err
    assert "unknown method 'fm_o' (did you mean fm_ot?)" in err
    assert "unknown metric 'w22' (did you mean w2?)" in err and "unknown solver 'eulr' (did you mean euler" in err
    assert main(["run", "--spec", "smoke", "--dry-run", "--set", 'methods[0].name="zzzzzz"']) == 2
    assert "did you mean" not in capsys.readouterr().err  # nothing close: no guess


def test_list_prints_whole_sentences_in_plain_text():
    text = catalog.listing(list(catalog.CATEGORIES), verbose=True)
    assert "`" not in text  # no reStructuredText markup
    [line] = [line for line in text.splitlines() if line.strip().startswith("transport_cost ")]
    assert line.endswith("transport reference W_p^p(source law, data law).")  # not cut at the docstring's line end
    assert catalog.plain("``x`` and :func:`odebench.evaluate` and `y`") == "x and odebench.evaluate and y"


def test_the_smoke_spec_says_how_many_budgets_it_has():
    spec = load_spec("smoke")
    budgets = {c.nfe for c in spec.cells}
    words = {1: "one", 2: "two", 3: "three", 4: "four"}
    assert f"{words[len(budgets)]} budgets" in spec.description


def test_the_performance_doc_gives_the_quick_sweeps_current_size():
    spec = load_spec("quick")
    models = len({c.training_key() for c in spec.cells})
    doc = " ".join((ROOT / "docs" / "performance.md").read_text().split())
    assert f"{len(spec.cells)} cells over {models} trained models" in doc


def test_the_dry_run_lists_budgets_in_numeric_order(tmp_path, capsys):
    assert main(["run", "--spec", "quick", "--dry-run", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    [line] = [line for line in out.splitlines() if "rf(k=2) on moons: dpmpp_2m" in line]
    budgets = [int(n) for n in re.findall(r"dpmpp_2m/logsnr@(\d+)", line)]
    assert budgets == sorted(budgets) and len(budgets) == 4


def test_odebench_evaluate_shows_its_options_and_says_where_it_wrote(tmp_path, capsys):
    """`help(odebench.evaluate)` lists every option (no **options), the same as the API's; the call names the
    folder it wrote and the frame carries it."""
    import inspect

    from torch import nn

    import odebench
    from odebench.bench import api

    top, inner = inspect.signature(odebench.evaluate), inspect.signature(api.evaluate)
    assert not [p for p in top.parameters.values() if p.kind is p.VAR_KEYWORD]
    assert [(p.name, p.kind, p.default) for p in top.parameters.values()] == \
           [(p.name, p.kind, p.default) for p in inner.parameters.values()]

    class Field(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(2, 2)

        def forward(self, x, t):
            return self.lin(x) * t[:, None]

    frame = odebench.evaluate(Field(), "moons", solvers=[{"name": "euler", "nfe": [1]}], metrics=["w2"],
                              n_samples=32, out=tmp_path, report=False)
    where = tmp_path / "eval_Field_moons"
    assert frame.attrs["out_dir"] == str(where) and (where / "cells").is_dir()
    assert f"records in {where}" in capsys.readouterr().out


def test_a_folder_named_like_a_built_in_spec_does_not_stop_the_same_command(tmp_path, monkeypatch, capsys):
    """`odebench run --spec smoke --out .` makes ./smoke; running the same command again must resume, not read the
    folder as the spec file."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "smoke" / "cells").mkdir(parents=True)
    assert main(["run", "--spec", "smoke", "--out", ".", "--dry-run"]) == 0, capsys.readouterr().err
    assert "smoke" in capsys.readouterr().out
    (tmp_path / "mine").mkdir()  # a folder that is no built-in spec's name is still refused as a spec
    assert main(["run", "--spec", "mine", "--dry-run"]) == 2


@pytest.mark.parametrize("kind", ["fifo", "folder"])
def test_a_weights_or_checkpoint_path_that_is_no_file_is_called_what_it_is(tmp_path, capsys, kind):
    import os

    from odebench.bench.harness.execution.given import GivenModelError, read_checkpoint

    path = tmp_path / "weights"
    os.mkfifo(path) if kind == "fifo" else path.mkdir()
    said = "a FIFO" if kind == "fifo" else "a folder"
    assert main(["run", "--spec", "smoke", "--out", str(tmp_path / "out"), "--dry-run",
                 "--inception-weights", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"is {said}, not a regular file" in err and "no such file" not in err
    with pytest.raises(GivenModelError, match=f"is {said}, not a regular file"):
        read_checkpoint(path)
