"""The verdict rule on constructed seeds: ties, censored and diverged values, Holm within a family, equivalence by
two one-sided tests, claim 7b's common threshold, claim 9's validity gate, margins from the one table, the
strict verdict, the sensitivity table and each side's convergence (docs/claims.md, "The verdict rule")."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest
from scipy import stats

from odebench.bench.report import claims as claims_module
from odebench.bench.report import claims_table as ct
from odebench.bench.report.claims import (
    Claims,
    context_of,
    correct_by_family,
    evaluate_check,
    sensitivity,
    to_markdown,
)
from odebench.bench.report.floors import Floor
from odebench.bench.report.tables import Sweep
from odebench.bench.report.verdict import ALPHA, decide, holm

INF = math.inf
SEEDS = (0, 1, 2, 3, 4)


def _cell(method: str, seed: int, solver: str, nfe=None, tol=None, dataset="moons", **metrics) -> dict:
    adaptive = tol is not None
    return {"cell_id": f"{dataset}-{method}-{solver}-{nfe}-{tol}-{seed}", "sweep": "constructed", "method": method,
            "method_name": method, "dataset": dataset, "source": "gaussian", "target": dataset, "solver": solver,
            "nfe_requested": math.nan if adaptive else nfe, "tol": tol, "seed": seed, "status": "ok", "reason": "",
            "is_adaptive": adaptive, "budget_rank": 1e6 - math.log10(tol) if adaptive else nfe,
            "metric_failures": {}, "model_key": f"{dataset}-{method}-{seed}", **metrics}


def _sweep(cells: list[dict], floors: dict | None = None, records: list[dict] | None = None) -> Sweep:
    frame = pd.DataFrame(cells)
    names = {c for c in frame.columns if c in ("w2", "nll.bpd", "transport_cost", "transport_cost.reference")}
    by_id = {r["cell_id"]: r for r in records or []}
    recs = [by_id.get(cid, {"cell_id": cid}) for cid in frame["cell_id"]]
    return Sweep(Path("constructed"), recs, frame, metric_names=names, floors=floors or {})


def _floor(mean=0.1, spread=0.01) -> Floor:
    return Floor("w2", (mean - spread, mean, mean + spread), 2000, "constructed")


#: a constructed claim: fm_ot's headline at Euler NFE 4 below fm_diffusion's
EULER_4_BELOW = ct.Check(3, "", "constructed", "rf", ct.Side("fm_ot", {}, "euler", 4),
                         ct.Side("fm_diffusion", {}, "euler", 4), ct.HEADLINE, "below")


def _only(rows: list[dict]) -> dict:
    assert len(rows) == 1, rows
    return rows[0]


# ------------------------------------------------------------------------------------------------- ties
def test_a_zero_variance_tie_is_inconclusive_never_contradicted():
    out = decide([0.0, 0.0, 0.0], (-INF, 0.0))
    assert out.verdict == "inconclusive" and out.note.startswith("tie:")
    # away from the end, no spread is exact (the t statistic's limit)
    assert decide([-2.0, -2.0, -2.0], (-INF, 0.0)).verdict == "holds"
    assert decide([3.0, 3.0, 3.0], (-INF, 0.0)).verdict == "contradicted"


def test_equal_nfe_on_every_seed_reads_a_tie_in_the_table():
    """7a on spirals: both paths at dopri5's smallest NFE (32) on every seed."""
    cells = [_cell(m, s, "dopri5", tol=1e-3, nfe_used=32.0, w2=0.2) for m in ("fm_ot", "fm_diffusion")
             for s in SEEDS]
    for c in cells:
        c["nfe"] = c.pop("nfe_used")
    check = next(c for c in ct.CHECKS if (c.claim, c.part) == (7, "a"))
    row = _only(evaluate_check(_sweep(cells), check, "moons", context_of(_sweep(cells))))
    assert (row["verdict"], row["strict_verdict"]) == ("inconclusive", "inconclusive")
    assert row["test"] == "sign" and "tie" in row["note"]


