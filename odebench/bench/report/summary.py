"""Text a user reads before and after a sweep: the dry-run plan, and the closing summary: status counts, and each
method's headline score at its best sampler."""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from pathlib import Path

import pandas as pd

from odebench.bench.harness.execution.plan import Plan, dataset_label
from odebench.bench.harness.spec.sweep import Cell, Spec
from odebench.bench.harness.store.records import RecordStore, method_label
from odebench.bench.report.suitability import OFF_GRID, prefer_suitable
from odebench.bench.report.tables import Sweep, cell_text, headline_metric, load_sweep, nfe_text


def budget(cell: Cell) -> str:
    return f"{cell.solver_label}@{cell.nfe}" if cell.nfe is not None else f"{cell.solver}@tol={cell.tol:g}"


def budget_order(cell: Cell) -> tuple:
    """Cells by solver, then by budget as a number (NFE 2 before 16), then tolerance (looser first)."""
    return (cell.solver_label, cell.nfe is None, cell.nfe or 0, -(cell.tol or 0.0))


def plan_text(spec: Spec, plan: Plan, earlier: str | None = None) -> str:
    """What ``odebench run`` would do: cells done / skipped (and why) / to run, and every training;
    ``earlier`` is the note on records of the folder this spec no longer produces
    (:func:`odebench.bench.harness.store.versions.earlier_note`)."""
    cells = {c.id: c for c in spec.cells}
    n_models = len({c.training_key() for c in spec.cells})
    lines = [f"sweep {spec.name!r}: {len(spec.cells)} cells over {n_models} trained models",
             f"  already done: {len(plan.done)} cells"]
    if earlier:
        lines.append(f"  {earlier}")
    lines.append(f"  skipped without training: {len(plan.skips)} cells")
    why: dict[tuple[str, str, str], list[Cell]] = defaultdict(list)
    for cid, reason in plan.skips.items():
        c = cells[cid]
        why[(method_label(c.method), dataset_label(c), reason)].append(c)
    for (m, d, reason), skipped in sorted(why.items()):
        budgets = dict.fromkeys(budget(c) for c in sorted(skipped, key=budget_order))  # @2, @4, @8, @16
        lines.append(f"    {m} on {d}: {', '.join(budgets)}: {reason}")
    n_cached = sum(j.cached for j in plan.trainings)
    lines.append(f"  to evaluate: {len(plan.todo)} cells; trainings: {len(plan.trainings)} "
                 f"({len(plan.trainings) - n_cached} to train, {n_cached} cached)")
    labels = {j.key: j.label for j in plan.trainings}
    for job in plan.trainings:
        uses = len(plan.cells_of(job.key))
        state = "cached  " if job.cached else "to train"
        parent = f", from {labels[job.parent]}" if job.parent else ""
        refused = f" (cached file refused: {job.cache_note}; the run moves it aside)" if job.cache_note else ""
        lines.append(f"    {state} {job.key}  {job.label}{parent}: {uses} cells{refused}")
    return "\n".join(lines)


def summary_table(spec: Spec, store: RecordStore) -> pd.DataFrame:
    """Status counts of the spec's cells per (method, dataset), from the records on disk."""
    rows = []
    for c in spec.cells:
        rec = store.read(c.id)
        rows.append({"method": method_label(c.method), "dataset": dataset_label(c),
                     "status": rec["status"] if rec else "missing"})
    frame = pd.DataFrame(rows)
    table = frame.groupby(["method", "dataset"])["status"].value_counts().unstack(fill_value=0)
    order = [s for s in ("ok", "skipped", "failed", "missing") if s in table.columns]
    return table[order]


BEST_COLUMNS = ["dataset", "method", "metric", "best", "solver", "NFE", "seeds"]


