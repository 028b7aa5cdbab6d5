"""The report reads well: one rule for significant digits, the best value of each column marked, one y-scale
per figure (log where the range calls for it), adaptive markers inside the axes, error bars only with several
seeds, figures before the long (collapsed) tables, a reading of each metric, and no figure left over from an
earlier report."""

from __future__ import annotations

import math

import pandas as pd
import pytest
from matplotlib.container import ErrorbarContainer
from test_report import write_fixture

import odebench.bench.report.plots as plots
from odebench.bench.report.build import write_report
from odebench.bench.report.format import best_positions, fmt_mean_std, fmt_sig, unmark
from odebench.bench.report.tables import fmt_stat, per_solver_table


def test_one_rule_for_significant_digits():
    assert fmt_stat([2.69]) == "2.690" and fmt_stat([0.9081]) == "0.9081"  # not 2.69 beside 0.9081
    assert fmt_stat([1.5, 1.6]) == "1.550 ± 0.071"
    assert fmt_sig(-2.2e-15) == "-2.200e-15" and fmt_sig(123456.0) == "1.235e+05" and fmt_sig(9.99996) == "10.00"
    assert fmt_sig(0.0) == "0" and fmt_mean_std(0.98023, math.nan) == "0.9802"


def test_best_positions():
    assert best_positions([0.3, 0.1, 0.2], lower_is_better=True) == {1}
    assert best_positions([0.3, 0.1, 0.2], lower_is_better=False) == {0}
    assert best_positions([0.1, 0.1, 0.2], lower_is_better=True) == {0, 1}
    assert best_positions([0.1, 0.1], lower_is_better=True) == set()  # all equal: nothing stands out
    assert best_positions([0.1, math.nan], lower_is_better=True) == set()  # nothing to compete with


@pytest.fixture(scope="module")
def fixture_dir(tmp_path_factory):
    sweep_dir = tmp_path_factory.mktemp("reading") / "fixture"
    write_fixture(sweep_dir)
    return sweep_dir


def test_best_value_of_each_column_is_marked_in_every_format(fixture_dir):
    report = write_report(fixture_dir, figures=False)
    per_solver = report.sections[0].tables[1].frame
    col = per_solver["NFE 4"].map(lambda v: unmark(v)[1])
    assert col.sum() == 1  # one best value in the column
    best_row = per_solver[col].iloc[0]
    assert (best_row["method"], best_row["solver"]) == ("rf", "heun")  # lowest w2 at NFE 4 in the fixture
    html = (fixture_dir / "index.html").read_text()
    assert '<td class="best"><strong>' in html and "**" not in html
    assert r"\textbf{" in (fixture_dir / "leaderboard.tex").read_text()
    assert "**" in (fixture_dir / "leaderboard.md").read_text()


def test_higher_is_better_marks_the_largest():
    frame = pd.DataFrame({"method": ["a", "b"], "solver": ["euler"] * 2, "budget": ["NFE 4"] * 2,
                          "budget_rank": [4.0] * 2, "is_adaptive": [False] * 2, "status": ["ok"] * 2,
                          "nfe": [4, 4], "precision": [0.8, 0.9]})
    table = per_solver_table(frame, "precision", lower_is_better=False)
    assert list(table["NFE 4"]) == ["0.8000", "**0.9000**"]


def _frame(values: dict[str, list[tuple[float, float]]], seeds: int = 1, adaptive_nfe: float | None = None):
    """A report frame: per method, (nfe, w2) points of euler, optionally a dopri5 point, over ``seeds``."""
    rows = []
    for method, points in values.items():
        for seed in range(seeds):
            for nfe, w2 in points:
                rows.append({"method": method, "solver": "euler", "budget": f"NFE {nfe}", "budget_rank": nfe,
                             "is_adaptive": False, "status": "ok", "nfe": nfe, "seed": seed, "w2": w2 + 0.01 * seed})
            if adaptive_nfe:
                rows.append({"method": method, "solver": "dopri5", "budget": "tol 1e-05", "budget_rank": 1e9,
                             "is_adaptive": True, "status": "ok", "nfe": adaptive_nfe, "seed": seed,
                             "w2": points[-1][1] + 0.01 * seed})
    return pd.DataFrame(rows)