# ------------------------------------------------------------------------------------- censored values
def _nfe_to_reach_cells(a_dopri, a_euler, b_dopri, b_euler, seeds=SEEDS) -> list[dict]:
    cells = []
    for s in seeds:
        for method, dopri, euler in (("fm_ot", a_dopri, a_euler), ("fm_diffusion", b_dopri, b_euler)):
            cells.append(_cell(method, s, "dopri5", tol=1e-5, w2=dopri))
            cells += [_cell(method, s, "euler", nfe=n, w2=w) for n, w in euler.items()]
    return cells


CHECK_7B = next(c for c in ct.CHECKS if (c.claim, c.part) == (7, "b"))


def test_censored_values_are_ranked_above_every_budget_and_two_censored_tie():
    # A never reaches its threshold (censored on every seed), B does at NFE 4: A needs more, on all five seeds
    cells = _nfe_to_reach_cells(0.10, {2: 0.9, 4: 0.5, 8: 0.3}, 0.10, {2: 0.5, 4: 0.105, 8: 0.10})
    sweep = _sweep(cells)
    row = _only(evaluate_check(sweep, CHECK_7B, "moons", context_of(sweep)))
    assert row["test"] == "sign" and row["verdict"] == "contradicted"
    assert row["p_holds"] == pytest.approx(1.0) and "5 value(s) censored" in row["note"]
    # both censored on every seed: a tie, not a contradiction of "A below B"
    cells = _nfe_to_reach_cells(0.10, {2: 0.9, 8: 0.3}, 0.10, {2: 0.9, 8: 0.3})
    row = _only(evaluate_check(_sweep(cells), CHECK_7B, "moons", context_of(_sweep(cells))))
    assert row["verdict"] == "inconclusive" and "tie" in row["note"]


def test_claim_7b_uses_one_threshold_for_both_sides():
    """A's own dopri5 is poor (0.5) and reached at NFE 2; B's is good (0.1) and reached at NFE 8. Against its own
    dopri5 A would win; against the pair's better value (0.1 x 1.1) A never gets there."""
    cells = _nfe_to_reach_cells(0.50, {2: 0.52, 4: 0.5, 8: 0.5}, 0.10, {2: 0.6, 4: 0.3, 8: 0.105})
    sweep = _sweep(cells)
    row = _only(evaluate_check(sweep, CHECK_7B, "moons", context_of(sweep)))
    assert (row["a_mean"], row["b_mean"]) == (16.0, 8.0)  # A censored at twice the largest budget
    assert row["verdict"] == "contradicted"
    # with a floor above the better dopri5 value, the threshold is 1.1 x the floor's mean: B reaches it at NFE 4
    sweep = _sweep(cells, floors={"moons": {"w2": _floor(mean=0.3)}})
    row = _only(evaluate_check(sweep, CHECK_7B, "moons", context_of(sweep)))
    assert row["b_mean"] == 4.0


# ------------------------------------------------------------------------------------------ diverged seed
def test_a_diverged_seed_is_named_and_never_averaged():
    check = next(c for c in ct.CHECKS if c.claim == 10)
    em = {0: 0.20, 1: 0.21, 2: 204.0}  # seed 2 of the SDE sampler blew up
    cells = [_cell("interpolant", s, "euler_maruyama", nfe=64, w2=em[s]) for s in em]
    cells += [_cell("interpolant", s, "euler", nfe=64, w2=0.2 + 0.01 * s) for s in em]
    sweep = _sweep(cells, floors={"moons": {"w2": _floor()}})
    row = _only(evaluate_check(sweep, check, "moons", context_of(sweep)))
    assert row["aggregate"] == "median" and row["test"] == "sign"
    assert row["a_mean"] == pytest.approx(0.21) and row["diff_mean"] == pytest.approx(0.0)
    assert "seed 2: 204" in row["note"] and "diverged" in row["note"]
    assert row["verdict"] == "inconclusive"  # three seeds: a sign test cannot decide, and says so
    assert "cannot go below p = 0.125" in row["note"]


