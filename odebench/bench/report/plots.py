"""Figures drawn from a sweep's records (matplotlib, Agg backend): quality vs NFE, path metrics vs reflow
round, NLL vs NFE. Each figure is saved as PNG and PDF; figures of the trained models themselves
(trajectories, samples) live in :mod:`odebench.bench.report.model_figures`.

Every point is the mean over the ok seeds of one (method, solver, budget) configuration; error bars are the
sample standard deviation over seeds (none with a single seed). The x-axis is the NFE actually used (mean
over seeds), on a log2 scale.
"""

from __future__ import annotations

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
    """A saved figure: PNG and PDF paths relative to the sweep folder, with a caption."""

    title: str
    png: str
    pdf: str
    caption: str = ""


def slug(text: str) -> str:
    """A file-name-safe version of a dataset or method label ('gaussian->moons' -> 'gaussian-moons')."""
    return re.sub(r"[^A-Za-z0-9_.=-]+", "-", text).strip("-") or "x"


def save(fig, sweep_dir: Path, stem: str, title: str, caption: str = "") -> FigureFile:
    """Write ``figures/<stem>.png`` (150 dpi) and ``.pdf`` under the sweep folder, each atomically, and close
    the figure."""
    try:
        write_figure(fig, sweep_dir / "figures" / f"{stem}.png", sweep_dir, dpi=150)
        write_figure(fig, sweep_dir / "figures" / f"{stem}.pdf", sweep_dir)
    finally:
        plt.close(fig)
    return FigureFile(title, f"figures/{stem}.png", f"figures/{stem}.pdf", caption)


def log2_axis(ax) -> None:
    """Log base-2 x-axis with plain integer tick labels (1, 2, 4, ...)."""
    ax.set_xscale("log", base=2)
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))


def grid_of(n: int, ncols: int = 3, size: tuple[float, float] = (4.2, 3.3)):
    """A figure with n panels in rows of ``ncols``; unused panels are hidden. Returns (fig, flat axes)."""
    ncols = min(ncols, n)
    nrows = -(-n // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(size[0] * ncols, size[1] * nrows), squeeze=False,
                             layout="constrained")
    flat = list(axes.flat)
    for ax in flat[n:]:
        ax.set_visible(False)
    return fig, flat[:n]


def seed_stats(frame: pd.DataFrame, column: str, by: list[str]) -> pd.DataFrame:
    """Mean and std over ok seeds of ``column`` and of the NFE used, per group of ``by``."""
    ok = frame[(frame["status"] == "ok") & frame[column].notna()]
    agg = ok.groupby(by).agg(mean=(column, "mean"), std=(column, "std"), nfe=("nfe", "mean"),
                             rank=("budget_rank", "first"), adaptive=("is_adaptive", "all"))
    return agg.reset_index().sort_values([*by[:-1], "rank"]) if len(agg) else agg.reset_index()


def _plot_lines(ax, stats: pd.DataFrame, label_of, color_of=None) -> None:
    """One line (+ error bars) per series of ``stats``; adaptive budgets as separate unjoined markers."""
    for i, (key, g) in enumerate(stats.groupby("series", sort=True)):
        fixed, adaptive = g[~g["adaptive"]], g[g["adaptive"]]
        color = color_of(key) if color_of else f"C{i % 10}"
        marker = MARKERS[i % len(MARKERS)]
        if len(fixed):
            ax.errorbar(fixed["nfe"], fixed["mean"], yerr=fixed["std"].fillna(0), marker=marker, ms=4,
                        capsize=2, lw=1.4, color=color, label=label_of(key))
        if len(adaptive):
            ax.errorbar(adaptive["nfe"], adaptive["mean"], yerr=adaptive["std"].fillna(0), marker=marker,
                        ms=7, ls="none", mfc="none", color=color,
                        label=f"{label_of(key)} (adaptive)" if not len(fixed) else None)


