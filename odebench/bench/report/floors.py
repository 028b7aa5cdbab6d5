"""The two-sample floor of every sample-quality metric: what a perfect model would score, and how much that moves.

A distance between samples and held-out data is not 0 for a model that samples the data law exactly: two
independent draws of one law are apart at a finite sample size. The *floor* of a metric on a dataset is the
metric between an independent draw of the data law and the same held-out reference the cells use, at the
cells' sample size (``eval.n_samples``, then the metric's own ``max_points`` cap, exactly as in a cell), over
``DRAWS`` draws: its mean and its spread (sample standard deviation over the draws). A difference between two
leaderboard entries smaller than that spread is one that a perfect model's own draws would show.

Draws of the data law (t = 1):
- a dataset whose loader generates points from its law (it takes ``n_train`` and ``n_test``: the toy sets):
  fresh points, loader seed ``FLOOR_SEED + 1000 * data_seed + i`` for draw i, independent of the cells' data;
- a fixed finite dataset (8x8 digits, image folders): the target's training split, which is disjoint from
  the held-out reference: a random subset of ``n`` points, or, where the split holds fewer than ``n``, a
  bootstrap resample of ``n`` points (with replacement), seeded by the floor's key and i. Resampling a finite
  set understates the law's variety, so read those floors as approximate.

Floors are computed once per (target, data seed, loader options, sample size, metric, metric options) and
cached in ``<sweep>/floors.json`` (deterministic: same inputs, same bytes), which ``odebench pack`` carries
into a packed results folder. ``fid`` is left out (each draw would cost a full FID computation).
"""

from __future__ import annotations

import inspect
import json
import math
import statistics
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from odebench.bench.core import seeding
from odebench.bench.harness.artifacts import atomic_write_bytes, config_hash

FLOOR_FILE = "floors.json"
DRAWS = 5
FLOOR_SEED = 1_000_000
#: version of the recipe above; a change gives every floor a new key (recomputed, never mixed)
RECIPE = 1
SKIP = {"fid": "each draw would cost a full FID computation (50,000 Inception passes on the paper protocol)"}


@dataclass(frozen=True)
class Floor:
    """The floor of one metric column on one dataset: values over the draws, their mean and spread."""

    column: str
    values: tuple[float, ...]
    n: int
    draw: str

    @property
    def mean(self) -> float:
        return statistics.fmean(self.values)

    @property
    def std(self) -> float:
        return statistics.stdev(self.values) if len(self.values) > 1 else math.nan

    def text(self) -> str:
        from odebench.bench.report.format import fmt_mean_std

        return fmt_mean_std(self.mean, self.std)


def floor_key(target: str, data_seed: int, data_options: dict, n: int, metric: str, options: dict) -> dict:
    """What a floor depends on (its cache key in floors.json)."""
    return {"target": target, "data_seed": data_seed, "data_options": data_options, "n_samples": n,
            "metric": metric, "options": options, "draws": DRAWS, "recipe": RECIPE}


def _regenerates(target: str) -> bool:
    from odebench.bench.data import DATASETS

    params = inspect.signature(DATASETS.get(target)).parameters
    return "n_train" in params and "n_test" in params


def data_draw(target: str, data_seed: int, data_options: dict, n: int, i: int, train: torch.Tensor,
              key: str) -> tuple[torch.Tensor, str]:
    """Draw ``i`` of the data law, [n, *shape], and a sentence saying how it was made (module docstring)."""
    from odebench.bench.data.base import load_dataset

    if _regenerates(target):
        fresh = load_dataset(target, FLOOR_SEED + 1000 * data_seed + i, **{**data_options, "n_train": n,
                                                                             "n_test": 1})
        return fresh.train[:n], f"fresh points of the law (loader seed {FLOOR_SEED} + 1000 x data_seed + draw)"
    gen = seeding.derive(i, "floor-draw", key)
    if n <= len(train):
        return train[torch.randperm(len(train), generator=gen)[:n]], (
            f"a random subset of the training split ({len(train)} points), disjoint from the reference")
    return train[torch.randint(len(train), (n,), generator=gen)], (
        f"a bootstrap resample of the training split ({len(train)} points < n, with replacement)")