def test_a_failed_metric_is_a_lost_seed_not_a_missing_one():
    check = EULER_4_BELOW
    cells = [_cell(m, s, "euler", nfe=4, w2=0.1 if m == "fm_ot" else 0.2) for m in ("fm_ot", "fm_diffusion")
             for s in SEEDS]
    cells[0]["w2"] = math.nan
    cells[0]["metric_failures"] = {"w2": "ValueError: non-finite samples"}
    sweep = _sweep(cells)
    row = _only(evaluate_check(sweep, check, "moons", context_of(sweep)))
    assert row["n"] == 5 and "seed 0: failed (ValueError: non-finite samples)" in row["note"]
    assert row["test"] == "sign" and row["verdict"] == "inconclusive"  # 4 wins, 1 loss: p = 0.19


def test_two_diverged_seeds_of_three_do_not_hide_each_other():
    """Against the median of the other seeds, 204 and 300 would each look ordinary beside the other."""
    check = next(c for c in ct.CHECKS if c.claim == 10)
    em = {0: 0.20, 1: 204.0, 2: 300.0}
    cells = [_cell("interpolant", s, "euler_maruyama", nfe=64, w2=em[s]) for s in em]
    cells += [_cell("interpolant", s, "euler", nfe=64, w2=0.2 + 0.01 * s) for s in em]
    sweep = _sweep(cells, floors={"moons": {"w2": _floor()}})
    row = _only(evaluate_check(sweep, check, "moons", context_of(sweep)))
    assert row["aggregate"] == "median" and row["test"] == "sign"
    assert "seed 1: 204" in row["note"] and "seed 2: 300" in row["note"]


def test_a_failed_cell_is_a_lost_seed_not_a_missing_one():
    """A sampler that returns non-finite samples fails its whole cell (status failed): that seed counts as the
    worst value with its reason, never drops out of the pairing unnamed."""
    check = EULER_4_BELOW
    cells = [_cell(m, s, "euler", nfe=4, w2=0.1 + 0.01 * s if m == "fm_ot" else 0.2) for m in ("fm_ot",
                                                                                             "fm_diffusion")
             for s in SEEDS]
    cells[4].update(status="failed", reason="FloatingPointError: non-finite samples", w2=math.nan)
    sweep = _sweep(cells)
    row = _only(evaluate_check(sweep, check, "moons", context_of(sweep)))
    assert row["n"] == 5 and "seed 4: failed (cell failed: FloatingPointError: non-finite samples)" in row["note"]
    assert row["test"] == "sign" and row["verdict"] == "inconclusive"  # 4 wins, 1 loss: p = 0.19


def test_claim_11_ranks_by_the_median_with_a_failed_seed_last():
    """One diverged seed (20.0) would put fm_ot's mean below ddpm's; failed seeds count as the worst value (three
    of rf's five: its median is the worst)."""
    cells = [_cell("fm_ot", s, "euler", nfe=4, w2=v) for s, v in zip(SEEDS, (0.20, 0.21, 20.0, 0.22, 0.23),
                                                                          strict=True)]
    cells += [_cell("ddpm", s, "euler", nfe=4, w2=0.5) for s in SEEDS]
    cells += [_cell("rf", s, "euler", nfe=4, w2=0.3) for s in SEEDS]
    cells[-1].update(status="failed", reason="non-finite samples", w2=math.nan)
    cells[-2].update(status="failed", reason="non-finite samples", w2=math.nan)
    cells[-3].update(status="failed", reason="non-finite samples", w2=math.nan)
    rows = claims_module.ranking_rows(_sweep(cells), "moons", {})
    assert rows[0]["note"].startswith("matched steps: fm_ot (0.2200) > ddpm (0.5000) > rf (inf)")


def test_an_equivalence_is_contradicted_at_5_percent_over_its_two_ends():
    """The 90 % interval (0.125, 0.175) lies above the margin 0.1, the 95 % one (0.097, 0.203) does not: each end's
    test at 2.5 %, so a false contradiction of an equivalence stays at 5 %."""
    d = [0.10, 0.15, 0.20, 0.15]
    out = decide(d, (-0.1, 0.1))
    one_sided = stats.t.sf((0.15 - 0.1) / (pd.Series(d).std(ddof=1) / 2), 3)
    assert 0.025 < one_sided <= 0.05 and out.p_contra == pytest.approx(2 * one_sided)
    assert out.verdict == "inconclusive"
    assert decide([0.20, 0.25, 0.30, 0.25], (-0.1, 0.1)).verdict == "contradicted"
    assert decide(d, (-INF, 0.1)).verdict == "contradicted"  # one end: its test at 5 %


