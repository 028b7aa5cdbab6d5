"""``odebench claims``: the claims of the papers behind the methods, checked on a sweep's records.

For every check of odebench.bench.report.claims_table and every dataset of the sweep it applies to, one row:
the two sides (method configuration, solver, budget), the measured quantity per seed on each side, their means
and 95 % t-intervals over seeds (medians where a seed diverged or the quantity is a count), the difference
A - B paired by seed (or A - floor) with its 90 % interval, the claimed interval with the quantity's margin
(claims_table.MARGINS), and three verdicts by the rule of odebench.bench.report.verdict: the rule's, the strict
one (margins 0) and the one after Holm's correction within the claim's family. A check whose cells are missing
(not in the sweep, failed, skipped), whose quantity has no margin, or whose likelihood is invalid reads ``not
measured`` and says why. Each side says whether its models had converged (odebench.bench.report.training).
Every row also gives the training-cost
ratio of its two sides (total training FLOPs, parents and reflow pairs included): a comparison whose claimed
winner cost more than ``COST_MATCH`` times the other is not one at matched compute, and says so. Claim 11 adds
per dataset and NFE 4 / 16 the ranking of the methods by quality at matched steps and within classes of
matched training compute (docs/claims.md states both).

Writes ``claims.md``, ``claims.csv`` (full precision) and the claims section of ``index.html``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from odebench.bench.report import claims_table as ct
from odebench.bench.report.format import fmt_sig
from odebench.bench.report.suitability import LEGEND, OFF_GRID, prefer_suitable
from odebench.bench.report.tables import Sweep, headline_metric
from odebench.bench.report.verdict import (
    ALPHA,
    CONTRADICTED,
    HOLDS,
    INCONCLUSIVE,
    LEVEL,
    NOT_MEASURED,
    TEST_LEVEL,
    decide,
    holm,
    median,
    t_interval,
)

CSV_COLUMNS = ["claim", "part", "dataset", "statement", "paper", "a", "b", "quantity", "n", "a_mean", "a_lo",
               "a_hi", "b_mean", "b_lo", "b_hi", "diff_mean", "diff_lo", "diff_hi", "claimed_lo", "claimed_hi",
               "verdict", "cost_ratio", "compute", "note", "margin", "aggregate", "test", "p_holds", "p_holm",
               "strict_verdict", "holm_verdict", "a_converged", "b_converged"]
SHOWN = ["claim", "dataset", "statement", "a", "b", "quantity", "n", "A", "B", "A - B", "claimed", "verdict",
         "strict", "Holm", "converged", "compute", "note"]


@dataclass
class Claims:
    """The rows of a sweep's claims (CSV_COLUMNS), ready to write."""

    sweep: str
    rows: list[dict] = field(default_factory=list)

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows, columns=CSV_COLUMNS)


# ------------------------------------------------------------------------------------------ selecting cells
def _dataset_fits(sweep: Sweep, dataset: str, where: str) -> bool:
    from odebench.bench.data import dataset_kind

    rows = sweep.frame[sweep.frame["dataset"] == dataset]
    source = rows["source"].iloc[0]
    if where == "transfer":
        return source != "gaussian"
    if where == "gaussian":
        return source == "gaussian"
    if where == "image":
        try:
            return source == "gaussian" and dataset_kind(rows["target"].iloc[0]) == "image"
        except Exception:
            return False
    return True


def side_groups(frame: pd.DataFrame, side: ct.Side) -> dict[str, pd.DataFrame]:
    """Rows of each method configuration (label) matching ``side``'s method and hparams."""
    g = frame[frame["method_name"] == side.method]
    for k, v in side.hp.items():
        col = f"hp.{k}"
        if col not in g:
            return {}
        g = g[[x == v or (v is False and pd.isna(x)) for x in g[col]]]
    if g.empty:
        return {}
    return {label: rows for label, rows in g.groupby("method", sort=True)}


def _select(rows: pd.DataFrame, side: ct.Side, tol: float | None = None) -> pd.DataFrame:
    sel = rows if side.solver is None else rows[rows["solver"] == side.solver]
    if side.budget in (ct.TIGHT, ct.EACH_TOL):
        sel = sel[sel["is_adaptive"]]
        if tol is not None:
            return sel[sel["tol"] == tol]
        return sel[sel["tol"] == sel["tol"].min()] if len(sel) else sel
    if side.budget is not None:
        return sel[sel["nfe_requested"] == side.budget]
    if side.solver is None:  # the most accurate solve of the model's ODE: never an SDE sampler's path
        sel = sel[[not _is_sde(s) for s in sel["solver"]]]
    return sel


def _is_sde(solver_label: str) -> bool:
    from odebench.bench.core.solvers import SOLVERS

    name = solver_label.split("/")[0]
    return name in SOLVERS and SOLVERS.get(name).kind == "sde"


