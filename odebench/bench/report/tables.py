"""Leaderboard tables of one sweep, built from its records (pandas), one set per dataset.

Every table cell aggregates the seeds of one configuration -- the whole resolved configuration less the seed:
dataset, method and its hparams, solver, budget, and training, network, evaluation and data settings -- the mean
and the sample standard deviation (ddof = 1) over the seeds whose status is ``ok``. Where records of a dataset
differ in a setting the method label does not show (``train.steps``, say), the label says it
(``fm_ot [train.steps=300]``), so two configurations never share a row. Records the latest run's spec no longer
produces (``odebench.bench.harness.store.versions``) are left out; the report lists them separately. Seeds that failed
or were skipped are never dropped silently: a cell with no ok seed reads ``failed`` / ``skipped``, and a cell with some
ok seeds says how many of the others failed, e.g. ``0.1234 ± 0.01 (1 failed)``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from odebench.bench.core.hashing import config_hash
from odebench.bench.harness.store.packed import PACKED
from odebench.bench.harness.store.records import RecordStore, method_label, records_frame
from odebench.bench.harness.store.versions import change_of, current_cell_ids, flat_config, short
from odebench.bench.report.format import best_positions, fmt_mean_std, fmt_sig, mark
from odebench.bench.report.source_laws import STANDARD, source_law
from odebench.bench.report.suitability import OFF_GRID, prefer_suitable
from odebench.metrics.registry import headline_order

CONFIG_KEYS = ["dataset", "method", "solver", "budget"]
#: prefix of the frame's method-hparam columns (``hp.k`` for rf's reflow round); NaN where a method lacks it
HPARAM_PREFIX = "hp."


@dataclass
class Sweep:
    """The records of one sweep folder as a frame, plus what the tables need to know about the metrics.

    Attributes:
        dir: the sweep folder (``<results root>/<sweep name>``).
        records: the raw records (their configs rebuild cells for the figures).
        frame: one row per record (see :func:`load_sweep` for the extra columns).
        higher_is_better: per metric name, from the records' ``metric_info``.
    """

    dir: Path
    records: list[dict[str, Any]]
    frame: pd.DataFrame
    higher_is_better: dict[str, bool] = field(default_factory=dict)
    #: metrics the records flag ``per_model`` (one value per trained model, e.g. NLL with its own solver)
    per_model: set[str] = field(default_factory=set)
    #: every metric value column the records hold (``w2``, ``nll.bpd``, ...), read from their ``metrics``
    metric_names: set[str] = field(default_factory=set)
    #: record files that failed the schema (path -> reason): left out of the tables, listed in the notes
    corrupt: dict[Path, str] = field(default_factory=dict)
    #: (cell id, column, value) of every NaN/inf metric value the records hold (records older than the
    #: metrics' own check); inf shows in the tables, NaN cannot (it reads as missing), the notes list both
    nonfinite: list[tuple[str, str, float]] = field(default_factory=list)
    #: (cell id, metric, reason) of every metric a cell recorded as failed
    metric_failures: list[tuple[str, str, str]] = field(default_factory=list)
    #: records of the folder that the latest run's spec no longer produces (left out of ``frame``)
    earlier: list[dict[str, Any]] = field(default_factory=list)
    #: two-sample floors, dataset -> metric column -> odebench.bench.report.floors.Floor (set by the report)
    floors: dict[str, dict[str, Any]] = field(default_factory=dict)

    def is_per_model(self, column: str) -> bool:
        """Whether a metric column (``nll.bpd`` follows ``nll``) holds one value per trained model."""
        return column.split(".")[0] in self.per_model

    @property
    def name(self) -> str:
        return self.dir.name

    def lower_is_better(self, column: str) -> bool:
        """Direction of a metric column; ``nll.bpd`` follows ``nll``. Unknown metrics: lower is better."""
        return not self.higher_is_better.get(column.split(".")[0], False)

    def metric_columns(self, dataset: str | None = None) -> list[str]:
        """Metric columns holding at least one value (in the given dataset)."""
        f = self.frame if dataset is None else self.frame[self.frame["dataset"] == dataset]
        return [c for c in f.columns if c in self.metric_names and f[c].notna().any()]

    def datasets(self) -> list[str]:
        return sorted(self.frame["dataset"].unique()) if not self.frame.empty else []


def load_sweep(sweep_dir: str | Path) -> Sweep:
    """Read every record of a sweep folder.

    Besides :func:`odebench.bench.harness.store.records.records_frame`'s columns the frame has ``budget`` ("NFE 8", "tol
    1e-05"), ``budget_rank`` (sort key: fixed budgets by NFE, then adaptive ones from loose to tight), ``is_adaptive``,
    one ``hp.<name>`` column per method hparam (NaN for methods without it) and the record's ``model_key``.
    """
    sweep_dir = Path(sweep_dir)
    if not sweep_dir.is_dir():
        raise FileNotFoundError(f"{sweep_dir} is not a folder; give a sweep folder such as results/quick "
                                f"(the one holding cells/)")
    store = RecordStore(sweep_dir)
    every = store.records()
    current = current_cell_ids(sweep_dir)  # None: a folder from before manifests; every record is current
    records = [r for r in every if current is None or r["cell_id"] in current]
    earlier = [r for r in every if current is not None and r["cell_id"] not in current]
    frame = records_frame(records)
    shown = [{**r["config"], "method": m} for r, m in zip(records, drawn_hparams_as_data(records), strict=True)]
    if not frame.empty:  # a data hparam resolved per data draw labels as "data", one row over the seeds
        frame["method"] = [method_label(c["method"]) for c in shown]
    higher: dict[str, bool] = {}
    per_model: set[str] = set()
    metric_names: set[str] = set()
    nonfinite, failures = [], []
    for r in records:
        metric_names.update(r.get("metrics") or {})
        nonfinite += [(r["cell_id"], k, v) for k, v in (r.get("metrics") or {}).items()
                      if v is not None and not math.isfinite(v)]
        for name, info in (r.get("metric_info") or {}).items():
            higher[name] = bool(info.get("higher_is_better", False))
            if info.get("per_model"):
                per_model.add(name)
            if info.get("status") == "failed":
                failures.append((r["cell_id"], name, str(info.get("reason"))))
    if not frame.empty:
        frame["is_adaptive"] = frame["nfe_requested"].isna()
        budgets = list(zip(frame["nfe_requested"], frame["tol"], strict=True))
        frame["budget"] = [budget_label(n, t) for n, t in budgets]
        frame["budget_rank"] = [budget_rank(n, t) for n, t in budgets]
        hparams = sorted({k for r in records for k in r["config"]["method"] if k != "name"})
        for k in hparams:
            frame[HPARAM_PREFIX + k] = [r["config"]["method"].get(k, math.nan) for r in records]
        frame["model_key"] = [r.get("model_key") for r in records]
        frame["source_law"] = [source_law(c) for c in shown]  # the path metrics' t = 0 law
        frame["metric_failures"] = [r.get("metric_failures") or {} for r in records]
        flats = [flat_config(c, (r.get("runtime") or {}).get("precision")) for c, r in zip(shown, records, strict=True)]
        frame["config_key"] = config_keys(flats, [r["config"].get("data_seed") for r in records])
        frame["variant"] = variant_labels(list(frame["dataset"]), flats)
        # a configuration difference the method label does not show (training, net, eval, data options,
        # precision) joins it, so no table, figure or CSV row ever averages two configurations
        frame["method"] = [f"{m} [{v}]" if v else m for m, v in zip(frame["method"], frame["variant"], strict=True)]
    return Sweep(sweep_dir, records, frame, higher, per_model, metric_names, dict(store.corrupt), nonfinite,
                 failures, earlier)


def corrupt_note(path: Path, reason: str) -> str:
    """The note of one unsound input (``Sweep.corrupt``): a record file, a line of a pack, or a pack that cannot be
    read at all."""
    if path.name == PACKED:
        return (f"pack {path} is unreadable ({reason}): none of its records is shown; restore the file (from "
                f"version control, say) or pack the sweep again (odebench pack)")
    if path.name.startswith(PACKED + ":"):
        return f"pack line {path.name} is unsound ({reason}): left out of the tables"
    return (f"record {path.name} is corrupt ({reason}): left out of the tables; the next `odebench run` of this "
            f"sweep moves it aside and evaluates its cell again")


def drawn_hparams_as_data(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per record, its method config as the tables label it: a data hparam (``Method.data_hparams``, e.g.
    score_ve's sigma_max) whose resolved value is not held at every data seed of its configuration reads "data",
    the spec's value, since it was resolved from each seed's own data draw (``data_seed = "per_seed"``) and is
    then a replicate axis like the data seed; a value held at every data seed (a number the spec gave, or a rule
    that gave every draw the same) keeps the config as recorded."""
    from odebench.methods import METHODS

    def drawn(method: dict[str, Any]) -> tuple[str, ...]:
        name = method.get("name")
        return tuple(k for k in (METHODS.get(name).data_hparams if name in METHODS else {}) if k in method)

    keys = [drawn(r["config"]["method"]) for r in records]
    seeds_of: dict[str, set[str]] = {}  # configuration less its data hparams -> its data seeds
    seeds_at: dict[tuple[str, str], set[str]] = {}  # (that, the data hparams' values) -> the data seeds holding them
    where = []
    for r, ks in zip(records, keys, strict=True):
        c = r["config"]
        base = config_hash(flat_config({**c, "method": {k: v for k, v in c["method"].items() if k not in ks}}))
        value = json.dumps([c["method"][k] for k in ks], default=str)
        where.append((base, value))
        seed = json.dumps(c.get("data_seed"))
        seeds_of.setdefault(base, set()).add(seed)
        seeds_at.setdefault((base, value), set()).add(seed)
    out = []
    for r, ks, (base, value) in zip(records, keys, where, strict=True):
        method = r["config"]["method"]
        if ks and seeds_at[(base, value)] != seeds_of[base]:
            method = {**method, **{k: "data" for k in ks}}
        out.append(method)
    return out


