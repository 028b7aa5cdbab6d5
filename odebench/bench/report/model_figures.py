"""Figures regenerated from the trained models a sweep cached: 2-D trajectories from source to target (the
classic rectified-flow figure), sample scatters for 2-D sets and image sheets at NFE 1, 2, 8 and the best.

Records hold numbers, not samples, so each figure re-loads a method's model from the artifact cache
(``<results root>/.cache/models``, keyed by the record's ``model_key``) and samples again. The source draws
and the SDE noise are those of the record's cell (same seed tags as
:func:`odebench.bench.harness.execution.run.evaluate_cell`), so a panel shows the first samples the cell's metrics were
computed on. A model missing from the cache, or one whose files cannot be read, is skipped with a note, never a crash;
the cache is only read. A model given to ``odebench eval`` is not in the cache: that command hands it to the report
(``given``), and a later ``odebench report`` of the folder says so in its note. Samples that are
NaN/inf (a diverged model) are counted in the panel title and left out of the axis limits.
"""

from __future__ import annotations

import math
import textwrap
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from matplotlib.collections import LineCollection

from odebench.bench.core import seeding
from odebench.bench.core.solvers import BudgetTooSmall, Unsupported, sample
from odebench.bench.harness.spec.sweep import Cell
from odebench.bench.harness.store.artifacts import ArtifactStore, CorruptArtifact
from odebench.bench.report.plots import FigureFile, plt, save, slug

#: budgets shown in the sample figures, besides each method's best cell
SAMPLE_BUDGETS = (1, 2, 8)
TRAJECTORY_SOLVER, TRAJECTORY_NFE = "euler", 64
#: samples (and held-out points) per scatter panel: enough to show the law, few enough that a sheet of twelve
#: methods by four budgets stays a palette PNG under 400 KB (it was 1-2 MB at 1000 and 2000 points)
SCATTER_POINTS = 600
#: points drawn on a whole sheet (ten methods by four budgets at SCATTER_POINTS): a sheet with more panels
#: draws fewer points in each (twelve methods 500), down to MIN_SCATTER_POINTS, so its file does not grow with
#: its rows (study-toy's eighteen rows were 413 KB at 600 points a panel)
SHEET_POINTS = 10 * 4 * SCATTER_POINTS
MIN_SCATTER_POINTS = 150


