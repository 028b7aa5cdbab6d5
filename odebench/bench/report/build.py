"""The report of one sweep: leaderboard tables (md, csv, tex, html), figures, and a static index.html.

``write_report(sweep_dir)`` reads every record of ``<results root>/<sweep>/cells`` and writes, in the sweep
folder:

- ``leaderboard.md`` / ``.tex`` / ``.html``: per dataset, the headline metric (the first of
  registered headline ranks present: FD for digits, W2 for 2-D sets, ...) as methods x NFE,
  mean ± std over seeds, with the best solver at each budget and per solver; every sample-quality metric per
  configuration; straightness / curvature / transport cost (with its exact-OT bound) and NLL where the
  records hold them; every failed or skipped cell with its reason.
- ``leaderboard.csv``: one row per (dataset, method, solver, budget) with seed counts by status and every
  metric's mean and std, at full precision.
- ``figures/*.png`` and ``*.pdf`` (see :mod:`odebench.bench.report.plots` and
:mod:`odebench.bench.report.model_figures`).
- ``index.html``: every table and figure on one page, relative links only, no scripts.

Failed and skipped cells are shown as such in every table, never dropped.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from odebench.bench.harness.versions import describe_changes
from odebench.bench.report.tables import (
    Sweep,
    best_solver_table,
    earlier_table,
    family_columns,
    headline_metric,
    issues_table,
    load_sweep,
    metric_failure_notes,
    metric_family_table,
    per_model_table,
    per_solver_table,
    summary_frame,
)
from odebench.metrics.registry import family_of

EARLIER_TITLE = "Cells from an earlier version of this spec"


@dataclass
class Table:
    """One titled table of strings (no index; the first columns name the configuration)."""

    title: str
    frame: pd.DataFrame
    caption: str = ""


@dataclass
class Section:
    """The tables and figures of one dataset."""

    dataset: str
    headline: str | None
    tables: list[Table] = field(default_factory=list)
    figures: list = field(default_factory=list)  # odebench.bench.report.plots.FigureFile


@dataclass
class Report:
    """A built report; ``files`` lists what ``write_report`` wrote (absolute paths)."""

    sweep: str
    dir: Path
    sections: list[Section]
    status_counts: dict[str, int]
    notes: list[str] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)
    summary: pd.DataFrame = field(default_factory=pd.DataFrame)
    #: records of the folder the latest spec no longer produces, left out of every table and figure
    earlier: Table | None = None
    #: one sentence on them for the top of the page (None: there are none)
    earlier_note: str | None = None


def dataset_tables(sweep: Sweep, dataset: str, metric: str | None) -> list[Table]:
    """The tables of one dataset (see the module docstring)."""
    f = sweep.frame[sweep.frame["dataset"] == dataset]
    tables = []
    if metric is not None:
        lower = sweep.lower_is_better(metric)
        direction = "lower" if lower else "higher"
        tables += [
            Table(f"{metric}: best solver per NFE", best_solver_table(f, metric, lower),
                  f"{metric} ({direction} is better), mean ± std over seeds, of the best solver at each "
                  f"budget (named in brackets); adaptive solvers by tolerance with the NFE they used."),
            Table(f"{metric} per solver", per_solver_table(f, metric),
                  f"{metric} ({direction} is better) for every solver and budget, mean ± std over seeds."),
        ]
    used = set(family_columns(sweep, dataset, family_of("path") + family_of("likelihood")))
    quality = [c for c in sweep.metric_columns(dataset) if c not in used]
    if quality:
        tables.append(Table("All sample-quality metrics", metric_family_table(f, quality),
                            "Every sample-quality metric the records hold, mean ± std over seeds; NFE is the "
                            "number of network evaluations actually used."))
    paths = family_columns(sweep, dataset, family_of("path"))
    if paths:
        tables.append(Table("Straightness, curvature and transport cost", metric_family_table(f, paths),
                            "Path metrics along each solver's path and transport cost E|Z1 - Z0|^2 of the "
                            "coupling the sampler produced, with its exact-OT bound where recorded."))
    nll = family_columns(sweep, dataset, family_of("likelihood"))
    once = [c for c in nll if sweep.is_per_model(c)]
    per_cell = [c for c in nll if not sweep.is_per_model(c)]
    if once:
        tables.append(Table("Negative log-likelihood", per_model_table(sweep, f, once),
                            "NLL of held-out data (nats; bpd = bits per dimension), once per trained model with "
                            "its own solve (named, with the NFE it used), mean ± std over seeds."))
    if per_cell:  # records from metrics measured along each cell's own solver
        tables.append(Table("Negative log-likelihood per solver", metric_family_table(f, per_cell),
                            "NLL of held-out data (nats; bpd = bits per dimension), mean ± std over seeds."))
    issues = issues_table(f)
    if len(issues):
        tables.append(Table("Failed and skipped cells", issues,
                            "Every cell that did not finish, with the recorded reason."))
    return tables


def dataset_figures(sweep: Sweep, dataset: str, metric: str | None, cache) -> tuple[list, list[str]]:
    """The figures of one dataset and notes on those that could not be drawn."""
    from odebench.bench.report import plots
    from odebench.bench.report.model_figures import model_figures

    f = sweep.frame[sweep.frame["dataset"] == dataset]
    figs, notes = [], []
    if metric is not None:
        figs.append(plots.quality_vs_nfe(f, dataset, metric, sweep.lower_is_better(metric), sweep.dir))
    figs.append(plots.paths_vs_round(f, dataset, sweep.dir))
    # a per-model NLL does not change with the sampler's NFE: only per-cell NLL columns get this figure
    per_cell_nll = [c for c in family_columns(sweep, dataset, family_of("likelihood")) if not sweep.is_per_model(c)]
    figs.append(plots.nll_vs_nfe(f, dataset, per_cell_nll, sweep.dir))
    if cache is not None:
        records = {r["cell_id"]: r for r in sweep.records}
        lower = sweep.lower_is_better(metric) if metric else True
        more, notes = model_figures(f, records, dataset, metric, lower, cache, sweep.dir)
        figs += more
    return [x for x in figs if x is not None], notes


def build_report(sweep_dir: str | Path, figures: bool = True, cache_dir: str | Path | None = None,
                 headline_order: Iterable[str] | None = None) -> Report:
    """Tables (and figures, written under ``<sweep_dir>/figures``) of every dataset of a sweep.

    ``cache_dir`` is the trained-model cache the model figures load from; default
    ``<sweep_dir>/../.cache/models``, where ``odebench run`` puts it. The headline metric of a dataset is
    the first of ``headline_order`` its records hold.
    """
    from odebench.bench.report.model_figures import ModelCache

    sweep = load_sweep(sweep_dir)
    counts = sweep.frame["status"].value_counts().to_dict() if not sweep.frame.empty else {}
    report = Report(sweep.name, sweep.dir, [], {k: int(v) for k, v in counts.items()},
                    summary=summary_frame(sweep))
    if sweep.earlier:
        current = [r["config"] for r in sweep.records]
        n = len(sweep.earlier)
        report.earlier = Table(EARLIER_TITLE, earlier_table(sweep.earlier, current),
                               "Records in this folder that the spec of its latest run no longer produces, by what "
                               "changed since; none of them enters a table, figure or the CSV above.")
        changes = describe_changes([r["config"] for r in sweep.earlier], current)
        report.earlier_note = (f"{n} cell{'s' if n > 1 else ''} in this folder come{'' if n > 1 else 's'} from an "
                               f"earlier version of this spec ({changes}) "
                               f"and {'are' if n > 1 else 'is'} left out of every table and figure; see "
                               f"\"{EARLIER_TITLE}\" at the end.")
    if sweep.frame.empty:
        report.notes.append(f"no records under {sweep.dir / 'cells'}: run the sweep first (odebench run)")
        return report
    cache_root = Path(cache_dir) if cache_dir else sweep.dir.parent / ".cache" / "models"
    cache = ModelCache(cache_root) if figures else None
    if figures and not cache_root.is_dir():
        report.notes.append(f"no model cache at {cache_root}: trajectory and sample figures skipped "
                            f"(give --cache DIR, or re-run the sweep)")
        cache = None
    for dataset in sweep.datasets():
        metric = headline_metric(sweep, dataset, headline_order)
        section = Section(dataset, metric, dataset_tables(sweep, dataset, metric))
        frame = sweep.frame[sweep.frame["dataset"] == dataset]
        if metric is None:
            report.notes.append(f"{dataset}: no cell finished with a metric value")
        report.notes += metric_failure_notes(frame, dataset)
        if figures:
            section.figures, notes = dataset_figures(sweep, dataset, metric, cache)
            report.notes += notes
        report.sections.append(section)
    return report


# ---------------------------------------------------------------------------------------------- writers
def _md_escape(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.map(lambda v: str(v).replace("|", "\\|").replace("\n", " "))


def to_markdown(report: Report) -> str:
    """The whole report as one markdown page (figures linked relative to the sweep folder)."""
    counts = ", ".join(f"{k} {v}" for k, v in sorted(report.status_counts.items())) or "none"
    lines = [f"# Leaderboard: {report.sweep}", "", f"Cells: {counts}.", ""]
    if report.earlier_note:
        lines += [f"**Note:** {report.earlier_note}", ""]
    for s in report.sections:
        lines += [f"## {s.dataset}", ""]
        for t in s.tables:
            lines += [f"### {t.title}", "", t.caption, "", _md_escape(t.frame).to_markdown(index=False), ""]
        for fig in s.figures:
            lines += [f"![{fig.title}]({fig.png})", "", f"{fig.caption} ([PDF]({fig.pdf}))", ""]
    if report.earlier is not None:
        t = report.earlier
        lines += [f"## {t.title}", "", t.caption, "", _md_escape(t.frame).to_markdown(index=False), ""]
    if report.notes:
        lines += ["## Notes", ""] + [f"- {n}" for n in report.notes] + [""]
    return "\n".join(lines)


def _tex_text(text: str) -> str:
    """Plain text (captions) escaped for LaTeX; our captions use only these specials."""
    for a, b in (("_", r"\_"), ("&", r"\&"), ("%", r"\%"), ("#", r"\#"), ("±", r"$\pm$"), ("^2", r"$^2$"),
                 ("|", r"$|$")):
        text = text.replace(a, b)
    return text


def to_latex(report: Report) -> str:
    """Every table as a booktabs ``table`` environment (``\\usepackage{booktabs}``), ready to \\input."""
    parts = [f"% odebench leaderboard of sweep {report.sweep!r}; needs \\usepackage{{booktabs}}", ""]
    for s in report.sections:
        for t in s.tables:
            body = t.frame.astype(str).to_latex(index=False, escape=True)
            body = body.replace("±", r"$\pm$")
            caption, title = _tex_text(t.caption), _tex_text(f"{s.dataset}: {t.title}")
            parts += [r"\begin{table}[ht]", r"\centering", r"\scriptsize", body.rstrip(),
                      rf"\caption{{{title}. {caption}}}", r"\end{table}", ""]
    return "\n".join(parts)


def write_report(sweep_dir: str | Path, figures: bool = True, cache_dir: str | Path | None = None,
                 headline_order: Iterable[str] | None = None) -> Report:
    """Build the report of a sweep folder and write every file (see the module docstring)."""
    from odebench.bench.harness.artifacts import atomic_write_bytes
    from odebench.bench.report.html import to_html

    report = build_report(sweep_dir, figures=figures, cache_dir=cache_dir, headline_order=headline_order)
    d = report.dir
    texts = {"leaderboard.md": to_markdown(report), "leaderboard.tex": to_latex(report),
             "leaderboard.html": to_html(report, with_figures=False),
             "index.html": to_html(report, with_figures=True)}
    texts["leaderboard.csv"] = report.summary.to_csv(index=False)
    for name, text in texts.items():
        atomic_write_bytes(d / name, text.encode())
        report.files.append(d / name)
    for s in report.sections:
        for fig in s.figures:
            report.files += [d / fig.png, d / fig.pdf]
    return report


def write_leaderboard_md(sweep_dir: str | Path, metric_order: list[str] | None = None) -> Path | None:
    """The tables only (no figures): returns the path of leaderboard.md, None if the sweep has no records."""
    report = write_report(sweep_dir, figures=False, headline_order=metric_order)
    return report.dir / "leaderboard.md" if report.sections else None