def config_keys(flats: list[dict[str, str]], data_seeds: list[Any]) -> list[str]:
    """Per record, the hash of its configuration less the seed (leaderboard.csv's ``config_key``): of its flat
    config with the data seed its configuration's records share, or "per_seed" where they differ (seeds with
    their own data draws; the data seed is a replicate axis, ``versions.AXES``)."""
    groups: dict[str, set[str]] = {}
    hashes = [config_hash(f) for f in flats]
    for h, d in zip(hashes, data_seeds, strict=True):
        groups.setdefault(h, set()).add(json.dumps(d))
    return [config_hash({**f, "data_seed": next(iter(groups[h])) if len(groups[h]) == 1 else '"per_seed"'})
            for f, h in zip(flats, hashes, strict=True)]


def variant_labels(datasets: list[str], flats: list[dict[str, str]]) -> list[str]:
    """Per record, the configuration keys (less the method's hparams, which its label shows) whose values
    differ between the records of its dataset: 'train.steps=300'; '' where all agree."""
    labels = [""] * len(flats)
    for dataset in set(datasets):
        rows = [i for i, d in enumerate(datasets) if d == dataset]
        keys = sorted({k for i in rows for k in flats[i] if not k.startswith("method.")})
        varying = [k for k in keys if len({flats[i].get(k) for i in rows}) > 1]
        for i in rows:
            labels[i] = ", ".join(f"{k}={short(flats[i].get(k, 'unset'))}" for k in varying)
    return labels