@pytest.fixture
def drawn(monkeypatch, tmp_path):
    """The figures plots.save is given, kept open for inspection."""
    figures = []

    def keep(fig, sweep_dir, stem, title, caption=""):
        figures.append((fig, caption))
        return plots.FigureFile(title, f"{stem}.png", f"{stem}.pdf", caption)

    monkeypatch.setattr(plots, "save", keep)
    yield figures
    for fig, _ in figures:
        plots.plt.close(fig)


def test_one_y_scale_across_methods_and_adaptive_markers_inside(drawn, tmp_path):
    # a real drop (2.7 -> 0.2) beside a flat curve (0.245 -> 0.275): the same axis makes the difference visible
    frame = _frame({"steep": [(1, 2.7), (8, 0.9), (64, 0.2)], "flat": [(1, 0.275), (8, 0.26), (64, 0.245)]},
                   adaptive_nfe=80)
    plots.quality_vs_nfe(frame, "moons", "w2", True, tmp_path)
    (fig, caption), = drawn
    axes = [ax for ax in fig.axes if ax.get_visible()]
    assert len(axes) == 2 and axes[0].get_ylim() == axes[1].get_ylim()
    assert axes[0].get_yscale() == "linear" and "one y-scale for every method" in caption
    for ax in axes:
        lo, hi = ax.get_xlim()
        assert lo < 1 and hi > 80  # the dopri5 marker at NFE 80 sits inside the axes ...
        assert max(ax.get_xticks()) >= 80  # ... and a tick lies beyond it


def test_log_scale_where_the_range_calls_for_it(drawn, tmp_path):
    frame = _frame({"a": [(1, 30.0), (64, 0.05)], "b": [(1, 1.0), (64, 0.5)]})
    plots.quality_vs_nfe(frame, "moons", "w2", True, tmp_path)
    (fig, caption), = drawn
    assert all(ax.get_yscale() == "log" for ax in fig.axes if ax.get_visible())
    assert "one log y-scale" in caption


@pytest.mark.parametrize("seeds, bars", [(1, False), (2, True)])
def test_error_bars_only_with_several_seeds(drawn, tmp_path, seeds, bars):
    plots.quality_vs_nfe(_frame({"a": [(1, 1.0), (4, 0.5)]}, seeds=seeds, adaptive_nfe=20), "moons", "w2", True,
                         tmp_path)
    (fig, caption), = drawn
    ax = fig.axes[0]
    assert any(isinstance(c, ErrorbarContainer) for c in ax.containers) == bars
    handles, _ = ax.get_legend_handles_labels()
    assert any(isinstance(h, ErrorbarContainer) for h in handles) == bars  # the legend shows no bar for 1 seed
    assert ("mean and 95 % t-interval over seeds" in caption) == bars


def test_figures_come_before_the_long_tables_which_are_collapsed(fixture_dir):
    write_report(fixture_dir, figures=True)
    html = (fixture_dir / "index.html").read_text()
    headline = html.index('<img src="figures/headline_moons.png"')  # the headline figure opens the section
    first_figure = html.index('<img src="figures/quality_vs_nfe_moons.png"')
    assert headline < html.index("w2: best solver per NFE") < first_figure < html.index("All sample-quality metrics")
    long_table = html[html.index("All sample-quality metrics"):]
    assert long_table.index("<details>") < long_table.index("<table>")
    md = (fixture_dir / "leaderboard.md").read_text()
    assert md.index("![moons: w2 vs NFE]") < md.index("### All sample-quality metrics")


def test_each_metric_says_what_near_zero_and_negative_values_mean(fixture_dir):
    write_report(fixture_dir, figures=False)
    html = (fixture_dir / "index.html").read_text()
    assert "How to read it: w2: W2 is &gt;= 0" in html
    assert "transport_cost: The exact OT cost (.ot) of the same two sets bounds" in html and "-2e-15 is 0" in html
    from odebench.metrics import METRICS

    assert "slightly negative" in METRICS.get("mmd").reading
    assert all(METRICS.get(m).reading for m in METRICS.names())  # every built-in metric has its sentence


def test_a_report_removes_the_figures_of_the_one_before(fixture_dir):
    write_report(fixture_dir, figures=True)
    figures = fixture_dir / "figures"
    assert list(figures.glob("*.png"))
    (figures / "quality_vs_nfe_a-dataset-gone.png").write_bytes(b"stale")
    write_report(fixture_dir, figures=False)
    assert not list(figures.glob("*.png")) and not list(figures.glob("*.pdf"))
    assert "<figure>" not in (fixture_dir / "index.html").read_text()
