"""Figures drawn from a sweep's records (matplotlib, Agg backend): quality vs NFE, path metrics vs reflow
round, NLL vs NFE. Each figure is saved as PNG (a palette PNG, :mod:`odebench.bench.report.figure_files`) and
PDF; figures of the trained models themselves (trajectories, samples) live in
:mod:`odebench.bench.report.model_figures`, the headline figure of a dataset in
:mod:`odebench.bench.report.headline_figure`.

Every point is the mean over the ok seeds of one (method, solver, budget) configuration; error bars are the 95 %
Student-t interval of that mean, clipped at 0 for a non-negative metric, drawn only where there are several
seeds. The x-axis is the NFE actually used (mean over seeds), on a log2 scale whose ticks and limits take in
every point (adaptive solvers included); the panels of one figure share one y-scale, fitted to the bulk of the
means and the floor band, logarithmic where the positive means span more than a factor of 20; a mean outside it
is marked at the edge and listed in the caption (:mod:`odebench.bench.report.axis_scale`). Colours and markers
are fixed by solver and method name (:mod:`odebench.bench.report.palette`).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.ticker import FuncFormatter  # noqa: E402

from odebench.bench.report import palette  # noqa: E402
from odebench.bench.report.axis_scale import choose_axis, interval95, mark_outliers, outlier_text  # noqa: E402
from odebench.bench.report.figure_files import write_figure  # noqa: E402


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


def nonnegative(values) -> bool:
    """Whether a metric column lies in [0, inf) (every finite value >= 0): its intervals are clipped at 0."""
    v = pd.to_numeric(pd.Series(values), errors="coerce").dropna()
    return bool(len(v)) and bool((v >= 0).all())


def seed_stats(frame: pd.DataFrame, column: str, by: list[str]) -> pd.DataFrame:
    """Mean, 95 % t-interval (``lo``, ``hi``; NaN with one seed) and std over ok seeds of ``column``, and the
    NFE used, per group of ``by``; the interval is clipped at 0 for a non-negative column."""
    ok = frame[(frame["status"] == "ok") & frame[column].notna()]
    if ok.empty:
        return pd.DataFrame(columns=[*by, "mean", "lo", "hi", "std", "nfe", "rank", "adaptive"])
    clip = nonnegative(ok[column])
    rows = []
    for key, g in ok.groupby(by):
        mean, lo, hi = interval95(g[column], clip)
        rows.append({**dict(zip(by, key if isinstance(key, tuple) else (key,), strict=True)), "mean": mean,
                     "lo": lo, "hi": hi, "std": g[column].std(), "nfe": g["nfe"].mean(),
                     "rank": g["budget_rank"].iloc[0], "adaptive": bool(g["is_adaptive"].all())})
    return pd.DataFrame(rows).sort_values([*by[:-1], "rank"])


def interval_line(ax, x, mean, lo, hi, **style) -> None:
    """Points with 95 % interval bars where an interval exists (several seeds), plain points otherwise (one
    seed: no bar, and no bar in the legend either)."""
    lo, hi = pd.Series(lo, dtype=float).to_numpy(), pd.Series(hi, dtype=float).to_numpy()
    mean = pd.Series(mean, dtype=float).to_numpy()
    if np.isfinite(lo).any():
        err = np.vstack([np.nan_to_num(mean - lo), np.nan_to_num(hi - mean)]).clip(min=0)
        ax.errorbar(x, mean, yerr=err, capsize=2, **style)
    else:
        ax.plot(x, mean, **style)


def _plot_lines(ax, stats: pd.DataFrame, label_of, color_of, marker_of=None) -> None:
    """One line (+ interval bars where several seeds) per series of ``stats``; adaptive budgets as separate
    unjoined hollow markers. Colours and markers are fixed by name (:mod:`odebench.bench.report.palette`)."""
    for key, g in stats.groupby("series", sort=True):
        fixed, adaptive = g[~g["adaptive"]], g[g["adaptive"]]
        color, marker = color_of(key), (marker_of or palette.marker_of)(key)
        if len(fixed):
            interval_line(ax, fixed["nfe"], fixed["mean"], fixed["lo"], fixed["hi"], marker=marker, ms=4, lw=1.4,
                          color=color, label=label_of(key))
        if len(adaptive):
            interval_line(ax, adaptive["nfe"], adaptive["mean"], adaptive["lo"], adaptive["hi"], marker=marker,
                          ms=7, ls="none", mfc="none", color=color,
                          label=f"{label_of(key)} (adaptive)" if not len(fixed) else None)


def floor_band(floor) -> tuple[float, float] | None:
    """The floor's mean ± std as (lo, hi) (just the mean with one draw); None without a finite floor."""
    if floor is None or not math.isfinite(floor.mean):
        return None
    spread = floor.std if math.isfinite(floor.std) else 0.0
    return floor.mean - spread, floor.mean + spread