def budget_label(nfe_requested: Any, tol: Any) -> str:
    """'NFE 8' for a fixed-step budget, 'tol 1e-05' for an adaptive solver's rtol = atol."""
    if pd.notna(nfe_requested):
        return f"NFE {int(nfe_requested)}"
    return f"tol {float(tol):g}"


def budget_rank(nfe_requested: Any, tol: Any) -> float:
    """Fixed budgets sort by NFE; adaptive ones after all of them, looser tolerance first."""
    if pd.notna(nfe_requested):
        return float(nfe_requested)
    return 1e9 - math.log10(float(tol))


def headline_metric(sweep: Sweep, dataset: str, order: Iterable[str] | None = None) -> str | None:
    """The dataset's headline metric: the first of ``order`` with a value, else its first metric column."""
    present = sweep.metric_columns(dataset)
    for m in headline_order() if order is None else order:
        if m in present:
            return m
    return present[0] if present else None


# ------------------------------------------------------------------------------------------ cell formatting
def fmt_stat(values: Iterable[float]) -> str:
    """'0.1234' for one value, 'mean ± std' (sample std over seeds) for several, '' for none.

    Infinite values are shown as such, apart from the finite ones: 'inf', or '0.1234 (+1 inf)'.
    """
    v = pd.Series(list(values), dtype=float).dropna()
    inf = v[~v.map(math.isfinite)]
    if len(inf):
        shown = " ".join(f"{x:g}" for x in inf)
        rest = fmt_stat(v[v.map(math.isfinite)])
        return f"{rest} (+{shown})" if rest else shown
    if v.empty:
        return ""
    if len(v) == 1:
        return fmt_sig(v.iloc[0])
    return fmt_mean_std(v.mean(), v.std(ddof=1))


