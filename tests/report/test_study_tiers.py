"""The three tiers of the reference study (study-toy, study-transfer, study-digits): valid built-in specs, five
seeds each with its own data draw, EDM on its own grid, and together every claim of ``odebench claims`` has its
method configurations on a dataset it applies to."""

from __future__ import annotations

import pytest

from odebench.bench.harness.spec.sweep import builtin_spec_names, load_spec
from odebench.bench.report import claims_table as ct

TIERS = ("study-toy", "study-transfer", "study-digits")


@pytest.mark.parametrize("name", TIERS)
def test_tier_is_a_builtin_spec_with_five_seeds_each_with_its_own_data_draw(name):
    assert name in builtin_spec_names()
    spec = load_spec(name)
    assert sorted({c.seed for c in spec.cells}) == [0, 1, 2, 3, 4]
    # each seed its own data draw, one per seed in every cell: a difference paired by seed is paired by data draw
    assert {(c.seed, c.data_seed) for c in spec.cells} == {(s, s) for s in range(5)}


@pytest.mark.parametrize("name", TIERS)
def test_edm_runs_its_own_samplers_on_its_own_grid_wherever_it_runs(name):
    """EDM's Heun sampler and its churned SDE on the rho = 7 noise levels, at claim 11's budgets, are cells the
    tier evaluates (not skipped); the tiers without EDM have none."""
    from odebench.bench.harness.execution.plan import skip_reason

    cells = load_spec(name).cells
    edm = [c for c in cells if c.method["name"] == "edm"]
    on_grid = [c for c in edm if c.grid == "edm"]
    assert all(c.method["name"] == "edm" for c in cells if c.solver in ("edm_heun", "edm_sde"))
    if not edm:
        assert not [c for c in cells if c.grid == "edm"]
        return
    for solver in ("edm_heun", "edm_sde", "euler"):
        mine = [c for c in on_grid if c.solver == solver]
        assert {c.seed for c in mine} == {0, 1, 2, 3, 4}, solver
        assert all(skip_reason(c, None) is None for c in mine), solver
    assert {c.nfe for c in on_grid if c.solver == "edm_heun"} >= set(ct.RANK_NFE)


@pytest.mark.parametrize("name", TIERS)
def test_no_tier_sweeps_a_sampler_none_of_its_methods_can_run(name):
    """Every solver entry of a tier runs on some method of it (pc, score_ve's sampler, is in none)."""
    from odebench.bench.harness.execution.plan import skip_reason

    cells = load_spec(name).cells
    for solver in {c.solver for c in cells}:
        assert any(skip_reason(c, None) is None for c in cells if c.solver == solver and c.seed == 0), solver


def _fits(side: ct.Side, cell) -> bool:
    # a side names its sampler as the report labels it: the solver, and "/grid" off the uniform grid
    return cell.method["name"] == side.method and all(cell.method.get(k) == v for k, v in side.hp.items()) \
        and (side.solver is None or cell.solver_label == side.solver) \
        and (not isinstance(side.budget, int) or cell.nfe == side.budget)


def _where(check: ct.Check, cell) -> bool:
    if check.where == "transfer":
        return cell.source != "gaussian"
    if check.where in ("gaussian", "image"):
        return cell.source == "gaussian" and (check.where != "image" or cell.target == "digits")
    return True


@pytest.mark.parametrize("check", ct.CHECKS, ids=lambda c: f"{c.claim}{c.part}")
def test_every_claim_has_its_cells_in_some_tier(check):
    cells = [c for name in TIERS for c in load_spec(name).cells if _where(check, c)]
    for side in (check.a, check.b):
        if side is not None:
            assert any(_fits(side, c) for c in cells), f"claim {check.claim}{check.part}: {side.text()}"
    if check.metric == "nll.bpd":
        assert any("nll" in c.eval["metrics"].get("image", []) for c in cells)