def _why_missing(sel: pd.DataFrame, what: str, column: str) -> str:
    if sel.empty:
        return f"{what}: no such cells in the sweep"
    bad = sel[sel["status"] != "ok"]
    if len(bad) == len(sel):
        return f"{what}: {', '.join(sorted(set(bad['status'])))} ({str(bad['reason'].iloc[0])[:140]})"
    return f"{what}: no value of {column} in its ok cells"


def per_seed(rows: pd.DataFrame, side: ct.Side, column: str, tol: float | None = None) -> tuple[pd.Series, str]:
    """Per seed, the value of ``column`` on the side's cells (the most accurate solve among them: the highest
    budget rank), and '' or the reason there is none. A seed whose ok cells recorded the metric as failed
    (``metric_failures``, other than Unsupported), or whose cell failed whole (status "failed": non-finite
    samples, every metric failed), and that holds no value of it gets +inf: a failure ranks last, it is never
    left out; its reason is in ``values.attrs['failed']`` (seed -> reason)."""
    sel = _select(rows, side, tol)
    what = f"{rows['method'].iloc[0]} {side.solver or ''}@{side.budget if side.budget is not None else 'best'}"
    if column not in sel:
        return pd.Series(dtype=float), _why_missing(sel, what, column)
    ok = sel[(sel["status"] == "ok") & sel[column].notna()].sort_values("budget_rank", kind="stable")
    values = ok.groupby("seed")[column].last().astype(float)
    failed = {}
    if "metric_failures" in sel:
        metric = column.split(".")[0]
        for seed, fails in sel.loc[sel["status"] == "ok", ["seed", "metric_failures"]].itertuples(index=False):
            reason = str(fails.get(metric, "")) if isinstance(fails, dict) else ""
            if seed not in values.index and reason and not reason.startswith("Unsupported"):
                failed[seed] = reason[:140]  # an Unsupported metric does not apply: no value, not a failure
    for seed, reason in sel.loc[sel["status"] == "failed", ["seed", "reason"]].itertuples(index=False):
        if seed not in values.index and seed not in failed:  # the cell failed whole: its sampler blew up (NaN
            failed[seed] = f"cell failed: {str(reason)[:126]}"  # samples) or every metric failed; it ranks last
    if failed:
        values = pd.concat([values, pd.Series({s: math.inf for s in failed}, dtype=float)]).sort_index()
    values.attrs["failed"] = failed
    return values, "" if len(values) else _why_missing(sel, what, column)


def nfe_to_reach(a_rows: pd.DataFrame, b_rows: pd.DataFrame, check: ct.Check, metric: str,
                 floor) -> tuple[pd.Series, pd.Series, str]:
    """Claim 7b per seed and side: the smallest fixed NFE of the side's solver whose headline value is within
    WITHIN of a threshold common to both sides, the better of the two models' values at dopri5's tightest
    tolerance (or the floor's mean where that is higher: nothing is asked beyond the data-vs-data distance).
    A side that reaches it at no budget is censored: twice the largest budget swept, above every reached one
    (the sign test reads only its rank). Returns (A values, B values, a note on the threshold and the censored)."""
    refs = [per_seed(r, ct.Side(s.method, s.hp, "dopri5", ct.TIGHT), metric)[0]
            for r, s in ((a_rows, check.a), (b_rows, check.b))]
    out: list[dict] = [{}, {}]
    censored = 0
    for seed in sorted(set(refs[0].index) & set(refs[1].index)):
        better = min(refs[0][seed], refs[1][seed])
        threshold = ct.WITHIN * (max(better, floor.mean) if floor is not None else better)
        for k, (rows, side) in enumerate(((a_rows, check.a), (b_rows, check.b))):
            mine = rows[(rows["solver"] == side.solver) & (rows["status"] == "ok") & rows[metric].notna()
                        & (rows["seed"] == seed)].sort_values("nfe_requested")
            if mine.empty:
                continue
            reached = mine[mine[metric] <= threshold]
            censored += int(reached.empty)
            out[k][seed] = float(reached["nfe_requested"].iloc[0]) if len(reached) \
                else 2.0 * mine["nfe_requested"].max()
    note = (f"threshold per seed: {ct.WITHIN:g} x the pair's better dopri5 value (the floor's mean where higher)"
            + (f"; {censored} value(s) censored (no budget reached it: ranked above every budget)" if censored
               else ""))
    return pd.Series(out[0], dtype=float), pd.Series(out[1], dtype=float), note


# --------------------------------------------------------------------------------------------- evaluation
@dataclass
class Context:
    """What every check of a sweep reads besides its cells: training cost and convergence per (dataset, method
    label), and per dataset the transport reference and the image levels (for the likelihood's bound)."""

    costs: dict = field(default_factory=dict)
    converged: dict = field(default_factory=dict)
    #: (dataset, method label) -> why its models' convergence was not judged (a held-out loss that is no
    #: progress measure, too few evaluations)
    unjudged: dict = field(default_factory=dict)
    references: dict = field(default_factory=dict)
    levels: dict = field(default_factory=dict)
    #: (dataset, method label, seed) -> why the nll metric marked its own value invalid (settings.bpd_valid false)
    nll_invalid: dict = field(default_factory=dict)


