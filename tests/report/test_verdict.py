"""The verdict rule of ``odebench claims``: the t-interval against a hand computation, and every verdict
reachable, by the rule alone and on the packed fixture sweep."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from odebench.bench.report import claims_table as ct
from odebench.bench.report.claims import claims_of, evaluate, side_groups
from odebench.bench.report.floors import sweep_floors
from odebench.bench.report.tables import load_sweep
from odebench.bench.report.verdict import Interval, judge, t_interval

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "claims-tiny"


def test_t_interval_by_hand():
    values = [0.3, 0.1, 0.5, 0.2]
    ci = t_interval(values)
    mean, s = np.mean(values), np.std(values, ddof=1)
    half = stats.t.ppf(0.975, 3) * s / math.sqrt(4)
    assert (ci.mean, ci.n) == (pytest.approx(mean, abs=1e-15), 4)
    assert ci.lo == pytest.approx(mean - half, rel=1e-12) and ci.hi == pytest.approx(mean + half, rel=1e-12)
    assert half == pytest.approx(3.182446305284263 * s / 2, rel=1e-12)  # t_{0.975, 3} from the table
    one = t_interval([1.0])
    assert one.mean == 1.0 and math.isnan(one.lo) and math.isnan(one.hi)


@pytest.mark.parametrize("ci, claimed, verdict", [
    (Interval(-0.5, -0.8, -0.2, 3), (-math.inf, 0.0), "holds"),
    (Interval(0.5, 0.2, 0.8, 3), (-math.inf, 0.0), "contradicted"),
    (Interval(0.0, -0.3, 0.3, 3), (-math.inf, 0.0), "inconclusive"),
    (Interval(0.05, 0.01, 0.09, 3), (-0.1, 0.1), "holds"),            # same within a margin
    (Interval(-0.5, -0.7, -0.3, 3), (-0.1, 0.1), "contradicted"),      # entirely below the margin
    (Interval(0.12, 0.05, 0.2, 3), (-0.1, 0.1), "inconclusive"),
    (Interval(-0.5, math.nan, math.nan, 1), (-math.inf, 0.0), "inconclusive"),  # one seed: no interval
])
def test_each_verdict_is_reachable_by_the_rule(ci, claimed, verdict):
    assert judge(ci, claimed) == verdict


def test_fixture_rows_match_a_hand_computation_from_the_records():
    claims, _ = claims_of(FIXTURE, write_floors=False)
    f = claims.frame()
    row = f[(f["claim"] == 2) & (f["part"] == "a") & (f["dataset"] == "moons")].iloc[0]
    sweep = load_sweep(FIXTURE)
    moons = sweep.frame[sweep.frame["dataset"] == "moons"]

    def straightness(side):
        (rows,) = side_groups(moons, side).values()
        ok = rows[rows["status"].eq("ok") & rows["straightness"].notna()]
        return ok.groupby("seed")["straightness"].first()  # the same value in every cell of a model

    d = (straightness(ct.RF2) - straightness(ct.RF1)).to_numpy()
    half = stats.t.ppf(0.95, len(d) - 1) * d.std(ddof=1) / math.sqrt(len(d))  # the 90 % interval: two 5 % tests
    assert row["n"] == len(d) == 3
    assert row["diff_mean"] == pytest.approx(d.mean(), rel=1e-12)
    assert (row["diff_lo"], row["diff_hi"]) == (pytest.approx(d.mean() - half, rel=1e-9),
                                                pytest.approx(d.mean() + half, rel=1e-9))
    assert row["verdict"] == judge(t_interval(list(d), 0.90), (-math.inf, 0.0))
    assert row["p_holds"] == pytest.approx(stats.t.cdf(d.mean() / (d.std(ddof=1) / math.sqrt(len(d))), len(d) - 1))
    assert {"holds", "contradicted", "inconclusive", "reported"} <= set(f["verdict"])


def test_missing_cells_are_not_measured_and_named():
    sweep = load_sweep(FIXTURE)
    sweep.floors, _ = sweep_floors(sweep, write=False)
    sweep.frame = sweep.frame[~sweep.frame["method"].str.startswith("rf(k=3")]
    f = evaluate(sweep).frame()
    gone = f[(f["claim"] == 1) & (f["part"] == "b")]
    assert set(gone["verdict"]) == {"not measured"} and gone["note"].str.contains("rf\\(k=3").all()
    skipped = sweep.frame.copy()
    skipped.loc[skipped["solver"] == "euler_maruyama", "status"] = "skipped"
    skipped.loc[skipped["solver"] == "euler_maruyama", "reason"] = "solver needs sde"
    sweep.frame = skipped
    ten = evaluate(sweep).frame().query("claim == 10")
    assert set(ten["verdict"]) == {"not measured"} and ten["note"].str.contains("skipped").all()
    assert isinstance(ten, pd.DataFrame)


def test_the_most_accurate_solve_is_never_an_sde_path():
    from odebench.bench.report.claims import per_seed

    sweep = load_sweep(FIXTURE)
    moons = sweep.frame[sweep.frame["dataset"] == "moons"]
    (rows,) = side_groups(moons, ct.Side("interpolant")).values()
    rows = rows[rows["solver"] != "dopri5"]  # without dopri5, the largest budget is Euler-Maruyama's NFE 64 (tied)
    values, why = per_seed(rows, ct.Side("interpolant"), "transport_cost")
    expected = rows[rows["solver"].eq("euler") & rows["nfe_requested"].eq(64)].set_index("seed")["transport_cost"]
    assert not why and values.sort_index().tolist() == expected.sort_index().tolist()