def test_the_sign_test_note_counts_only_the_untied_seeds():
    out = decide([-1.0, -1.0, -1.0, -1.0, 0.0], (-INF, 0.0), rank_based=True)
    assert out.verdict == "inconclusive" and out.p_holds == pytest.approx(0.0625)
    assert "4 untied seed(s) cannot go below p = 0.0625 (1 on the end" in out.note


def test_a_higher_is_better_headline_is_not_judged_by_a_lower_is_better_claim():
    """A sweep measuring only recall (higher is better) has no distance for claim 3 to read: not measured, named."""
    check = EULER_4_BELOW
    cells = [_cell(m, s, "euler", nfe=4, recall=0.9 if m == "fm_ot" else 0.5) for m in ("fm_ot", "fm_diffusion")
             for s in SEEDS]
    frame = pd.DataFrame(cells)
    sweep = Sweep(Path("constructed"), [{"cell_id": c} for c in frame["cell_id"]], frame, {"recall": True},
                  metric_names={"recall"})
    rows = evaluate_check(sweep, check, "moons", context_of(sweep))
    assert rows and all(r["verdict"] == "not measured" and "higher-is-better" in r["note"] for r in rows)


# ------------------------------------------------------------------------------------------------ Holm
def _family_row(claim: int, diffs: list[float]) -> dict:
    out = decide(diffs, (-INF, 0.0))
    return {"claim": claim, "verdict": out.verdict, "p_holds": out.p_holds, "_p_contra": out.p_contra,
            "_diffs": diffs, "strict_verdict": out.verdict, "holm_verdict": "", "p_holm": ""}


def test_holm_keeps_a_family_wise_level_within_each_claim():
    # three datasets of one claim, five seeds: each "holds" on its own (p 0.007, 0.032, 0.037), only the first
    # survives Holm (adjusted 0.020, 0.064, 0.064)
    spread = (-0.2, -0.1, 0.0, 0.1, 0.2)
    family = [_family_row(6, [x - c for x in spread]) for c in (0.3, 0.18, 0.17)]
    ps = [r["p_holds"] for r in family]
    assert all(p <= ALPHA for p in ps) and sorted(ps)[1] * 2 > ALPHA
    other = _family_row(8, [x - 0.18 for x in spread])  # another claim's family: not corrected with claim 6
    rows = family + [other]
    correct_by_family(rows)
    assert [r["verdict"] for r in family] == ["holds"] * 3
    assert [r["holm_verdict"] for r in family] == ["holds", "inconclusive", "inconclusive"]
    assert other["holm_verdict"] == "holds" and other["p_holm"] == pytest.approx(other["p_holds"])


def test_holm_adjusted_p_values_by_hand():
    assert holm([0.01, 0.04, 0.03, math.nan]) == pytest.approx([0.03, 0.06, 0.06, math.nan], nan_ok=True)
    assert holm([0.5, 0.001]) == pytest.approx([0.5, 0.002])