def context_of(sweep: Sweep) -> Context:
    """The sweep's Context: costs and convergence from the report's own per-model rows
    (odebench.bench.report.training.model_rows, its convergence verdict by today's rule)."""
    from odebench.bench.report.training import model_rows

    ctx = Context()
    models = model_rows(sweep.records, sweep.frame)
    if not models.empty:
        ctx.costs = {k: float(v) for k, v in models.groupby(["dataset", "method"])["total_flops"].mean().items()
                     if pd.notna(v)}
        for key, g in models.groupby(["dataset", "method"]):
            ctx.converged[key] = dict(zip(g["seed"], g["converged"], strict=True))
            reasons = [r for r in g["convergence_reason"] if isinstance(r, str) and r]
            if reasons:
                ctx.unjudged[key] = reasons[0]
    if "transport_cost.reference" in sweep.frame:
        refs = sweep.frame.groupby("dataset")["transport_cost.reference"].median()
        ctx.references = {k: float(v) for k, v in refs.items() if pd.notna(v)}
    by_id = {r.get("cell_id"): r for r in sweep.records}
    for cell_id, dataset, label, seed in sweep.frame[["cell_id", "dataset", "method", "seed"]].itertuples(index=False):
        info = ((by_id.get(cell_id) or {}).get("metric_info") or {}).get("nll") or {}
        settings = (info.get("settings") or {}) if isinstance(info, dict) else {}
        levels = settings.get("levels")
        if dataset not in ctx.levels and isinstance(levels, int | float) and not isinstance(levels, bool):
            ctx.levels[dataset] = float(levels)
        if settings.get("bpd_valid") is False:
            ctx.nll_invalid[(dataset, label, seed)] = str(settings.get("bpd_invalid_reason") or "marked invalid")
    return ctx


def _paper(method: str) -> str:
    from odebench.bench.harness.spec.catalog import paper_title
    from odebench.methods import METHODS

    try:
        return paper_title(METHODS.get(method).citation)
    except Exception:
        return ""


def margin_of(check: ct.Check, column: str, dataset: str, ctx: Context, floor) -> tuple[float, str]:
    """The margin of a check's relation on a dataset (0 for ``below``) and '' or why there is none."""
    if check.relation not in ct.MARGIN_RELATIONS:
        return 0.0, ""
    margin = ct.MARGINS.get(column)
    if margin is None:
        return math.nan, f"no margin stated for {column} (claims_table.MARGINS)"
    if margin.unit == ct.OF_REFERENCE:
        ref = ctx.references.get(dataset)
        if ref is None:
            return math.nan, f"no transport reference W2^2(source, data) for {dataset} (the margin of {column})"
        return margin.amount * ref, ""
    if margin.unit == ct.OF_FLOOR:
        if floor is None or not math.isfinite(floor.mean):
            return math.nan, f"no two-sample floor of {column} for {dataset} (the margin)"
        return margin.amount * floor.mean, ""
    return margin.amount, ""


def claimed_interval(relation: str, margin: float, factor: float = 1.0) -> tuple[float, float]:
    """The interval a relation puts d in, with its margin scaled by ``factor`` (0: margin-free, strict)."""
    if relation == "below":
        return (-math.inf, 0.0)
    m = factor * margin
    return (-m, m) if relation == ct.EQUIVALENCE else (-math.inf, m)


def _best_match(label: str, candidates: dict[str, pd.DataFrame], frame: pd.DataFrame) -> str | None:
    """The B configuration closest to A's (most equal hparam values; A's own label first)."""
    if label in candidates:
        return label
    if not candidates:
        return None
    hp = [c for c in frame.columns if c.startswith("hp.")]
    a = frame[frame["method"] == label][hp].iloc[0]

    def score(b_label: str) -> int:
        b = frame[frame["method"] == b_label][hp].iloc[0]
        return sum(1 for c in hp if (pd.isna(a[c]) and pd.isna(b[c])) or a[c] == b[c])

    return max(sorted(candidates), key=score)


def _row(check: ct.Check, dataset: str, a_label: str, b_label: str | None, quantity: str, **values) -> dict:
    row = {c: "" for c in CSV_COLUMNS}
    b_text = b_label if b_label is not None else ("two-sample floor" if check.relation == "at_floor" else "")
    row.update(claim=check.claim, part=check.part, dataset=dataset, statement=check.statement,
               paper=_paper(check.paper_of), a=a_label, b=b_text, quantity=quantity)
    row.update(values)
    return row


