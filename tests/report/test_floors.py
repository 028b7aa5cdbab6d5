"""The two-sample floor: draws of the data law, its cache, and its row and marks in the tables."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest
import torch

from odebench.bench.report import floors as fl
from odebench.bench.report.tables import FLOOR_LABEL, NEAR, best_solver_table, near_positions, per_solver_table


def test_floor_of_w2_on_moons_is_positive_spread_and_deterministic():
    a = fl.compute_floor("moons", 0, {}, 64, "w2", {"max_points": 64})
    b = fl.compute_floor("moons", 0, {}, 64, "w2", {"max_points": 64})
    assert a == b and len(a["values"]["w2"]) == fl.DRAWS and a["n"] == 64
    assert all(v > 0 for v in a["values"]["w2"]) and len(set(a["values"]["w2"])) == fl.DRAWS
    assert "fresh points" in a["draw"]


def test_fresh_draws_are_independent_of_the_cells_data():
    from odebench.bench.data.base import load_dataset

    data = load_dataset("moons", 0)
    draw, _ = fl.data_draw("moons", 0, {}, 100, 0, data.train, "k")
    assert draw.shape == (100, 2)
    assert not any(torch.equal(draw[:100], data.test[i:i + 100]) for i in (0,))
    assert not torch.isin(draw[:, 0], data.test[:, 0]).any()


def test_a_finite_set_is_subsampled_or_bootstrapped(monkeypatch):
    monkeypatch.setattr(fl, "_regenerates", lambda target: False)
    train = torch.arange(10.0)[:, None]
    sub, how = fl.data_draw("x", 0, {}, 6, 0, train, "k")
    assert len(sub) == 6 and len(set(sub[:, 0].tolist())) == 6 and "subset" in how
    boot, how = fl.data_draw("x", 0, {}, 25, 0, train, "k")
    assert len(boot) == 25 and "bootstrap" in how


def test_near_marks_need_the_difference_below_the_spread():
    assert near_positions([1.0, 1.05, 1.2, math.nan], 0.1, True) == {1}
    assert near_positions([1.0, 1.05], math.nan, True) == set()
    assert near_positions([2.0, 1.95, 1.0], 0.1, False) == {1}


def _frame():
    rows = []
    for method, base in (("a", 0.50), ("b", 0.52), ("c", 0.90)):
        for solver, off in (("euler", 0.0), ("heun", 0.01)):
            for seed in (0, 1):
                rows.append({"method": method, "solver": solver, "budget": "NFE 4", "budget_rank": 4.0,
                             "is_adaptive": False, "status": "ok", "seed": seed, "nfe": 4,
                             "w2": base + off + 0.001 * seed})
    return pd.DataFrame(rows)


def test_tables_gain_a_floor_row_and_marks():
    floor = fl.Floor("w2", (0.20, 0.25, 0.30), 64, "fresh points")
    best = best_solver_table(_frame(), "w2", True, floor)
    assert list(best["method"]) == ["a", "b", "c", FLOOR_LABEL]
    assert best.iloc[-1]["NFE 4"] == floor.text() == "0.2500 ± 0.050"
    assert best.iloc[0]["NFE 4"].startswith("**") and "[euler≈]" in best.iloc[0]["NFE 4"]  # heun is 0.01 away
    assert best.iloc[1]["NFE 4"].endswith(NEAR) and not best.iloc[2]["NFE 4"].endswith(NEAR)
    plain = best_solver_table(_frame(), "w2", True)
    assert FLOOR_LABEL not in set(plain["method"]) and not plain["NFE 4"].str.contains("≈").any()
    per = per_solver_table(_frame(), "w2", True, floor)
    assert per.iloc[-1]["method"] == FLOOR_LABEL and per.iloc[-1]["solver"] == ""


def test_report_caches_floors_in_the_sweep_folder(tmp_path):
    from test_report import write_fixture

    from odebench.bench.report.build import write_report

    sweep_dir = tmp_path / "fixture"
    write_fixture(sweep_dir)
    report = write_report(sweep_dir, figures=False)
    body = json.loads((sweep_dir / fl.FLOOR_FILE).read_text())
    metrics = sorted(e["key"]["metric"] for e in body["floors"].values())
    assert metrics == ["sliced_w", "w2"]
    first = (sweep_dir / fl.FLOOR_FILE).read_bytes()
    write_report(sweep_dir, figures=False)
    assert (sweep_dir / fl.FLOOR_FILE).read_bytes() == first  # read back, not recomputed or rewritten
    quality = next(t for t in report.sections[0].tables if t.title == "All sample-quality metrics")
    assert quality.frame.iloc[-1]["method"] == FLOOR_LABEL and "Floor row" in quality.caption
    md = (sweep_dir / "leaderboard.md").read_text()
    assert FLOOR_LABEL in md and "≈ marks a value" in md


@pytest.mark.parametrize("metric", ["fid"])
def test_expensive_metrics_have_no_floor(metric):
    assert fl.floor_metrics([metric, "w2", "straightness", "nll.bpd"]) == ["w2"]


def test_seeds_with_their_own_data_draws_share_one_row_and_pool_their_floors(tmp_path, monkeypatch):
    """data_seed = "per_seed": the records carry each seed's data seed; a configuration's seeds stay one row
    (the data seed is a replicate axis, never a variant label), and the floor pools the draws of every data seed,
    each computed as a fixed data seed's floor is."""
    import test_report
    from test_report import write_fixture

    from odebench.bench.report.tables import load_sweep, summary_frame

    monkeypatch.setattr(test_report, "RAW_SPEC", {**test_report.RAW_SPEC, "data_seed": "per_seed"})
    sweep_dir = tmp_path / "fixture"
    records = write_fixture(sweep_dir)
    assert {(r["config"]["seed"], r["config"]["data_seed"]) for r in records} == {(0, 0), (1, 1)}
    sweep = load_sweep(sweep_dir)
    assert set(sweep.frame["method"]) == {"fm_ot", "rf", "rf(k=2)"}  # no "[data_seed=...]" variants
    summary = summary_frame(sweep)
    assert (summary["n_seeds"] == 2).all()
    floors, notes = fl.sweep_floors(sweep, write=False)
    assert not [n for n in notes if "differ" in n]
    floor = floors["moons"]["w2"]
    assert len(floor.values) == 2 * fl.DRAWS and "pooled over the 2 data seeds" in floor.draw
    alone = [fl.compute_floor("moons", d, {}, 64, "w2", {})["values"]["w2"] for d in (0, 1)]
    assert list(floor.values) == alone[0] + alone[1]


