"""The report of one sweep: leaderboard tables (md, csv, tex, html), figures, and a static index.html.

``write_report(sweep_dir)`` reads the records of ``<results root>/<sweep>/cells`` that the latest run's spec
produces (``sweep.json``; every record in a folder from before it) and writes, in the sweep folder:

- ``leaderboard.md`` / ``.tex`` / ``.html``: per dataset, the headline metric (the first of
  registered headline ranks present: FD for digits, W2 for 2-D sets, ...) as methods x NFE,
  mean ± std over seeds, with the best solver at each budget and per solver; every sample-quality metric per
  configuration; straightness / curvature / transport cost (with its exact-OT bound) and NLL where the
  records hold them; every failed or skipped cell, and every metric that failed alone, with its reason.
  Numbers follow one rule for significant digits (:mod:`odebench.bench.report.format`), the best value of
  each column is bold, and each table ends with what near-zero or negative values of its metrics mean
  (the metric's registered ``reading``).
- ``leaderboard.csv``: one row per configuration (dataset, method, solver, budget and the hash of the whole
  configuration less the seed) with seed counts by status and every metric's mean and std, at full precision.
- ``figures/*.png`` and ``*.pdf`` (see :mod:`odebench.bench.report.plots` and
  :mod:`odebench.bench.report.model_figures`); the folder is the report's own: each report removes the
  figures of the one before that it did not draw again.
- ``index.html``: every table and figure on one page, relative links only, no scripts: the leaderboard
  tables, then the figures, then the long tables, collapsed; records of an earlier version of the spec are
  named at the top and listed at the end.

A report is built whole in a staging folder inside the sweep folder and only then published (``write_report``):
one that fails or is interrupted leaves the previous report, figures included, as it was. Every file lands in
the sweep folder and every delete goes through ``safe_paths.remove_file``; a ``figures/`` or ``index.html``
that is a symlink out of the folder is refused before any work.

Failed and skipped cells are shown as such in every table, never dropped; records of another configuration
never share a row (:mod:`odebench.bench.report.tables`). The report is total: whatever the records hold, it is
written, with a note per problem -- a corrupt record file (listed, and counted as ``corrupt``), a metric a cell
could not estimate, a NaN/inf value (inf shows in the tables; non-finite values are never plotted, so axes stay
finite), a model missing from the cache, a figure that could not be drawn.
"""

from __future__ import annotations