def ok_mean(group: pd.DataFrame, column: str) -> float:
    """Mean of ``column`` over the ok seeds of ``group`` (NaN where none holds it): what 'best' compares."""
    if column not in group:
        return math.nan
    v = group.loc[group["status"] == "ok", column].dropna()
    return float(v.mean()) if len(v) else math.nan


def mark_best(frame: pd.DataFrame, means: dict[str, list[float]], lower_is_better) -> pd.DataFrame:
    """Wrap the best value of each column of ``means`` (column -> the rows' means) in the best-value mark
    (:func:`odebench.bench.report.format.mark`); ``lower_is_better``: a bool, or column -> bool."""
    out = frame.copy()
    for col, values in means.items():
        lower = lower_is_better(col) if callable(lower_is_better) else lower_is_better
        for i in best_positions(values, lower):
            out.iat[i, out.columns.get_loc(col)] = mark(out.iat[i, out.columns.get_loc(col)])
    return out


#: label of the floor row in the sample-quality tables
FLOOR_LABEL = "two-sample floor (data vs data)"
#: appended to a value whose difference to its column's best is smaller than the floor's spread
NEAR = " ≈"


def near_positions(means: list[float], spread: float, lower_is_better: bool) -> set[int]:
    """Indices of the finite means that are not the best of ``means`` but differ from it by less than
    ``spread`` (the floor's standard deviation): differences a perfect model's own draws would show."""
    values = [(i, v) for i, v in enumerate(means) if v is not None and math.isfinite(v)]
    if len(values) < 2 or spread is None or not math.isfinite(spread):
        return set()
    best = (min if lower_is_better else max)(v for _, v in values)
    return {i for i, v in values if v != best and abs(v - best) < spread}


def mark_near(frame: pd.DataFrame, means: dict[str, list[float]], spreads: dict[str, float],
              lower_is_better) -> pd.DataFrame:
    """Append NEAR to every value within its column's floor spread (``spreads``: column -> std) of the best."""
    out = frame.copy()
    for col, values in means.items():
        if col not in spreads:
            continue
        lower = lower_is_better(col) if callable(lower_is_better) else lower_is_better
        for i in near_positions(values, spreads[col], lower):
            j = out.columns.get_loc(col)
            out.iat[i, j] = f"{out.iat[i, j]}{NEAR}"
    return out


def status_text(statuses: Iterable[str]) -> str:
    """'failed', 'skipped' or 'failed/skipped' for cells without an ok seed."""
    return "/".join(sorted(set(statuses) - {"ok"})) or "n/a"


def cell_text(group: pd.DataFrame, column: str) -> str:
    """Mean ± std of ``column`` over the ok seeds of ``group``, with the not-ok seeds counted.

    A group whose ok seeds lack the column (the metric was not requested there) reads 'n/a'.
    """
    ok = group.loc[group["status"] == "ok", column].dropna() if column in group else pd.Series(dtype=float)
    bad = group.loc[group["status"] != "ok", "status"].value_counts().to_dict()
    n_metric_failed = metric_failed_count(group, column)
    if n_metric_failed:
        bad["metric failed"] = n_metric_failed
    if ok.empty:
        return "metric failed" if n_metric_failed and (group["status"] == "ok").any() else status_text(group["status"])
    text = fmt_stat(ok)
    if bad:
        text += " (" + ", ".join(f"{n} {s}" for s, n in sorted(bad.items())) + ")"
    return text


