"""EDM measured as EDM is used: the best-solver picks (leaderboard, closing table, claim 11's ranking) never rank a
method on a time grid its docs call unsuitable without saying so, and the path metrics of EDM's N(0, 80^2 I)
source are never ranked in one column with those of N(0, I) sources."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from odebench.bench.report import claims
from odebench.bench.report.build import dataset_tables
from odebench.bench.report.source_laws import source_law
from odebench.bench.report.suitability import OFF_GRID, unsuitable_reason
from odebench.bench.report.summary import best_sampler_table
from odebench.bench.report.tables import Sweep, best_solver_table, budget_label, budget_rank
from odebench.methods import METHODS

METRICS = ("w2", "straightness", "transport_cost")


def row(method, solver, nfe, seed, law="N(0, I)", **metrics):
    name = method.split("(")[0]
    return {"dataset": "moons", "method": method, "method_name": name, "solver": solver, "nfe_requested": nfe,
            "tol": math.nan, "is_adaptive": False, "nfe": nfe, "seed": seed, "status": "ok", "reason": None,
            "budget": budget_label(nfe, math.nan), "budget_rank": budget_rank(nfe, math.nan),
            "cell_id": f"{method}-{solver}-{nfe}-{seed}", "metric_failures": {}, "source_law": law,
            **{m: metrics.get(m, math.nan) for m in METRICS}}


def sweep_of(rows) -> Sweep:
    frame = pd.DataFrame(rows)
    records = [{"cell_id": c} for c in frame["cell_id"]]
    return Sweep(Path("constructed"), records, frame, {m: False for m in METRICS}, metric_names=set(METRICS))


def edm_sweep() -> Sweep:
    """EDM scores best on the uniform grid (its artefact here), worse on its own; fm_ot has only uniform cells."""
    rows = []
    for seed in (0, 1):
        rows += [row("edm", "euler", 4, seed, w2=0.1), row("edm", "euler/edm", 4, seed, w2=0.5),
                 row("edm", "edm_heun/edm", 4, seed, w2=0.4), row("edm", "euler", 2, seed, w2=0.9),
                 row("fm_ot", "euler", 4, seed, w2=0.3), row("fm_ot", "euler", 2, seed, w2=0.6),
                 row("edm", "euler", 16, seed, w2=0.2), row("edm", "edm_heun/edm", 16, seed, w2=0.25),
                 row("fm_ot", "euler", 16, seed, w2=0.22)]
    return sweep_of(rows)


def test_edm_declares_its_own_grids_and_the_uniform_grid_is_off_them():
    assert set(METHODS.get("edm").suitable_grids) == {"edm", "logsnr"}
    assert unsuitable_reason("edm", "euler", 4) is not None
    assert unsuitable_reason("edm", "edm_heun", 16) is not None  # EDM's sampler, but on the uniform grid
    assert unsuitable_reason("edm", "euler/edm", 4) is None
    assert unsuitable_reason("edm", "dpmpp_2m/logsnr", 4) is None
    assert unsuitable_reason("edm", "dopri5", math.nan) is None  # adaptive: no grid
    assert unsuitable_reason("fm_ot", "euler", 4) is None  # no declaration: every grid


def test_the_leaderboard_picks_edm_on_its_own_grid_and_marks_an_off_grid_pick():
    table = best_solver_table(edm_sweep().frame, "w2").set_index("method")
    assert "[edm_heun/edm]" in table.loc["edm", "NFE 4"]  # 0.4, not the uniform grid's 0.1
    assert "0.4000" in table.loc["edm", "NFE 4"]
    assert f"[euler{OFF_GRID}]" in table.loc["edm", "NFE 2"]  # only the uniform grid there: picked, and marked
    assert "[euler]" in table.loc["fm_ot", "NFE 4"]  # a method without a declaration is never marked
    # the best mark of NFE 4 goes to fm_ot (0.3), which beats EDM on its own grid
    assert table.loc["fm_ot", "NFE 4"].startswith("**")


def test_the_closing_table_picks_edm_on_its_own_grid():
    table = best_sampler_table(edm_sweep()).set_index("method")
    assert table.loc["edm", "solver"] == "edm_heun/edm" and table.loc["edm", "NFE"] == "16"


def test_claim_11_ranks_edm_on_its_own_grid_and_marks_an_off_grid_rank():
    rows = claims.ranking_rows(edm_sweep(), "moons", {})
    at4, at16 = (r["note"] for r in rows)
    assert at4.startswith("matched steps: fm_ot (0.3000) > edm (0.4000)")  # not edm (0.1000) first
    assert at16.startswith("matched steps: fm_ot (0.2200) > edm (0.2500)")
    only_uniform = sweep_of([row("edm", "euler", 4, s, w2=0.1) for s in (0, 1)]
                            + [row("fm_ot", "euler", 4, s, w2=0.3) for s in (0, 1)])
    note = claims.ranking_rows(only_uniform, "moons", {})[0]["note"]
    assert f"edm (0.1000{OFF_GRID})" in note and "off the method's own time grids" in note


def test_the_source_law_of_a_record_is_its_method_prior_or_its_source_dataset():
    assert source_law({"method": {"name": "edm"}, "source": "gaussian"}) == "N(0, 80^2 I)"
    assert source_law({"method": {"name": "edm", "sigma_max": 10.0}, "source": "gaussian"}) == "N(0, 10^2 I)"
    assert source_law({"method": {"name": "fm_ot"}, "source": "gaussian"}) == "N(0, I)"
    assert source_law({"method": {"name": "rf", "k": 1}, "source": "8gaussians"}) == "8gaussians"
    assert source_law({"method": {"name": "not_a_method"}, "source": "gaussian"}) == "N(0, I)"


def test_path_metrics_of_another_source_law_get_a_table_of_their_own():
    rows = []
    for s in (0, 1):
        rows += [row("fm_ot", "euler", 4, s, straightness=0.5, transport_cost=2.0, w2=0.3),
                 row("rf", "euler", 4, s, straightness=0.7, transport_cost=3.0, w2=0.3),
                 row("edm", "euler/edm", 4, s, law="N(0, 80^2 I)", straightness=190.0, transport_cost=1e4, w2=0.4),
                 row("edm", "edm_heun/edm", 4, s, law="N(0, 80^2 I)", straightness=200.0, transport_cost=2e4, w2=0.4)]
    tables = {t.title: t.frame for t in dataset_tables(sweep_of(rows), "moons", "w2")}
    plain = tables["Straightness, curvature and transport cost"].set_index(["method", "solver"])
    apart = tables["Straightness, curvature and transport cost from source N(0, 80^2 I)"]
    apart = apart.set_index(["method", "solver"])
    assert set(plain.index) == {("fm_ot", "euler"), ("rf", "euler")}
    assert set(apart.index) == {("edm", "euler/edm"), ("edm", "edm_heun/edm")}
    # each table marks its own best: fm_ot's 0.5 among the N(0, I) paths, EDM's 190 among its own
    for table, best in ((plain, ("fm_ot", "euler")), (apart, ("edm", "euler/edm"))):
        for column in ("straightness", "transport_cost"):
            assert table.loc[best, column].startswith("**"), (best, column)


def test_one_source_law_keeps_one_table_with_the_plain_title():
    rows = [row("rf", "euler", 4, s, law="8gaussians", straightness=0.5, w2=0.3) for s in (0, 1)]
    titles = [t.title for t in dataset_tables(sweep_of(rows), "moons", "w2")]
    assert [t for t in titles if t.startswith("Straightness")] == ["Straightness, curvature and transport cost"]
