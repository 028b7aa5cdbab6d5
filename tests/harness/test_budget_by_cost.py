"""train.forward_equivalents: every model's own optimisation gets the same compute, not the same steps."""

import json

from harness_tiny import tiny_spec

from odebench.bench.harness.execution.run import run_sweep
from odebench.bench.harness.spec.sweep import Cell, parse_spec

BUDGET = 600  # forward passes of the spec's network: ~200 steps of a method that costs ~3 per step


def records(summary):
    return [json.loads(p.read_text()) for p in sorted((summary.out_dir / "cells").glob("*.json"))]


def test_a_compute_budget_gives_each_method_the_steps_it_buys(tmp_path):
    raw = tiny_spec(methods=[{"name": "fm_ot"}, {"name": "curvature_min"}, {"name": "interpolant", "gamma": 1.0}],
                    solvers=[{"name": "euler", "nfe": [2]}], train={"steps": 7, "forward_equivalents": BUDGET})
    summary = run_sweep(parse_spec(raw), tmp_path, progress=False)
    cost = {r["config"]["method"]["name"]: r["training"]["cost"] for r in records(summary)}
    assert set(cost) == {"fm_ot", "curvature_min", "interpolant"}
    for name, c in cost.items():
        assert c["budget"] == {"by": "forward_equivalents", "forward_equivalents": BUDGET}
        assert c["steps"] == round(BUDGET / c["forward_equivalents_per_step"]) != 7, name
        # the compute spent is the budget, up to the rounding of one step
        spent = c["steps"] * c["forward_equivalents_per_step"]
        assert abs(spent - BUDGET) <= c["forward_equivalents_per_step"] / 2, name
    # the encoder and the antithetic second pass cost more per step, so they buy fewer steps
    assert cost["curvature_min"]["steps"] < cost["fm_ot"]["steps"]
    assert cost["interpolant"]["steps"] < cost["fm_ot"]["steps"]


def test_budgets_by_steps_keep_their_ids_and_a_compute_budget_is_another_model(tmp_path):
    by_steps = parse_spec(tiny_spec(solvers=[{"name": "euler", "nfe": [2]}])).cells[0]
    assert by_steps.train["forward_equivalents"] == 0
    legacy = Cell(**{**by_steps.config(), "train": {k: v for k, v in by_steps.train.items()
                                                    if k != "forward_equivalents"}})
    assert legacy.id == by_steps.id  # records written before the option existed still match their cells
    by_cost = parse_spec(tiny_spec(solvers=[{"name": "euler", "nfe": [2]}],
                                   train={"forward_equivalents": BUDGET})).cells[0]
    assert by_cost.id != by_steps.id
    summary = run_sweep(parse_spec(tiny_spec(solvers=[{"name": "euler", "nfe": [2]}])), tmp_path, progress=False)
    [rec] = records(summary)
    assert rec["training"]["cost"]["budget"] == {"by": "steps"} and rec["training"]["cost"]["steps"] == 30
