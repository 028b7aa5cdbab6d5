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
into a packed results folder. An entry of it is used only when it has the shape written here
(:func:`entry_problem`); any other is named in the report's notes and computed again. ``fid`` is left out (each
draw would cost a full FID computation). Where the seeds draw their own data (``data_seed = "per_seed"``), the
floor of a dataset pools the entries of every data seed its records hold (:func:`pooled`): one floor, whose
spread holds the variation between data draws and held-out splits, as the cells' spread over seeds does; the
claims' ``at_floor`` relation compares each seed with that pooled mean.
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
from odebench.bench.core.hashing import config_hash
from odebench.bench.harness.guards.bounded_read import MAX_SIDE_FILE_BYTES, RefusedFile, read_bounded
from odebench.bench.harness.store.artifacts import atomic_write_bytes

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


def _settings_of(records: list[dict]) -> tuple[tuple, list[int], int]:
    """The most common (target, data options, n_samples, metric options) of a dataset's records, the data seeds
    of the records with those settings (sorted), and how many distinct settings there are."""
    seen, draws = Counter(), {}
    for r in records:
        c = r["config"]
        key = json.dumps([c["target"], c.get("data_options") or {}, c["eval"]["n_samples"],
                          c["eval"].get("metric_options") or {}], sort_keys=True)
        seen[key] += 1
        draws.setdefault(key, set()).add(int(c["data_seed"]))
    (top, _), = seen.most_common(1)
    return tuple(json.loads(top)), sorted(draws[top]), len(seen)


def pooled(column: str, entries: list[dict]) -> Floor:
    """One floor over the data draws of a sweep: the values of every draw of every data seed's entry (each a
    floors.json entry of one data seed), their mean and spread. With seeds that draw their own data
    (``data_seed = "per_seed"``) a cell is measured against its own seed's held-out split, so the floor's spread
    holds both the sampling noise and the variation between splits, as the cells' spread over seeds does."""
    values = tuple(float(v) for e in entries for v in e["values"][column])
    draw = entries[0]["draw"]
    if len(entries) > 1:
        draw += f"; pooled over the {len(entries)} data seeds of the records ({DRAWS} draws each)"
    return Floor(column, values, entries[0]["n"], draw)


def _is_finite_number(v: Any) -> bool:
    return isinstance(v, float) and math.isfinite(v) or isinstance(v, int) and not isinstance(v, bool) and (
        abs(v) <= 2**53)


def entry_problem(name: str, entry: Any) -> str | None:
    """What is wrong with one entry of floors.json (``name``: its cache key), or None. An entry is only used
    when every part the report reads has the shape :func:`sweep_floors` writes: its ``key`` hashes to its name,
    ``values`` maps each column to one finite number per draw, ``n`` is its key's sample size, ``draw`` a
    sentence."""
    if not isinstance(entry, dict):
        return f"is {type(entry).__name__}, not an object"
    key = entry.get("key")
    if not isinstance(key, dict):
        return "has no key object"
    try:
        actual = config_hash(key)
    except Exception as exc:  # a value json cannot serialise, nested past the recursion limit
        return f"has a key that cannot be hashed ({type(exc).__name__})"
    if actual != name:
        return f"has a key that hashes to {actual}, not to its name"
    values = entry.get("values")
    if not isinstance(values, dict) or not values:
        return "has no values object"
    for column, draws in values.items():
        if not isinstance(draws, list) or len(draws) != key.get("draws"):
            return f"holds {column!r} values that are not a list of one value per draw ({key.get('draws')!r})"
        if not all(_is_finite_number(v) for v in draws):
            return f"holds {column!r} values that are not all finite numbers"
    n = entry.get("n")
    if isinstance(n, bool) or not isinstance(n, int) or n != key.get("n_samples"):
        return f"has n {str(n)[:20]!r}, not its key's n_samples"
    if not isinstance(entry.get("draw"), str):
        return "has no draw sentence"
    return None


