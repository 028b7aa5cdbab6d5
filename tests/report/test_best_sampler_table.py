"""The closing table of a run: per dataset, each method's headline metric at its best (solver, budget), mean ± std
over the ok seeds, the solver and the NFE named, best method first; and it is printed after a run."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from odebench.bench.cli import main
from odebench.bench.report.summary import BEST_COLUMNS, best_sampler_table
from odebench.bench.report.tables import Sweep

COLUMNS = ["dataset", "method", "solver", "budget", "nfe_requested", "tol", "is_adaptive", "nfe", "seed", "status",
           "w2", "sliced_w", "coverage"]


def row(dataset, method, solver, nfe, seed, status="ok", tol=None, used=None, **metrics):
    adaptive = nfe is None
    return {"dataset": dataset, "method": method, "solver": solver,
            "budget": f"tol {tol:g}" if adaptive else f"NFE {nfe}", "nfe_requested": math.nan if adaptive else nfe,
            "tol": tol, "is_adaptive": adaptive, "nfe": used if adaptive else nfe, "seed": seed, "status": status,
            **{m: metrics.get(m, math.nan) for m in ("w2", "sliced_w", "coverage")}}


def sweep_of(rows: list[dict]) -> Sweep:
    frame = pd.DataFrame(rows, columns=COLUMNS)
    frame["metric_failures"] = [{} for _ in rows]
    return Sweep(Path("constructed"), [], frame, {"w2": False, "sliced_w": False, "coverage": True},
                 metric_names={"w2", "sliced_w", "coverage"})


def test_each_method_at_the_best_mean_of_the_headline_metric_over_its_samplers():
    rows = [
        # fm_ot: euler 8 has the best single seed (0.1) but heun 8 the best mean; sliced_w prefers euler 4, and
        # w2 (the headline, ahead of sliced_w) decides
        row("moons", "fm_ot", "euler", 4, 0, w2=0.5, sliced_w=0.01), row("moons", "fm_ot", "euler", 4, 1, w2=0.7,
                                                                          sliced_w=0.01),
        row("moons", "fm_ot", "euler", 8, 0, w2=0.1, sliced_w=0.2), row("moons", "fm_ot", "euler", 8, 1, w2=0.9,
                                                                         sliced_w=0.2),
        row("moons", "fm_ot", "heun", 8, 0, w2=0.35, sliced_w=0.2), row("moons", "fm_ot", "heun", 8, 1, w2=0.36,
                                                                         sliced_w=0.2),
        # rf: adaptive; one seed failed, and a failed cell's value never counts
        row("moons", "rf", "dopri5", None, 0, tol=1e-5, used=26, w2=0.2, sliced_w=0.1),
        row("moons", "rf", "dopri5", None, 1, tol=1e-5, used=28, w2=0.4, sliced_w=0.1),
        row("moons", "rf", "dopri5", None, 2, status="failed", tol=1e-5, w2=0.0),
        row("moons", "rf", "euler", 2, 0, w2=0.9),
        # ddpm: no ok cell
        row("moons", "ddpm", "euler", 4, 0, status="failed"), row("moons", "ddpm", "euler", 8, 0, status="skipped"),
        # a dataset whose only metric is higher-is-better: the largest mean wins
        row("circles", "fm_ot", "euler", 4, 0, coverage=0.6), row("circles", "fm_ot", "euler", 8, 0, coverage=0.9),
        row("circles", "rf", "euler", 4, 0, coverage=0.95),
    ]
    table = best_sampler_table(sweep_of(rows))
    assert list(table.columns) == BEST_COLUMNS
    got = [tuple(r) for r in table.itertuples(index=False)]
    assert got == [
        ("circles", "rf", "coverage (higher is better)", "0.9500", "euler", "4", 1),
        ("circles", "fm_ot", "coverage (higher is better)", "0.9000", "euler", "8", 1),
        ("moons", "rf", "w2 (lower is better)", "0.3000 ± 0.14 (1 failed)", "dopri5", "27 (tol 1e-05)", 2),
        ("moons", "fm_ot", "w2 (lower is better)", "0.3550 ± 0.0071", "heun", "8", 2),
        ("moons", "ddpm", "w2", "failed/skipped", "", "", 0),
    ]


def test_a_run_prints_the_table_after_its_counts(tmp_path, capsys):
    assert main(["run", "--spec", "smoke", "--out", str(tmp_path), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "each method at its best sampler (the headline metric per dataset; mean ± std over seeds):" in out
    table = out[out.index("each method at its best sampler"):out.index("sweep 'smoke'")]
    header = table.splitlines()[1]
    assert [c.strip() for c in header.strip("|").split("|")] == BEST_COLUMNS
    body = [[c.strip() for c in line.strip("|").split("|")] for line in table.splitlines()[3:] if line.strip()]
    assert sorted(r[1] for r in body) == ["fm_ot", "rf"]
    for dataset, _, metric, best, solver, nfe, seeds in body:
        assert dataset == "moons" and metric == "w2 (lower is better)" and float(best) > 0
        assert solver in ("euler", "heun") and int(nfe) in (1, 2, 4) and seeds == "1"
