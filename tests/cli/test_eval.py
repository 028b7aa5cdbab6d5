"""``odebench eval`` end to end on a checkpoint file: records, leaderboard and index page, a second run that does
no work, a new checkpoint that makes new cells; and the mistakes (a checkpoint that does not fit, a missing
factory, a malicious pickle, a held folder) as one ``error:`` line with exit code 2, nothing executed or written."""

from __future__ import annotations

import importlib.util
import json
import pickle

import pytest
import torch

from odebench.bench.cli import main
from odebench.bench.core.hashing import sha256_file
from odebench.bench.harness.store.lock import acquire

FACTORY = '''
import torch
from torch import nn


class Net(nn.Module):
    """A velocity network in odebench's convention: net(x, t), t in [0, 1] from the source to the data."""

    def __init__(self, hidden=16):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(3, hidden), nn.SiLU(), nn.Linear(hidden, 2))

    def forward(self, x, t):
        return self.body(torch.cat([x, t[:, None]], dim=1))


def make():
    return Net()


def make_wider():
    return Net(hidden=32)


NOT_A_FUNCTION = 3
'''

SPEC = '''name = "ignored"
seeds = [0]
[eval]
n_samples = 64
metrics = ["w2"]
[[solvers]]
name = "euler"
nfe = [2, 4]
[[solvers]]
name = "dpmpp_2m"
nfe = [4]
'''


def own_copy(path):
    """The factory module loaded by the test itself, under another name (the command line imports its own)."""
    spec = importlib.util.spec_from_file_location(f"{path.stem}_test_copy", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    return lines[0]


@pytest.fixture
def project(factory_module, tmp_path):
    """(module name, checkpoint path) of a small model in a user's folder (the test's working folder)."""
    name = factory_module(FACTORY)
    module = own_copy(tmp_path / f"{name}.py")
    torch.manual_seed(0)
    torch.save(module.make().state_dict(), tmp_path / "net.pt")
    (tmp_path / "spec.toml").write_text(SPEC)
    return name, tmp_path / "net.pt"


def run_eval(module: str, *extra: str, factory: str = "make", out: str = "out") -> int:
    return main(["eval", "--model", f"{module}:{factory}", "--dataset", "moons", "--spec", "spec.toml", "--out", out,
                 "--no-progress", "--no-figures", *extra])


def test_eval_writes_records_and_report_and_resumes(project, tmp_path, capsys):
    module, ckpt = project
    assert run_eval(module, "--checkpoint", str(ckpt)) == 0
    out = capsys.readouterr().out
    assert "3 cells, 0 already done; this run: ok 2, skipped 1" in out and "evaluated as given" in out
    sweep = tmp_path / "out" / f"eval_{module}.make_moons"
    for name in ("leaderboard.md", "leaderboard.csv", "index.html"):
        assert (sweep / name).is_file()
    assert f"make@{sha256_file(ckpt)[:8]}" in (sweep / "leaderboard.md").read_text()
    files = sorted((sweep / "cells").glob("*.json"))
    records = [json.loads(p.read_text()) for p in files]
    assert sorted(r["status"] for r in records) == ["ok", "ok", "skipped"]
    for r in records:
        method = r["config"]["method"]
        assert method["given_model"] == sha256_file(ckpt) and method["factory"] == f"{module}:make"
        assert method["adapter"] == "plain" and method["kind"] == "velocity"
        assert r["config"]["train"] == {} and r["config"]["net"] == {}
    skipped = next(r for r in records if r["status"] == "skipped")
    assert "x1_hat" in skipped["reason"]  # no path given: the data-prediction samplers do not apply
    before = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in files}

    assert run_eval(module, "--checkpoint", str(ckpt)) == 0  # the same command again: no work
    assert "3 cells, 3 already done; this run: nothing to do" in capsys.readouterr().out
    assert {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in files} == before
    assert sorted((sweep / "cells").glob("*.json")) == files

    torch.manual_seed(1)  # new weights for the same factory: new cells, the old ones an earlier version
    torch.save(own_copy(tmp_path / f"{module}.py").make().state_dict(), tmp_path / "net2.pt")
    assert run_eval(module, "--checkpoint", str(tmp_path / "net2.pt")) == 0
    captured = capsys.readouterr()
    assert "3 cells, 0 already done; this run: ok 2, skipped 1" in captured.out
    assert "3 cells from an earlier version of this spec: method.given_model=" in captured.out
    assert len(list((sweep / "cells").glob("*.json"))) == 6


def test_a_checkpoint_that_does_not_fit_the_factory(project, tmp_path, capsys):
    module, ckpt = project
    assert run_eval(module, "--checkpoint", str(ckpt), factory="make_wider") == 2
    line = one_error_line(capsys.readouterr().err)
    assert "does not fit the network" in line and "body.0.weight (16, 3) vs (32, 3)" in line
    assert "make the factory build the architecture the checkpoint was saved from" in line
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("factory, expected", [
    ("nope", "has no 'nope'; its callables: Net, make, make_wider"),
    ("NOT_A_FUNCTION", "NOT_A_FUNCTION is a int, not callable"),
])
def test_a_missing_or_wrong_factory(project, tmp_path, capsys, factory, expected):
    module, ckpt = project
    assert run_eval(module, "--checkpoint", str(ckpt), factory=factory) == 2
    assert expected in one_error_line(capsys.readouterr().err)
    assert main(["eval", "--model", "no_such_package_xyz.models:make", "--dataset", "moons", "--spec", "spec.toml",
                 "--out", "out"]) == 2
    assert "no module named 'no_such_package_xyz'" in one_error_line(capsys.readouterr().err)
    assert not (tmp_path / "out").exists()