import math
import os
import re
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from odebench.bench.harness.store.versions import describe_changes
from odebench.bench.report import training
from odebench.bench.report.tables import (
    Sweep,
    best_solver_table,
    corrupt_note,
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
    """One titled table of strings (no index; the first columns name the configuration).

    ``reading`` (what near-zero or negative values of its metrics mean) is printed under it; a ``long`` table
    comes after the figures and is collapsed on the HTML page.
    """

    title: str
    frame: pd.DataFrame
    caption: str = ""
    reading: str = ""
    long: bool = False


@dataclass
class Section:
    """The tables and figures of one dataset."""

    dataset: str
    headline: str | None
    tables: list[Table] = field(default_factory=list)
    figures: list = field(default_factory=list)  # odebench.bench.report.plots.FigureFile

    @property
    def first_tables(self) -> list[Table]:
        """The tables above the figures (the leaderboard proper)."""
        return [t for t in self.tables if not t.long]

    @property
    def long_tables(self) -> list[Table]:
        """The tables below the figures."""
        return [t for t in self.tables if t.long]


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
    #: the claims checked on the sweep (odebench.bench.report.claims.Claims) and their index.html section
    claims: object | None = None
    claims_html: str = ""


def reading_of(columns) -> str:
    """The registered reading sentence of every metric among ``columns`` (``nll.bpd`` follows ``nll``)."""
    from odebench.metrics import METRICS

    out = []
    for name in dict.fromkeys(c.split(".")[0] for c in columns):
        if name in METRICS and METRICS.get(name).reading:
            out.append(f"{name}: {METRICS.get(name).reading}")
    return " ".join(out)


def floor_legend(floors: dict, columns: list[str]) -> str:
    """The legend line of the floor row and of the NEAR mark, for the columns that have a floor ('' if none)."""
    shown = [floors[c] for c in columns if c in floors]
    if not shown:
        return ""
    f = shown[0]
    return (f"Floor row: the metric between an independent draw of the data law and the same held-out data "
            f"(n = {f.n}; {f.draw}), mean ± std over {len(f.values)} draws: what a perfect model would score. "
            f"≈ marks a value whose difference to its column's best (or, after a solver's name, to another "
            f"solver at that budget) is smaller than the floor's std: not told apart at this sample size.")


def dataset_tables(sweep: Sweep, dataset: str, metric: str | None) -> list[Table]:
    """The tables of one dataset (see the module docstring); the best value of each column is marked, and
    sample-quality tables carry the metric's two-sample floor (odebench.bench.report.floors)."""
    f = sweep.frame[sweep.frame["dataset"] == dataset]
    models = training.model_rows(sweep.records, f)
    unfinished = training.still_improving(models, dataset)
    if unfinished:  # the leaderboards name them: a method whose model has not converged is marked in every row
        f = f.assign(method=[m + training.STILL_IMPROVING if m in unfinished else m for m in f["method"]])
    lower_of = sweep.lower_is_better
    best = "best value of each column in bold"
    floors = sweep.floors.get(dataset, {})
    tables = []
    if metric is not None:
        lower = lower_of(metric)
        direction = "lower" if lower else "higher"
        legend = floor_legend(floors, [metric])
        tables += [
            Table(f"{metric}: best solver per NFE", best_solver_table(f, metric, lower, floors.get(metric)),
                  f"{metric} ({direction} is better), mean ± std over seeds, of the best solver at each "
                  f"budget (named in brackets); adaptive solvers by tolerance with the NFE they used; {best}."
                  + (f" {legend}" if legend else "")),
            Table(f"{metric} per solver", per_solver_table(f, metric, lower, floors.get(metric)),
                  f"{metric} ({direction} is better) for every solver and budget, mean ± std over seeds; {best}."
                  + (f" {legend}" if legend else ""), reading_of([metric])),
        ]
    used = set(family_columns(sweep, dataset, family_of("path") + family_of("likelihood")))
    quality = [c for c in sweep.metric_columns(dataset) if c not in used]
    if quality:
        legend = floor_legend(floors, quality)
        tables.append(Table("All sample-quality metrics", metric_family_table(f, quality, lower_of, floors),
                            f"Every sample-quality metric the records hold, mean ± std over seeds; NFE is the "
                            f"number of network evaluations actually used; {best}." + (f" {legend}" if legend else ""),
                            reading_of(quality), long=True))
    paths = family_columns(sweep, dataset, family_of("path"))
    if paths:
        tables.append(Table("Straightness, curvature and transport cost", metric_family_table(f, paths, lower_of),
                            f"Path metrics along each solver's path and transport cost E|Z1 - Z0|^2 of the "
                            f"coupling the sampler produced, with its exact-OT bound where recorded; {best}.",
                            reading_of(paths), long=True))
    nll = family_columns(sweep, dataset, family_of("likelihood"))
    once = [c for c in nll if sweep.is_per_model(c)]
    per_cell = [c for c in nll if not sweep.is_per_model(c)]
    if once:
        tables.append(Table("Negative log-likelihood", per_model_table(sweep, f, once),
                            f"NLL of held-out data (nats; bpd = bits per dimension), once per trained model with "
                            f"its own solve (named, with the NFE it used), mean ± std over seeds; {best}.",
                            reading_of(once), long=True))
    if per_cell:  # records from metrics measured along each cell's own solver
        tables.append(Table("Negative log-likelihood per solver", metric_family_table(f, per_cell, lower_of),
                            f"NLL of held-out data (nats; bpd = bits per dimension), mean ± std over seeds; {best}.",
                            reading_of(per_cell), long=True))
    if not models.empty:
        rule = next((r for r in models["rule"] if r), "")
        tables.append(Table("Training: cost and convergence", training.training_table(models, dataset),
                            "Per method: training steps, cost of one step in forward passes of the spec's "
                            "network (forward + backward of every network the loss calls), parameters, total "
                            "training FLOPs (parents and reflow pair generation included) and wall seconds, and "
                            f"how many of its models had converged ({rule}). Methods marked "
                            f"{training.STILL_IMPROVING!r} in the tables above had a model still improving."))
    issues = issues_table(f)
    if len(issues):
        tables.append(Table("Failed and skipped cells", issues,
                            "Every cell that did not finish, and every metric that failed alone, with the "
                            "recorded reason.", long=True))
    legend = training.improving_legend(models, dataset)  # under every table whose rows carry the mark
    return [Table(t.title, t.frame, f"{t.caption} {legend}", t.reading, t.long)
            if legend and training.marked(t.frame) else t for t in tables]


#: metric values beyond this magnitude are not plotted (their mean and std overflow to inf)
PLOT_MAX = 1e100


def plottable(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """``frame`` with NaN where a metric column holds inf or a value beyond PLOT_MAX (listed in the notes)."""
    out = frame.copy()
    for c in columns:
        if c in out:
            v = pd.to_numeric(out[c], errors="coerce")
            out[c] = v.where(v.abs() <= PLOT_MAX)
    return out


def dataset_figures(sweep: Sweep, dataset: str, metric: str | None, cache,
                    root: Path | None = None) -> tuple[list, list[str]]:
    """The figures of one dataset, written under ``<root>/figures`` (default: the sweep folder), and notes on
    those that could not be drawn (each figure on its own: one that fails is a note, never the end of the
    report)."""
    from odebench.bench.report import plots
    from odebench.bench.report.model_figures import model_figures

    root = sweep.dir if root is None else root
    f = plottable(sweep.frame[sweep.frame["dataset"] == dataset], sweep.metric_columns())
    # a per-model NLL does not change with the sampler's NFE: only per-cell NLL columns get this figure
    per_cell_nll = [c for c in family_columns(sweep, dataset, family_of("likelihood")) if not sweep.is_per_model(c)]
    draws = [("paths vs reflow round", lambda: plots.paths_vs_round(f, dataset, root)),
             ("NLL vs NFE", lambda: plots.nll_vs_nfe(f, dataset, per_cell_nll, root)),
             ("held-out loss", lambda: training.heldout_figure(training.model_rows(sweep.records, f), dataset,
                                                               root))]
    if metric is not None:
        floor = sweep.floors.get(dataset, {}).get(metric)
        draws.insert(0, ("quality vs NFE", lambda: plots.quality_vs_nfe(f, dataset, metric,
                                                                        sweep.lower_is_better(metric), root,
                                                                        floor)))
    figs, notes = [], []
    for title, draw in draws:
        try:
            figs.append(draw())
        except Exception as exc:
            notes.append(f"{dataset}: figure '{title}' not drawn: {type(exc).__name__}: {str(exc)[:200]}")
    if cache is not None:
        records = {r["cell_id"]: r for r in sweep.records}
        lower = sweep.lower_is_better(metric) if metric else True
        try:
            more, model_notes = model_figures(f, records, dataset, metric, lower, cache, root)
            figs += more
            notes += model_notes
        except Exception as exc:
            notes.append(f"{dataset}: trajectory and sample figures not drawn: {type(exc).__name__}: "
                         f"{str(exc)[:200]}")
    return [x for x in figs if x is not None], notes


#: the figures drawn from the trained models (odebench.bench.report.model_figures): file stem, title
MODEL_FIGURES = (("trajectories", "trajectories"), ("samples", "samples"))
KEPT_CAPTION = ("Drawn from the trained models by an earlier report and kept as it was: the model cache is not "
                "here to draw it again (give --cache DIR to redraw it).")


def earlier_model_figures(sweep_dir: Path, dataset: str) -> list:
    """The trajectory and sample figures of ``dataset`` that an earlier report left in ``<sweep_dir>/figures``
    (regular files only), as FigureFiles; a report without the model cache keeps them instead of losing them."""
    from odebench.bench.report.plots import FigureFile, slug

    def regular(p: Path) -> bool:
        return p.is_file() and not p.is_symlink()

    out = []
    for stem, title in MODEL_FIGURES:
        name = f"{stem}_{slug(dataset)}"
        png, pdf = (Path(sweep_dir) / "figures" / f"{name}{ext}" for ext in (".png", ".pdf"))
        if regular(png):
            out.append(FigureFile(f"{dataset}: {title}", f"figures/{png.name}",
                                  f"figures/{pdf.name}" if regular(pdf) else None, KEPT_CAPTION))
    return out


def problem_notes(sweep: Sweep) -> list[str]:
    """A note per corrupt record file, failed metric and non-finite value of the sweep."""
    labels = {}
    if not sweep.frame.empty:
        for _, r in sweep.frame.iterrows():
            labels[r["cell_id"]] = f"{r['method']} on {r['dataset']}, {r['solver']} {r['budget']}, seed {r['seed']}"
    notes = [corrupt_note(p, reason) for p, reason in sorted(sweep.corrupt.items())]
    notes += [f"cell {cid} ({labels.get(cid, '?')}): metric {m} failed: {reason}"
              for cid, m, reason in sweep.metric_failures]
    notes += [f"cell {cid} ({labels.get(cid, '?')}): {col} = {v} (non-finite; not plotted)"
              for cid, col, v in sweep.nonfinite]
    for c in sweep.metric_columns() if not sweep.frame.empty else []:
        v = pd.to_numeric(sweep.frame[c], errors="coerce")
        big = v.map(lambda y: math.isfinite(y) and abs(y) > PLOT_MAX)
        notes += [f"cell {cid} ({labels.get(cid, '?')}): {c} = {x:.3g} (too large to plot; in the tables only)"
                  for cid, x in zip(sweep.frame.loc[big, "cell_id"], v[big], strict=True)]
    return notes


def build_report(sweep_dir: str | Path, figures: bool = True, cache_dir: str | Path | None = None,
                 headline_order: Iterable[str] | None = None, given: dict | None = None,
                 figures_dir: str | Path | None = None) -> Report:
    """Tables (and figures, written under ``<figures_dir>/figures``, default ``<sweep_dir>/figures``) of every
    dataset of a sweep.

    ``cache_dir`` is the trained-model cache the model figures load from; default
    ``<sweep_dir>/../.cache/models``, where ``odebench run`` puts it. The headline metric of a dataset is
    the first of ``headline_order`` its records hold. ``given`` maps the keys of models evaluated as given
    (``odebench eval``) to (adapter, networks), which the figures sample instead of the cache.
    """
    from odebench.bench.report.floors import sweep_floors
    from odebench.bench.report.model_figures import ModelCache

    sweep = load_sweep(sweep_dir)
    floor_notes: list[str] = []
    if not sweep.frame.empty:
        sweep.floors, floor_notes = sweep_floors(sweep)
    counts = sweep.frame["status"].value_counts().to_dict() if not sweep.frame.empty else {}
    if sweep.corrupt:
        counts["corrupt"] = len(sweep.corrupt)
    report = Report(sweep.name, sweep.dir, [], {k: int(v) for k, v in counts.items()},
                    summary=summary_frame(sweep), notes=problem_notes(sweep) + floor_notes)
    if sweep.earlier:
        current = [r["config"] for r in sweep.records]
        n = len(sweep.earlier)
        report.earlier = Table(EARLIER_TITLE, earlier_table(sweep.earlier, current),
                               "Records in this folder that the spec of its latest run no longer produces, by what "
                               "changed since; none of them enters a table, figure or the CSV above.")
        changes = describe_changes([r["config"] for r in sweep.earlier], current)
        report.earlier_note = (f"{n} cell{'s' if n > 1 else ''} in this folder come{'' if n > 1 else 's'} from an "
                               f"earlier version of this spec and {'are' if n > 1 else 'is'} left out of every "
                               f"table and figure: {changes}. \"{EARLIER_TITLE}\" at the end lists them.")
    if sweep.frame.empty:
        if not sweep.corrupt:
            report.notes.append(f"no records under {sweep.dir / 'cells'}: run the sweep first (odebench run)")
        else:  # the notes above say what is wrong with each; running the sweep is not the answer
            report.notes.append(f"no sound record in {sweep.dir}: {len(sweep.corrupt)} unsound input(s), "
                                f"listed above")
        return report
    from odebench.bench.report.claims import evaluate, to_html_section

    try:
        report.claims = evaluate(sweep)
        report.claims_html = to_html_section(report.claims)
    except Exception as exc:  # a record shape the claims did not foresee: say so, write the rest
        report.notes.append(f"claims not checked: {type(exc).__name__}: {str(exc)[:200]}")
    cache_root = Path(cache_dir) if cache_dir else sweep.dir.parent / ".cache" / "models"
    cache = ModelCache(cache_root, given) if figures else None
    keep_earlier = False
    if figures and not cache_root.is_dir() and not given:
        keep_earlier = any(earlier_model_figures(sweep.dir, d) for d in sweep.datasets())
        report.notes.append(f"no model cache at {cache_root}: trajectory and sample figures "
                            + ("not redrawn; those of the earlier report are kept as they were " if keep_earlier
                               else "skipped ")
                            + "(give --cache DIR, or re-run the sweep)")
        cache = None
    for dataset in sweep.datasets():
        metric = headline_metric(sweep, dataset, headline_order)
        try:
            tables = dataset_tables(sweep, dataset, metric)
        except Exception as exc:  # a record shape the tables did not foresee: say so, write the rest
            report.notes.append(f"{dataset}: tables not built: {type(exc).__name__}: {str(exc)[:200]}")
            tables = []
        section = Section(dataset, metric, tables)
        frame = sweep.frame[sweep.frame["dataset"] == dataset]
        if metric is None:
            report.notes.append(f"{dataset}: no cell finished with a metric value")
        report.notes += metric_failure_notes(frame, dataset)
        if figures:
            section.figures, notes = dataset_figures(sweep, dataset, metric, cache,
                                                     Path(figures_dir) if figures_dir is not None else None)
            if keep_earlier:  # a pack in a clone has no models: its committed model figures stay
                section.figures += earlier_model_figures(sweep.dir, dataset)
            report.notes += notes
        report.sections.append(section)
    return report


# ---------------------------------------------------------------------------------------------- writers
def _md_escape(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.map(lambda v: str(v).replace("|", "\\|").replace("\n", " "))


def _md_table(t: Table) -> list[str]:
    reading = [f"*How to read it:* {t.reading}", ""] if t.reading else []
    return [f"### {t.title}", "", t.caption, "", _md_escape(t.frame).to_markdown(index=False), "", *reading]


def to_markdown(report: Report) -> str:
    """The whole report as one markdown page (figures linked relative to the sweep folder)."""
    counts = ", ".join(f"{k} {v}" for k, v in sorted(report.status_counts.items())) or "none"
    lines = [f"# Leaderboard: {report.sweep}", "", f"Cells: {counts}.", ""]
    if report.earlier_note:
        lines += [f"**Note:** {report.earlier_note}", ""]
    for s in report.sections:
        lines += [f"## {s.dataset}", ""]
        for t in s.first_tables:
            lines += _md_table(t)
        for fig in s.figures:
            pdf = f" ([PDF]({fig.pdf}))" if fig.pdf else ""
            lines += [f"![{fig.title}]({fig.png})", "", f"{fig.caption}{pdf}", ""]
        for t in s.long_tables:
            lines += _md_table(t)
    if report.earlier is not None:
        t = report.earlier
        lines += [f"## {t.title}", "", t.caption, "", _md_escape(t.frame).to_markdown(index=False), ""]
    if report.notes:
        lines += ["## Notes", ""] + [f"- {n}" for n in report.notes] + [""]
    return "\n".join(lines)


def _tex_text(text: str) -> str:
    """Plain text (captions) escaped for LaTeX; our captions use only these specials."""
    for a, b in (("_", r"\_"), ("&", r"\&"), ("%", r"\%"), ("#", r"\#"), ("±", r"$\pm$"), ("^2", r"$^2$"),
                 ("|", r"$|$"), ("≈", r"$\approx$")):
        text = text.replace(a, b)
    return text


def to_latex(report: Report) -> str:
    """Every table as a booktabs ``table`` environment (``\\usepackage{booktabs}``), ready to \\input."""
    parts = [f"% odebench leaderboard of sweep {report.sweep!r}; needs \\usepackage{{booktabs}}", ""]
    for s in report.sections:
        for t in s.tables:
            body = t.frame.astype(str).to_latex(index=False, escape=True)
            body = re.sub(r"\*\*(.+?)\*\*", r"\\textbf{\1}", body).replace("±", r"$\pm$").replace("≈", r"$\approx$")
            caption, title = _tex_text(f"{t.caption} {t.reading}".strip()), _tex_text(f"{s.dataset}: {t.title}")
            parts += [r"\begin{table}[ht]", r"\centering", r"\scriptsize", body.rstrip(),
                      rf"\caption{{{title}. {caption}}}", r"\end{table}", ""]
    return "\n".join(parts)


#: the files a report writes in the sweep folder besides figures/, in the order they are published (the page last)
REPORT_FILES = ("leaderboard.csv", "leaderboard.md", "leaderboard.tex", "leaderboard.html", "claims.md",
                "claims.csv", "index.html")


def remove_figures(sweep_dir: str | Path, keep: Iterable[str] = ()) -> list[Path]:
    """Delete the PNG and PDF files of ``<sweep_dir>/figures`` (the report's own folder, rewritten by each
    report) but those named in ``keep``, so that a report never shows, or leaves beside it, a figure from an
    earlier one. Each goes through ``safe_paths.remove_file``: a ``figures`` that leads out of the sweep folder
    is refused (UnsafePath) before anything is deleted, and a link or folder named like a figure is left alone.
    """
    from odebench.bench.harness.guards.safe_paths import UnsafePath, folder_inside, remove_file

    d = Path(sweep_dir).absolute()
    folder = d / "figures"
    folder_inside(d, folder)
    if not folder.is_dir():
        return []
    keep, removed = set(keep), []
    for path in sorted(folder.iterdir()):
        if path.suffix in (".png", ".pdf") and path.name not in keep:
            try:
                if remove_file(d, path):
                    removed.append(path)
            except UnsafePath:
                continue  # not a file odebench wrote: never deleted
    return removed


def check_report_targets(sweep_dir: Path) -> None:
    """Refuse (UnsafePath), before any work, a report whose files or ``figures/`` would land outside the sweep
    folder (a symlinked ``index.html`` or ``figures``)."""
    from odebench.bench.harness.guards.safe_paths import folder_inside, inside

    folder_inside(sweep_dir, sweep_dir / "figures")
    for name in REPORT_FILES:
        inside(sweep_dir, sweep_dir / name)


def publish(sweep_dir: Path, staging: Path, names: Iterable[str], keep: Iterable[str] = ()) -> None:
    """Move a whole report from ``staging`` into the sweep folder: the figures first (each an atomic rename over
    the old one of the same name), then the files ``names`` with ``index.html`` last, then the old figures the
    new report no longer shows (neither drawn nor named in ``keep``) are deleted. At every moment the
    ``index.html`` in place finds all its figures."""
    from odebench.bench.harness.guards.safe_paths import inside, make_dirs

    drawn = staging / "figures"
    figures = sorted(p.name for p in drawn.iterdir()) if drawn.is_dir() else []
    if figures:
        folder = make_dirs(sweep_dir, sweep_dir / "figures")
        targets = [inside(sweep_dir, folder / n) for n in figures]  # every target checked before the first move
        for name, target in zip(figures, targets, strict=True):
            os.replace(drawn / name, target)
    ordered = [n for n in REPORT_FILES if n in names] + [n for n in names if n not in REPORT_FILES]
    targets = [inside(sweep_dir, sweep_dir / n) for n in ordered]
    for name, target in zip(ordered, targets, strict=True):
        os.replace(staging / name, target)
    remove_figures(sweep_dir, keep=[*figures, *keep])


def write_report(sweep_dir: str | Path, figures: bool = True, cache_dir: str | Path | None = None,
                 headline_order: Iterable[str] | None = None, given: dict | None = None) -> Report:
    """Build the report of a sweep folder and write every file (see the module docstring); ``given``: as in
    :func:`build_report`.

    The report is drawn and written whole into a staging folder inside the sweep folder
    (``.report.odebench-<random>.tmp``) and published only then (:func:`publish`): a report that fails or is
    interrupted leaves the previous one as it was, every figure included, and its staging folder is removed
    (by the next report or run when a kill left it). Nothing is written or deleted outside the sweep folder.
    """
    from odebench.bench.harness.store.artifacts import atomic_write_bytes
    from odebench.bench.harness.store.stale_files import PROCESS_START, STAGING_PREFIX, remove_staging
    from odebench.bench.report.html import to_html

    d = Path(sweep_dir).absolute()  # one absolute folder for every check and join below
    if not d.is_dir():
        load_sweep(d)  # raises the message that names the folder to give
    check_report_targets(d)
    for name in os.listdir(d):  # a staging folder a killed report left, older than this process
        if name.startswith(STAGING_PREFIX):
            remove_staging(d, d / name, PROCESS_START)
    try:
        staging = Path(tempfile.mkdtemp(dir=d, prefix=STAGING_PREFIX, suffix=".tmp"))
    except OSError as exc:  # a read-only or full sweep folder: name it, not the staging folder's random name
        raise OSError(exc.errno, exc.strerror, str(d)) from exc
    try:
        report = build_report(d, figures=figures, cache_dir=cache_dir, headline_order=headline_order,
                              given=given, figures_dir=staging)
        texts = {"leaderboard.md": to_markdown(report), "leaderboard.tex": to_latex(report),
                 "leaderboard.html": to_html(report, with_figures=False),
                 "index.html": to_html(report, with_figures=True)}
        texts["leaderboard.csv"] = report.summary.to_csv(index=False)
        if report.claims is not None:
            from odebench.bench.report.claims import to_markdown as claims_md

            texts["claims.md"] = claims_md(report.claims)
            texts["claims.csv"] = report.claims.frame().to_csv(index=False)
        for name, text in texts.items():  # a full disk stops here, before anything of the old report changes
            atomic_write_bytes(staging / name, text.encode(), root=d)
        linked = [Path(p).name for s in report.sections for f in s.figures for p in (f.png, f.pdf) if p]
        publish(d, staging, list(texts), keep=linked)
    finally:
        remove_staging(d, staging, math.inf)
    report.files += [d / name for name in texts]
    for s in report.sections:
        for fig in s.figures:
            report.files += [d / fig.png] + ([d / fig.pdf] if fig.pdf else [])
    return report


def write_leaderboard_md(sweep_dir: str | Path, metric_order: list[str] | None = None) -> Path | None:
    """The tables only (no figures): returns the path of leaderboard.md, None if the sweep has no records."""
    report = write_report(sweep_dir, figures=False, headline_order=metric_order)
    return report.dir / "leaderboard.md" if report.sections else None
