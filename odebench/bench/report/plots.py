"""Figures drawn from a sweep's records (matplotlib, Agg backend): quality vs NFE, path metrics vs reflow
round, NLL vs NFE. Each figure is saved as PNG and PDF; figures of the trained models themselves
(trajectories, samples) live in :mod:`odebench.bench.report.model_figures`.

Every point is the mean over the ok seeds of one (method, solver, budget) configuration; error bars are the
sample standard deviation over seeds, drawn only where there are several seeds. The x-axis is the NFE
actually used (mean over seeds), on a log2 scale whose ticks and limits take in every point (adaptive solvers
included); the panels of one figure share one y-scale, logarithmic where the values span more than a factor
of 20.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display

import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.ticker import FuncFormatter  # noqa: E402

from odebench.bench.report.figure_files import write_figure  # noqa: E402

MARKERS = "osD^vP*X<>"


@dataclass(frozen=True)
class FigureFile:
    """A saved figure: PNG and PDF paths relative to the sweep folder (no PDF in a packed results folder), with
    a caption."""

    title: str
    png: str
    pdf: str | None
    caption: str = ""


def slug(text: str) -> str:
    """A file-name-safe version of a dataset or method label ('gaussian->moons' -> 'gaussian-moons')."""
    return re.sub(r"[^A-Za-z0-9_.=-]+", "-", text).strip("-") or "x"


def save(fig, sweep_dir: Path, stem: str, title: str, caption: str = "", dpi: int = 150) -> FigureFile:
    """Write ``figures/<stem>.png`` (at ``dpi``) and ``.pdf`` under the sweep folder, each atomically, and close
    the figure. A packed results folder (``records.jsonl.gz``, committed to the repository) gets the PNG only."""
    from odebench.bench.harness.store.packed import PACKED
    from odebench.bench.report.figure_files import report_folder

    pdf = not (report_folder(sweep_dir) / PACKED).is_file()  # ``sweep_dir``: the report's staging folder
    try:
        write_figure(fig, sweep_dir / "figures" / f"{stem}.png", sweep_dir, dpi=dpi)
        if pdf:
            write_figure(fig, sweep_dir / "figures" / f"{stem}.pdf", sweep_dir)
    finally:
        plt.close(fig)
    return FigureFile(title, f"figures/{stem}.png", f"figures/{stem}.pdf" if pdf else None, caption)


def log2_axis(ax, nfe=None) -> None:
    """Log base-2 x-axis with plain integer tick labels (1, 2, 4, ...). Given the NFE values plotted, the ticks
    are the powers of two around all of them and the limits leave room on both sides, so that an adaptive
    solver's marker (dopri5 at NFE 80 beside fixed budgets up to 64) sits inside the axes, by a tick."""
    ax.set_xscale("log", base=2)
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    values = [float(v) for v in (nfe if nfe is not None else []) if pd.notna(v) and v > 0]
    if values:
        lo, hi = math.floor(math.log2(min(values))), math.ceil(math.log2(max(values)))
        ax.set_xticks([2.0 ** k for k in range(lo, hi + 1)])
        ax.set_xlim(2.0 ** lo / 2 ** 0.35, 2.0 ** hi * 2 ** 0.35)
        ax.xaxis.set_minor_formatter(FuncFormatter(lambda v, _: ""))


def y_scale(ax, values) -> str:
    """Log y where the values are positive and span more than a factor of 20 (a 0.2 -> 2.7 drop beside flat
    curves), else linear; returns the scale chosen."""
    v = [float(x) for x in values if pd.notna(x)]
    if v and min(v) > 0 and max(v) / min(v) > 20:
        ax.set_yscale("log")
        return "log"
    return "linear"


def grid_of(n: int, ncols: int = 3, size: tuple[float, float] = (4.2, 3.3), sharey: bool = False):
    """A figure with n panels in rows of ``ncols``; unused panels are hidden. Returns (fig, flat axes).
    ``sharey``: one y-scale for every panel (values compare across panels at a glance)."""
    ncols = min(ncols, n)
    nrows = -(-n // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(size[0] * ncols, size[1] * nrows), squeeze=False,
                             layout="constrained", sharey="all" if sharey else "none")
    flat = list(axes.flat)
    for ax in flat[n:]:
        ax.set_visible(False)
    if sharey:  # tick labels on every panel: a row may end before the last column
        for ax in flat[:n]:
            ax.yaxis.set_tick_params(labelleft=True)
    return fig, flat[:n]


def seed_stats(frame: pd.DataFrame, column: str, by: list[str]) -> pd.DataFrame:
    """Mean and std over ok seeds of ``column`` and of the NFE used, per group of ``by``."""
    ok = frame[(frame["status"] == "ok") & frame[column].notna()]
    agg = ok.groupby(by).agg(mean=(column, "mean"), std=(column, "std"), nfe=("nfe", "mean"),
                             rank=("budget_rank", "first"), adaptive=("is_adaptive", "all"))
    return agg.reset_index().sort_values([*by[:-1], "rank"]) if len(agg) else agg.reset_index()


