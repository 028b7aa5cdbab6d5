"""Caps a solve cannot pass: an NFE cap for adaptive solvers and a wall-clock deadline.

The harness opens a :func:`limits` context around a training or a cell; every counted field call
(:class:`odebench.bench.core.fields.CountingField`) then calls :func:`check`, which raises
:class:`BudgetExceeded` once the current adaptive solve has made more than ``max_nfe`` calls or the deadline
has passed. Fixed-step solvers spend exactly their budget, so the NFE cap binds adaptive solves only
(``solvers.sample``/``solve`` mark them with :func:`adaptive_solve`); the deadline binds every call, and the
training loop checks it once per step (:func:`check_deadline`), the per-sample source draws every few hundred
draws, the harness after every metric. Work that cannot be interrupted (an exact OT solve) asks
:func:`remaining` first and is refused when it would not fit (``odebench.metrics.budget_guard``). Outside a ``limits``
context nothing is capped.
"""

from __future__ import annotations

import contextvars
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass


class BudgetExceeded(RuntimeError):
    """A solve or a job ran past its budget; the message names the budget and how to raise it."""


@dataclass(frozen=True)
class Budget:
    """What the job in progress may still spend: ``max_nfe`` per adaptive solve, a monotonic ``deadline``."""

    max_nfe: int | None = None
    deadline: float | None = None
    seconds: float | None = None
    what: str = "cell"


_ACTIVE: contextvars.ContextVar[Budget | None] = contextvars.ContextVar("odebench_budget", default=None)
_ADAPTIVE: contextvars.ContextVar[bool] = contextvars.ContextVar("odebench_adaptive_solve", default=False)


@contextmanager
def limits(max_nfe: int | None = None, seconds: float | None = None, what: str = "cell") -> Iterator[Budget]:
    """Cap every adaptive solve at ``max_nfe`` field calls and the whole block at ``seconds`` of wall time."""
    deadline = time.monotonic() + seconds if seconds is not None else None
    budget = Budget(max_nfe, deadline, seconds, what)
    token = _ACTIVE.set(budget)
    try:
        yield budget
    finally:
        _ACTIVE.reset(token)


@contextmanager
def adaptive_solve(adaptive: bool) -> Iterator[None]:
    """Mark the solve inside as adaptive (the NFE cap applies) or fixed-step (it does not)."""
    token = _ADAPTIVE.set(adaptive)
    try:
        yield
    finally:
        _ADAPTIVE.reset(token)


def _over_time(budget: Budget) -> BudgetExceeded:
    key = "train_seconds" if budget.what == "training" else "cell_seconds"
    return BudgetExceeded(f"the {budget.what} ran past its wall-clock budget of {budget.seconds:g} s "
                          f"(budgets.{key}); raise [budgets] {key} in the spec or make the {budget.what} smaller")


def check(nfe: int) -> None:
    """Raise BudgetExceeded if a solve that has made ``nfe`` field calls is past a budget in force."""
    budget = _ACTIVE.get()
    if budget is None:
        return
    if budget.max_nfe is not None and nfe > budget.max_nfe and _ADAPTIVE.get():
        raise BudgetExceeded(f"an adaptive solve reached the cap of {budget.max_nfe} field evaluations "
                             f"(budgets.max_nfe) before its end time; loosen the tolerance or raise "
                             f"[budgets] max_nfe in the spec")
    if budget.deadline is not None and time.monotonic() > budget.deadline:
        raise _over_time(budget)


def remaining() -> float | None:
    """Seconds left of the wall-clock budget in force (<= 0 once past it); None without one."""
    budget = _ACTIVE.get()
    if budget is None or budget.deadline is None:
        return None
    return budget.deadline - time.monotonic()


def active() -> Budget | None:
    """The budget in force, or None."""
    return _ACTIVE.get()


def check_deadline() -> None:
    """Raise BudgetExceeded if the wall-clock budget in force has run out (no-op without one)."""
    budget = _ACTIVE.get()
    if budget is not None and budget.deadline is not None and time.monotonic() > budget.deadline:
        raise _over_time(budget)
