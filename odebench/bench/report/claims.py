"""``odebench claims``: the claims of the papers behind the methods, checked on a sweep's records.

For every check of odebench.bench.report.claims_table and every dataset of the sweep it applies to, one row:
the two sides (method configuration, solver, budget), the measured quantity per seed on each side, their means
and 95 % t-intervals over seeds, the difference A - B paired by seed (or A - floor), its interval, the claimed
interval, and the verdict by the rule of odebench.bench.report.verdict. A check whose cells are missing (not
in the sweep, failed, skipped) reads ``not measured`` and names them. Every row also gives the training-cost
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
from odebench.bench.report.verdict import NOT_MEASURED, Interval, judge, t_interval

CSV_COLUMNS = ["claim", "part", "dataset", "statement", "paper", "a", "b", "quantity", "n", "a_mean", "a_lo",
               "a_hi", "b_mean", "b_lo", "b_hi", "diff_mean", "diff_lo", "diff_hi", "claimed_lo", "claimed_hi",
               "verdict", "cost_ratio", "compute", "note"]
SHOWN = ["claim", "dataset", "statement", "a", "b", "quantity", "n", "A", "B", "A - B", "claimed", "verdict",
         "compute", "note"]


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
    budget rank), and '' or the reason there is none."""
    sel = _select(rows, side, tol)
    what = f"{rows['method'].iloc[0]} {side.solver or ''}@{side.budget if side.budget is not None else 'best'}"
    if column == ct.NFE_TO_10:
        return _nfe_to_10(rows, side), ""
    if column not in sel:
        return pd.Series(dtype=float), _why_missing(sel, what, column)
    ok = sel[(sel["status"] == "ok") & sel[column].notna()].sort_values("budget_rank", kind="stable")
    values = ok.groupby("seed")[column].last()
    return values.astype(float), "" if len(values) else _why_missing(sel, what, column)


def _nfe_to_10(rows: pd.DataFrame, side: ct.Side) -> pd.Series:
    """Per seed: the smallest fixed NFE of ``side.solver`` whose headline value is within 10 % of the model's own
    value at dopri5's tightest tolerance (censored at twice the largest budget swept when none is)."""
    metric = rows.attrs.get("headline")
    if metric is None or metric not in rows:
        return pd.Series(dtype=float)
    ref, _ = per_seed(rows, ct.Side(side.method, side.hp, "dopri5", ct.TIGHT), metric)
    fixed = rows[(rows["solver"] == side.solver) & (rows["status"] == "ok") & rows[metric].notna()]
    out = {}
    for seed, q in ref.items():
        mine = fixed[fixed["seed"] == seed].sort_values("nfe_requested")
        if mine.empty:
            continue
        reached = mine[mine[metric] <= 1.1 * q]
        out[seed] = float(reached["nfe_requested"].iloc[0]) if len(reached) else 2.0 * mine["nfe_requested"].max()
    return pd.Series(out, dtype=float)


# --------------------------------------------------------------------------------------------- evaluation
def _costs(sweep: Sweep) -> dict[tuple[str, str], float]:
    """(dataset, method label) -> mean total training FLOPs of its models."""
    from odebench.bench.report.training import model_rows

    models = model_rows(sweep.records, sweep.frame)
    if models.empty:
        return {}
    return {k: float(v) for k, v in models.groupby(["dataset", "method"])["total_flops"].mean().items()
            if pd.notna(v)}


def _paper(method: str) -> str:
    from odebench.bench.harness.spec.catalog import paper_title
    from odebench.methods import METHODS

    try:
        return paper_title(METHODS.get(method).citation)
    except Exception:
        return ""


def _claimed(check: ct.Check, b: Interval | None, floor) -> tuple[float, float] | None:
    if check.relation == "below":
        return (-math.inf, 0.0)
    if check.relation == "not_above":
        return (-math.inf, ct.REL_MARGIN * abs(b.mean))
    if floor is None or not math.isfinite(floor.std):
        return None
    m = ct.FLOOR_MARGIN * floor.std
    return (-m, m) if check.relation == "same_floor" else (-math.inf, m)


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


def evaluate_check(sweep: Sweep, check: ct.Check, dataset: str, costs: dict) -> list[dict]:
    """The rows of one check on one dataset (one per matching A configuration, and per tolerance)."""
    frame = sweep.frame[sweep.frame["dataset"] == dataset]
    headline = headline_metric(sweep, dataset)
    column = headline if check.metric == ct.HEADLINE else check.metric
    floor = sweep.floors.get(dataset, {}).get(column) if column else None
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
    rows = []
    for a_label, a_rows in a_groups.items():
        b_label = _best_match(a_label, b_groups, frame) if check.b is not None else None
        for tol in tols:
            a_rows.attrs["headline"] = headline
            quantity = _quantity(check, column, tol)
            a_vals, a_why = per_seed(a_rows, check.a, column or "", tol)
            b_vals, b_why = pd.Series(dtype=float), ""
            if b_label is not None:
                b_rows = b_groups[b_label]
                b_rows.attrs["headline"] = headline
                b_vals, b_why = per_seed(b_rows, check.b, column or "", tol)
            row = _judged(check, dataset, a_label, b_label, quantity, a_vals, b_vals, floor,
                          [w for w in (a_why, b_why) if w])
            row.update(_compute(costs, dataset, a_label, b_label))
            rows.append(row)
    return rows


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
    name = {ct.NFE: "NFE used", ct.NFE_TO_10: "smallest Euler NFE within 10 % of own dopri5"}.get(check.metric,
                                                                                                 column or "?")
    return f"{name}{where}"


