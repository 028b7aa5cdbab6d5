"""Budgets that stop: an NFE cap per adaptive solve, wall-clock budgets per training and per cell; each is
recorded, and reaching one fails the cell with the reason instead of running on."""

from __future__ import annotations

import math
import time

import pytest
import torch
from harness_tiny import tiny_spec

import odebench.bench.harness.execution.run
from odebench.bench.core import budgets
from odebench.bench.core.solvers import solve
from odebench.bench.harness.execution.run import run_sweep
from odebench.bench.harness.spec.sweep import parse_spec
from odebench.bench.harness.store.artifacts import ArtifactStore
from odebench.bench.harness.store.records import RecordStore


def stiff(x, t):
    """dx/dt = -k (x - cos t) with k = 1e4: dopri5 needs thousands of steps to stay stable."""
    return -1e4 * (x - torch.cos(t)[:, None])


def test_dopri5_stops_at_the_cap_and_fixed_step_solvers_are_not_capped():
    x0 = torch.zeros(4, 2)
    free = solve(stiff, x0, "dopri5", rtol=1e-6, atol=1e-6)
    assert free.nfe > 500  # the uncapped solve really is long
    with budgets.limits(max_nfe=200), pytest.raises(budgets.BudgetExceeded, match=r"budgets\.max_nfe"):
        solve(stiff, x0, "dopri5", rtol=1e-6, atol=1e-6)
    with budgets.limits(max_nfe=10):
        assert solve(stiff, x0, "euler", nfe=64).nfe == 64  # a fixed budget is what it is
    assert solve(stiff, x0, "dopri5", rtol=1e-6, atol=1e-6).nfe == free.nfe  # outside the context: no cap


def test_a_deadline_stops_solves_and_training_loops():
    with budgets.limits(seconds=0.0, what="cell"), pytest.raises(budgets.BudgetExceeded, match="cell_seconds"):
        solve(lambda x, t: -x, torch.ones(2, 2), "euler", nfe=4)
    with budgets.limits(seconds=0.0, what="training"), pytest.raises(budgets.BudgetExceeded, match="train_sec"):
        budgets.check_deadline()
    budgets.check_deadline()  # no budget in force: nothing happens


def run_budgeted(tmp_path, budget: dict, solvers=None) -> list[dict]:
    odebench.bench.harness.execution.run._MODELS.clear()
    spec = parse_spec(tiny_spec(name="budget", solvers=solvers or [{"name": "dopri5", "tolerances": [1e-9]}],
                                budgets=budget))
    run_sweep(spec, tmp_path, progress=False)
    return RecordStore(tmp_path / "budget").records()


def test_reaching_max_nfe_fails_the_cell_with_the_reason_and_records_the_cap(tmp_path):
    [rec] = run_budgeted(tmp_path, {"max_nfe": 12})
    assert rec["status"] == "failed", rec
    assert "budgets.max_nfe" in rec["reason"] and "12 field evaluations" in rec["reason"]
    assert rec["budgets"] == {"max_nfe": 12, "train_seconds": None, "cell_seconds": None}
    # the default cap is recorded too, and a tolerance the default allows finishes
    [ok] = run_budgeted(tmp_path / "again", {}, [{"name": "dopri5", "tolerances": [1e-3]}])
    assert ok["status"] == "ok" and ok["budgets"]["max_nfe"] == 100_000 and ok["nfe"] <= 100_000


def test_wall_clock_budgets_fail_training_and_cells_with_the_reason(tmp_path):
    [rec] = run_budgeted(tmp_path / "t", {"train_seconds": 1e-9}, [{"name": "euler", "nfe": [2]}])
    assert rec["status"] == "failed" and rec["reason"].startswith("training:") and "train_seconds" in rec["reason"]
    [rec] = run_budgeted(tmp_path / "c", {"cell_seconds": 1e-9}, [{"name": "euler", "nfe": [2]}])
    assert rec["status"] == "failed" and rec["reason"].startswith("evaluation:") and "cell_seconds" in rec["reason"]
    assert math.isclose(rec["budgets"]["cell_seconds"], 1e-9)


def test_networks_no_machine_could_hold_are_refused_before_any_training(tmp_path, capsys):
    from harness_tiny import to_toml

    from odebench.bench.cli import main

    raw = tiny_spec(name="huge")
    raw["net"] = {"name": "mlp", "hidden": 65536, "depth": 256}  # each key in range, together 1.1e12 parameters
    spec = tmp_path / "huge.toml"
    spec.write_text(to_toml(raw))
    start = time.perf_counter()
    assert main(["run", "--spec", str(spec), "--out", str(tmp_path / "o"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "parameters" in err and "[limits] parameters = N" in err and "Traceback" not in err
    assert time.perf_counter() - start < 60 and not (tmp_path / "o" / "huge" / "cells").exists()
    raw["limits"] = {"parameters": 2**53}  # raised: the check passes (the run itself is not attempted here)
    from odebench.bench.harness.execution.model_size import check_model_sizes
    from odebench.bench.harness.execution.plan import make_plan

    plan = make_plan(parse_spec(raw).cells, lambda _: False, ArtifactStore(tmp_path / "m"))
    check_model_sizes(plan, {"parameters": 2**53})
