"""The headline figure of a dataset: every method on one axis, at its best sampler, against NFE and against
training compute. It opens the dataset's section of the report page.

Left panel: the dataset's headline metric against the NFE used (log2 axis), one line per method configuration,
each point that method's best solver at that fixed budget (best by mean over seeds; the marker names the solver,
fixed by name as in every figure), mean and 95 % Student-t interval over the seeds of that (solver, budget),
clipped at 0 for a non-negative metric, with the metric's two-sample floor band. Adaptive solvers are left out
(their NFE is not a budget the method was given). Right panel, matched training compute: the same metric at
the method's best (solver, budget) with at most ``COMPUTE_NFE`` network evaluations, against the total
training FLOPs of its models (mean over seeds; parents and reflow pairs included, from the training table),
log x. Y-axes follow the bulk of the means and the floor (:mod:`odebench.bench.report.axis_scale`); means
beyond them are marked at the edge and listed in the caption.

The best solver per budget is picked on the same seeds it is shown on, so each point is slightly optimistic;
the per-solver figure (quality vs NFE) shows every solver.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from matplotlib.lines import Line2D

from odebench.bench.report import palette, plots
from odebench.bench.report.axis_scale import choose_axis, interval95, mark_outliers, outlier_text
from odebench.bench.report.figure_files import HEADLINE_PREFIX
from odebench.bench.report.plots import (
    FigureFile,
    draw_floor,
    floor_band,
    floor_caption,
    interval_line,
    log2_axis,
    nonnegative,
    plt,
    slug,
)

#: the NFE cap of the matched-compute panel: each method at its best sampler with at most this many evaluations
COMPUTE_NFE = 8


def best_per_budget(frame: pd.DataFrame, metric: str, lower: bool) -> pd.DataFrame:
    """Per method and fixed budget (NFE requested), the solver with the best mean over seeds: rows of method,
    budget, solver, nfe (used, mean), mean, lo, hi (95 % interval over its seeds)."""
    ok = frame[(frame["status"] == "ok") & frame[metric].notna() & ~frame["is_adaptive"].astype(bool)]
    if ok.empty:
        return pd.DataFrame(columns=["method", "budget", "solver", "nfe", "mean", "lo", "hi"])
    clip = nonnegative(ok[metric])
    rows = []
    for (method, budget), g in ok.groupby(["method", "nfe_requested"]):
        means = g.groupby("solver")[metric].mean()
        solver = means.idxmin() if lower else means.idxmax()
        mine = g[g["solver"] == solver]
        mean, lo, hi = interval95(mine[metric], clip)
        rows.append({"method": method, "budget": float(budget), "solver": solver, "nfe": mine["nfe"].mean(),
                     "mean": mean, "lo": lo, "hi": hi})
    return pd.DataFrame(rows).sort_values(["method", "budget"]).reset_index(drop=True)


def best_within(frame: pd.DataFrame, metric: str, lower: bool, cap: int = COMPUTE_NFE) -> pd.DataFrame:
    """Per method, its best (solver, budget) with at most ``cap`` NFE requested (rows as best_per_budget)."""
    best = best_per_budget(frame[pd.to_numeric(frame["nfe_requested"], errors="coerce") <= cap], metric, lower)
    if best.empty:
        return best
    pick = best.groupby("method")["mean"].idxmin() if lower else best.groupby("method")["mean"].idxmax()
    return best.loc[pick.to_numpy()].reset_index(drop=True)


def training_flops(models: pd.DataFrame) -> pd.Series:
    """Mean total training FLOPs per method label (models: training.model_rows); NaN-free."""
    if models is None or models.empty or "total_flops" not in models:
        return pd.Series(dtype=float)
    flops = pd.to_numeric(models["total_flops"], errors="coerce")
    return flops.groupby(models["method"]).mean().dropna()


def _solver_legend(fig, solvers: list[str]) -> None:
    """The marker of each solver that is some method's best (black: the colour is the method's)."""
    handles = [Line2D([], [], color="0.3", marker=palette.marker_of(s), ls="none", label=s) for s in solvers]
    fig.legend(handles=handles, title="best solver", fontsize=7, title_fontsize=7, loc="outside right lower")


def headline_figure(frame: pd.DataFrame, dataset: str, metric: str, lower: bool, sweep_dir: Path,
                    floor=None, models: pd.DataFrame | None = None) -> FigureFile | None:
    """The figure of the module docstring, ``figures/headline_<dataset>.png``; None without a fixed-budget
    cell holding ``metric``. ``models``: one row per trained model (training.model_rows) for the FLOPs."""
    best = best_per_budget(frame, metric, lower)
    if best.empty:
        return None
    within = best_within(frame, metric, lower)
    flops = training_flops(models)
    within = within[within["method"].isin(flops.index)].assign(flops=lambda d: d["method"].map(flops))
    compute = not within.empty
    fig, axes = plt.subplots(1, 2 if compute else 1, figsize=(14.5 if compute else 9.0, 5.2), squeeze=False,
                             layout="constrained", gridspec_kw={"width_ratios": [1.35, 1]} if compute else None)
    axes = list(axes.flat)
    band = floor_band(floor)
    direction = "lower" if lower else "higher"
    off = []

    ax = axes[0]
    axis = choose_axis(list(best["mean"]) + (list(within["mean"]) if compute else []), band, lower)
    if band is not None:
        draw_floor(ax, floor, band)
    for method, g in best.groupby("method", sort=True):
        color = palette.method_color(method)
        ax.plot(g["nfe"], g["mean"], color=color, ls=palette.method_style(method), lw=1.6, label=method)
        for solver, p in g.groupby("solver"):
            interval_line(ax, p["nfe"], p["mean"], p["lo"], p["hi"], color=color, marker=palette.marker_of(solver),
                  ms=5, ls="none")
        mark_outliers(ax, axis, g["nfe"], g["mean"], color)
        off += [(f"{method} / {r.solver}", r.nfe, r.mean) for r in g.itertuples() if axis.lo > r.mean
                or r.mean > axis.hi]
    axis.apply(ax)
    log2_axis(ax, best["nfe"])
    ax.set(xlabel="NFE (network evaluations)", ylabel=f"{metric} ({direction} is better)",
           title="quality vs NFE, best solver per budget")
    ax.grid(alpha=0.3, which="both")
    handles, labels = ax.get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside right upper", fontsize=7, title="method", title_fontsize=7)
    _solver_legend(fig, sorted(best["solver"].unique()))

    if compute:
        ax = axes[1]
        if band is not None:
            draw_floor(ax, floor, band)
        for r in within.itertuples():
            color = palette.method_color(r.method)
            interval_line(ax, [r.flops], [r.mean], [r.lo], [r.hi], color=color, marker=palette.marker_of(r.solver),
                  ms=7, ls="none")
            ax.annotate(r.method, (r.flops, min(max(r.mean, axis.lo), axis.hi)), xytext=(4, 3),
                        textcoords="offset points", fontsize=6, color=color)
        mark_outliers(ax, axis, within["flops"], within["mean"], "0.3")
        off += [(f"{r.method} at NFE <= {COMPUTE_NFE} ({r.solver})", r.nfe, r.mean) for r in within.itertuples()
                if axis.lo > r.mean or r.mean > axis.hi]
        axis.apply(ax)
        ax.set_xscale("log")
        lo, hi = within["flops"].min(), within["flops"].max()
        ax.set_xlim(lo / 10 ** 0.25, hi * 10 ** 0.35)
        ax.set(xlabel="total training FLOPs (mean over seeds)", ylabel=f"{metric} ({direction} is better)",
               title=f"matched training compute: best sampler at NFE <= {COMPUTE_NFE}")
        ax.grid(alpha=0.3, which="both")
    fig.suptitle(f"{dataset}: {metric}, every method at its best sampler")
    several = best["lo"].notna().any()
    spread = "mean and 95 % t-interval over seeds" if several else "one seed"
    missing = sorted(set(best["method"]) - set(within["method"])) if compute else []
    cap = (f"Left: {metric} ({direction} is better) against the NFE used, one line per method configuration, "
           f"each point its best fixed-budget solver at that budget (marker: the solver; adaptive solvers left "
           f"out), {spread}, log2 x; the best solver is picked on the seeds shown, so each point is slightly "
           f"optimistic."
           + (f" Right, at matched training compute: the same metric at each method's best solver and budget with "
              f"at most {COMPUTE_NFE} network evaluations against the total training FLOPs of its models "
              f"(parents and reflow pairs included), log x." if compute else
              " No training cost is recorded, so the matched-compute panel is not drawn.")
           + (f" Not in the right panel (no budget <= {COMPUTE_NFE} or no cost): {', '.join(missing)}."
              if missing else "")
           + (floor_caption(metric, floor) if band is not None else "")
           + f" Colours are fixed by method name in every figure; one {'log ' if axis.scale == 'log' else ''}"
             f"y-scale."
           + outlier_text(sorted(set(off), key=lambda o: (o[0], o[1])), metric))
    # plots.save looked up at call time (as the other figures do), so a test that replaces it reaches this one
    return plots.save(fig, sweep_dir, f"{HEADLINE_PREFIX}{slug(dataset)}",
                      f"{dataset}: headline, {metric} vs NFE and training compute", cap)