def _line(ax, x, mean, std, **style) -> None:
    """Points with error bars where a standard deviation exists (several seeds), plain points otherwise (one
    seed: no bar, and no bar in the legend either)."""
    if std.notna().any():
        ax.errorbar(x, mean, yerr=std.fillna(0), capsize=2, **style)
    else:
        ax.plot(x, mean, **style)


def _plot_lines(ax, stats: pd.DataFrame, label_of, color_of=None) -> None:
    """One line (+ error bars where several seeds) per series of ``stats``; adaptive budgets as separate
    unjoined hollow markers."""
    for i, (key, g) in enumerate(stats.groupby("series", sort=True)):
        fixed, adaptive = g[~g["adaptive"]], g[g["adaptive"]]
        color = color_of(key) if color_of else f"C{i % 10}"
        marker = MARKERS[i % len(MARKERS)]
        if len(fixed):
            _line(ax, fixed["nfe"], fixed["mean"], fixed["std"], marker=marker, ms=4, lw=1.4, color=color,
                  label=label_of(key))
        if len(adaptive):
            _line(ax, adaptive["nfe"], adaptive["mean"], adaptive["std"], marker=marker, ms=7, ls="none",
                  mfc="none", color=color, label=f"{label_of(key)} (adaptive)" if not len(fixed) else None)


def quality_vs_nfe(frame: pd.DataFrame, dataset: str, metric: str, lower_is_better: bool,
                   sweep_dir: Path, floor=None) -> FigureFile | None:
    """One panel per method, a line per solver: ``metric`` against the NFE used (log2 axis); with the metric's
    two-sample ``floor`` (odebench.bench.report.floors.Floor), a grey band at its mean ± std in every panel."""
    stats = seed_stats(frame, metric, ["method", "solver", "budget"])
    if stats.empty:
        return None
    methods = sorted(stats["method"].unique())
    solvers = sorted(stats["solver"].unique())
    fig, axes = grid_of(len(methods), sharey=True)
    band = None
    if floor is not None and math.isfinite(floor.mean):
        spread = floor.std if math.isfinite(floor.std) else 0.0
        band = (floor.mean - spread, floor.mean + spread)
    scale = y_scale(axes[0], pd.concat([stats["mean"], stats["mean"] - stats["std"].fillna(0),
                                        stats["mean"] + stats["std"].fillna(0),
                                        pd.Series(band if band else [], dtype=float)]))
    for ax, method in zip(axes, methods, strict=True):
        s = stats[stats["method"] == method].assign(series=lambda d: d["solver"])
        if band is not None:
            ax.axhspan(*band, color="0.6", alpha=0.3, lw=0, label="two-sample floor ± std")
            ax.axhline(floor.mean, color="0.4", lw=0.8)
        _plot_lines(ax, s, str, lambda sv: f"C{solvers.index(sv) % 10}")
        log2_axis(ax, stats["nfe"])
        ax.set_title(method)
        ax.set_xlabel("NFE (network evaluations)")
        ax.set_ylabel(f"{metric} ({'lower' if lower_is_better else 'higher'} is better)")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8, title="solver", title_fontsize=8)
    fig.suptitle(f"{dataset}: {metric} vs NFE")
    several = stats["std"].notna().any()
    cap = (f"{metric} of samples against the NFE actually used, "
           f"{'mean ± std over seeds' if several else 'one seed'}; one line per solver, hollow markers for "
           f"adaptive solvers; one {'log ' if scale == 'log' else ''}y-scale for every method."
           + (f" Grey band: the two-sample floor, {metric} between an independent draw of the data and the same "
              f"held-out data (n = {floor.n}), mean ± std over {len(floor.values)} draws; differences inside it "
              f"are noise." if band is not None else ""))
    return save(fig, sweep_dir, f"quality_vs_nfe_{slug(dataset)}", f"{dataset}: {metric} vs NFE", cap)


def nll_vs_nfe(frame: pd.DataFrame, dataset: str, columns: list[str], sweep_dir: Path) -> FigureFile | None:
    """One panel per NLL column (nats, bits/dim, ...), a line per (method, solver), against the NFE used."""
    panels = [(c, seed_stats(frame, c, ["method", "solver", "budget"])) for c in columns]
    panels = [(c, s) for c, s in panels if not s.empty]
    if not panels:
        return None
    fig, axes = grid_of(len(panels), ncols=2, size=(5.2, 3.6))
    for ax, (col, stats) in zip(axes, panels, strict=True):
        s = stats.assign(series=list(zip(stats["method"], stats["solver"], strict=True)))
        _plot_lines(ax, s, lambda key: f"{key[0]} / {key[1]}")
        log2_axis(ax, stats["nfe"])
        ax.set_xlabel("NFE of the sampler (network evaluations)")
        ax.set_ylabel(f"{col} (lower is better)")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7)
    fig.suptitle(f"{dataset}: NLL vs NFE")
    return save(fig, sweep_dir, f"nll_vs_nfe_{slug(dataset)}", f"{dataset}: NLL vs NFE",
                "Negative log-likelihood of held-out data, mean ± std over seeds, one line per method and "
                "solver.")


