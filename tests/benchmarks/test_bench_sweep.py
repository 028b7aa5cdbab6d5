"""The quick sweep end to end, on a reduced copy of the built-in quick spec, broken down by stage.

The breakdown comes from the records' timings (``RecordStore.frame()``'s ``time_*`` columns): sample and
metric seconds summed over cells; train seconds once per model chain (a record's train time includes its
parents', so each method family on each dataset counts its deepest stage once); "other" is the wall time
left (dataset setup, source draws, record writes). ``breakdown`` also serves the full quick sweep:

    PYTHONPATH=. python3 -c "from tests.benchmarks.test_bench_sweep import main; main()"
"""

from __future__ import annotations

import time
from pathlib import Path

import pandas as pd

from odebench.bench.harness.execution.run import run_sweep
from odebench.bench.harness.spec.sweep import load_spec
from odebench.bench.harness.store.records import RecordStore

REDUCED = {
    "name": "quick_reduced",
    "train": {"steps": 200, "batch_size": 256, "lr": 2e-3, "ema_decay": 0.999},
    "eval": {"n_samples": 500, "metrics": ["w2", "sliced_w", "mmd"]},
    "methods": [{"name": "fm_ot"}, {"name": "rf", "k": [1, 2], "n_pairs": 1000}],
    "datasets": [{"target": "moons"}],
    "solvers": [{"name": "euler", "nfe": [4, 16]}, {"name": "heun", "nfe": [4, 16]},
                {"name": "dopri5", "tolerances": [1e-5]}],
}


def breakdown(frame: pd.DataFrame, wall: float) -> dict[str, float]:
    """Seconds spent training, sampling, computing metrics, and elsewhere, from one sweep's records."""
    ok = frame[frame["status"] == "ok"]
    chains = frame.groupby(["method_name", "dataset", "seed"])["time_train_seconds"].max()
    out = {"train": float(chains.sum()), "sample": float(ok["time_sample_seconds"].sum()),
           "metric": float(ok["time_metric_seconds"].sum()), "wall": wall, "cells": float(len(frame))}
    out["other"] = wall - out["train"] - out["sample"] - out["metric"]
    return out


def run_and_break_down(spec, out: Path) -> dict[str, float]:
    start = time.perf_counter()
    summary = run_sweep(spec, out, progress=False)
    wall = time.perf_counter() - start
    assert summary.ok, summary.failures
    return breakdown(RecordStore(out / spec.name).frame(), wall)


def test_quick_sweep_breakdown(benchmark, record, tmp_path):
    spec = load_spec("quick", REDUCED)
    rounds = iter(range(100))
    parts = benchmark.pedantic(lambda: run_and_break_down(spec, tmp_path / f"round{next(rounds)}"),
                               rounds=1, iterations=1)
    benchmark.group = "quick-sweep"
    benchmark.extra_info.update(parts)
    for stage in ("train", "sample", "metric", "other"):
        record("quick-sweep", f"reduced quick: {stage}", parts[stage], "s",
               f"{100 * parts[stage] / parts['wall']:.0f}% of {parts['wall']:.1f} s")


def main() -> None:
    """Run the full built-in quick sweep once into a fresh folder and print the breakdown."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        parts = run_and_break_down(load_spec("quick"), Path(tmp))
    for stage in ("train", "sample", "metric", "other"):
        print(f"{stage:>7}: {parts[stage]:8.1f} s  {100 * parts[stage] / parts['wall']:5.1f}%")
    print(f"   wall: {parts['wall']:8.1f} s over {parts['cells']:.0f} cells")