def draw_floor(ax, floor, band) -> None:
    """The grey floor band and its mean line (labelled once for the legend)."""
    ax.axhspan(*band, color="0.6", alpha=0.3, lw=0, label="two-sample floor ± std")
    ax.axhline(floor.mean, color="0.4", lw=0.8)


def floor_caption(metric: str, floor) -> str:
    return (f" Grey band: the two-sample floor, {metric} between an independent draw of the data and the same "
            f"held-out data (n = {floor.n}), mean ± std over {len(floor.values)} draws; differences inside it "
            f"are noise.")


def quality_vs_nfe(frame: pd.DataFrame, dataset: str, metric: str, lower_is_better: bool,
                   sweep_dir: Path, floor=None) -> FigureFile | None:
    """One panel per method, a line per solver: ``metric`` against the NFE used (log2 axis); with the metric's
    two-sample ``floor`` (odebench.bench.report.floors.Floor), a grey band at its mean ± std in every panel.
    One y-axis for every panel, fitted to the bulk of the means and the band
    (:func:`odebench.bench.report.axis_scale.choose_axis`); means beyond it are marked at the edge and listed in
    the caption."""
    stats = seed_stats(frame, metric, ["method", "solver", "budget"])
    if stats.empty:
        return None
    methods = sorted(stats["method"].unique())
    fig, axes = grid_of(len(methods), sharey=True)
    band = floor_band(floor)
    axis = choose_axis(stats["mean"], band, lower_is_better)
    stats = stats.assign(outside=axis.outside)
    for ax, method in zip(axes, methods, strict=True):
        s = stats[stats["method"] == method].assign(series=lambda d: d["solver"])
        if band is not None:
            draw_floor(ax, floor, band)
        _plot_lines(ax, s, str, palette.solver_color)
        for solver, g in s.groupby("solver"):
            mark_outliers(ax, axis, g["nfe"], g["mean"], palette.solver_color(solver))
        log2_axis(ax, stats["nfe"])
        ax.set_title(method)
        ax.set_xlabel("NFE (network evaluations)")
        ax.set_ylabel(f"{metric} ({'lower' if lower_is_better else 'higher'} is better)")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8, title="solver", title_fontsize=8)
    axis.apply(axes[0])  # shared: every panel
    fig.suptitle(f"{dataset}: {metric} vs NFE")
    several = stats["lo"].notna().any()
    off = stats[stats["outside"]]
    cap = (f"{metric} of samples against the NFE actually used, "
           f"{'mean and 95 % t-interval over seeds' if several else 'one seed'}; one line per solver, coloured "
           f"by solver in every figure, hollow markers for adaptive solvers; one "
           f"{'log ' if axis.scale == 'log' else ''}y-scale for every method."
           + (floor_caption(metric, floor) if band is not None else "")
           + outlier_text([(f"{r.method} / {r.solver}", r.nfe, r.mean) for r in off.itertuples()], metric))
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
        _plot_lines(ax, s, lambda key: f"{key[0]} / {key[1]}", lambda key: palette.method_color(key[0]),
                    lambda key: palette.marker_of(key[1]))
        log2_axis(ax, stats["nfe"])
        ax.set_xlabel("NFE of the sampler (network evaluations)")
        ax.set_ylabel(f"{col} (lower is better)")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7)
    fig.suptitle(f"{dataset}: NLL vs NFE")
    return save(fig, sweep_dir, f"nll_vs_nfe_{slug(dataset)}", f"{dataset}: NLL vs NFE",
                "Negative log-likelihood of held-out data, mean and 95 % t-interval over seeds, one line per "
                "method (coloured by method) and solver (marked by solver).")


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


def reference_estimate(records, cell_ids) -> dict | None:
    """The transport reference of the cells ``cell_ids`` with its halves estimate
    (odebench.metrics.transport_reference.reference_cost): {"reference", "halves", "n"} from the first of their
    ``records`` (dicts) whose metric_info keeps the halves; None where none does (records from before)."""
    wanted = set(cell_ids)
    for r in records or ():
        if r.get("cell_id") not in wanted:
            continue
        info = ((r.get("metric_info") or {}).get("transport_cost") or {}).get("settings") or {}
        ref, value = info.get("reference") or {}, (r.get("metrics") or {}).get("transport_cost.reference")
        halves = ref.get("halves") if isinstance(ref, dict) else None
        if value is not None and halves and len(halves) == 2:
            return {"reference": float(value), "halves": [float(h) for h in halves], "n": ref.get("n")}
    return None


