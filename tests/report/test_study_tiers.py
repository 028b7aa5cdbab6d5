"""The three tiers of the reference study (study-toy, study-transfer, study-digits): valid built-in specs, three
seeds each, and together every claim of ``odebench claims`` has its method configurations on a dataset it
applies to."""

from __future__ import annotations

import pytest

from odebench.bench.harness.spec.sweep import builtin_spec_names, load_spec
from odebench.bench.report import claims_table as ct

TIERS = ("study-toy", "study-transfer", "study-digits")


@pytest.mark.parametrize("name", TIERS)
def test_tier_is_a_builtin_spec_with_three_seeds(name):
    assert name in builtin_spec_names()
    spec = load_spec(name)
    assert sorted({c.seed for c in spec.cells}) == [0, 1, 2]


def _fits(side: ct.Side, cell) -> bool:
    return cell.method["name"] == side.method and all(cell.method.get(k) == v for k, v in side.hp.items()) \
        and (side.solver is None or cell.solver == side.solver) \
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