def test_claims_pair_seeds_with_their_own_data_draws_by_seed(tmp_path, monkeypatch):
    """With data_seed = "per_seed" a claim's A - B pairs each seed's A with the same seed's (and data draw's) B:
    the fixture's rf k = 2 minus k = 1 straightness is -0.15 at every seed, so the paired differences have no
    spread (paired across seeds they would differ by 0.002), over both seeds."""
    import test_report
    from test_report import write_fixture

    from odebench.bench.report import claims
    from odebench.bench.report import claims_table as ct
    from odebench.bench.report.tables import load_sweep

    monkeypatch.setattr(test_report, "RAW_SPEC", {**test_report.RAW_SPEC, "data_seed": "per_seed"})
    write_fixture(tmp_path / "fixture")
    sweep = load_sweep(tmp_path / "fixture")
    check = next(c for c in ct.CHECKS if (c.claim, c.part) == (2, "a"))
    (row,) = claims.evaluate_check(sweep, check, "moons", claims.Context())
    assert row["n"] == 2 and row["diff_mean"] == pytest.approx(-0.15)
    assert row["diff_hi"] - row["diff_lo"] == pytest.approx(0.0, abs=1e-12)


def test_a_data_hparam_resolved_per_data_draw_keeps_one_row(tmp_path):
    """score_ve's sigma_max = "data" is resolved from each seed's own training split under data_seed =
    "per_seed", so its records hold a different number per seed: the tables label it score_ve, one configuration
    over the seeds, while a number given in the spec still labels its own row."""
    from test_report import SCHEMA_VERSION, RecordStore, parse_spec

    from odebench.bench.harness.execution.data_hparams import resolve_spec
    from odebench.bench.report.tables import load_sweep, summary_frame

    raw = {"name": "drawn", "seeds": [0, 1, 2], "data_seed": "per_seed", "datasets": [{"target": "moons"}],
           "methods": [{"name": "score_ve"}, {"name": "score_ve", "sigma_max": 6.0}],
           "solvers": [{"name": "euler", "nfe": [4]}], "eval": {"n_samples": 64, "metrics": ["w2"]}}
    spec, _ = resolve_spec(parse_spec(raw))
    drawn = {c.method["sigma_max"] for c in spec.cells if c.method["sigma_max"] != 6.0}
    assert len(drawn) > 1  # the three training splits differ, and so does the rule's number
    store = RecordStore(tmp_path / "drawn")
    for c in spec.cells:
        store.write({"schema_version": SCHEMA_VERSION, "cell_id": c.id, "config": c.config(), "config_hash": c.id,
                     "environment": {}, "created": 0.0, "status": "ok", "reason": None, "nfe": 4,
                     "nfe_requested": 4, "metrics": {"w2": 0.1 * (1 + c.seed)},
                     "metric_info": {"w2": {"higher_is_better": False}}})
    sweep = load_sweep(tmp_path / "drawn")
    assert sorted(set(sweep.frame["method"])) == ["score_ve", "score_ve(sigma_max=6.0)"]
    assert (summary_frame(sweep)["n_seeds"] == 3).all()