def _judged(check, dataset, a_label, b_label, quantity, a_vals, b_vals, floor, missing) -> dict:
    if missing:
        return _row(check, dataset, a_label, b_label, quantity, verdict=NOT_MEASURED, note="; ".join(missing))
    a_ci = t_interval(list(a_vals))
    if check.relation == "at_floor":
        if floor is None:
            return _row(check, dataset, a_label, None, quantity, verdict=NOT_MEASURED,
                        note=f"no two-sample floor of {quantity.split(' ')[0]} for {dataset}")
        diffs, b_ci, seeds = [v - floor.mean for v in a_vals], Interval(floor.mean, math.nan, math.nan,
                                                                          len(floor.values)), len(a_vals)
    else:
        seeds = sorted(set(a_vals.index) & set(b_vals.index))
        if not seeds:
            return _row(check, dataset, a_label, b_label, quantity, verdict=NOT_MEASURED,
                        note="no seed holds both sides")
        diffs = [float(a_vals[s] - b_vals[s]) for s in seeds]
        b_ci = t_interval(list(b_vals))
        seeds = len(seeds)
    d_ci = t_interval(diffs)
    claimed = _claimed(check, b_ci, floor)
    if claimed is None:
        return _row(check, dataset, a_label, b_label, quantity, verdict=NOT_MEASURED,
                    note=f"no two-sample floor of {quantity.split(' ')[0]} for {dataset} (the margin)")
    note = []
    if ct.NFE_TO_10 == check.metric:
        note.append("an unreached 10 % counts as twice the largest budget")
    return _row(check, dataset, a_label, b_label, quantity, n=seeds, a_mean=a_ci.mean, a_lo=a_ci.lo, a_hi=a_ci.hi,
                b_mean=b_ci.mean, b_lo=b_ci.lo, b_hi=b_ci.hi, diff_mean=d_ci.mean, diff_lo=d_ci.lo,
                diff_hi=d_ci.hi, claimed_lo=claimed[0], claimed_hi=claimed[1], verdict=judge(d_ci, claimed),
                note="; ".join(note))


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
    mean over seeds) and within classes of matched training compute (docs/claims.md)."""
    claim, statement, paper_of = ct.RANKING
    metric = headline_metric(sweep, dataset)
    frame = sweep.frame[(sweep.frame["dataset"] == dataset) & (sweep.frame["status"] == "ok")]
    lower = sweep.lower_is_better(metric) if metric else True
    rows = []
    for nfe in ct.RANK_NFE:
        at = frame[(frame["nfe_requested"] == nfe) & frame[metric].notna()] if metric else frame.iloc[:0]
        quality, off_grid = {}, set()  # a method's best sampler on its own grids, else marked (suitability)
        for m, g in at.groupby("method"):
            g, off = prefer_suitable(g)
            quality[m] = (min if lower else max)(g.groupby("solver")[metric].mean())
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
    costs = _costs(sweep)
    for check in ct.CHECKS:
        for dataset in sweep.datasets():
            if _dataset_fits(sweep, dataset, check.where):
                out.rows += evaluate_check(sweep, check, dataset, costs)
    for dataset in sweep.datasets():
        out.rows += ranking_rows(sweep, dataset, costs)
    return out


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


def display_frame(claims: Claims) -> pd.DataFrame:
    """The table as shown (md, html, stdout): means with their 95 % intervals, the claimed interval."""
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
        "verdict": f["verdict"], "compute": f["compute"], "note": f["note"]})
    return shown[SHOWN]


RULE = ("Verdict rule (docs/claims.md): each check measures a difference d = A - B per seed (paired by seed; "
        "A - floor mean against a two-sample floor), lower is better, and names the interval the claim puts d in. "
        "holds: the 95 % t-interval of d over seeds lies inside it; contradicted: it lies entirely outside; "
        "inconclusive: otherwise or with fewer than two seeds. A, B and A - B read mean [95 % interval].")


def to_markdown(claims: Claims) -> str:
    counts = claims.frame()["verdict"].value_counts().to_dict() if claims.rows else {}
    lines = [f"# Claims: {claims.sweep}", "", RULE, "",
             "Verdicts: " + (", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "none") + ".", ""]
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