class Payload:
    """Unpickling this calls open(marker, "w"): a checkpoint that runs code if loaded unsafely."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_a_malicious_pickle_is_refused_and_runs_nothing(project, tmp_path, capsys):
    module, ckpt = project
    marker = tmp_path / "EXECUTED"
    state = torch.load(ckpt, weights_only=True)
    torch.save({**state, "extra": Payload(marker)}, tmp_path / "evil.pt")
    assert run_eval(module, "--checkpoint", str(tmp_path / "evil.pt")) == 2
    line = one_error_line(capsys.readouterr().err)
    assert "weights_only=True" in line and "it would call io.open" in line and "torch.save(model.state_dict()" in line
    assert not marker.exists() and not (tmp_path / "out").exists()
    with pytest.raises(pickle.UnpicklingError):
        torch.load(tmp_path / "evil.pt", weights_only=True)
    torch.load(tmp_path / "evil.pt", weights_only=False)  # the test's own check that the payload is real
    assert marker.exists()


@pytest.mark.parametrize("cut", [0, 1, 2, 100, -10], ids=["empty", "one-byte", "two-bytes", "head", "tail-cut"])
def test_a_truncated_or_foreign_checkpoint_is_called_what_it_is(project, tmp_path, capsys, cut):
    """Not "holds more than tensors" (that is for a pickle that would run code): the file is cut or no checkpoint."""
    module, ckpt = project
    data = ckpt.read_bytes()
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"x" if cut == 1 else data[:cut])
    assert run_eval(module, "--checkpoint", str(bad)) == 2
    line = one_error_line(capsys.readouterr().err)
    size = bad.stat().st_size
    assert f"not a readable torch checkpoint ({size} byte" in line, line
    assert ("empty" if size == 0 else "truncated, or not a file torch.save wrote") in line
    assert "more than tensors" not in line and "torch.save(model.state_dict()" in line
    assert not (tmp_path / "out").exists()


def test_a_held_folder_is_refused(project, tmp_path, capsys):
    module, ckpt = project
    (tmp_path / "out").mkdir()
    with acquire(tmp_path / "out"):
        assert run_eval(module, "--checkpoint", str(ckpt)) == 2
    assert "is in use by another odebench run" in one_error_line(capsys.readouterr().err)
    assert not (tmp_path / "out" / f"eval_{module}.make_moons").exists()


def test_state_key_and_safetensors(project, tmp_path, capsys):
    module, ckpt = project
    state = torch.load(ckpt, weights_only=True)
    torch.save({"ema_model": state, "net_model": state, "step": 3}, tmp_path / "both.pt")
    assert run_eval(module, "--checkpoint", str(tmp_path / "both.pt")) == 2
    assert "name one of ema_model, net_model with --state-key" in one_error_line(capsys.readouterr().err)
    assert run_eval(module, "--checkpoint", str(tmp_path / "both.pt"), "--state-key", "ema_model") == 0
    safetensors = pytest.importorskip("safetensors.torch")
    safetensors.save_file(state, str(tmp_path / "net.safetensors"))
    assert run_eval(module, "--checkpoint", str(tmp_path / "net.safetensors"), "--name", "st") == 0
    assert "3 cells, 0 already done" in capsys.readouterr().out


def test_a_model_whose_shape_does_not_fit_the_dataset_is_refused_before_any_cell(project, tmp_path, capsys):
    """A 2-D model on the 8x8 digits used to run every cell into the same shape error (exit 1): now one line,
    exit 2, no cell written."""
    module, ckpt = project
    assert main(["eval", "--model", f"{module}:make", "--checkpoint", str(ckpt), "--dataset", "digits", "--spec",
                 "spec.toml", "--out", "out", "--no-progress", "--no-figures"]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert "the model does not take digits's data (points of shape (1, 8, 8))" in line
    assert not list((tmp_path / "out").rglob("*.json"))


def test_one_model_on_two_datasets_keeps_both_current(project, tmp_path, capsys):
    """The default folder names the dataset: a second dataset used to share ``eval_<factory>`` with the first and
    make the first one's cells "an earlier version", left out of its report (docs/decisions.md, 52)."""
    from odebench.bench.report.tables import load_sweep

    module, ckpt = project
    assert run_eval(module, "--checkpoint", str(ckpt)) == 0
    assert main(["eval", "--model", f"{module}:make", "--checkpoint", str(ckpt), "--dataset", "circles", "--spec",
                 "spec.toml", "--out", "out", "--no-progress", "--no-figures"]) == 0
    captured = capsys.readouterr()
    assert "earlier version" not in captured.out + captured.err
    for dataset in ("moons", "circles"):
        sweep = load_sweep(tmp_path / "out" / f"eval_{module}.make_{dataset}")
        assert sweep.earlier == [] and sweep.datasets() == [dataset]
        assert sorted(sweep.frame["status"]) == ["ok", "ok", "skipped"]
        board = (sweep.dir / "leaderboard.md").read_text()
        assert f"## {dataset}" in board and "earlier version" not in board