def evaluate_check(sweep: Sweep, check: ct.Check, dataset: str, ctx: Context) -> list[dict]:
    """The rows of one check on one dataset (one per matching A configuration, and per tolerance)."""
    frame = sweep.frame[sweep.frame["dataset"] == dataset]
    headline = headline_metric(sweep, dataset)
    column = headline if check.metric == ct.HEADLINE else check.metric
    floor_of = headline if check.metric in (ct.HEADLINE, ct.NFE_TO_10) else column
    floor = sweep.floors.get(dataset, {}).get(floor_of) if floor_of else None
    a_groups = side_groups(frame, check.a)
    b_groups = side_groups(frame, check.b) if check.b is not None else {}
    label_b = check.b.text() if check.b is not None else None
    if not a_groups or (check.b is not None and not b_groups):
        missing = [s.text() for s, g in ((check.a, a_groups), (check.b, b_groups)) if s is not None and not g]
        return [_row(check, dataset, check.a.text(), label_b, column or check.metric, verdict=NOT_MEASURED,
                     note=f"not in the sweep: {'; '.join(missing)}")]
    tols = [None]
    if check.a.budget == ct.EACH_TOL:
        tols = sorted({t for t in frame.loc[frame["is_adaptive"], "tol"].dropna()}, reverse=True) or [None]
    margin, no_margin = margin_of(check, column or "", dataset, ctx, floor)
    rows = []
    for a_label, a_rows in a_groups.items():
        b_label = _best_match(a_label, b_groups, frame) if check.b is not None else None
        for tol in tols:
            quantity = _quantity(check, column, tol)
            notes: list[str] = []
            b_vals, b_why = pd.Series(dtype=float), ""
            if check.metric == ct.NFE_TO_10:
                a_vals, a_why = pd.Series(dtype=float), f"no headline metric on {dataset}"
                if headline is not None:
                    a_vals, b_vals, why = nfe_to_reach(a_rows, b_groups[b_label], check, headline, floor)
                    notes.append(why)
                    a_why = "" if len(a_vals) else f"{a_label}: no seed with dopri5 and Euler values on both sides"
            else:
                a_vals, a_why = per_seed(a_rows, check.a, column or "", tol)
                if b_label is not None:
                    b_vals, b_why = per_seed(b_groups[b_label], check.b, column or "", tol)
            missing = [w for w in (a_why, b_why) if w] or ([no_margin] if no_margin else [])
            if not missing and check.metric in (ct.HEADLINE, ct.NFE_TO_10) and headline \
                    and not sweep.lower_is_better(headline):  # every claimed interval reads lower as better
                missing = [f"the headline metric {headline} on {dataset} is higher-is-better; the claims read "
                           f"a lower-is-better distance (w2, fd_digits, fid)"]
            if not missing and column == "nll.bpd":
                missing = _invalid_likelihood(dataset, ctx, {a_label: a_vals, b_label: b_vals})
            row = _judged(check, dataset, (a_label, b_label), quantity, (a_vals, b_vals), floor, margin, missing,
                          notes)
            row.update(_compute(ctx.costs, dataset, a_label, b_label))
            row.update(_convergence(ctx, dataset, a_label, b_label, row))
            rows.append(row)
    return rows


def _invalid_likelihood(dataset: str, ctx: Context, sides: dict) -> list[str]:
    """Why the bits/dim of a row is no likelihood: a value above the uniform bound log2(levels) of the data
    (worse than uniform noise over the levels: for a model that samples the data, a broken estimate rather than a
    poor fit), or non-finite. The levels are those the records' NLL settings name (the dataset's meta)."""
    levels = ctx.levels.get(dataset)
    if levels is None or levels < 2:
        return [f"the likelihood's validity is unknown: no quantisation levels recorded for {dataset}"]
    bound = math.log2(levels)
    why = []
    for label, values in sides.items():
        if label is None:
            continue
        bad = {s: v for s, v in values.items() if not (math.isfinite(v) and v <= bound)}
        if bad:
            shown = ", ".join(f"seed {s}: {v:.4g}" for s, v in sorted(bad.items()))
            why.append(f"{label}: invalid likelihood ({shown}; above the uniform bound log2({levels:g}) = "
                       f"{bound:.3f} bits/dim, or non-finite)")
        # the metric's own verdict on a value within the bound (some test points came out non-finite)
        marked = {s: ctx.nll_invalid[(dataset, label, s)] for s in values.index if s not in bad
                  and (dataset, label, s) in ctx.nll_invalid}
        if marked:
            why.append(f"{label}: invalid likelihood ("
                       + "; ".join(f"seed {s}: {r}" for s, r in sorted(marked.items())) + ")")
    return why


def _quantity(check: ct.Check, column: str | None, tol: float | None) -> str:
    a = check.a
    where = "" if a.solver is None else f" at {a.solver}"
    if a.budget == ct.TIGHT:
        where += " (tightest tolerance)"
    elif a.budget == ct.EACH_TOL and tol is not None:
        where += f" tol {tol:g}"
    elif isinstance(a.budget, int):
        where += f" NFE {a.budget}"
    elif a.budget is None and check.metric not in (ct.NFE_TO_10, "nll.bpd", "straightness", "curvature"):
        where += " (most accurate solve)"
    name = {ct.NFE: "NFE used", ct.NFE_TO_10: "smallest Euler NFE within 10 % of the pair's better dopri5"}.get(
        check.metric, column or "?")
    return f"{name}{where}"