def quality_vs_nfe(frame: pd.DataFrame, dataset: str, metric: str, lower_is_better: bool,
                   sweep_dir: Path) -> FigureFile | None:
    """One panel per method, a line per solver: ``metric`` against the NFE used (log2 axis)."""
    stats = seed_stats(frame, metric, ["method", "solver", "budget"])
    if stats.empty:
        return None
    methods = sorted(stats["method"].unique())
    solvers = sorted(stats["solver"].unique())
    fig, axes = grid_of(len(methods))
    for ax, method in zip(axes, methods, strict=True):
        s = stats[stats["method"] == method].assign(series=lambda d: d["solver"])
        _plot_lines(ax, s, str, lambda sv: f"C{solvers.index(sv) % 10}")
        log2_axis(ax)
        ax.set_title(method)
        ax.set_xlabel("NFE (network evaluations)")
        ax.set_ylabel(f"{metric} ({'lower' if lower_is_better else 'higher'} is better)")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8, title="solver", title_fontsize=8)
    fig.suptitle(f"{dataset}: {metric} vs NFE")
    cap = (f"{metric} of samples against the NFE actually used, mean ± std over seeds; one line per solver, "
           f"hollow markers for adaptive solvers.")
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
        log2_axis(ax)
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


def _ot_bound(rows: pd.DataFrame, cost: str | None) -> pd.Series | None:
    """The exact-OT lower bound of the transport cost: a 'transport_cost.<ot|bound...>' column, or the cost
    minus its excess over OT."""
    cols = [c for c in rows.columns if c.startswith("transport_cost.") and rows[c].notna().any()]
    bound = [c for c in cols if ("ot" in c.split(".", 1)[1] or "bound" in c) and "excess" not in c]
    if bound:
        return rows[bound[0]]
    excess = [c for c in cols if "excess" in c]
    if excess and cost:
        return rows[cost] - rows[excess[0]]
    return None


def paths_vs_round(frame: pd.DataFrame, dataset: str, sweep_dir: Path) -> FigureFile | None:
    """Straightness/curvature and transport cost (with the exact-OT bound) against the reflow round k."""
    rows = reflow_rows(frame)
    straight = [c for c in rows.columns if c.split(".")[0] in ("straightness", "curvature")
                and rows[c].notna().any()]
    cost = "transport_cost" if "transport_cost" in rows and rows["transport_cost"].notna().any() else None
    if rows.empty or rows["hp.k"].nunique() < 1 or not (straight or cost):
        return None
    panels = (["straight"] if straight else []) + (["cost"] if cost else [])
    fig, axes = grid_of(len(panels), ncols=2, size=(4.6, 3.5))
    for ax, panel in zip(axes, panels, strict=True):
        series = straight if panel == "straight" else [cost]
        for i, col in enumerate(series):
            st = rows.groupby("hp.k")[col].agg(["mean", "std"]).reset_index()
            ax.errorbar(st["hp.k"], st["mean"], yerr=st["std"].fillna(0), marker=MARKERS[i], capsize=3,
                        color=f"C{i}", label=col)
        if panel == "cost":
            bound = _ot_bound(rows, cost)
            if bound is not None:
                bt = bound.groupby(rows["hp.k"]).mean()
                ax.plot(bt.index, bt.values, "k--", lw=1.2, label="exact OT (lower bound)")
        ax.set_xticks(sorted(rows["hp.k"].unique()))
        ax.set_xlabel("reflow round k (rf)")
        ax.set_ylabel("straightness / curvature" if panel == "straight" else "transport cost E|Z1 - Z0|^2")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(f"{dataset}: rectified flow by reflow round")
    return save(fig, sweep_dir, f"paths_vs_round_{slug(dataset)}", f"{dataset}: paths vs reflow round",
                "Path metrics of k-rectified flow against the round k, each round at its most accurate solve "
                "in the sweep (the most NFE), mean ± std over seeds; dashed: the exact-OT cost of the same "
                "samples, which no coupling can beat.")