def compute_floor(target: str, data_seed: int, data_options: dict, n: int, metric: str,
                  options: dict) -> dict[str, Any]:
    """{"values": {column: [value per draw]}, "n": n, "draw": how} for one metric (all its columns)."""
    from odebench.bench.data.base import load_dataset
    from odebench.metrics import METRICS, EvalContext
    from odebench.metrics.registry import split_output

    data = load_dataset(target, data_seed, **data_options)
    key = config_hash(floor_key(target, data_seed, data_options, n, metric, options))
    values: dict[str, list[float]] = {}
    how = ""
    for i in range(DRAWS):
        draw, how = data_draw(target, data_seed, data_options, n, i, data.train, key)
        ctx = EvalContext(samples=draw, reference=data.test, data_kind=data.kind, data_meta=data.meta,
                          gen=seeding.derive(i, "floor-metric", key), options={metric: dict(options)},
                          train_reference=data.train)
        out, _ = split_output(metric, METRICS.get(metric).fn(ctx))
        for col, v in out.items():
            values.setdefault(col, []).append(float(v))
    return {"values": values, "n": n, "draw": how}


def floor_metrics(columns: list[str]) -> list[str]:
    """The sample-quality metrics among ``columns`` (``w2``, ``fd_digits``, ...) whose floor is computed."""
    from odebench.metrics import METRICS

    names = dict.fromkeys(c.split(".")[0] for c in columns)
    out = []
    for name in names:
        if name in METRICS and name not in SKIP:
            m = METRICS.get(name)
            if m.family == "quality" and not m.per_model and not m.needs_trajectory:
                out.append(name)
    return out


def _settings_of(records: list[dict]) -> tuple[tuple, int]:
    """The most common (target, data_seed, data options, n_samples, metric options) of a dataset's records,
    and how many distinct settings there are."""
    seen = Counter()
    for r in records:
        c = r["config"]
        seen[json.dumps([c["target"], c["data_seed"], c.get("data_options") or {}, c["eval"]["n_samples"],
                         c["eval"].get("metric_options") or {}], sort_keys=True)] += 1
    (top, _), = seen.most_common(1)
    return tuple(json.loads(top)), len(seen)


def sweep_floors(sweep, write: bool = True) -> tuple[dict[str, dict[str, Floor]], list[str]]:
    """Floors of every dataset of a sweep (:class:`odebench.bench.report.tables.Sweep`): dataset label ->
    metric column -> Floor, and notes (a floor not computed, settings that differ within a dataset).
    Reads ``<sweep>/floors.json`` and writes it back with what was missing (when ``write``)."""
    path = Path(sweep.dir) / FLOOR_FILE
    try:
        cache = json.loads(path.read_text()).get("floors", {})
    except (OSError, ValueError, AttributeError):
        cache = {}
    before = json.dumps(cache, sort_keys=True)
    out: dict[str, dict[str, Floor]] = {}
    notes: list[str] = []
    by_dataset: dict[str, list[dict]] = {}
    labels = dict(zip(sweep.frame["cell_id"], sweep.frame["dataset"], strict=True)) if len(sweep.frame) else {}
    for r in sweep.records:
        by_dataset.setdefault(labels.get(r["cell_id"], ""), []).append(r)
    for dataset in sweep.datasets():
        records = [r for r in by_dataset.get(dataset, []) if r.get("status") == "ok"]
        if not records:
            continue
        (target, data_seed, options, n, metric_options), distinct = _settings_of(records)
        if distinct > 1:
            notes.append(f"{dataset}: its records differ in data or evaluation settings; floors use the most "
                         f"common (n_samples {n})")
        for metric in floor_metrics(sweep.metric_columns(dataset)):
            opts = dict(metric_options.get(metric) or {})
            key = config_hash(floor_key(target, data_seed, options, n, metric, opts))
            if key not in cache:
                try:
                    cache[key] = {"key": floor_key(target, data_seed, options, n, metric, opts),
                                  **compute_floor(target, data_seed, options, n, metric, opts)}
                except Exception as exc:  # a dataset that needs --data-dir, a metric that cannot run here
                    notes.append(f"{dataset}: floor of {metric} not computed: {type(exc).__name__}: "
                                 f"{str(exc)[:160]}")
                    continue
            entry = cache[key]
            for col, vals in entry["values"].items():
                out.setdefault(dataset, {})[col] = Floor(col, tuple(vals), entry["n"], entry["draw"])
    after = json.dumps(cache, sort_keys=True)
    if write and after != before:
        body = {"about": "two-sample floors of the sample-quality metrics (odebench.bench.report.floors)",
                "floors": cache}
        atomic_write_bytes(path, (json.dumps(body, indent=1, sort_keys=True) + "\n").encode(), root=sweep.dir)
    return out, notes