def diverged(values: pd.Series) -> dict:
    """Seeds whose value diverged: non-finite, or more than DIVERGED_FACTOR times the smallest finite value of the
    same side (seed -> text naming the value and that smallest one). Against the smallest, not the others'
    median: two diverged seeds of three would otherwise hide each other (0.2, 204, 300 has median 204)."""
    out = {}
    finite = [x for x in values if math.isfinite(x)]
    low = min(finite) if finite else math.nan
    for seed, v in values.items():
        if not math.isfinite(v):
            out[seed] = f"seed {seed}: {v:g}"
        elif low > 0 and v > ct.DIVERGED_FACTOR * low:
            out[seed] = f"seed {seed}: {fmt_sig(v)} against the side's smallest {fmt_sig(low)}"
    return out


def _bad_seeds(check: ct.Check, values: pd.Series) -> dict:
    """Seeds of one side that must not enter a mean: failed metrics, non-finite values, and (for sample quality)
    diverged ones."""
    bad = {s: f"seed {s}: failed ({why})" for s, why in values.attrs.get("failed", {}).items()}
    if check.metric == ct.HEADLINE:
        found = diverged(values)
    else:
        found = {s: f"seed {s}: {x:g}" for s, x in values.items() if not math.isfinite(x)}
    return {**found, **bad}


def _judged(check, dataset, labels, quantity, values, floor, margin, missing, notes) -> dict:
    (a_label, b_label), (a_vals, b_vals) = labels, values
    if missing:
        return _row(check, dataset, a_label, b_label, quantity, verdict=NOT_MEASURED, note="; ".join(missing))
    against_floor = check.relation == "at_floor"
    if against_floor:
        if floor is None:
            return _row(check, dataset, a_label, None, quantity, verdict=NOT_MEASURED,
                        note=f"no two-sample floor of {quantity.split(' ')[0]} for {dataset}")
        seeds = sorted(a_vals.index)
        diffs = [float(a_vals[s] - floor.mean) for s in seeds]
    else:
        seeds = sorted(set(a_vals.index) & set(b_vals.index))
        if not seeds:
            return _row(check, dataset, a_label, b_label, quantity, verdict=NOT_MEASURED,
                        note="no seed holds both sides")
        diffs = [_difference(a_vals[s], b_vals[s]) for s in seeds]
    sides = {"A": a_vals} if against_floor else {"A": a_vals, "B": b_vals}
    rank_based = check.metric in (ct.NFE, ct.NFE_TO_10)
    for name, vals in sides.items():
        bad = _bad_seeds(check, vals)
        if bad:
            rank_based = True
            notes.append(f"{name} diverged or failed on {len(bad)} of {len(vals)} seed(s) "
                         f"({'; '.join(bad[s] for s in sorted(bad))}): medians and the sign test")
    claimed = claimed_interval(check.relation, margin)
    outcome = decide(diffs, claimed, rank_based)
    strict = decide(diffs, claimed_interval(check.relation, margin, 0.0), rank_based)
    notes.append(outcome.note)
    aggs = {}
    for name, vals in (("a", list(a_vals)), ("b", None if against_floor else list(b_vals)), ("diff", diffs)):
        if vals is None:
            aggs[name] = (floor.mean, math.nan, math.nan)
        elif rank_based:
            aggs[name] = (median(vals), math.nan, math.nan)
        else:
            ci = t_interval(vals, TEST_LEVEL if name == "diff" else LEVEL)
            aggs[name] = (ci.mean, ci.lo, ci.hi)
    cols = {f"{name}_{k}": v for name, agg in aggs.items() for k, v in zip(("mean", "lo", "hi"), agg, strict=True)}
    return _row(check, dataset, a_label, b_label, quantity, n=len(seeds), **cols, claimed_lo=claimed[0],
                claimed_hi=claimed[1], verdict=outcome.verdict, note="; ".join(n for n in notes if n),
                margin=margin, aggregate="median" if rank_based else "mean", test=outcome.test,
                p_holds=outcome.p_holds, strict_verdict=strict.verdict, _diffs=diffs, _relation=check.relation,
                _margin=margin, _rank_based=rank_based, _p_contra=outcome.p_contra)


def _difference(a: float, b: float) -> float:
    """A - B of one seed, where a failed side (+inf) loses: both failed is a tie (0)."""
    if math.isinf(a) and math.isinf(b) and a == b:
        return 0.0
    return float(a - b)