# ------------------------------------------------------------------------------------ equivalence (TOST)
def test_equivalence_is_two_one_sided_tests_at_5_percent():
    d, m = [0.04, 0.09, 0.0, 0.05], 0.1
    n, mean, s = len(d), sum(d) / len(d), pd.Series(d).std(ddof=1)
    se = s / math.sqrt(n)
    p_upper, p_lower = stats.t.cdf((mean - m) / se, n - 1), stats.t.sf((mean + m) / se, n - 1)
    out = decide(d, (-m, m))
    assert out.verdict == "holds" and out.p_holds == pytest.approx(max(p_upper, p_lower))
    assert mean + stats.t.ppf(0.975, n - 1) * se > m  # the 95 % interval crosses the margin (old rule: inconclusive)
    assert mean + stats.t.ppf(0.95, n - 1) * se < m  # the 90 % interval, whose ends are the two tests, does not
    assert decide([0.02, 0.15, -0.01, 0.1], (-m, m)).verdict == "inconclusive"
    # margin-free, "the same" cannot hold; a detected difference contradicts it
    clear = [0.04, 0.09, 0.03, 0.05]  # its 95 % interval excludes 0 (the two ends, each at 2.5 %)
    assert decide(clear, (0.0, 0.0)).verdict == "contradicted" and decide(clear, (0.0, 0.0)).p_holds == 1.0
    assert decide(d, (0.0, 0.0)).verdict == "inconclusive"  # its 90 % interval does, its 95 % one does not
    assert decide([0.05, -0.04, 0.01], (0.0, 0.0)).verdict == "inconclusive"


# -------------------------------------------------------------------------------- claim 9: a valid likelihood
def _nll_sweep(a_bpd: dict, b_bpd: dict, levels=17, marked: dict | None = None) -> Sweep:
    """``marked``: {(method, seed): reason} of values the nll metric itself marked invalid (bpd_valid false)."""
    cells, records = [], []
    for method, values in (("fm_ot", a_bpd), ("ddpm", b_bpd)):
        for s, v in values.items():
            c = _cell(method, s, "dopri5", tol=1e-5, dataset="digits", **{"nll.bpd": v})
            cells.append(c)
            settings = {"levels": levels}
            if (method, s) in (marked or {}):
                settings.update(bpd_valid=False, bpd_invalid_reason=marked[(method, s)])
            records.append({"cell_id": c["cell_id"], "metric_info": {"nll": {"settings": settings}}})
    return _sweep(cells, records=records)


CHECK_9 = next(c for c in ct.CHECKS if (c.claim, c.part) == (9, "ddpm"))


def test_claim_9_on_an_invalid_likelihood_is_not_measured():
    sweep = _nll_sweep({0: 3.2, 1: 3.3, 2: 4.8}, {0: 3.4, 1: 3.5, 2: 3.6})  # 4.8 > log2(17) = 4.087
    row = _only(evaluate_check(sweep, CHECK_9, "digits", context_of(sweep)))
    assert row["verdict"] == "not measured" and row["strict_verdict"] == ""  # set by the family pass
    assert "invalid likelihood (seed 2: 4.8" in row["note"] and "log2(17) = 4.087" in row["note"]
    sweep = _nll_sweep({0: 3.2, 1: 3.3, 2: 3.25}, {0: 3.4, 1: INF, 2: 3.6})
    row = _only(evaluate_check(sweep, CHECK_9, "digits", context_of(sweep)))
    assert row["verdict"] == "not measured" and "ddpm: invalid likelihood (seed 1: inf" in row["note"]
    sweep = _nll_sweep({0: 3.2, 1: 3.3, 2: 3.25}, {0: 3.4, 1: 3.45, 2: 3.6})
    row = _only(evaluate_check(sweep, CHECK_9, "digits", context_of(sweep)))
    assert row["verdict"] == "holds" and row["margin"] == ct.MARGINS["nll.bpd"].amount
    # a mean within the bound that the metric marked invalid itself (some test points non-finite, left out)
    sweep = _nll_sweep({0: 3.2, 1: 3.3, 2: 3.25}, {0: 3.4, 1: 3.45, 2: 3.6},
                       marked={("ddpm", 1): "3 of 359 points non-finite"})
    row = _only(evaluate_check(sweep, CHECK_9, "digits", context_of(sweep)))
    assert row["verdict"] == "not measured" and "ddpm: invalid likelihood (seed 1: 3 of 359 points" in row["note"]


def test_claim_9_compares_only_the_papers_baselines():
    baselines = {c.b.method for c in ct.CHECKS if c.claim == 9}
    assert baselines == {"ddpm", "score_ve"}


