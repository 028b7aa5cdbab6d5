"""Leaderboard tables built from a sweep's records (a pandas pivot of the headline metric)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from bench.store import RecordStore


def budget_label(row: pd.Series) -> str:
    """'euler@16' for fixed-step cells, 'dopri5@tol=1e-05' for adaptive ones."""
    if pd.notna(row.get("nfe_requested")):
        return f"{row['solver']}@{int(row['nfe_requested'])}"
    return f"{row['solver']}@tol={row['tol']:g}"


def headline_metric(frame: pd.DataFrame, metric_order: list[str]) -> str | None:
    for m in metric_order:
        if m in frame.columns and frame[m].notna().any():
            return m
    return None


def leaderboard_table(frame: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Rows (dataset, method), columns solver@budget, cells 'mean' (or 'mean ± std' over seeds).

    Failed and skipped cells appear as 'failed' / 'skipped', never as a missing value.
    """
    f = frame.copy()
    f["budget"] = f.apply(budget_label, axis=1)

    def cell(g: pd.DataFrame) -> str:
        ok = g[g["status"] == "ok"][metric].dropna()
        if ok.empty:
            return "/".join(sorted(set(g["status"])))
        if len(ok) == 1:
            return f"{ok.iloc[0]:.4g}"
        return f"{ok.mean():.4g} ± {ok.std():.2g}"

    table = f.groupby(["dataset", "method", "budget"]).apply(cell, include_groups=False).unstack("budget")
    order = sorted(table.columns, key=lambda b: (b.split("@")[0], _budget_key(b)))
    return table[order].fillna("")


def _budget_key(b: str) -> float:
    tail = b.split("@", 1)[1]
    return -float(tail[4:]) if tail.startswith("tol=") else float(tail)


def write_leaderboard_md(sweep_dir: str | Path, metric_order: list[str] | None = None) -> Path | None:
    """Write ``<sweep_dir>/leaderboard.md`` for the sweep's records; returns its path (None if empty)."""
    frame = RecordStore(sweep_dir).frame()
    if frame.empty:
        return None
    metric = headline_metric(frame, metric_order or ["w2", "fd_digits", "fid", "fd", "sliced_w"])
    path = Path(sweep_dir) / "leaderboard.md"
    lines = [f"# {Path(sweep_dir).name}: {metric} (lower is better)", ""]
    if metric is None:
        lines.append("No cell finished with a metric value.")
    else:
        for dataset, table in leaderboard_table(frame, metric).groupby(level="dataset"):
            lines += [f"## {dataset}", "", table.droplevel("dataset").to_markdown(), ""]
    counts = frame["status"].value_counts().to_dict()
    lines.append("Cells: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    path.write_text("\n".join(lines) + "\n")
    return path