def metric_failed_count(group: pd.DataFrame, column: str) -> int:
    """Ok seeds of ``group`` whose metric of ``column`` (``nll.bpd`` -> ``nll``) failed alone."""
    if "metric_failures" not in group:
        return 0
    metric = column.split(".")[0]
    ok = group[group["status"] == "ok"]
    return int(sum(metric in (f or {}) for f in ok["metric_failures"]))


def nfe_text(group: pd.DataFrame) -> str:
    """Mean NFE actually used by the ok seeds ('26.5'; adaptive solvers differ between seeds)."""
    nfe = group.loc[group["status"] == "ok", "nfe"].dropna()
    return f"{round(nfe.mean(), 1):g}" if len(nfe) else ""


def _ordered_budgets(frame: pd.DataFrame) -> list[str]:
    ranks = frame.groupby("budget")["budget_rank"].first()
    return list(ranks.sort_values().index)


def _methods(frame: pd.DataFrame) -> list[str]:
    return sorted(frame["method"].unique(), key=lambda m: (m.split("(")[0], m))


# ----------------------------------------------------------------------------------------------- the tables
def best_solver_table(frame: pd.DataFrame, metric: str, lower_is_better: bool = True,
                      floor=None) -> pd.DataFrame:
    """Rows: methods; columns: budgets; cell: the best solver's mean ± std at that budget, solver named.

    For each (method, budget) the solver with the best mean over its ok seeds wins, among the samplers on the
    method's own time grids (odebench.bench.report.suitability) where it has any there, else among the others
    with the pick marked OFF_GRID ("[euler†]"); a budget no solver finished reads the statuses of its cells.
    Adaptive budgets also give the NFE actually used. With the
    metric's two-sample ``floor`` (odebench.bench.report.floors.Floor) the table ends with a floor row, a value
    within the floor's spread of its column's best is marked NEAR, and so is a solver pick ("[heun≈]") that
    another solver at that budget comes within the floor's spread of.
    """
    budgets = _ordered_budgets(frame)
    rows = []
    best: dict[str, list[float]] = {b: [] for b in budgets}
    for method in _methods(frame):
        row: dict[str, str] = {"method": method}
        g = frame[frame["method"] == method]
        for budget in budgets:
            gb = g[g["budget"] == budget]
            best[budget].append(math.nan)
            if gb.empty:
                row[budget] = ""
                continue
            ok = gb[(gb["status"] == "ok") & gb[metric].notna()]
            ok, off_grid = prefer_suitable(ok)  # never a sampler off the method's own grids while one is on them
            means = ok.groupby("solver")[metric].mean().to_dict()
            if not means:
                row[budget] = status_text(gb["status"])
                continue
            pick = min if lower_is_better else max
            solver = pick(means, key=means.get)
            best[budget][-1] = means[solver]
            gs = gb[gb["solver"] == solver]
            tied = floor is not None and any(abs(v - means[solver]) < floor.std for s, v in means.items()
                                             if s != solver)
            text = (f"{cell_text(gs, metric)} [{solver}{OFF_GRID if off_grid else ''}"
                    f"{NEAR.strip() if tied else ''}")
            if gs["is_adaptive"].all():
                text += f", NFE {nfe_text(gs)}"
            row[budget] = text + "]"
        rows.append(row)
    out = mark_best(pd.DataFrame(rows, columns=["method", *budgets]), best, lower_is_better)
    return _with_floor(out, best, floor, lower_is_better, {"method": FLOOR_LABEL}, budgets)


def _with_floor(table: pd.DataFrame, means: dict[str, list[float]], floor, lower_is_better,
                label: dict[str, str], columns: list[str]) -> pd.DataFrame:
    """``table`` with NEAR marks against ``floor``'s spread and the floor row at the end (unchanged without)."""
    if floor is None or table.empty:
        return table
    table = mark_near(table, means, {c: floor.std for c in columns}, lower_is_better)
    row = {**{c: "" for c in table.columns}, **label, **{c: floor.text() for c in columns}}
    return pd.concat([table, pd.DataFrame([row], columns=table.columns)], ignore_index=True)


