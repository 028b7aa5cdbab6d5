"""Y-axes that follow the data that matters: seed intervals, robust limits, and outliers marked at the edge.

One diverged cell (an EDM Heun solve at NFE 4 with FD 1.6e8 beside values of 10-1000) used to set the axis of
every panel, flattening the rest onto zero. Here the limits come from the *bulk* of the plotted means and the
floor band, never from an outlier:

- scale: logarithmic where every mean is positive and the bulk spans more than a factor of ``LOG_SPAN``; it is
  decided from the means, so an error bar reaching below zero never breaks it (on a log axis the bar is clipped
  at the bottom edge);
- bulk: the means inside Tukey fences ``[q25 - FENCE * IQR, q75 + FENCE * IQR]`` (in log10 where every mean is
  positive), the IQR never narrower than ``MIN_SPREAD`` of the median (``LOG_MIN_SPREAD`` decades in log10), so
  a tight bulk does not turn every point beside it into an outlier; given the metric's direction, only the
  worse side is fenced (the best results always stay on the axis);
- limits: the bulk and the floor band, padded; a mean outside them is an outlier, drawn as a triangle at the edge
  it lies beyond (pointing out of the axes) with its value, and listed by :func:`outlier_text` for the caption.

Intervals over seeds (:func:`interval95`) are Student-t 95 % intervals of the mean, clipped to the metric's
support ([0, inf) when every value of the column is >= 0).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

FENCE = 1.5
MIN_SPREAD = 0.5
LOG_MIN_SPREAD = 0.5
LOG_SPAN = 20.0
LOG_PAD, LIN_PAD = 0.08, 0.06


def interval95(values: pd.Series, nonnegative: bool) -> tuple[float, float, float]:
    """(mean, lower, upper) of the 95 % Student-t interval of the mean of ``values`` (NaN bounds for one value),
    the lower bound clipped at 0 when the metric is ``nonnegative``."""
    v = pd.to_numeric(values, errors="coerce").dropna().to_numpy(float)
    if len(v) == 0:
        return math.nan, math.nan, math.nan
    mean = float(v.mean())
    if len(v) < 2:
        return mean, math.nan, math.nan
    half = float(stats.t.ppf(0.975, len(v) - 1) * v.std(ddof=1) / math.sqrt(len(v)))
    lo = mean - half
    return mean, max(lo, 0.0) if nonnegative else lo, mean + half


@dataclass(frozen=True)
class Axis:
    """The y-axis chosen for some means: scale, limits, and which means lie outside the limits."""

    scale: str
    lo: float
    hi: float
    outside: np.ndarray  # bool per mean, in the order given

    def apply(self, ax) -> None:
        ax.set_yscale(self.scale)
        ax.set_ylim(self.lo, self.hi)


def _inside(v: np.ndarray, spread: float, worse: str | None) -> np.ndarray:
    """Which of ``v`` lie inside the fences, on the ``worse`` side only ('high', 'low') or on both (None)."""
    q25, q75 = np.quantile(v, [0.25, 0.75])
    spread = max(q75 - q25, spread)
    below, above = v >= q25 - FENCE * spread, v <= q75 + FENCE * spread
    return above if worse == "high" else below if worse == "low" else below & above


def _fenced(v: np.ndarray, worse: str | None = None) -> np.ndarray:
    """Fences in the axis' own units: the IQR never narrower than ``MIN_SPREAD`` of the median."""
    return _inside(v, max(MIN_SPREAD * abs(float(np.median(v))), 1e-12), worse)


def _fenced_log(logs: np.ndarray, worse: str | None = None) -> np.ndarray:
    """Fences in log10 units: the IQR never narrower than ``LOG_MIN_SPREAD`` decades."""
    return _inside(logs, LOG_MIN_SPREAD, worse)


def choose_axis(means, band: tuple[float, float] | None = None, lower_is_better: bool | None = None) -> Axis:
    """The axis for ``means`` (NaN ignored) and an optional floor ``band`` (lo, hi), as in the module docstring.
    With ``lower_is_better`` given, only means on the worse side (a diverged solve) can be outliers: the best
    results always stay on the axis."""
    worse = None if lower_is_better is None else "high" if lower_is_better else "low"
    m = pd.to_numeric(pd.Series(list(means), dtype=float), errors="coerce").to_numpy(float)
    finite = np.isfinite(m)
    if not finite.any():
        return Axis("linear", 0.0, 1.0, np.zeros(len(m), bool))
    positive = bool((m[finite] > 0).all())
    inside = np.zeros(len(m), bool)
    if positive:
        logs = np.log10(m[finite])
        inside[finite] = _fenced_log(logs, worse)
        bulk = m[inside]
        scale = "log" if bulk.max() / bulk.min() > LOG_SPAN else "linear"
    else:
        inside[finite] = _fenced(m[finite], worse)
        scale = "linear"
    keep = list(m[inside]) + ([b for b in band if math.isfinite(b)] if band else [])
    if scale == "log":
        keep = [k for k in keep if k > 0]
        lo, hi = math.log10(min(keep)), math.log10(max(keep))
        pad = LOG_PAD * max(hi - lo, 0.3)
        lo, hi = 10 ** (lo - pad), 10 ** (hi + pad)
    else:
        lo, hi = min(keep), max(keep)
        pad = LIN_PAD * (hi - lo) if hi > lo else max(abs(hi) * 0.1, 1e-3)
        lo, hi = lo - pad, hi + pad
    outside = finite & ((m < lo) | (m > hi))
    return Axis(scale, lo, hi, outside)


def mark_outliers(ax, axis: Axis, x, means, color) -> None:
    """Draw each mean outside ``axis`` as a triangle at the edge it lies beyond, labelled with its value (labels
    of several outliers at one x of the same panel are stacked, not overprinted)."""
    x, means = np.asarray(x, float), np.asarray(means, float)
    stacked = ax.__dict__.setdefault("_odebench_outlier_labels", {})
    for xi, yi in zip(x, means, strict=True):
        if not math.isfinite(yi) or axis.lo <= yi <= axis.hi:
            continue
        top = yi > axis.hi
        slot = stacked.get((round(float(xi), 6), top), 0)
        stacked[(round(float(xi), 6), top)] = slot + 1
        ax.plot([xi], [axis.hi if top else axis.lo], marker="^" if top else "v", ms=8, color=color, mec="k",
                mew=0.6, ls="none", clip_on=False, zorder=5)
        offset = 11 + 8 * slot
        ax.annotate(f"{yi:.3g}", (xi, axis.hi if top else axis.lo), xytext=(0, -offset if top else offset),
                    textcoords="offset points", ha="center", va="center", fontsize=6, color=color,
                    annotation_clip=False)


def outlier_text(rows: list[tuple[str, float, float]], metric: str) -> str:
    """The caption sentence listing outliers: (label, NFE, mean) each; '' when there are none."""
    if not rows:
        return ""
    items = "; ".join(f"{label} at NFE {nfe:g}: {value:.3g}" for label, nfe, value in rows)
    return (f" Off the axis (drawn as triangles at the edge, the y-limits follow the bulk of the means and the "
            f"floor band): {metric} of {items}.")
