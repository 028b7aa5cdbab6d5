"""The line a person watches while a sweep runs: models trained, training steps and cells, and an ETA only once
it means something.

A first run spends its first minutes training models, before any cell is evaluated; a bar that counted cells
alone sat at ``0/144`` all that time and then guessed an ETA from the first cells, which are not what takes the
time. So the line counts the work that is done in this run, trainings included::

    quick: models 3/8, steps 12,000/40,000, cells 0/144 [2:31 elapsed, ETA after the first model and 3 cells]
    quick:  37%|███████             | models 8/8, steps 40,000/40,000, cells 53/144 [6:02 elapsed, ETA 10:15]

The ETA (and the bar, whose length is the share of the work done) appears once the cost of both kinds of work has
been measured: one model trained in this run (seconds per training step) and ``MIN_CELLS`` cells evaluated
(seconds per cell, from the records' sampling and metric times); a run with nothing to train needs the cells
alone. Work done and left are then weighed in those seconds, and the ETA is the wall time so far scaled by their
ratio, so it holds for one process and for several alike.

Training steps reach the line through one channel per process: ``train.fit`` calls :func:`report_steps` at each
loss read-back, which hands them to the function installed with :func:`listening` (none: they are dropped). The
driver listens with its :class:`SweepProgress`; a worker of the pool executor forwards them to a queue the driver
drains (``pool_executor``); Ray tasks report nothing until their training ends, when its steps count at once.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

#: cells evaluated before the ETA is shown (with one model trained, where the run trains any)
MIN_CELLS = 3
#: seconds between two redraws of the line (a finished training redraws at once)
REFRESH_SECONDS = 0.5
BAR_WIDTH = 20

_listener: Callable[[str, int, int], None] | None = None


def report_steps(key: str, done: int, total: int) -> None:
    """``done`` of ``total`` steps of the training of model ``key`` are finished (a no-op when nobody listens)."""
    if _listener is not None:
        _listener(key, done, total)


def is_listening() -> bool:
    return _listener is not None


@contextmanager
def listening(fn: Callable[[str, int, int], None]) -> Iterator[None]:
    """Send this process's step reports to ``fn(key, done, total)`` inside the block."""
    global _listener
    before, _listener = _listener, fn
    try:
        yield
    finally:
        _listener = before


def forward_to(queue) -> None:
    """In a worker process: send every step report to ``queue`` (the driver drains it) without ever blocking
    the training, and let the worker exit without waiting for what the queue has not sent yet."""
    global _listener
    queue.cancel_join_thread()
    _listener = lambda key, done, total: queue.put_nowait((key, done, total))  # noqa: E731


def _clock(seconds: float) -> str:
    """'4:10', '1:35:57'."""
    s = int(round(seconds))
    h, rest = divmod(s, 3600)
    return f"{h}:{rest // 60:02d}:{rest % 60:02d}" if h else f"{rest // 60}:{rest % 60:02d}"