def per_solver_table(frame: pd.DataFrame, metric: str, lower_is_better: bool = True,
                     floor=None) -> pd.DataFrame:
    """Rows: (method, solver); columns: budgets; cell: mean ± std over seeds, or the statuses; the best value
    of each budget marked (and, with the metric's ``floor``, the values within its spread of the best, and a
    floor row at the end).

    A budget the spec did not sweep for that solver stays empty; adaptive cells add the NFE used.
    """
    budgets = _ordered_budgets(frame)
    rows = []
    best: dict[str, list[float]] = {b: [] for b in budgets}
    for method in _methods(frame):
        g = frame[frame["method"] == method]
        for solver in sorted(g["solver"].unique()):
            gs = g[g["solver"] == solver]
            row = {"method": method, "solver": solver}
            for budget in budgets:
                gb = gs[gs["budget"] == budget]
                text = cell_text(gb, metric) if len(gb) else ""
                if len(gb) and gb["is_adaptive"].all() and (gb["status"] == "ok").any():
                    text += f" [NFE {nfe_text(gb)}]"
                row[budget] = text
                best[budget].append(ok_mean(gb, metric))
            rows.append(row)
    out = mark_best(pd.DataFrame(rows, columns=["method", "solver", *budgets]), best, lower_is_better)
    return _with_floor(out, best, floor, lower_is_better, {"method": FLOOR_LABEL, "solver": ""}, budgets)


def family_columns(sweep: Sweep, dataset: str, families: Iterable[str]) -> list[str]:
    """Metric columns of the dataset named ``family`` or ``family.key``, grouped in the given order."""
    present = sweep.metric_columns(dataset)
    out = []
    for fam in families:
        out += sorted(c for c in present if c == fam or c.startswith(fam + "."))
    return out


def metric_family_table(frame: pd.DataFrame, columns: list[str], lower_is_better=True,
                        floors: dict | None = None) -> pd.DataFrame:
    """Rows: (method, solver, budget) configurations; columns: the given metric columns (mean ± std), the
    best value of each column marked (``lower_is_better``: a bool, or column -> bool). ``floors`` (column ->
    Floor) adds a floor row and marks values within a column's floor spread of its best with NEAR.

    A configuration appears if any of its seeds holds one of the columns or if none of its seeds is ok
    (so that failed and skipped cells show here too); the NFE column is the mean NFE actually used.
    """
    rows = []
    for (method, solver, budget), g in frame.groupby(["method", "solver", "budget"], sort=False):
        has_value = g[columns].notna().any().any()
        if not has_value and (g["status"] == "ok").any():
            continue
        row = {"method": method, "solver": solver, "budget": budget, "NFE": nfe_text(g),
               "_rank": g["budget_rank"].iloc[0]}
        row.update({c: cell_text(g, c) for c in columns})
        row.update({f"_mean {c}": ok_mean(g, c) for c in columns})
        rows.append(row)
    if not rows:
        return pd.DataFrame(columns=["method", "solver", "budget", "NFE", *columns])
    out = pd.DataFrame(rows).sort_values(["method", "solver", "_rank"], kind="stable").reset_index(drop=True)
    means = {c: list(out[f"_mean {c}"]) for c in columns if not _is_bound(c)}
    out = out.drop(columns=["_rank", *(f"_mean {c}" for c in columns)])
    out = mark_best(out, means, lower_is_better)
    floors = {c: f for c, f in (floors or {}).items() if c in columns}
    if not floors:
        return out
    out = mark_near(out, means, {c: f.std for c, f in floors.items()}, lower_is_better)
    n = sorted({f.n for f in floors.values()})
    row = {**{c: "" for c in out.columns}, "method": FLOOR_LABEL, "budget": f"n = {', '.join(map(str, n))}",
           **{c: f.text() for c, f in floors.items()}}
    return pd.concat([out, pd.DataFrame([row], columns=out.columns)], ignore_index=True)


