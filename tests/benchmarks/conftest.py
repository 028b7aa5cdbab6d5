"""Side-by-side timing for the performance benchmarks, and the table of ratios printed after the session.

Every comparison times odebench's code ("ours") and a baseline in the same process, interleaved round by
round (baseline, then ours, R times), so that a change in machine load hits both alike. pytest-benchmark
times ours; the baseline is timed in the round's ``setup`` (which pytest-benchmark leaves out of its
figures). The headline ratio is ours / baseline on the best round of each (the cost when undisturbed); the
median of the per-round ratios is kept beside it. Ratios are recorded, never asserted: a timing assertion
fails at random on a shared machine.

The ratios land in each benchmark's ``extra_info`` (so ``--benchmark-json`` carries them) and in a table
printed at the end of the session.
"""

from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import pytest
import torch


@dataclass
class Comparison:
    """One measured ratio: what, ours / baseline (best rounds and per-round median), and the target."""

    group: str
    case: str
    baseline: str
    ours_s: float
    baseline_s: float
    ratio_median: float
    target: str
    met: bool | None
    unit: str = "time"

    @property
    def ratio(self) -> float:
        return self.ours_s / self.baseline_s


_RESULTS: list[Comparison] = []


def _threads() -> int:
    """Intra-op threads for the benchmarks: ODEBENCH_BENCH_THREADS, else torch's default."""
    value = os.environ.get("ODEBENCH_BENCH_THREADS")
    return int(value) if value else torch.get_num_threads()


@pytest.fixture(scope="session", autouse=True)
def _bench_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(_threads())
    yield
    torch.set_num_threads(before)


def _check(ratio: float, target: str) -> bool | None:
    """Whether ``ratio`` meets a target written as '<= 1.05', '< 1', '>= 1.0' or '' (no target)."""
    if not target:
        return None
    op, value = target.split()
    return {"<=": ratio <= float(value), "<": ratio < float(value), ">=": ratio >= float(value),
            ">": ratio > float(value)}[op]


@pytest.fixture
def compare(benchmark):
    """``compare(group, case, ours, baseline, baseline_name, rounds, target)`` -> Comparison.

    Times ``ours()`` with pytest-benchmark and ``baseline()`` in the setup of each round, one warm-up
    round each first. ``target`` is on ours / baseline of the time (e.g. '<= 1.05').
    """

    def run(group: str, case: str, ours: Callable[[], object], baseline: Callable[[], object],
            baseline_name: str, rounds: int, target: str = "") -> Comparison | None:
        base_times: list[float] = []

        def setup():
            start = time.perf_counter()
            baseline()
            base_times.append(time.perf_counter() - start)

        baseline()
        ours()  # warm-up outside the timed rounds (lazy inits, allocator)
        benchmark.group = group
        benchmark.pedantic(ours, setup=setup, rounds=rounds, iterations=1, warmup_rounds=0)
        if benchmark.stats is None:  # --benchmark-disable: the code ran once, nothing was timed
            return None
        ours_times = list(benchmark.stats.stats.data)
        per_round = [o / b for o, b in zip(ours_times, base_times, strict=True)]
        ratio = min(ours_times) / min(base_times)
        comp = Comparison(group, case, baseline_name, min(ours_times), min(base_times),
                          statistics.median(per_round), target, _check(ratio, target))
        benchmark.extra_info.update({
            "case": case, "baseline": baseline_name, "baseline_min_s": comp.baseline_s,
            "ours_min_s": comp.ours_s, "ratio": ratio, "ratio_median_of_rounds": comp.ratio_median,
            "target": target, "target_met": comp.met, "threads": torch.get_num_threads(),
        })
        _RESULTS.append(comp)
        return comp

    return run


@pytest.fixture
def record():
    """``record(group, case, value, unit, note)``: a figure without a baseline (a breakdown, a cost)."""

    def add(group: str, case: str, value: float, unit: str, note: str = "") -> None:
        _RESULTS.append(Comparison(group, case, note, value, 1.0, value, "", None, unit=unit))

    return add


def pytest_terminal_summary(terminalreporter):
    if not _RESULTS:
        return
    tr = terminalreporter
    tr.section("odebench performance: ours / baseline (best round of each, interleaved)")
    tr.write_line(f"torch {torch.__version__}, {_threads()} threads, "
                  f"{os.cpu_count()} CPUs, {platform.processor() or platform.machine()}")
    tr.write_line(f"{'group':<28} {'case':<34} {'baseline':<30} {'ours':>11} {'base':>11} "
                  f"{'ratio':>7} {'median':>7}  target")
    for c in _RESULTS:
        if c.unit != "time":
            tr.write_line(f"{c.group:<28} {c.case:<34} {c.baseline:<30} {c.ours_s:>11.4g} {c.unit}")
            continue
        met = "" if c.met is None else ("met" if c.met else "NOT met")
        tr.write_line(f"{c.group:<28} {c.case:<34} {c.baseline:<30} {c.ours_s * 1e3:>9.2f}ms "
                      f"{c.baseline_s * 1e3:>9.2f}ms {c.ratio:>7.3f} {c.ratio_median:>7.3f}  "
                      f"{c.target} {met}".rstrip())
