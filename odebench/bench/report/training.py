"""The training side of a sweep's report: what each model cost and whether it had converged.

Reads the ``training`` block every record carries (odebench.bench.harness.training.evidence): one row per
trained model (cells of one model repeat it), a table per dataset with the cost in one unit for every method,
the held-out loss curves as a figure, and the methods whose models were still improving, which the leaderboard
marks with ``STILL_IMPROVING`` so that "this family is worse" is never read where "this model is not done" holds:
every table whose rows carry the mark carries ``improving_legend`` under it, and leaderboard.csv counts each
configuration's models still improving (``verdict_by_cell``). Every verdict shown names the version of the
convergence rule that judged it (odebench.bench.harness.training.evidence).
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from odebench.bench.report.plots import FigureFile, grid_of, save, slug

#: mark appended to a method's label in the leaderboards when a model of it was still improving
STILL_IMPROVING = " (still improving)"


def rule_versions(versions) -> str:
    """'v2', or 'v1, v2' where models were judged by several versions of the rule ('' where none says)."""
    found = sorted({int(v) for v in versions if v is not None and not (isinstance(v, float) and math.isnan(v))})
    return ", ".join(f"v{v}" for v in found)


def improving_legend(models: pd.DataFrame, dataset: str) -> str:
    """The legend line of the STILL_IMPROVING mark for the dataset's tables ('' when no model of it is)."""
    if not still_improving(models, dataset):
        return ""
    rows = models[models["dataset"] == dataset]
    versions = rule_versions(rows.loc[rows["converged"].eq(False), "rule_version"])
    return (f"{STILL_IMPROVING.strip()}: at least one model (seed) of this method was still improving at the end "
            f"of its training by the convergence rule {versions} (its held-out loss still fell by more than its "
            f"noise; see the training table): its values are not those of a finished model.")


def marked(frame: pd.DataFrame) -> bool:
    """Whether a table's cells carry the STILL_IMPROVING mark."""
    return any(STILL_IMPROVING in str(v) for v in frame.to_numpy().ravel())