def by_source_law(frame: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    """The rows of ``frame`` per source law (odebench.bench.report.source_laws), N(0, I) first: the path metrics
    of two source laws are never ranked in one column."""
    if frame.empty or "source_law" not in frame:
        return [(STANDARD, frame)]
    laws = sorted(frame["source_law"].unique(), key=lambda law: (law != STANDARD, law))
    return [(law, frame[frame["source_law"] == law]) for law in laws]


def _is_bound(column: str) -> bool:
    """A reference value beside a metric (the exact-OT cost, the dataset's transport reference), not a score to
    rank."""
    return column.endswith((".ot", ".ot_bound", ".bound", ".reference"))


def per_model_table(sweep: Sweep, frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """Rows: methods; columns: per-model metric columns of one family (e.g. ``nll``, ``nll.bpd``).

    Every cell of a trained model records the same per-model value, so each (method, seed) counts once; the
    table gives mean ± std over seeds, the metric's own solve (solver, tolerance, trace estimator) and the NFE
    that solve used -- not the cells' sampling budgets, which do not enter the value.
    """
    metric = columns[0].split(".")[0]
    ok = frame[(frame["status"] == "ok") & frame[columns].notna().any(axis=1)]
    ok = ok.drop_duplicates(["method", "seed"])
    by_id = {r["cell_id"]: r for r in sweep.records}
    rows = []
    for method, g in ok.groupby("method", sort=False):
        settings = [((by_id[c].get("metric_info") or {}).get(metric) or {}).get("settings") or {}
                    for c in g["cell_id"]]
        nfes = [s["nfe"] for s in settings if s.get("nfe") is not None]
        row = {"method": method, "solve": solve_text(settings[0]), "seeds": len(g),
               "NFE": f"{round(sum(nfes) / len(nfes), 1):g}" if nfes else ""}
        row.update({c: cell_text(g, c) for c in columns})
        bpd = f"{metric}.bpd"
        invalid = [(s, v) for s, v in zip(settings, g[bpd], strict=True) if s.get("bpd_valid") is False] \
            if bpd in row else []
        if invalid:  # the metric marked its own bits/dim invalid (above log2 L, non-finite points)
            row[bpd] += f" (invalid on {len(invalid)} of {len(settings)} seeds: {_why_invalid(invalid)})"
        # an invalid mean is never its column's best, nor the same mean in nats (the median and the diverged
        # share beside it stay comparable)
        same_mean = {metric, f"{metric}.bpd", f"{metric}.nats_per_dim"} if invalid else set()
        row.update({f"_mean {c}": math.nan if c in same_mean else ok_mean(g, c) for c in columns})
        rows.append(row)
    if not rows:
        return pd.DataFrame(columns=["method", "solve", "seeds", "NFE", *columns])
    out = pd.DataFrame(rows).sort_values("method", kind="stable").reset_index(drop=True)
    means = {c: list(out[f"_mean {c}"]) for c in columns}
    return mark_best(out.drop(columns=[f"_mean {c}" for c in columns]), means, sweep.lower_is_better)


def _why_invalid(seeds: list[tuple[dict[str, Any], float]]) -> str:
    """Why the nll metric marked these seeds' bits/dim invalid, in a few words, from (its settings, the seed's
    mean bits/dim) of each (the full reason is in each record's ``metric_info.nll.settings.bpd_invalid_reason``)."""
    parts = []
    if any(s.get("n_nonfinite") for s, _ in seeds):
        parts.append("non-finite NLL on some points")
    above = [(s, v) for s, v in seeds if s.get("bpd_bound") is not None and v > s["bpd_bound"]]
    if above:
        s = above[0][0]
        parts.append(f"mean above log2({s.get('levels')}) = {s['bpd_bound']:.3f} bits/dim, a uniform model's cost")
    return "; ".join(parts or ["marked invalid"]) + "; see the median"


def solve_text(settings: dict[str, Any]) -> str:
    """'dopri5 tol 0.0001, hutchinson x1' from a metric's recorded settings ('' when it recorded none)."""
    if not settings.get("solver"):
        return ""
    text = settings["solver"]
    if settings.get("rtol") is not None:
        text += f" tol {settings['rtol']:g}"
    if settings.get("divergence"):
        probes = f" x{settings['n_probes']}" if settings["divergence"] == "hutchinson" else ""
        text += f", {settings['divergence']}{probes}"
    return text


def issues_table(frame: pd.DataFrame, max_reason: int = 200) -> pd.DataFrame:
    """Every failed or skipped record: method, solver, budget, seed, status and the reason."""
    rows = []
    for _, r in frame.sort_values(["method", "solver", "budget_rank", "seed"]).iterrows():
        where = {"method": r["method"], "solver": r["solver"], "budget": r["budget"], "seed": r["seed"]}
        if r["status"] != "ok":
            rows.append({**where, "status": r["status"], "reason": str(r["reason"] or "")[:max_reason]})
        for metric, why in (r.get("metric_failures") or {}).items():  # failed alone; the others were kept
            rows.append({**where, "status": "metric failed", "reason": f"{metric}: {why}"[:max_reason]})
    return pd.DataFrame(rows, columns=["method", "solver", "budget", "seed", "status", "reason"])


def metric_failure_notes(frame: pd.DataFrame, dataset: str) -> list[str]:
    """One note per metric that failed alone on some cells of ``dataset``: how many, and the first reason."""
    seen: dict[str, list[str]] = {}
    for failures in frame.get("metric_failures", []):
        for metric, why in (failures or {}).items():
            seen.setdefault(metric, []).append(why)
    return [f"{dataset}: metric {m} failed on {len(whys)} cell(s), whose other metrics are kept: {whys[0]}"
            for m, whys in sorted(seen.items())]


def earlier_table(earlier: list[dict[str, Any]], current: list[dict[str, Any]]) -> pd.DataFrame:
    """Records the latest spec no longer produces, one row per (dataset, method, what changed): how many cells
    and their statuses. ``current``: the configs of the current records, to say what changed."""
    rows: dict[tuple[str, str, str], list[str]] = {}
    for r in earlier:
        c = r["config"]
        dataset = c["target"] if c["source"] == "gaussian" else f"{c['source']}->{c['target']}"
        key = (dataset, method_label(c["method"]), change_of(c, current))
        rows.setdefault(key, []).append(r.get("status", "?"))
    out = [{"dataset": d, "method": m, "what changed since": change, "cells": len(st),
            "records by status": ", ".join(f"{s} {n}" for s, n in sorted(pd.Series(st).value_counts().items()))}
           for (d, m, change), st in sorted(rows.items())]
    return pd.DataFrame(out, columns=["dataset", "method", "what changed since", "cells", "records by status"])


def summary_frame(sweep: Sweep) -> pd.DataFrame:
    """One row per configuration (dataset, method, solver, budget and ``config_key``, the hash of the whole
    configuration less the seed): seed counts by status, mean NFE, how many of its seeds' models were still
    improving at the end of their training (``n_still_improving``) by which version of the convergence rule
    (``convergence_rule``: odebench.bench.report.training), and every metric's mean and std over the ok seeds
    (full precision; this is leaderboard.csv)."""
    f = sweep.frame
    if f.empty:
        return pd.DataFrame()
    metrics = sweep.metric_columns()
    from odebench.bench.report.training import rule_versions, verdict_by_cell

    verdicts = verdict_by_cell(sweep.records)  # each configuration's models, judged by today's convergence rule
    rows = []
    for key, g in f.groupby([*CONFIG_KEYS, "config_key"], sort=False):
        ok = g[g["status"] == "ok"]
        row = dict(zip([*CONFIG_KEYS, "config_key"], key, strict=True))
        row.update({"nfe_requested": g["nfe_requested"].iloc[0], "tol": g["tol"].iloc[0],
                    "n_seeds": len(g), "n_ok": len(ok), "n_failed": int((g["status"] == "failed").sum()),
                    "n_skipped": int((g["status"] == "skipped").sum()), "nfe_mean": ok["nfe"].mean(),
                    "_rank": g["budget_rank"].iloc[0]})
        judged = [verdicts[c] for c in g["cell_id"] if c in verdicts]
        row.update({"n_still_improving": sum(v.get("converged") is False for v in judged),
                    "convergence_rule": rule_versions(v.get("rule_version") for v in judged)})
        for m in metrics:
            row[f"{m}_mean"] = ok[m].mean()
            row[f"{m}_std"] = ok[m].std(ddof=1) if ok[m].notna().sum() > 1 else math.nan
        rows.append(row)
    out = pd.DataFrame(rows)
    if out.empty:
        return out
    out = out.sort_values(["dataset", "method", "solver", "_rank"], kind="stable")
    return out.drop(columns="_rank").reset_index(drop=True)