def reflow_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows of k-rectified flows (``rf``, not distilled), one per seed and round k: of each round's ok cells,
    those with the most NFE used (the most accurate solve the sweep made)."""
    rf = frame[(frame["method_name"] == "rf") & (frame["status"] == "ok")]
    if rf.empty:
        return rf
    rf = rf[~rf["hp.distill"].eq(True)]
    best = rf.groupby(["hp.k", "seed"])["nfe"].transform("max")
    return rf[rf["nfe"] == best]


def _rf_variant(label: str) -> str:
    """An rf method label less its round: 'rf(k=2, n_pairs=64) [train.steps=300]' -> '(n_pairs=64)
    [train.steps=300]'; '' for the default configuration."""
    rest = re.sub(r"^rf", "", label)
    rest = re.sub(r"\bk=\d+(, )?", "", rest).replace(", )", ")").replace("()", "")
    return rest.strip()


def _ot_bound(rows: pd.DataFrame, cost: str | None) -> pd.Series | None:
    """The exact-OT lower bound of the transport cost: a 'transport_cost.<ot|bound...>' column, or the cost
    minus its excess over OT."""
    cols = [c for c in rows.columns if c.startswith("transport_cost.") and rows[c].notna().any()]
    bound = [c for c in cols if ("ot" in c.split(".", 1)[1] or "bound" in c) and "excess" not in c]
    if bound:
        return rows[bound[0]]
    excess = [c for c in cols if c.endswith(("excess_ot", "excess")) and c != "transport_cost.excess"]
    if excess and cost:
        return rows[cost] - rows[excess[0]]
    return None


def paths_vs_round(frame: pd.DataFrame, dataset: str, sweep_dir: Path) -> FigureFile | None:
    """Straightness/curvature and transport cost (with the exact-OT bound) against the reflow round k."""
    rows = reflow_rows(frame)
    if not rows.empty:  # rf configurations that differ in more than k are drawn apart, never averaged
        rows = rows.assign(rf_variant=[_rf_variant(m) for m in rows["method"]])
    straight = [c for c in rows.columns if c.split(".")[0] in ("straightness", "curvature")
                and rows[c].notna().any()]
    cost = "transport_cost" if "transport_cost" in rows and rows["transport_cost"].notna().any() else None
    if rows.empty or rows["hp.k"].nunique() < 1 or not (straight or cost):
        return None
    panels = (["straight"] if straight else []) + (["cost"] if cost else [])
    fig, axes = grid_of(len(panels), ncols=2, size=(4.6, 3.5))
    for ax, panel in zip(axes, panels, strict=True):
        series = straight if panel == "straight" else [cost]
        lines = [(col, variant) for col in series for variant in sorted(rows["rf_variant"].unique())]
        for i, (col, variant) in enumerate(lines):
            mine = rows[rows["rf_variant"] == variant]
            st = mine.groupby("hp.k")[col].agg(["mean", "std"]).reset_index()
            _line(ax, st["hp.k"], st["mean"], st["std"], marker=MARKERS[i % len(MARKERS)], color=f"C{i % 10}",
                  label=f"{col} {variant}".strip())
        if panel == "cost":
            bound = _ot_bound(rows, cost)
            if bound is not None:
                bt = bound.groupby(rows["hp.k"]).mean()
                ax.plot(bt.index, bt.values, "k--", lw=1.2, label="exact OT of the same samples")
            if "transport_cost.reference" in rows and rows["transport_cost.reference"].notna().any():
                ref = rows["transport_cost.reference"].groupby(rows["hp.k"]).mean()
                ax.plot(ref.index, ref.values, "k:", lw=1.2, label="W2^2(source law, data law)")
        ax.set_xticks(sorted(rows["hp.k"].unique()))
        ax.set_xlabel("reflow round k (rf)")
        ax.set_ylabel("straightness / curvature" if panel == "straight" else "transport cost E|Z1 - Z0|^2")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(f"{dataset}: rectified flow by reflow round")
    return save(fig, sweep_dir, f"paths_vs_round_{slug(dataset)}", f"{dataset}: paths vs reflow round",
                "Path metrics of k-rectified flow against the round k, each round at its most accurate solve "
                "in the sweep (the most NFE), mean ± std over seeds where there are several; dashed: the exact-OT "
                "cost of the same samples, which no coupling of them can beat; dotted: the dataset's transport "
                "reference W2^2(source law, data law), the same for every method.")