def verdict_by_cell(records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """cell_id -> the current verdict of its model's training (``current_verdict``; each model judged once);
    cells whose record holds no training block are absent."""
    by_model: dict[str, dict[str, Any]] = {}
    out = {}
    for r in records:
        key, block = r.get("model_key"), r.get("training") or {}
        if not key or not block or "cell_id" not in r:
            continue
        if key not in by_model:
            by_model[key] = current_verdict(block, method_of(r))
        out[r["cell_id"]] = by_model[key]
    return out


def model_rows(records: list[dict[str, Any]], frame: pd.DataFrame) -> pd.DataFrame:
    """One row per trained model of the sweep: dataset, method label, seed, and its training evidence."""
    by_id = {r["cell_id"]: r for r in records}
    rows, seen = [], set()
    for cell_id, dataset, method, seed in frame[["cell_id", "dataset", "method", "seed"]].itertuples(index=False):
        rec = by_id[cell_id]
        key, training = rec.get("model_key"), rec.get("training") or {}
        if not key or not training or key in seen:
            continue
        seen.add(key)
        cost, held = training.get("cost", {}), training.get("heldout", {})
        verdict = current_verdict(training, method_of(rec))
        rows.append({"dataset": dataset, "method": method, "seed": seed, "model_key": key,
                     "steps": cost.get("steps"), "fwd_eq_per_step": cost.get("forward_equivalents_per_step"),
                     "params": cost.get("params_total"), "total_flops": cost.get("total_flops"),
                     "total_seconds": cost.get("total_seconds"), "converged": verdict.get("converged"),
                     "relative_drop": verdict.get("relative_drop"), "rule": verdict.get("rule"),
                     "convergence_reason": verdict.get("reason"),
                     "rule_version": verdict.get("rule_version"),
                     "converged_at": verdict.get("converged_at_step"),
                     "heldout_steps": held.get("steps", []), "heldout_loss": held.get("loss", [])})
    return pd.DataFrame(rows)


def method_of(record: dict[str, Any]) -> str:
    """The method name of a record's config ('' where it has none)."""
    return str(((record.get("config") or {}).get("method") or {}).get("name", ""))


def current_verdict(training: dict[str, Any], method: str = "") -> dict[str, Any]:
    """The convergence verdict of a record's training block by today's rule (a dict with ``converged`` True,
    False or None, ``converged_at_step``, ``rule`` and ``rule_version``, among others). ``method``: the record's
    method name; where its held-out loss is no progress measure (``Method.heldout_not_progress``) the verdict is
    None with that reason, whatever the record stored (records written before the method said so included).

    A stored verdict whose ``rule_version`` is today's ``CONVERGENCE_RULE_VERSION`` is used as it is; one
    written under another (or no) version is judged again from the stored held-out curve, so that no record
    shows a flag of an earlier rule. A record without a curve keeps its stored verdict, whatever its version
    (``rule_version`` tells which rule that was).
    """
    from odebench.bench.harness.training.evidence import CONVERGENCE_RULE_VERSION, judge_convergence
    from odebench.methods import METHODS

    not_progress = METHODS.get(method).heldout_not_progress if method in METHODS else ""
    stored = training.get("convergence") or {}
    if stored.get("rule_version") == CONVERGENCE_RULE_VERSION and not not_progress:
        return stored
    held = training.get("heldout") or {}
    steps, losses = held.get("steps") or [], held.get("loss") or []
    if (steps and len(steps) == len(losses)) or not_progress:
        return judge_convergence(list(zip(steps, losses, strict=True)), not_progress)
    return {"rule_version": stored.get("rule_version", 1), **stored} if stored else {}


def still_improving(models: pd.DataFrame, dataset: str) -> set[str]:
    """Method labels of the dataset with at least one model still improving at the end of its training."""
    if models.empty:
        return set()
    rows = models[models["dataset"] == dataset]
    return set(rows.loc[rows["converged"].eq(False), "method"])


def _verdict(values: pd.Series) -> str:
    n = len(values)
    done = int(values.eq(True).sum())
    undecided = int(values.isna().sum())
    text = f"{done}/{n} converged"
    return text + (f" ({undecided} not judged)" if undecided else "")


def training_table(models: pd.DataFrame, dataset: str) -> pd.DataFrame:
    """Per method: steps, cost per step in forward-equivalents, parameters, total training cost (parents and
    pair generation included), wall seconds, how many of its models (seeds) had converged and by which version
    of the convergence rule ("rule")."""
    rows = models[models["dataset"] == dataset] if not models.empty else models
    out = []
    for method, g in rows.groupby("method", sort=True):
        num = {c: pd.to_numeric(g[c], errors="coerce") for c in ("steps", "fwd_eq_per_step", "params",
                                                                 "total_flops", "total_seconds")}
        out.append({"method": method, "steps": _steps_text(num["steps"]),
                    "fwd-eq / step": _mean_text(num["fwd_eq_per_step"], ".2f"),
                    "params": f"{_first_int(num['params']):,}" if _first_int(num["params"]) != "" else "",
                    "total TFLOP": _mean_text(num["total_flops"] / 1e12, ".3g"),
                    "train s": _mean_text(num["total_seconds"], ".0f"),
                    "held-out loss": _verdict(g["converged"]),
                    "rule": rule_versions(g["rule_version"]) if "rule_version" in g else "",
                    "converged at step": _settled(g["converged_at"] if "converged_at" in g else None)})
    return pd.DataFrame(out)


def _first_int(values: pd.Series) -> int | str:
    """The first finite value as an int; '' where a record did not say (an older or hand-made record)."""
    finite = values[values.map(math.isfinite)]
    return int(finite.iloc[0]) if len(finite) else ""


def _steps_text(values: pd.Series) -> int | str:
    """The seeds' steps: one number when they agree, 'lo-hi' where trainings until converged stopped apart."""
    finite = sorted(int(v) for v in values if math.isfinite(v))
    if not finite or finite[0] == finite[-1]:
        return _first_int(values)
    return f"{finite[0]}-{finite[-1]}"


def _mean_text(values: pd.Series, fmt: str) -> str:
    finite = values[values.map(math.isfinite)]
    return format(finite.mean(), fmt) if len(finite) else ""


def _settled(values: pd.Series | None) -> str:
    """The seeds' converged-at steps: '3000' when they agree, '3000-4000' as a range, '-' when none settled
    (or the records predate the field)."""
    steps = sorted(int(v) for v in pd.to_numeric(values, errors="coerce") if math.isfinite(v)) \
        if values is not None else []
    if not steps:
        return "-"
    return str(steps[0]) if steps[0] == steps[-1] else f"{steps[0]}-{steps[-1]}"


def heldout_figure(models: pd.DataFrame, dataset: str, sweep_dir) -> FigureFile | None:
    """The held-out loss of every model against its training step, one panel per method."""
    rows = models[models["dataset"] == dataset] if not models.empty else models
    rows = rows[rows["heldout_loss"].map(len) > 0] if len(rows) else rows
    if rows.empty:
        return None
    methods = sorted(rows["method"].unique())
    fig, axes = grid_of(len(methods), ncols=3)
    for ax, method in zip(axes, methods, strict=False):
        for _, r in rows[rows["method"] == method].iterrows():
            style = "-" if r["converged"] is not False else "--"
            ax.plot(r["heldout_steps"], r["heldout_loss"], style, marker=".", label=f"seed {r['seed']}")
        ax.set_title(method + (STILL_IMPROVING if method in still_improving(rows, dataset) else ""), fontsize=9)
        ax.set_xlabel("training step")
        ax.set_ylabel("held-out loss")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(f"{dataset}: held-out loss during training")
    return save(fig, sweep_dir, f"heldout_loss_{slug(dataset)}", f"{dataset}: held-out loss during training",
                "The method's own loss on a fixed held-out batch, evaluated on the EMA weights at 21 points of "
                "training; dashed: still improving at the end by the rule of the training table "
                f"({rule_versions(rows['rule_version']) or 'rule version unknown'}).")