# ------------------------------------------------------------------------ margins, strict, sensitivity
def test_margins_come_from_the_table_not_from_the_measured_side():
    check = next(c for c in ct.CHECKS if (c.claim, c.part) == (1, "a"))
    ref = 2.0
    cells = []
    for s in SEEDS:
        for k, cost in ((1, 2.10 + 0.001 * s), (2, 2.10 + 0.012 + 0.002 * s)):
            c = _cell(f"rf(k={k})" if k > 1 else "rf", s, "dopri5", tol=1e-5, transport_cost=cost,
                      **{"transport_cost.reference": ref})
            c.update({"method_name": "rf", "hp.k": k, "hp.distill": False})
            cells.append(c)
    sweep = _sweep(cells)
    row = _only(evaluate_check(sweep, check, "moons", context_of(sweep)))
    assert row["margin"] == pytest.approx(ct.MARGINS["transport_cost"].amount * ref)  # 1 % of W2^2: 0.02
    assert row["claimed_hi"] == pytest.approx(0.02)  # the old rule: 5 % of B's mean, 0.105
    assert row["verdict"] == "holds" and row["strict_verdict"] == "contradicted"
    claims = Claims("constructed", [row])
    correct_by_family(claims.rows)
    table = sensitivity(claims)
    assert table.to_dict("records") == [{"margin": "0x", "holds": 0, "inconclusive": 0, "contradicted": 1},
                                        {"margin": "1x", "holds": 1, "inconclusive": 0, "contradicted": 0},
                                        {"margin": "2x", "holds": 1, "inconclusive": 0, "contradicted": 0}]
    md = to_markdown(claims)
    assert "Sensitivity to the margins" in md and "Verdicts after Holm: holds 1." in md
    assert "Verdicts strict (no margins): contradicted 1." in md


def test_every_margin_relation_has_a_stated_margin_with_its_reason():
    for name, margin in ct.MARGINS.items():
        assert margin.amount > 0 and margin.unit in (ct.ABSOLUTE, ct.OF_REFERENCE, ct.OF_FLOOR), name
        assert len(margin.reason) > 40, name
    for check in ct.CHECKS:
        if check.relation in ct.MARGIN_RELATIONS and check.metric != ct.HEADLINE:
            assert check.metric in ct.MARGINS, check


# ------------------------------------------------------------------------------------------- convergence
def test_rows_say_when_a_side_was_still_improving():
    check = ct.Check(8, "", "constructed", "fm_ot", ct.Side("fm_ot"), ct.Side("fm_diffusion"), "transport_cost",
                     "below")
    cells = [_cell(m, s, "dopri5", tol=1e-5, transport_cost=1.0 + (m == "fm_diffusion") + 0.01 * s)
             for m in ("fm_ot", "fm_diffusion") for s in (0, 1, 2)]
    records = [{"cell_id": c["cell_id"], "model_key": c["model_key"],
                "training": {"convergence": {"converged": not (c["method"] == "fm_diffusion" and c["seed"] == 1)}}}
               for c in cells]
    sweep = _sweep(cells, records=records)
    row = _only(evaluate_check(sweep, check, "moons", context_of(sweep)))
    assert (row["a_converged"], row["b_converged"]) == (True, False)
    assert "B not converged: seed(s) 1 still improving" in row["note"]


def test_rows_say_when_a_side_s_convergence_was_not_judged():
    check = ct.Check(8, "", "constructed", "fm_ot", ct.Side("meanflow"), ct.Side("fm_diffusion"), "transport_cost",
                     "below")
    cells = [_cell(m, s, "dopri5", tol=1e-5, transport_cost=1.0 + (m == "fm_diffusion") + 0.01 * s)
             for m in ("meanflow", "fm_diffusion") for s in (0, 1, 2)]
    records = [{"cell_id": c["cell_id"], "model_key": c["model_key"], "config": {"method": {"name": c["method"]}},
                "training": {"convergence": {"converged": True}}} for c in cells]
    sweep = _sweep(cells, records=records)
    row = _only(evaluate_check(sweep, check, "moons", context_of(sweep)))
    assert (row["a_converged"], row["b_converged"]) == ("not judged", True)
    assert "A convergence not judged: MeanFlow's target carries" in row["note"]