def scatter_points(n_panels: int) -> int:
    """Samples per scatter panel of a sheet of ``n_panels`` panels (see SHEET_POINTS)."""
    return max(MIN_SCATTER_POINTS, min(SCATTER_POINTS, SHEET_POINTS // max(n_panels, 1)))


class MissingModel(RuntimeError):
    """The model a record names is not in the artifact cache (or is corrupt)."""


@dataclass
class LoadedModel:
    """A cached model rebuilt for one record's cell."""

    cell: Cell
    method: Any
    problem: Any
    model: torch.nn.Module


class ModelCache:
    """Loads (once each) the models that records name, from ``root`` (an :class:`ArtifactStore` folder), or from
    ``given``: model key -> (adapter, networks) of models evaluated as given (``odebench eval``)."""

    def __init__(self, root: str | Path, given: dict[str, tuple[Any, torch.nn.Module]] | None = None):
        self.root = Path(root)
        self.store = ArtifactStore(self.root, read_only=True)  # the report never writes into the cache
        self.given = dict(given or {})
        self._models: dict[str, LoadedModel] = {}

    def load(self, record: dict[str, Any]) -> LoadedModel:
        """Rebuild the record's method and problem and fill the network from the cache."""
        from odebench.bench.harness.execution.run import problem_of
        from odebench.bench.harness.training.train import build_model
        from odebench.methods import get_method

        key = record.get("model_key")
        if key is None:
            raise MissingModel(f"record {record['cell_id']} names no model (status {record['status']})")
        if key not in self._models and key in self.given:
            from odebench.bench.harness.execution.run import problem_of

            cell = cell_of(record)
            method, model = self.given[key]
            self._models[key] = LoadedModel(cell, method, problem_of(cell), model.eval())
        if key not in self._models:
            if "given_model" in record["config"]["method"]:
                raise MissingModel(f"model {record['config']['method']['name']} was given to odebench eval, not "
                                   f"trained here: its figures are drawn by odebench eval (re-run it)")
            if not self.store.has(key):
                raise MissingModel(f"model {key} is not in the cache {self.root} "
                                   f"(re-run the sweep to train it)")
            try:
                cell = cell_of(record)
                method, problem = get_method(**cell.method), problem_of(cell)
                model = build_model(method, problem)
                self.store.load(key, model)
            except CorruptArtifact as exc:
                raise MissingModel(str(exc)) from exc
            except Exception as exc:  # a method, dataset or network this checkout cannot rebuild
                raise MissingModel(f"model {key} cannot be rebuilt here: {type(exc).__name__}: "
                                   f"{str(exc)[:200]}") from exc
            self._models[key] = LoadedModel(cell, method, problem, model.eval())
        return self._models[key]


def cell_of(record: dict[str, Any]) -> Cell:
    """The Cell a record was evaluated for (its resolved config)."""
    return Cell(**record["config"])


@torch.inference_mode()
def regenerate(loaded: LoadedModel, cell: Cell, n: int, trajectory: bool = False):
    """The cell's first ``n`` samples: its own source draws, solver, budget and SDE noise.

    Returns the :class:`odebench.bench.core.solvers.SolveResult` (x: [n, *shape]; trajectory [T + 1, n, *shape] if
    asked).
    """
    from odebench.bench.harness.execution.run import draw_sources

    x0 = draw_sources(replace(cell, eval={**cell.eval, "n_samples": n}), loaded.method, loaded.problem)
    dyn = loaded.method.dynamics(loaded.model)
    return sample(dyn, x0, cell.solver, nfe=cell.nfe, rtol=cell.tol, atol=cell.tol, grid=cell.grid,
                  gen=seeding.derive(cell.seed, cell.id, "sde", 0), trajectory=trajectory)


# -------------------------------------------------------------------------------- which cells to show
def representative(rows: pd.DataFrame) -> pd.Series | None:
    """The row whose model stands for a method: lowest seed among rows that name a model."""
    named = rows[rows["model_key"].notna()].sort_values(["seed", "budget_rank"])
    return named.iloc[0] if len(named) else None


def why_no_model(rows: pd.DataFrame) -> str:
    """Why no record of ``rows`` names a trained model, from the records themselves."""
    reasons = [str(r) for r in rows["reason"].dropna().unique()]
    statuses = ", ".join(f"{n} {s}" for s, n in sorted(rows["status"].value_counts().items()))
    if reasons and all(r.startswith("training:") for r in reasons):
        return f"its training failed ({statuses}): {reasons[0]}"
    first = f": {reasons[0]}" if reasons else ""
    return f"no record names a trained model ({statuses}){first}"


def panel_cells(rows: pd.DataFrame, rep: pd.Series, metric: str | None, lower: bool,
                records: dict[str, dict]) -> list[tuple[str, Cell, float | None]]:
    """(title, cell, metric value) for NFE 1, 2, 8 (best solver there) and the method's best cell.

    A budget the sweep never ran is sampled with Euler (no metric value to show).
    """
    ok = rows[(rows["status"] == "ok")]
    if metric is not None:
        ok = ok[ok[metric].notna()]
    base = cell_of(records[rep["cell_id"]])
    out = []
    for n in SAMPLE_BUDGETS:
        row = _best_row(ok[ok["nfe_requested"] == n], metric, lower, rep["seed"])
        if row is None:
            out.append((f"euler, NFE {n} (not swept)", replace(base, solver="euler", nfe=n, tol=None), None))
        else:
            out.append((f"{row['solver']}, NFE {int(row['nfe'])}", cell_of(records[row["cell_id"]]),
                        row[metric] if metric else None))
    best = _best_row(ok, metric, lower, rep["seed"]) if metric else None
    if best is not None:
        out.append((f"best: {best['solver']}, NFE {int(best['nfe'])}", cell_of(records[best["cell_id"]]),
                    best[metric]))
    return out


def _best_row(ok: pd.DataFrame, metric: str | None, lower: bool, seed: int) -> pd.Series | None:
    """Of the (solver, budget) configs in ``ok``, the best by mean over seeds; its row for ``seed``."""
    if ok.empty:
        return None
    if metric is None:
        return ok.iloc[0]
    means = ok.groupby(["solver", "budget"])[metric].mean()
    solver, budget = means.idxmin() if lower else means.idxmax()
    pick = ok[(ok["solver"] == solver) & (ok["budget"] == budget)]
    mine = pick[pick["seed"] == seed]
    return (mine if len(mine) else pick).iloc[0]


# ------------------------------------------------------------------------------------------------ figures
#: axis limits never pass this magnitude, whatever a diverged model produced
AXIS_MAX = 1e6


def _bulk(points: np.ndarray, clip: float = math.inf) -> tuple[np.ndarray, np.ndarray] | None:
    """(low, high) per coordinate of the central 99.6 % of the finite rows of ``points`` [N, 2], each clipped
    to +-``clip``; None where there is no finite row. The range the figures draw, which a few diverged points
    cannot set."""
    pts = np.clip(points[np.isfinite(points).all(1)].astype(np.float64), -clip, clip)
    if len(pts) == 0:
        return None
    return np.quantile(pts, 0.002, axis=0), np.quantile(pts, 0.998, axis=0)


def _limits(points: np.ndarray, margin: float = 0.2) -> tuple[tuple[float, float], tuple[float, float]]:
    """Axis limits around the central 99.6% of the finite rows of ``points`` [N, 2], padded by ``margin`` of
    the larger side; always finite, non-empty and within +-AXIS_MAX (NaN/inf rows are ignored)."""
    bulk = _bulk(points, clip=AXIS_MAX)
    if bulk is None:
        return (-1.0, 1.0), (-1.0, 1.0)
    lo, hi = bulk
    pad = max(margin * float((hi - lo).max()), 1e-3)
    return ((float(lo[0] - pad), float(hi[0] + pad)), (float(lo[1] - pad), float(hi[1] + pad)))


def _height_ratio(lims) -> float:
    """Panel height / width that fits equal-aspect axes with these limits (kept between 0.45 and 1.6)."""
    (x0, x1), (y0, y1) = lims
    return float(np.clip((y1 - y0) / (x1 - x0), 0.45, 1.6))


#: a method whose own axis limits are this many times wider than the data's gets its own axes
OWN_AXES_RATIO = 3.0
#: trajectory panels per row at most
TRAJECTORY_COLS = 4


def _width(lims) -> float:
    return max(lims[0][1] - lims[0][0], lims[1][1] - lims[1][0])


def trajectory_limits(ref: np.ndarray, trajs: dict[str, np.ndarray]) -> tuple[object, dict[str, object]]:
    """(shared limits, {label: own limits}) of the trajectory panels: a method whose source draws and samples
    (``trajs[label]`` [T + 1, n, 2]) spread more than ``OWN_AXES_RATIO`` times as wide as the data ``ref``
    [M, 2] (an EDM source N(0, 80^2 I) beside N(0, I)) is drawn on its own axes, so that it neither is one
    dot's worth of panel nor squeezes every other method into one; the shared limits take in the data and
    every other method's endpoints."""
    data_width = _width(_limits(ref))
    own = {}
    for label, t in trajs.items():
        mine = _limits(np.concatenate([ref, t[0], t[-1]]))
        if _width(mine) > OWN_AXES_RATIO * data_width:
            own[label] = mine
    shared = [t for label, t in trajs.items() if label not in own]
    lims = _limits(np.concatenate([ref, *(t[0] for t in shared), *(t[-1] for t in shared)]))
    return lims, own


def normalized_paths(traj: np.ndarray) -> np.ndarray:
    """``traj`` [T + 1, n, 2] with the states at each grid time scaled by the samples' spread over theirs:
    x_t * s(x_1) / s(x_t), s a robust spread over the n paths (:func:`_robust_spread`). A source law 80 times
    wider than the data (EDM's sigma_max = 80) then starts at the samples' scale and the samples keep theirs,
    where on plain axes they are one dot; it is a picture of the paths' directions, not of their lengths."""
    spread = np.array([_robust_spread(step) for step in traj])
    # a step without a finite spread, or with none at all (every path at one point), keeps its own coordinates
    usable = np.isfinite(spread) & (spread > 1e-12)
    scale = np.ones_like(spread)
    if usable[-1]:
        scale[usable] = spread[-1] / spread[usable]
    return traj * scale[:, None, None]


def _robust_spread(points: np.ndarray) -> float:
    """The spread of [n, 2] points that a few diverged paths cannot set: the larger side of their bulk
    (:func:`_bulk`, the range :func:`_limits` draws) / 6, about one std of a Gaussian; NaN without finite points."""
    bulk = _bulk(points)
    return math.nan if bulk is None else float(np.max(bulk[1] - bulk[0])) / 6


def trajectory_figure(dataset: str, models: dict[str, LoadedModel], sweep_dir: Path,
                      n_paths: int = 300) -> FigureFile | None:
    """One panel per method, in rows of up to ``TRAJECTORY_COLS``: ``n_paths`` ODE paths from the source
    (t = 0) to the samples (t = 1); methods with a much wider source law get their own axes
    (:func:`trajectory_limits`), named in the title and the caption."""
    if not models:
        return None
    trajs, refused = {}, {}
    for label, lm in models.items():
        cell = replace(lm.cell, solver=TRAJECTORY_SOLVER, nfe=TRAJECTORY_NFE, tol=None)
        try:
            # [T + 1, n, 2] states on the solver's grid
            trajs[label] = regenerate(lm, cell, n_paths, trajectory=True).trajectory.float().numpy()
        except (BudgetTooSmall, Unsupported) as exc:  # e.g. a distilled one-step map has no path to draw
            refused[label] = str(exc)
    if not trajs:
        return None
    ref = next(iter(models.values())).problem.target.test[:2000].numpy()
    lims, own = trajectory_limits(ref, trajs)
    for label in own:  # on its own axes the data end would still be one dot: draw it normalized
        trajs[label] = normalized_paths(trajs[label])
        own[label] = _limits(np.concatenate([ref, trajs[label][0], trajs[label][-1]]))
    ncols = min(TRAJECTORY_COLS, len(trajs))
    nrows = math.ceil(len(trajs) / ncols)
    width = 3.6
    fig, axes = plt.subplots(nrows, ncols, figsize=(width * ncols, (width * _height_ratio(lims) + 0.5) * nrows
                                                    + 0.6), squeeze=False, layout="constrained")
    for ax in axes.flat[len(trajs):]:
        ax.set_visible(False)
    for ax, (label, traj) in zip(axes.flat, trajs.items(), strict=False):
        ax.scatter(ref[:, 0], ref[:, 1], s=2, c="0.8", label="target data", rasterized=True)
        ax.add_collection(LineCollection(traj.transpose(1, 0, 2), colors="C2", linewidths=0.5, alpha=0.35,
                                         rasterized=True))
        ax.scatter(traj[0, :, 0], traj[0, :, 1], s=4, c="C0", label="source x0 (t=0)", zorder=3, rasterized=True)
        ax.scatter(traj[-1, :, 0], traj[-1, :, 1], s=4, c="C3", label="x1 (t=1)", zorder=3, rasterized=True)
        mine = own.get(label, lims)
        ax.set(xlim=mine[0], ylim=mine[1], aspect="equal")
        ax.set_title(label + ("\n(normalized coordinates: wider than the data)" if label in own else ""), fontsize=9)
        ax.tick_params(labelsize=7)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=3, fontsize=8, markerscale=2)
    fig.suptitle(f"{dataset}: ODE trajectories ({TRAJECTORY_SOLVER}, NFE {TRAJECTORY_NFE}, {n_paths} paths)")
    own_text = (f" {', '.join(own)}: drawn on {'its' if len(own) == 1 else 'their'} own axes in normalized "
                f"coordinates, {'its' if len(own) == 1 else 'their'} source draws or samples spreading more "
                f"than {OWN_AXES_RATIO:g} times as wide as the data (e.g. EDM's N(0, sigma_max^2 I)): the states "
                f"at each grid time scaled by the samples' spread over theirs (x_t * s(x_1) / s(x_t), s a robust "
                f"spread of the finite points), so the source and the samples share one scale and the paths keep "
                f"their directions; every other panel shares one pair of axes in the data's coordinates." if own
                else " Every panel shares one pair of axes.")
    return save(fig, sweep_dir, f"trajectories_{slug(dataset)}", f"{dataset}: trajectories",
                f"Paths of the learned ODE from source draws (blue) to its samples (red), integrated with "
                f"{TRAJECTORY_SOLVER} at NFE {TRAJECTORY_NFE}; straighter paths need fewer steps." + own_text
                + "".join(f" Not drawn: {label} ({why})." for label, why in refused.items()))


def _image_tile(x: torch.Tensor, ncols: int) -> np.ndarray:
    """[N, C, H, W] in [-1, 1] -> one [rows * H, ncols * W(, C)] array in [0, 1] (a 1-pixel gap between)."""
    x = ((x.float().clamp(-1, 1) + 1) / 2).numpy()
    n, c, h, w = x.shape
    rows = math.ceil(n / ncols)
    tile = np.ones((rows * (h + 1) - 1, ncols * (w + 1) - 1, c))
    for i in range(n):
        r, q = divmod(i, ncols)
        tile[r * (h + 1):r * (h + 1) + h, q * (w + 1):q * (w + 1) + w] = x[i].transpose(1, 2, 0)
    return tile[..., 0] if c == 1 else tile


def samples_figure(dataset: str, panels: dict[str, tuple[LoadedModel, list]], metric: str | None,
                   sweep_dir: Path) -> FigureFile | None:
    """Rows: methods; columns: NFE 1, 2, 8 and the best cell; 2-D scatters over the data, or image sheets."""
    if not panels:
        return None
    ncols = max(len(p) for _, p in panels.values())
    target = next(iter(panels.values()))[0].problem.target
    image, ref = target.kind == "image", target.test
    lims = None if image else _limits(ref.numpy())
    ratio = 1.0 if image else _height_ratio(lims)
    n_points = scatter_points(sum(len(p) for _, p in panels.values()))
    fig, axes = plt.subplots(len(panels), ncols, figsize=(2.8 * ncols, (2.8 * ratio + 0.5) * len(panels)),
                             squeeze=False, layout="constrained")
    scatters = {}  # (row, column) -> axes of each drawn scatter panel
    for r, (label, (lm, cells)) in enumerate(panels.items()):
        for c, ax in enumerate(axes[r]):
            if c >= len(cells):
                ax.set_visible(False)
                continue
            title, cell, value = cells[c]
            try:
                x = regenerate(lm, cell, 36 if image else n_points).x
            except (BudgetTooSmall, Unsupported) as exc:  # a sampler this model refuses: say so in its panel
                ax.set_axis_off()
                ax.set_title(title, fontsize=8)
                ax.text(0.5, 0.5, textwrap.fill(f"not drawn: {exc}", 36), ha="center", va="center", fontsize=6,
                        transform=ax.transAxes)
                continue
            if image:
                ax.imshow(_image_tile(x, 6), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
                ax.set(xticks=[], yticks=[])
            else:
                ax.scatter(ref[:n_points, 0], ref[:n_points, 1], s=1.5, c="0.7", lw=0, rasterized=True)
                ax.scatter(x[:, 0], x[:, 1], s=2, c="C3", lw=0, rasterized=True)
                ax.set(xlim=lims[0], ylim=lims[1], aspect="equal")
                ax.tick_params(labelsize=6, labelleft=False, labelbottom=False)
                scatters[(r, c)] = ax
            sub = f"\n{metric} = {value:.3g}" if value is not None and metric else ""
            bad = int((~torch.isfinite(x.flatten(1))).any(1).sum())
            if bad:
                sub += f"\n{bad} of {len(x)} samples NaN/inf, not drawn"
            ax.set_title(f"{title}{sub}", fontsize=8)
            if c == 0:
                ax.set_ylabel(label, fontsize=9)
    # every scatter has the same limits: tick labels on the outer drawn panels only, the first of each row and
    # the lowest of each column (on every panel they were a third of a tall sheet's file)
    for (r, c), ax in scatters.items():
        ax.tick_params(labelleft=min(cc for rr, cc in scatters if rr == r) == c,
                       labelbottom=max(rr for rr, cc in scatters if cc == c) == r)
    fig.suptitle(f"{dataset}: samples by NFE" + ("" if image else " (grey: held-out data)"))
    kind = "image sheets" if image else "scatters"
    return save(fig, sweep_dir, f"samples_{slug(dataset)}", f"{dataset}: samples",
                f"Sample {kind} of each method at NFE 1, 2, 8 (best solver there in the sweep, Euler "
                f"where the sweep has no such cell) and at its best cell by {metric}"
                + ("." if image else f"; {n_points} samples and held-out points a panel."),
                dpi=90)  # one row per method: with scatter_points, a sheet stays under 400 KB


def model_figures(frame: pd.DataFrame, records: dict[str, dict], dataset: str, metric: str | None,
                  lower: bool, cache: ModelCache, sweep_dir: Path) -> tuple[list[FigureFile], list[str]]:
    """Trajectory (2-D sets only) and sample figures of one dataset; returns (figures, notes)."""
    notes: list[str] = []
    models: dict[str, LoadedModel] = {}
    panels: dict[str, tuple[LoadedModel, list]] = {}
    for method in sorted(frame["method"].unique()):
        rows = frame[frame["method"] == method]
        rep = representative(rows)
        if rep is None:
            notes.append(f"{dataset} / {method}: figures skipped: {why_no_model(rows)}")
            continue
        try:
            lm = cache.load(records[rep["cell_id"]])
        except MissingModel as exc:
            notes.append(f"{dataset} / {method}: figures skipped: {exc}")
            continue
        models[method] = lm
        panels[method] = (lm, panel_cells(rows, rep, metric, lower, records))
    figures = []
    first = next(iter(models.values()), None)
    if first is not None and first.problem.target.kind == "points" and first.problem.target.shape == (2,):
        figures.append(trajectory_figure(dataset, models, sweep_dir))
    elif first is not None and first.problem.target.kind == "points":
        notes.append(f"{dataset}: trajectories and scatters are drawn for 2-D sets only "
                     f"(shape {first.problem.target.shape})")
        panels = {}
    try:
        figures.append(samples_figure(dataset, panels, metric, sweep_dir))
    except (BudgetTooSmall, Unsupported) as exc:
        notes.append(f"{dataset}: sample figure skipped: {exc}")
    return [f for f in figures if f is not None], notes
