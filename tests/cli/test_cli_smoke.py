"""End to end: the CLI on the smoke spec writes one record per cell, and a second run does nothing."""

import json

import pytest

from odebench.bench.cli import main
from odebench.bench.harness.spec.sweep import load_spec


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("results")
    code = main(["run", "--spec", "smoke", "--out", str(out), "--no-progress"])
    return out, code


def test_smoke_run_writes_one_record_per_cell(smoke_run, capsys):
    out, code = smoke_run
    assert code == 0
    spec = load_spec("smoke")
    files = sorted((out / "smoke" / "cells").glob("*.json"))
    assert {f.stem for f in files} == {c.id for c in spec.cells}
    records = [json.loads(f.read_text()) for f in files]
    for r in records:
        assert r["schema_version"] == 1
        assert r["config_hash"] == r["cell_id"]
        assert r["status"] in ("ok", "skipped")
        assert set(r["environment"]) >= {"odebench", "torch", "python", "device", "git_commit"}
    ok = [r for r in records if r["status"] == "ok"]
    skipped = [r for r in records if r["status"] == "skipped"]
    assert ok and all(r["metrics"]["w2"] > 0 and r["nfe"] <= r["config"]["nfe"] for r in ok)
    # heun needs two evaluations per step: a budget of 1 is skipped with the reason, not failed
    assert skipped and all(r["config"]["solver"] == "heun" and r["config"]["nfe"] == 1 for r in skipped)
    assert all("at least 2 NFE" in r["reason"] for r in skipped)
    assert (out / "smoke" / "leaderboard.md").read_text().count("|") > 10


def test_second_run_trains_and_evaluates_nothing(smoke_run, capsys):
    out, _ = smoke_run
    before = {f: f.stat().st_mtime_ns for f in (out / "smoke" / "cells").glob("*.json")}
    capsys.readouterr()
    assert main(["run", "--spec", "smoke", "--out", str(out), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "models: 0 needed, 0 trained, 0 loaded from cache" in printed
    assert "nothing to do" in printed
    # a line before the figures are drawn (minutes on a large sweep), after the summary, before the report's line
    lines = printed.splitlines()
    drawing = next(i for i, line in enumerate(lines) if line.startswith("writing the report: tables, then drawing "
                                                                          "figures in"))
    assert drawing > next(i for i, line in enumerate(lines) if line.startswith("models: "))
    assert drawing < next(i for i, line in enumerate(lines) if line.startswith("report: "))
    assert {f: f.stat().st_mtime_ns for f in (out / "smoke" / "cells").glob("*.json")} == before


def test_list_shows_every_registry(capsys):
    assert main(["list"]) == 0
    printed = capsys.readouterr().out
    for word in ("fm_ot", "rf", "euler", "dopri5", "moons", "digits", "w2", "smoke", "quick"):
        assert word in printed


def test_unknown_spec_names_builtin_ones(capsys):
    assert main(["run", "--spec", "nope", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "no built-in spec 'nope'" in err and "quick" in err


def test_threads_option_sets_and_records_the_thread_count(tmp_path, capsys):
    import torch

    before = torch.get_num_threads()
    try:
        assert main(["run", "--spec", "smoke", "--out", str(tmp_path), "--no-progress", "--threads", "1"]) == 0
        records = [json.loads(f.read_text()) for f in (tmp_path / "smoke" / "cells").glob("*.json")]
        assert records and all(r["environment"]["threads"] == 1 for r in records)
        assert main(["run", "--spec", "smoke", "--out", str(tmp_path), "--threads", "0"]) == 2
        assert "--threads must be at least 1" in capsys.readouterr().err
    finally:
        torch.set_num_threads(before)