class SweepProgress:
    """Counts of one run's work as it finishes, the ETA rule and the line that shows them (drawn with tqdm when
    ``enabled``).

    ``planned_steps``: model key -> the training steps of every model this run trains (a training budgeted by
    compute reports its own count when it starts); ``n_todo`` cells to evaluate and ``skipped`` the ids of the
    cells skipped without training (they count as cells, not as work measured).
    """

    def __init__(self, name: str, planned_steps: dict[str, int], n_todo: int, skipped: set[str] | frozenset = (),
                 enabled: bool = True, clock: Callable[[], float] = time.monotonic):
        self.name, self.clock = name, clock
        self.total = dict(planned_steps)
        self.done = dict.fromkeys(planned_steps, 0)
        self.ended: set[str] = set()  # trainings that finished, ok or failed
        self.n_todo, self.skipped = n_todo, set(skipped)
        self.cells = 0  # every cell written, skips included
        self.evaluated = 0  # cells of n_todo finished
        self.step_seconds, self.steps_timed = 0.0, 0  # from trainings finished in this run
        self.cell_seconds = 0.0
        self.start = clock()
        self._drawn = -float("inf")
        self.bar = None
        if enabled:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=None, bar_format="{desc}", desc=self.text(), mininterval=REFRESH_SECONDS)

    # ------------------------------------------------------------------------------------------ events
    def steps(self, key: str, done: int, total: int) -> None:
        if key in self.ended:
            return  # a report that arrived after its training ended
        self.total[key] = total  # the actual count (a compute budget decides it when the training starts)
        self.done[key] = max(done, self.done.get(key, 0))
        self.draw()

    def training_done(self, key: str, ok: bool, trained: bool, seconds: float) -> None:
        """A training job ended: ``trained`` when it trained its model in this run (not found in the cache),
        ``seconds`` its wall time."""
        if key not in self.total:  # loaded from the cache as planned
            return
        self.ended.add(key)
        if not ok:
            self.total[key] = self.done[key]  # its remaining steps will not run
        else:
            self.done[key] = self.total[key]
            if trained and seconds > 0 and self.total[key] > 0:
                self.step_seconds += seconds
                self.steps_timed += self.total[key]
        self.draw(force=True)

    def cell_done(self, cell_id: str, record: dict[str, Any] | None) -> None:
        self.cells += 1
        if cell_id not in self.skipped:
            self.evaluated += 1
            timings = (record or {}).get("timings") or {}
            self.cell_seconds += timings.get("sample_seconds", 0.0) + timings.get("metric_seconds", 0.0)
        self.draw()

    # ---------------------------------------------------------------------------------------- estimates
    def ready(self) -> bool:
        """Whether the ETA means something yet: a model trained (where this run trains any; or every training
        ended) and ``MIN_CELLS`` cells evaluated (all of them, where the run has fewer)."""
        trainings = not self.total or self.steps_timed > 0 or len(self.ended) == len(self.total)
        return trainings and self.n_todo > 0 and self.evaluated >= min(MIN_CELLS, self.n_todo)

    def _work(self) -> tuple[float, float]:
        """(work done, work left) in measured seconds."""
        per_step = self.step_seconds / self.steps_timed if self.steps_timed else 0.0
        per_cell = self.cell_seconds / self.evaluated if self.evaluated else 0.0
        steps_done = sum(self.done.values())
        done = steps_done * per_step + self.evaluated * per_cell
        left = (sum(self.total.values()) - steps_done) * per_step + (self.n_todo - self.evaluated) * per_cell
        return done, left

    def eta(self) -> float | None:
        """Seconds left, or None before :meth:`ready`."""
        if not self.ready():
            return None
        done, left = self._work()
        return (self.clock() - self.start) * left / done if done > 0 else None

    def text(self) -> str:
        parts = []
        if self.total:
            finished = sum(1 for k in self.total if k in self.ended)
            parts.append(f"models {finished}/{len(self.total)}, steps {sum(self.done.values()):,}/"
                         f"{sum(self.total.values()):,}")
        parts.append(f"cells {self.cells}/{self.n_todo + len(self.skipped)}")
        counts, elapsed = ", ".join(parts), _clock(self.clock() - self.start)
        finished = self.evaluated >= self.n_todo and len(self.ended) >= len(self.total)
        eta = self.eta()
        if eta is None:
            wait = f"{'the first model and ' if self.total else ''}{min(MIN_CELLS, self.n_todo)} cells"
            return f"{self.name}: {counts} [{elapsed} elapsed{'' if finished else ', ETA after ' + wait}]"
        done, left = self._work()
        share = done / (done + left) if done + left > 0 else 1.0
        filled = round(share * BAR_WIDTH)
        return (f"{self.name}: {share:4.0%}|{'█' * filled}{' ' * (BAR_WIDTH - filled)}| {counts} "
                f"[{elapsed} elapsed{'' if finished else ', ETA ' + _clock(eta)}]")

    # ------------------------------------------------------------------------------------------ drawing
    def draw(self, force: bool = False) -> None:
        """Redraw the line, at most every REFRESH_SECONDS unless ``force``."""
        if self.bar is None:
            return
        now = self.clock()
        if force or now - self._drawn >= REFRESH_SECONDS:
            self._drawn = now
            self.bar.set_description_str(self.text(), refresh=True)

    def close(self) -> None:
        """Draw the last state and end the line (on Ctrl-C too, before the interruption is reported)."""
        if self.bar is not None:
            self.draw(force=True)
            self.bar.close()