def read_floor_file(path: Path) -> tuple[dict[str, Any], dict[str, Any], list[str]]:
    """(the entries of floors.json as stored, the sound ones, notes): a missing file gives no note; a file that
    is not a regular one of bounded size, not JSON or not of the written shape gives one note, every malformed
    entry one note of its own."""
    try:
        body = json.loads(read_bounded(path, MAX_SIDE_FILE_BYTES))
    except FileNotFoundError:
        return {}, {}, []
    except (OSError, ValueError, RecursionError) as exc:  # RefusedFile (a FIFO, /dev/zero, too large) included
        why = str(exc).replace(str(path), "it") if isinstance(exc, RefusedFile) else f"{type(exc).__name__}: {exc}"
        return {}, {}, [f"{FLOOR_FILE} unreadable ({why[:200]}): every floor is computed again"]
    cache = body.get("floors") if isinstance(body, dict) else None
    if not isinstance(cache, dict):
        return {}, {}, [f"{FLOOR_FILE} does not hold an object of floors: every floor is computed again"]
    sound, notes = {}, []
    for name, entry in cache.items():
        if (problem := entry_problem(name, entry)) is None:
            sound[name] = entry
        else:
            notes.append(f"{FLOOR_FILE}: entry {name[:40]!r} {problem}: not used (a floor it should hold is "
                         f"computed again)")
    return cache, sound, notes


def sweep_floors(sweep, write: bool = True) -> tuple[dict[str, dict[str, Floor]], list[str]]:
    """Floors of every dataset of a sweep (:class:`odebench.bench.report.tables.Sweep`): dataset label ->
    metric column -> Floor, and notes (a floor not computed, settings that differ within a dataset, a malformed
    floors.json or entry of it, :func:`read_floor_file`). Reads ``<sweep>/floors.json`` and writes it back with
    what was missing (when ``write``); a malformed entry is replaced where its floor is computed again, and left
    as it was otherwise."""
    path = Path(sweep.dir) / FLOOR_FILE
    cache, sound, notes = read_floor_file(path)
    before = json.dumps(cache, sort_keys=True)
    out: dict[str, dict[str, Floor]] = {}
    by_dataset: dict[str, list[dict]] = {}
    labels = dict(zip(sweep.frame["cell_id"], sweep.frame["dataset"], strict=True)) if len(sweep.frame) else {}
    for r in sweep.records:
        by_dataset.setdefault(labels.get(r["cell_id"], ""), []).append(r)
    for dataset in sweep.datasets():
        records = [r for r in by_dataset.get(dataset, []) if r.get("status") == "ok"]
        if not records:
            continue
        try:
            (target, options, n, metric_options), data_seeds, distinct = _settings_of(records)
        except Exception as exc:  # a config whose eval or data settings are not of the shape a run writes
            notes.append(f"{dataset}: floors not computed: its records' settings are unreadable "
                         f"({type(exc).__name__}: {str(exc)[:160]})")
            continue
        if distinct > 1:
            notes.append(f"{dataset}: its records differ in data or evaluation settings; floors use the most "
                         f"common (n_samples {n})")
        for metric in floor_metrics(sweep.metric_columns(dataset)):
            entries = []
            try:
                opts = dict(metric_options.get(metric) or {})
                for data_seed in data_seeds:  # one entry per data draw, pooled below
                    key = config_hash(floor_key(target, data_seed, options, n, metric, opts))
                    if key not in sound:
                        sound[key] = cache[key] = {"key": floor_key(target, data_seed, options, n, metric, opts),
                                                   **compute_floor(target, data_seed, options, n, metric, opts)}
                    entries.append(sound[key])
            except Exception as exc:  # a dataset that needs --data-dir, a metric that cannot run here
                notes.append(f"{dataset}: floor of {metric} not computed: {type(exc).__name__}: "
                             f"{str(exc)[:160]}")
                continue
            for col in entries[0]["values"]:
                if all(col in e["values"] for e in entries):
                    out.setdefault(dataset, {})[col] = pooled(col, entries)
    after = json.dumps(cache, sort_keys=True)
    if write and after != before:
        body = {"about": "two-sample floors of the sample-quality metrics (odebench.bench.report.floors)",
                "floors": cache}
        atomic_write_bytes(path, (json.dumps(body, indent=1, sort_keys=True) + "\n").encode(), root=sweep.dir)
    return out, notes