def best_sampler_table(sweep: Sweep) -> pd.DataFrame:
    """Per dataset and method: the dataset's headline metric (the report's choice,
    :func:`odebench.bench.report.tables.headline_metric`) at the method's best (solver, budget), as mean ± std
    over its ok seeds, with the solver, the NFE (requested; an adaptive solver's mean NFE used, with its
    tolerance) and the seeds; rows of a dataset best first. "Best" compares the means over ok seeds, as the
    report's tables do, among the samplers on the method's own time grids where it has any (else marked
    OFF_GRID: odebench.bench.report.suitability); a method with no value reads the statuses of its cells."""
    rows = []
    frame = sweep.frame
    for dataset in sweep.datasets():
        metric = headline_metric(sweep, dataset)
        f = frame[frame["dataset"] == dataset]
        lower = sweep.lower_is_better(metric) if metric else True
        ranked = []
        for method, g in f.groupby("method", sort=True):
            means = []
            if metric is not None:
                ok, off_grid = prefer_suitable(g[(g["status"] == "ok") & g[metric].notna()])
                means = [(v, key) for key, v in ok.groupby(["solver", "budget"])[metric].mean().items()
                         if math.isfinite(v)]
            if not means:  # last in its dataset, with what became of its cells
                best = "/".join(sorted(set(g["status"]))) if metric else "no metric value"
                ranked.append((math.inf, {"dataset": dataset, "method": method, "metric": metric or "",
                                          "best": best, "solver": "", "NFE": "", "seeds": 0}))
                continue
            value, (solver, budget) = (min if lower else max)(means, key=lambda m: m[0])
            gs = g[(g["solver"] == solver) & (g["budget"] == budget)]
            nfe = (f"{nfe_text(gs)} ({budget})" if gs["is_adaptive"].all() else
                   str(int(gs["nfe_requested"].iloc[0])))
            ranked.append((value if lower else -value,
                           {"dataset": dataset, "method": method,
                            "metric": f"{metric} ({'lower' if lower else 'higher'} is better)",
                            "best": cell_text(gs, metric), "solver": solver + (OFF_GRID if off_grid else ""),
                            "NFE": nfe,
                            "seeds": int((gs["status"] == "ok").sum())}))
        rows += [row for _, row in sorted(ranked, key=lambda r: r[0])]
    return pd.DataFrame(rows, columns=BEST_COLUMNS)


def best_sampler_text(sweep_dir: Path) -> str:
    """The closing table of a run (:func:`best_sampler_table`) as markdown, with a line that says what it holds;
    '' when the folder holds no record."""
    table = best_sampler_table(load_sweep(sweep_dir))
    if table.empty:
        return ""
    return ("each method at its best sampler (the headline metric per dataset; mean ± std over seeds):\n"
            + table.to_markdown(index=False))


def _where(summary) -> str:
    """'local, 2 processes x 1 thread' / 'local, 1 process x 2 threads' / 'ray'."""
    if summary.executor != "local":
        return summary.executor
    jobs, threads = getattr(summary, "jobs", 1), getattr(summary, "threads", 1)
    return (f"local, {jobs} process{'es' if jobs > 1 else ''} x {threads} thread{'s' if threads > 1 else ''}")


def summary_text(spec: Spec, summary, store: RecordStore, given: str | None = None) -> str:
    """The closing note of a run: the table, trainings vs cells, wall time, and what failed; ``given`` names
    the model of an ``odebench eval`` run (nothing trained)."""
    counts = Counter({k: v for k, v in summary.status_counts.items() if v})
    this_run = ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "nothing to do"
    try:
        best = best_sampler_text(summary.out_dir)
    except Exception as exc:  # a record shape this table did not foresee: the counts below still matter
        best = f"(best-sampler table not built: {type(exc).__name__}: {str(exc)[:200]})"
    lines = [summary_table(spec, store).reset_index().to_markdown(index=False), "", *([best, ""] if best else []),
             f"sweep {spec.name!r} ({_where(summary)}): {summary.n_cells} cells, {summary.already_done} "
             f"already done; this run: {this_run}",
             f"models: {summary.n_trainings} needed, {summary.trained} trained, {summary.loaded} loaded from "
             f"cache; {summary.seconds:.1f} s wall time" if given is None else
             f"model: {given}, evaluated as given (nothing trained); {summary.seconds:.1f} s wall time"]
    lines += [f"note: {n}" for n in summary.notes]
    return "\n".join(lines)