def _draw_reference(ax, ks, estimate: dict | None, fallback: pd.Series) -> str:
    """The dotted transport reference W2^2(source law, data law) across the rounds, with the halves' error bar
    at the last round: down by the size bias plus the spread, up by the spread. Returns the caption sentence."""
    if estimate is None:
        ax.plot(fallback.index, fallback.values, "k:", lw=1.2, label="W2^2(source law, data law)")
        return (" Dotted: the dataset's transport reference W2^2(source law, data law), an exact-OT estimate on "
                "finite samples, which overestimates it (these records keep no halves estimate to size it).")
    ref, (h1, h2) = estimate["reference"], estimate["halves"]
    spread, bias = abs(h1 - h2) / 2, (h1 + h2) / 2 - ref
    ax.axhline(ref, color="k", ls=":", lw=1.2, label="W2^2(source law, data law) estimate")
    k = max(ks)
    ax.errorbar([k + 0.12], [ref], yerr=[[max(bias, 0) + spread], [spread]], fmt="none", ecolor="k", capsize=3,
                lw=1.2, label="its error (halves: spread, size bias)")
    n = estimate.get("n")
    return (f" Dotted: the dataset's transport reference W2^2(source law, data law) = {ref:.4g}, exact OT between "
            f"{n or 'n'} draws of each law; bar: its error from the same estimate on the two halves "
            f"({h1:.4g}, {h2:.4g}): ± {spread:.2g} of spread, and downwards the size bias: the halves exceed the "
            f"full estimate by {bias:.2g} ({100 * bias / ref:.2g} %), and empirical OT overestimates W2^2 by less "
            f"as n grows, so the law's own W2^2 lies below the line. A cost below the line is that bias plus a "
            f"model law that differs from the data law, not a coupling cheaper than optimal transport.")


def paths_vs_round(frame: pd.DataFrame, dataset: str, sweep_dir: Path, records=None) -> FigureFile | None:
    """Straightness/curvature (log axis where positive) and transport cost (with the exact-OT bound and the
    transport reference with its halves error bar, from ``records``) against the reflow round k."""
    rows = reflow_rows(frame)
    if not rows.empty:  # rf configurations that differ in more than k are drawn apart, never averaged
        rows = rows.assign(rf_variant=[_rf_variant(m) for m in rows["method"]])
    straight = [c for c in rows.columns if c.split(".")[0] in ("straightness", "curvature")
                and rows[c].notna().any()]
    cost = "transport_cost" if "transport_cost" in rows and rows["transport_cost"].notna().any() else None
    if rows.empty or rows["hp.k"].nunique() < 1 or not (straight or cost):
        return None
    panels = (["straight"] if straight else []) + (["cost"] if cost else [])
    fig, axes = grid_of(len(panels), ncols=2, size=(4.8, 3.6))
    ks = sorted(rows["hp.k"].unique())
    clip = {c: nonnegative(rows[c]) for c in [*straight, *([cost] if cost else [])]}
    caption = ""
    for ax, panel in zip(axes, panels, strict=True):
        series = straight if panel == "straight" else [cost]
        means = []
        for col, variant in [(col, variant) for col in series for variant in sorted(rows["rf_variant"].unique())]:
            mine = rows[rows["rf_variant"] == variant]
            st = pd.DataFrame([(k, *interval95(g[col], clip[col])) for k, g in mine.groupby("hp.k")],
                              columns=["k", "mean", "lo", "hi"])
            name = f"{col} {variant}".strip()
            interval_line(ax, st["k"], st["mean"], st["lo"], st["hi"], marker=palette.marker_of(name),
                          color=palette.method_color(name), label=name)
            means += list(st["mean"])
        if panel == "cost":
            bound = _ot_bound(rows, cost)
            if bound is not None:
                bt = bound.groupby(rows["hp.k"]).mean()
                ax.plot(bt.index, bt.values, "k--", lw=1.2, label="exact OT of the same samples")
            if "transport_cost.reference" in rows and rows["transport_cost.reference"].notna().any():
                fallback = rows["transport_cost.reference"].groupby(rows["hp.k"]).mean()
                caption += _draw_reference(ax, ks, reference_estimate(records, rows["cell_id"]), fallback)
        elif min(means) > 0 and max(means) / min(means) > 20:
            ax.set_yscale("log")  # straightness falls by orders of magnitude after one reflow: show every round
        ax.set_xticks(ks)
        ax.set_xlim(min(ks) - 0.3, max(ks) + 0.4)
        ax.set_xlabel("reflow round k (rf)")
        ax.set_ylabel("straightness / curvature" if panel == "straight" else "transport cost E|Z1 - Z0|^2")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7)
    fig.suptitle(f"{dataset}: rectified flow by reflow round")
    log = any(ax.get_yscale() == "log" for ax in axes)
    return save(fig, sweep_dir, f"paths_vs_round_{slug(dataset)}", f"{dataset}: paths vs reflow round",
                "Path metrics of k-rectified flow against the round k, each round at its most accurate solve "
                "in the sweep (the most NFE), mean and 95 % t-interval over seeds where there are several"
                + ("; straightness / curvature on a log axis (they fall by orders of magnitude after one reflow)"
                   if log else "")
                + "; dashed: the exact-OT cost of the same samples, which no coupling of them can beat." + caption)