def _convergence(ctx: Context, dataset: str, a: str, b: str | None, row: dict) -> dict:
    """a_converged / b_converged: True when every model of the side converged by the training report's rule
    (odebench.bench.report.training.current_verdict through model_rows), False when one was still improving,
    NOT_JUDGED when a model has no verdict (its held-out loss is no progress measure, or too short a curve), ''
    for a side without models (the floor); a note names the still-improving seeds or why none was judged."""
    out, notes = {}, []
    for name, label in (("a", a), ("b", b)):
        seeds = ctx.converged.get((dataset, label)) if label else None
        improving = sorted(s for s, c in (seeds or {}).items() if c is False)
        judged = [c for c in (seeds or {}).values() if c is True or c is False]
        complete = bool(seeds) and len(judged) == len(seeds)
        out[f"{name}_converged"] = False if improving else (True if complete else (NOT_JUDGED if seeds else ""))
        if improving:
            notes.append(f"{name.upper()} not converged: seed(s) {', '.join(map(str, improving))} still improving")
        elif seeds and not complete:
            why = ctx.unjudged.get((dataset, label), "no verdict recorded")
            notes.append(f"{name.upper()} convergence {why if why.startswith('not judged') else 'not judged: ' + why}")
    if notes:
        out["note"] = "; ".join([n for n in (row.get("note"),) if n] + notes)
    return out


def _compute(costs: dict, dataset: str, a: str, b: str | None) -> dict:
    ca, cb = costs.get((dataset, a)), costs.get((dataset, b)) if b else None
    if not ca or not cb:
        return {"cost_ratio": math.nan, "compute": "" if b is None else "cost not recorded"}
    ratio = ca / cb
    if 1 / ct.COST_MATCH <= ratio <= ct.COST_MATCH:
        return {"cost_ratio": ratio, "compute": "matched"}
    return {"cost_ratio": ratio, "compute": f"not matched: A cost {ratio:.2g}x B"}


def ranking_rows(sweep: Sweep, dataset: str, costs: dict) -> list[dict]:
    """Claim 11 on one dataset: per NFE of RANK_NFE, the methods ranked by quality at matched steps (best solver,
    median over seeds, a failed seed counting as the worst value) and within classes of matched training compute
    (docs/claims.md)."""
    claim, statement, paper_of = ct.RANKING
    metric = headline_metric(sweep, dataset)
    frame = sweep.frame[(sweep.frame["dataset"] == dataset) & sweep.frame["status"].isin(["ok", "failed"])]
    lower = sweep.lower_is_better(metric) if metric else True
    worst = math.inf if lower else -math.inf
    rows = []
    for nfe in ct.RANK_NFE:
        at = frame[frame["nfe_requested"] == nfe] if metric else frame.iloc[:0]
        # a failed seed (non-finite samples) counts as the worst value, and the median keeps one diverged seed
        # from setting a method's place
        at = at.assign(_q=[worst if st == "failed" else v for st, v in zip(at["status"], at[metric] if metric
                                                                            else [], strict=True)])
        at = at[at["_q"].notna()]
        quality, off_grid = {}, set()  # a method's best sampler on its own grids, else marked (suitability)
        for m, g in at.groupby("method"):
            g, off = prefer_suitable(g)
            quality[m] = (min if lower else max)(g.groupby("solver")["_q"].median())
            off_grid |= {m} if off else set()
        check = ct.Check(claim, f"NFE {nfe}", statement, paper_of, ct.Side("*"), None, metric or "", "ranking")
        if not quality:
            rows.append(_row(check, dataset, "every method", "", f"{metric} at NFE {nfe}", verdict=NOT_MEASURED,
                             note=f"no ok cell at NFE {nfe}"))
            continue
        order = sorted(quality, key=lambda m: (quality[m] if lower else -quality[m], m))
        steps = " > ".join(f"{m} ({fmt_sig(quality[m])}{OFF_GRID if m in off_grid else ''})" for m in order)
        classes = cost_classes({m: costs.get((dataset, m)) for m in order})
        matched = " | ".join(" > ".join(m for m in order if m in cls) for cls in classes)
        rows.append(_row(check, dataset, "every method", "", f"{metric} at NFE {nfe}, best solver",
                         verdict="reported", note=f"matched steps: {steps}. Matched compute (cost classes within "
                                                  f"x{ct.COST_MATCH:g}, cheapest first): {matched}"
                                                  + (f". {LEGEND}" if off_grid else "")))
    return rows


def cost_classes(costs: dict[str, float | None]) -> list[list[str]]:
    """Methods grouped by training cost: sorted by cost, a new class starts where a method costs more than
    COST_MATCH times the cheapest of the current class; methods without a recorded cost form the last class."""
    known = sorted((c, m) for m, c in costs.items() if c)
    classes: list[list[str]] = []
    start = None
    for c, m in known:
        if start is None or c > ct.COST_MATCH * start:
            classes.append([])
            start = c
        classes[-1].append(m)
    unknown = sorted(m for m, c in costs.items() if not c)
    return classes + ([unknown] if unknown else [])


def evaluate(sweep: Sweep) -> Claims:
    """Every check on every dataset it applies to, then claim 11's rankings (the sweep's floors must be set)."""
    out = Claims(sweep.name)
    if sweep.frame.empty:
        return out
    ctx = context_of(sweep)
    for check in ct.CHECKS:
        for dataset in sweep.datasets():
            if _dataset_fits(sweep, dataset, check.where):
                out.rows += evaluate_check(sweep, check, dataset, ctx)
    correct_by_family(out.rows)
    for dataset in sweep.datasets():
        out.rows += ranking_rows(sweep, dataset, ctx.costs)
    return out


