"""A relative --out (the default is `results`) keeps every file directly under it."""

from harness_tiny import tiny_spec

from odebench.bench.harness.execution.run import run_sweep
from odebench.bench.harness.spec.sweep import parse_spec


def test_a_relative_out_folder_holds_the_models_and_records_at_its_top(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    summary = run_sweep(parse_spec(tiny_spec(solvers=[{"name": "euler", "nfe": [2]}])), "out", progress=False)
    assert summary.status_counts["ok"] == 1
    assert list((tmp_path / "out" / ".cache" / "models").glob("*.json"))
    assert list((tmp_path / "out" / "tiny" / "cells").glob("*.json"))
    assert not (tmp_path / "out" / "out").exists()
