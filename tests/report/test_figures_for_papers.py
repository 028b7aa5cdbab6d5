"""Figures a paper can use: one diverged cell never sets an axis (it is marked at the edge and listed), a source
law 80 times wider than the data gets its own trajectory axes, a solver has one colour in every figure, sample
sheets and figures stay small, and every dataset opens with its headline figure (all methods on one axis)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch
from matplotlib.collections import PathCollection
from matplotlib.colors import to_hex
from matplotlib.container import ErrorbarContainer
from test_model_figures_refusals import _model

import odebench.bench.report.plots as plots
from odebench.bench.harness.spec.sweep import parse_spec
from odebench.bench.harness.store.packed import PACKED
from odebench.bench.harness.store.records import SCHEMA_VERSION, RecordStore
from odebench.bench.harness.store.sample_sheets import save_sample_sheet
from odebench.bench.report import model_figures as mf
from odebench.bench.report.build import write_report
from odebench.bench.report.floors import Floor

FLOOR = Floor("w2", (0.10, 0.14, 0.18), n=500, draw="fresh draws")
OUTLIER = 1.0e8


def _frame(outlier: bool = True, solvers=("euler", "heun")) -> pd.DataFrame:
    """Three seeds of two methods and the given solvers at NFE 1..64; w2 falls from ~2 to ~0.2, and (with
    ``outlier``) method 'edm' has one diverged seed of heun at NFE 4 (w2 = 1e8)."""
    rows = []
    for m, method in enumerate(("edm", "rf")):
        for s, solver in enumerate(solvers):
            for nfe in (1, 2, 4, 8, 16, 32, 64):
                for seed in range(3):
                    w2 = 0.2 + 2.0 / nfe + 0.05 * m + 0.02 * s + 0.01 * seed
                    if outlier and (method, solver, nfe, seed) == ("edm", "heun", 4, 0):
                        w2 = OUTLIER
                    rows.append({"method": method, "solver": solver, "budget": f"NFE {nfe}", "budget_rank": nfe,
                                 "is_adaptive": False, "status": "ok", "nfe": nfe, "nfe_requested": nfe,
                                 "seed": seed, "w2": w2})
    return pd.DataFrame(rows)


@pytest.fixture
def drawn(monkeypatch):
    """The figures the plotting modules hand to ``save``, kept open (fig, caption)."""
    figures = []

    def keep(fig, sweep_dir, stem, title, caption="", dpi=150):
        figures.append((fig, caption))
        return plots.FigureFile(title, f"figures/{stem}.png", None, caption)

    monkeypatch.setattr(plots, "save", keep)
    monkeypatch.setattr(mf, "save", keep)
    yield figures
    for fig, _ in figures:
        plots.plt.close(fig)


def _check_limits_ignore_the_outlier(ax):
    lo, hi = ax.get_ylim()
    assert hi < 100, f"the axis reaches {hi:g}: the outlier set it"
    assert lo <= FLOOR.mean - FLOOR.std and hi >= 2.2  # the floor band and the bulk (w2 up to ~2.3) inside


def test_an_outlier_keeps_the_axis_to_the_bulk_and_the_floor_and_is_listed(drawn, tmp_path):
    plots.quality_vs_nfe(_frame(), "moons", "w2", True, tmp_path, FLOOR)
    (fig, caption), = drawn
    for ax in [a for a in fig.axes if a.get_visible()]:
        _check_limits_ignore_the_outlier(ax)
    # the outlier pulls the seed mean to 3.3e7, which the caption lists with its method and solver
    assert "edm / heun at NFE 4: 3.33e+07" in caption


def test_the_headline_figure_keeps_its_axes_too(drawn, tmp_path):
    from odebench.bench.report.headline_figure import headline_figure

    frame = _frame(solvers=("heun",))  # heun is edm's only solver: the outlier is its best at NFE 4
    headline_figure(frame, "moons", "w2", True, tmp_path, FLOOR)
    (fig, caption), = drawn
    _check_limits_ignore_the_outlier(fig.axes[0])
    assert "edm / heun at NFE 4: 3.33e+07" in caption


def test_log_scale_is_decided_by_the_means_not_broken_by_a_bar_below_zero(drawn, tmp_path):
    frame = _frame(outlier=False)
    frame.loc[(frame["method"] == "rf") & (frame["nfe"] == 64), "w2"] = [0.001, 0.002, 0.06] * 2
    plots.quality_vs_nfe(frame, "moons", "w2", True, tmp_path)  # mean - std < 0 there; every mean > 0
    (fig, _), = drawn
    assert fig.axes[0].get_yscale() == "log"


def _wide_source_regenerate(lm, cell, n, trajectory=False):
    """Straight paths from the source to points near the data; 'edm' starts from N(0, 80^2 I)."""
    gen = torch.Generator().manual_seed(1)
    x0 = torch.randn(n, 2, generator=gen) * (80.0 if lm.name == "edm" else 1.0)
    x1 = torch.randn(n, 2, generator=gen)
    t = torch.linspace(0, 1, 9).reshape(9, 1, 1)
    path = (1 - t) * x0 + t * x1
    return SimpleNamespace(x=x1, trajectory=path)


def test_no_trajectory_panel_is_one_dot_when_one_source_is_80_times_wider(drawn, tmp_path, monkeypatch):
    monkeypatch.setattr(mf, "regenerate", _wide_source_regenerate)
    names = ["edm", *(f"flow{i}" for i in range(11))]
    mf.trajectory_figure("moons", {n: _model(n) for n in names}, tmp_path, n_paths=200)
    (fig, caption), = drawn
    panels = [ax for ax in fig.axes if ax.get_visible() and ax.get_title()]
    assert len(panels) == 12
    for ax in panels:
        # the source draws and the samples each fill the panel (on EDM's own plain axes its samples were a dot)
        _, source, samples = (c.get_offsets() for c in ax.collections if isinstance(c, PathCollection))
        (x0, x1), (y0, y1) = ax.get_xlim(), ax.get_ylim()
        for end, pts in (("source", source), ("samples", samples)):
            spread = max(np.ptp(pts[:, 0]) / (x1 - x0), np.ptp(pts[:, 1]) / (y1 - y0))
            assert spread > 0.3, f"panel {ax.get_title()!r}: its {end} fill {spread:.1%} of the axes"
    width, height = fig.get_size_inches()
    assert width / height < 3  # wrapped into a grid, not a 12-panel strip
    assert "edm: drawn on its own axes in normalized coordinates" in caption


def test_normalized_paths_keep_the_samples_and_bring_the_source_to_their_scale():
    gen = np.random.default_rng(0)
    x0, x1 = gen.normal(size=(500, 2)) * 80, gen.normal(size=(500, 2))
    t = np.linspace(0, 1, 5)[:, None, None]
    out = mf.normalized_paths((1 - t) * x0 + t * x1)
    np.testing.assert_allclose(out[-1], x1)
    assert mf._robust_spread(out[0]) == pytest.approx(mf._robust_spread(x1))
    assert out[0].std() == pytest.approx(x1.std(), rel=0.1)
    np.testing.assert_allclose(out[0] / np.linalg.norm(out[0], axis=1, keepdims=True),
                               x0 / np.linalg.norm(x0, axis=1, keepdims=True))  # directions kept


def _legend_colors(fig) -> dict[str, str]:
    """Legend label -> colour of its line, over every panel (an errorbar's colour is its data line's)."""
    out = {}
    for ax in fig.axes:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            line = handle.lines[0] if isinstance(handle, ErrorbarContainer) else handle
            if hasattr(line, "get_color"):
                out[label] = to_hex(line.get_color())
    return out


def test_a_solver_has_one_colour_in_every_figure(drawn, tmp_path):
    plots.quality_vs_nfe(_frame(outlier=False, solvers=("euler", "heun")), "a", "w2", True, tmp_path)
    plots.quality_vs_nfe(_frame(outlier=False, solvers=("dopri5", "euler", "heun", "midpoint")), "b", "w2",
                         True, tmp_path)
    first, second = (_legend_colors(fig) for fig, _ in drawn)
    assert first["euler"] == second["euler"] and first["heun"] == second["heun"]


def test_a_new_name_hashes_to_the_same_colour_in_every_process():
    code = ("from odebench.bench.report.palette import solver_color, method_color; "
            "print(solver_color('brand_new_solver'), method_color('brand_new(k=3)'))")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    outs = {subprocess.run([sys.executable, "-c", code], env={**env, "PYTHONHASHSEED": seed}, check=True,
                           capture_output=True, text=True).stdout for seed in ("1", "2")}
    assert len(outs) == 1


def test_a_sample_sheet_of_64_colour_images_stays_under_400_kb(tmp_path):
    noise = torch.rand(64, 3, 64, 64, generator=torch.Generator().manual_seed(0)) * 2 - 1  # the worst case
    path = Path(save_sample_sheet(noise, tmp_path / "s.png", root=tmp_path))
    assert path.stat().st_size <= 400_000


@pytest.mark.parametrize("n_methods", [12, 30])
def test_the_samples_figure_stays_under_400_kb_however_many_methods_it_has(tmp_path, monkeypatch, n_methods):
    """Twelve methods, and thirty (study-toy's sheet has about twenty rows with the few-step families): the
    points per panel shrink with the panel count, so the sheet's size does not grow with its rows."""
    def scatter(lm, cell, n, trajectory=False):
        return SimpleNamespace(x=torch.randn(n, 2, generator=torch.Generator().manual_seed(cell.nfe)))

    monkeypatch.setattr(mf, "regenerate", scatter)
    (tmp_path / PACKED).write_bytes(b"")  # a packed folder: the PNG only, no PDF to wait for
    panels = {}
    for i in range(n_methods):
        lm = _model(f"m{i}")
        lm.problem.target.test = torch.randn(2000, 2, generator=torch.Generator().manual_seed(i))
        panels[f"m{i}"] = (lm, [(f"euler, NFE {n}", lm.cell.__class__(**{**lm.cell.__dict__, "nfe": n}), 0.1)
                                for n in (1, 2, 8, 64)])
    fig = mf.samples_figure("moons", panels, "w2", tmp_path)
    assert (tmp_path / fig.png).stat().st_size <= 400_000


def _two_dataset_sweep(sweep_dir: Path) -> None:
    raw = {"name": "two", "seeds": [0, 1], "methods": [{"name": "fm_ot"}, {"name": "rf"}],
           "datasets": [{"target": "moons"}, {"target": "8gaussians"}],
           "solvers": [{"name": "euler", "nfe": [1, 4, 16]}], "eval": {"n_samples": 64, "metrics": ["w2"]}}
    store = RecordStore(sweep_dir)
    for cell in parse_spec(raw).cells:
        key = f"{cell.method['name']}-{cell.target}-{cell.seed}"
        store.write({"schema_version": SCHEMA_VERSION, "cell_id": cell.id, "config": cell.config(),
                     "config_hash": cell.id, "environment": {}, "created": 0.0, "model_key": key,
                     "status": "ok", "reason": None, "nfe": cell.nfe, "nfe_requested": cell.nfe, "timings": {},
                     "metrics": {"w2": 0.2 + 1.0 / cell.nfe + 0.01 * cell.seed},
                     "metric_info": {"w2": {"higher_is_better": False}},
                     "training": {"cost": {"total_flops": 1e11 * (2 if cell.method["name"] == "rf" else 1)}}})


def test_every_dataset_opens_with_its_headline_figure(tmp_path):
    sweep_dir = tmp_path / "two"
    _two_dataset_sweep(sweep_dir)
    report = write_report(sweep_dir)
    page = (sweep_dir / "index.html").read_text()
    assert len(report.sections) == 2
    for section in report.sections:
        name = f"figures/headline_{plots.slug(section.dataset)}.png"
        assert (sweep_dir / name).is_file()
        body = page.split(f"<h2>{section.dataset}</h2>", 1)[1]
        assert f'<img src="{name}"' in body
        assert body.index(f'<img src="{name}"') < body.index("<table>")  # before the section's first table
        head = next(f for f in section.figures if f.png == name)
        assert "matched training compute" in head.caption


def test_paths_vs_round_logs_straightness_and_draws_the_reference_with_its_halves(drawn, tmp_path):
    rows, records = [], []
    for k, straight in ((1, 1.2), (2, 2e-4), (3, 1e-4)):
        for seed in range(3):
            cid = f"k{k}s{seed}"
            rows.append({"cell_id": cid, "method": f"rf(k={k})" if k > 1 else "rf", "method_name": "rf",
                         "status": "ok", "hp.distill": False, "hp.k": k, "seed": seed, "nfe": 64,
                         "straightness": straight * (1 + 0.1 * seed), "transport_cost": 0.97 - 0.002 * k,
                         "transport_cost.reference": 1.002})
            records.append({"cell_id": cid, "metrics": {"transport_cost.reference": 1.002},
                            "metric_info": {"transport_cost": {"settings": {"reference": {
                                "halves": [1.0344, 0.9782], "n": 5000}}}}})
    plots.paths_vs_round(pd.DataFrame(rows), "moons", tmp_path, records)
    (fig, caption), = drawn
    straight_ax, cost_ax = fig.axes[:2]
    assert straight_ax.get_yscale() == "log"  # rounds 2 and 3 (1e-4) are not flat on zero
    bars = [c for c in cost_ax.containers if isinstance(c, ErrorbarContainer) and c.get_label().startswith("its")]
    assert len(bars) == 1  # the reference's own error bar
    assert "the halves exceed the full estimate by 0.0043 (0.43 %)" in caption


def _spec_names():
    from odebench.bench.harness.spec.sweep import builtin_spec_names

    return sorted(builtin_spec_names())


@pytest.mark.parametrize("name", _spec_names())
def test_every_sampler_and_method_family_of_a_spec_has_its_own_marker_and_a_colour_far_from_the_others(name):
    """In the headline figure a marker names a solver and a colour a method family: two of a spec's solver labels
    sharing a marker, or two families colours closer than 60 in RGB (MeanFlow's hashed blue was 25 from rf's),
    would be read as one."""
    import itertools

    from odebench.bench.harness.spec.sweep import load_spec
    from odebench.bench.report import palette

    cells = load_spec(name).cells
    labels = sorted({c.solver_label for c in cells})
    assert len({palette.marker_of(s) for s in labels}) == len(labels), labels

    def rgb(color):
        return np.array([int(color[i:i + 2], 16) for i in (1, 3, 5)])

    families = sorted({c.method["name"] for c in cells})
    for a, b in itertools.combinations(families, 2):
        gap = np.linalg.norm(rgb(palette.family_color(a)) - rgb(palette.family_color(b)))
        assert gap >= 60, f"{a} and {b}: colours {gap:.0f} apart"


def test_normalized_paths_are_not_set_by_a_diverged_path_or_a_step_without_spread():
    gen = np.random.default_rng(0)
    x0, x1 = gen.normal(size=(500, 2)) * 80, gen.normal(size=(500, 2))
    t = np.linspace(0, 1, 5)[:, None, None]
    paths = (1 - t) * x0 + t * x1
    paths[-1, 0] = np.inf  # one diverged sample
    paths[:, 1] = 1e4  # one far-off path
    out = mf.normalized_paths(paths)
    finite = np.isfinite(out).all(axis=2)
    assert finite.sum() == finite.size - 1  # only the diverged sample itself
    assert mf._robust_spread(out[0]) == pytest.approx(mf._robust_spread(out[-1]), rel=0.05)
    still = np.zeros((3, 4, 2)) + 5.0  # every path at one point: kept as it is
    np.testing.assert_array_equal(mf.normalized_paths(still), still)


def test_tick_labels_sit_on_the_outer_drawn_scatter_panels(tmp_path, monkeypatch, drawn):
    """Labels only on the first drawn panel of each row and the lowest drawn panel of each column: a refused
    panel in the corner, or a short last row, leaves no column or row without them."""
    def scatter(lm, cell, n, trajectory=False):
        if lm.name == "m2" and cell.nfe == 1:
            raise mf.Unsupported("refused here")
        return SimpleNamespace(x=torch.randn(n, 2, generator=torch.Generator().manual_seed(cell.nfe)))

    monkeypatch.setattr(mf, "regenerate", scatter)
    panels = {}
    for i in range(3):
        lm = _model(f"m{i}")
        lm.problem.target.test = torch.randn(500, 2, generator=torch.Generator().manual_seed(i))
        budgets = (1, 2, 8) if i < 2 else (1, 2)  # the last row is short, and its first panel refused
        panels[f"m{i}"] = (lm, [(f"euler, NFE {n}", lm.cell.__class__(**{**lm.cell.__dict__, "nfe": n}), 0.1)
                                for n in budgets])
    mf.samples_figure("moons", panels, "w2", tmp_path)
    (fig, _), = drawn
    grid = np.array(fig.axes).reshape(3, 3)

    def labelled(ax, side):
        return ax.get_visible() and ax.axison and any(t.get_visible() and t.get_text() for t in
                   (ax.get_yticklabels() if side == "left" else ax.get_xticklabels()))

    fig.canvas.draw()
    left = {(r, c) for r in range(3) for c in range(3) if labelled(grid[r, c], "left")}
    bottom = {(r, c) for r in range(3) for c in range(3) if labelled(grid[r, c], "bottom")}
    assert left == {(0, 0), (1, 0), (2, 1)}
    assert bottom == {(1, 0), (2, 1), (1, 2)}