def correct_by_family(rows: list[dict]) -> None:
    """Holm's correction within each claim family (every row of one claim number: its parts, datasets,
    configurations and tolerances), in place: ``p_holm`` the adjusted p-value of the row's "holds" tests, and
    ``holm_verdict`` holds where that is at most ALPHA, contradicted where the "contradicted" test survives the
    same correction among the family's contradiction tests, inconclusive otherwise (not measured stays)."""
    for claim in sorted({r["claim"] for r in rows}):
        family = [r for r in rows if r["claim"] == claim and "_diffs" in r]
        held = holm([r["p_holds"] for r in family])
        against = holm([r["_p_contra"] for r in family])
        for r, p_h, p_c in zip(family, held, against, strict=True):
            r["p_holm"] = p_h
            r["holm_verdict"] = HOLDS if p_h <= ALPHA else CONTRADICTED if p_c <= ALPHA else INCONCLUSIVE
        for r in rows:
            if r["claim"] == claim and "_diffs" not in r and r["verdict"] == NOT_MEASURED:
                r["strict_verdict"] = r["holm_verdict"] = NOT_MEASURED


def sensitivity(claims: Claims, factors=ct.SENSITIVITY) -> pd.DataFrame:
    """Verdict counts of the margin relations' rows with every margin scaled by each factor (0: margin-free, 1:
    the stated margins, 2: twice them); the rows of ``below`` have no margin and are left out."""
    judged = [r for r in claims.rows if "_diffs" in r and r["_relation"] in ct.MARGIN_RELATIONS]
    out = []
    for factor in factors:
        verdicts = [decide(r["_diffs"], claimed_interval(r["_relation"], r["_margin"], factor),
                           r["_rank_based"]).verdict for r in judged]
        out.append({"margin": f"{factor:g}x", **{v: verdicts.count(v) for v in (HOLDS, INCONCLUSIVE, CONTRADICTED)}})
    return pd.DataFrame(out, columns=["margin", HOLDS, INCONCLUSIVE, CONTRADICTED])


# ------------------------------------------------------------------------------------------------ writers
def _ci_text(mean, lo, hi) -> str:
    if mean == "" or mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return ""
    if isinstance(lo, float) and math.isfinite(lo):
        return f"{fmt_sig(mean)} [{fmt_sig(lo)}, {fmt_sig(hi)}]"
    return fmt_sig(mean)


def _interval_text(lo, hi) -> str:
    if lo == "" or lo is None:
        return ""
    lo_t = "-inf" if lo == -math.inf else fmt_sig(lo)
    return f"({lo_t}, {fmt_sig(hi) if hi != 0 else '0'})"


#: a_converged / b_converged of a side whose models have no convergence verdict
NOT_JUDGED = "not judged"


def _converged_text(a, b) -> str:
    """'A yes, B no' from a_converged / b_converged ('?': not judged; a side without models is left out)."""
    names = {True: "yes", False: "no"}
    return ", ".join(f"{side} {names.get(v, '?')}" for side, v in (("A", a), ("B", b)) if v != "")


def display_frame(claims: Claims) -> pd.DataFrame:
    """The table as shown (md, html, stdout): A and B as mean [95 % interval], A - B as mean [90 % interval]
    (its ends are the one-sided tests), or medians where the sign test judged; the claimed interval, the rule's,
    the margin-free and the Holm-corrected verdicts, and whether the models had converged."""
    f = claims.frame()
    if f.empty:
        return pd.DataFrame(columns=SHOWN)
    shown = pd.DataFrame({
        "claim": [f"{c}{p and ' ' + p}" for c, p in zip(f["claim"], f["part"], strict=True)],
        "dataset": f["dataset"], "statement": f["statement"], "a": f["a"], "b": f["b"], "quantity": f["quantity"],
        "n": [str(n) for n in f["n"]],
        "A": [_ci_text(*v) for v in zip(f["a_mean"], f["a_lo"], f["a_hi"], strict=True)],
        "B": [_ci_text(*v) for v in zip(f["b_mean"], f["b_lo"], f["b_hi"], strict=True)],
        "A - B": [_ci_text(*v) for v in zip(f["diff_mean"], f["diff_lo"], f["diff_hi"], strict=True)],
        "claimed": [_interval_text(lo, hi) for lo, hi in zip(f["claimed_lo"], f["claimed_hi"], strict=True)],
        "verdict": f["verdict"], "strict": f["strict_verdict"], "Holm": f["holm_verdict"],
        "converged": [_converged_text(a, b) for a, b in zip(f["a_converged"], f["b_converged"], strict=True)],
        "compute": f["compute"], "note": f["note"]})
    median_rows = f["aggregate"] == "median"
    for col in ("A", "B", "A - B"):
        shown.loc[median_rows & shown[col].ne(""), col] = "median " + shown.loc[median_rows, col]
    return shown[SHOWN]


