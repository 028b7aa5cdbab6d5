"""A metric's cost, estimated before it runs, against the wall-clock budget left to the cell.

A cell's ``[budgets] cell_seconds`` covers its metrics. Most of their work can be checked as it goes (solver
steps, batches), but a few computations cannot be interrupted once started: the exact OT solve behind ``w2`` and
``transport_cost`` (POT's network simplex, between n^2 and n^3 in the points) and the n x n distance matrices of
``mmd`` and ``energy``. :func:`refuse_if_over_budget` times the same computation on ``PROBE_POINTS`` points
and scales the time by (n / PROBE_POINTS)^2, a lower bound for all of them (the cost matrix alone has n^2
entries), so a refusal is never a guess that the work would merely be slow: the metric is then recorded as
failed with the estimate and the way out, and the cell keeps its other metrics. Work that the bound lets through
and that still runs past the budget fails the cell when it returns (the harness checks the deadline after every
metric). Without a wall-clock budget nothing is timed, and a metric's value never depends on this check.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from odebench.bench.core import budgets
from odebench.metrics.registry import MetricUndefined

#: points of the timed trial; below this a computation takes well under a second and is not estimated
PROBE_POINTS = 512


class MetricOverBudget(MetricUndefined):
    """The metric's estimated time exceeds what is left of the cell's wall-clock budget."""


def refuse_if_over_budget(name: str, n: int, run_on: Callable[[int], object], what: str,
                          repeats: float = 1.0) -> None:
    """Raise MetricOverBudget if ``run_on(n)`` is estimated to outlast the wall-clock budget left.

    Args:
        name: the metric (its ``max_points`` option is the way out the message names).
        n: the points the computation will take.
        run_on: ``k -> anything``: the computation on the first k points (timed once on PROBE_POINTS).
        what: the computation, in words ("exact OT").
        repeats: how many such computations of n points the metric makes (the transport reference: 1.5).
    """
    left = budgets.remaining()
    if left is None or n <= PROBE_POINTS:
        return
    budgets.check_deadline()
    start = time.perf_counter()
    run_on(PROBE_POINTS)
    probe = time.perf_counter() - start
    estimate = repeats * probe * (n / PROBE_POINTS) ** 2
    left -= probe
    if estimate > left:
        budget = budgets.active()
        key = "train_seconds" if budget is not None and budget.what == "training" else "cell_seconds"
        raise MetricOverBudget(
            f"{name}: {what} on {n} points would take at least {estimate:.1f} s ({probe:.3f} s on {PROBE_POINTS} "
            f"points, growing at least as n^2), more than the {max(left, 0.0):.1f} s left of the wall-clock budget "
            f"(budgets.{key}); lower eval.metric_options.{name}.max_points or raise [budgets] {key}")