RULE = ("Verdict rule (docs/claims.md): each check measures a difference d = A - B per seed (paired by seed; "
        "A - floor mean against a two-sample floor), lower is better, and names the interval the claim puts d in, "
        "with the quantity's margin (the smallest effect of interest, stated in docs/claims.md) for "
        "non-inferiority and equivalence. Each finite end is a one-sided test at 5 %: the paired t-test, or the "
        "exact sign test on medians for NFE counts and where a seed diverged or failed. holds: every test rejects "
        "(for an equivalence the two one-sided tests: the 90 % interval of d lies inside); contradicted: d lies "
        "beyond an end at 5 %; inconclusive: otherwise, with fewer than two seeds, or a tie (every seed on an end). "
        "strict: the same without margins; Holm: holds only where the test survives Holm's correction at 5 % "
        "within the claim's family (one claim number). A and B read mean [95 % interval], A - B mean [90 % "
        "interval], or medians where the sign test judged.")


def to_markdown(claims: Claims) -> str:
    counts = claims.frame()["verdict"].value_counts().to_dict() if claims.rows else {}
    f = claims.frame()
    lines = [f"# Claims: {claims.sweep}", "", RULE, "",
             "Verdicts: " + (", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "none") + ".", ""]
    for name, col in (("strict (no margins)", "strict_verdict"), ("after Holm", "holm_verdict")):
        c = f[col][f[col] != ""].value_counts().to_dict() if claims.rows else {}
        lines += [f"Verdicts {name}: " + (", ".join(f"{k} {v}" for k, v in sorted(c.items())) or "none") + ".", ""]
    sens = sensitivity(claims)
    if claims.rows:
        lines += ["Sensitivity to the margins (the rows of non-inferiority and equivalence claims, every margin "
                  "scaled by the factor):", "", sens.to_markdown(index=False), ""]
    shown = display_frame(claims).map(lambda v: str(v).replace("|", "\\|").replace("\n", " "))
    lines += [shown.to_markdown(index=False), ""]
    return "\n".join(lines)


SECTION_START, SECTION_END = "<!-- odebench:claims -->", "<!-- /odebench:claims -->"


def to_html_section(claims: Claims) -> str:
    """The claims section of index.html (odebench.bench.report.claims_page: the verdicts at a glance, then the
    table), between markers so that ``odebench claims`` can replace it."""
    from odebench.bench.report.claims_page import claims_section

    rows = pd.DataFrame(claims.rows) if claims.rows else claims.frame()  # every column the rows carry
    return "\n".join([SECTION_START, claims_section(rows, display_frame(claims), RULE), SECTION_END])


def splice_html(page: str, section: str) -> str:
    """``page`` with its claims section replaced by ``section`` (inserted after the navigation when absent)."""
    if SECTION_START in page and SECTION_END in page:
        head, rest = page.split(SECTION_START, 1)
        return head + section + rest.split(SECTION_END, 1)[1]
    anchor = "</nav>" if "</nav>" in page else "</h1>"
    if anchor in page:
        return page.replace(anchor, f"{anchor}\n{section}", 1)
    return page.replace("</body>", f"{section}\n</body>", 1)


def write_claims(sweep_dir: str | Path, claims: Claims) -> list[Path]:
    """claims.md, claims.csv and the claims section of an existing index.html, in the sweep folder."""
    from odebench.bench.harness.store.artifacts import atomic_write_bytes

    d = Path(sweep_dir).absolute()
    files = []
    for name, text in (("claims.md", to_markdown(claims)), ("claims.csv", claims.frame().to_csv(index=False))):
        files.append(atomic_write_bytes(d / name, text.encode(), root=d))
    page = d / "index.html"
    if page.is_file():
        files.append(atomic_write_bytes(page, splice_html(page.read_text(), to_html_section(claims)).encode(),
                                        root=d))
    return files


class NoSoundRecords(ValueError):
    """A folder whose records are all unsound (a corrupt pack, say): the message names each input and its cause."""


def claims_of(sweep_dir: str | Path, write_floors: bool = True) -> tuple[Claims, list[str]]:
    """Load a sweep folder, its floors, and evaluate every claim: (claims, notes). The notes name every unsound
    input (odebench.bench.report.tables.corrupt_note); NoSoundRecords when no record is left to check."""
    from odebench.bench.report.floors import sweep_floors
    from odebench.bench.report.tables import corrupt_note, load_sweep

    sweep = load_sweep(Path(sweep_dir).absolute())  # absolute: the floors it writes land in this very folder
    notes = [corrupt_note(p, reason) for p, reason in sorted(sweep.corrupt.items())]
    if sweep.frame.empty and notes:
        more = f" (and {len(notes) - 3} more)" if len(notes) > 3 else ""
        raise NoSoundRecords(f"{sweep_dir} holds no sound record to check a claim on: {'; '.join(notes[:3])}{more}")
    if not sweep.frame.empty:
        floors, floor_notes = sweep_floors(sweep, write=write_floors)
        sweep.floors, notes = floors, notes + floor_notes
    return evaluate(sweep), notes
