"""The step counts of a loss curve's points: ``fit`` averages the loss over chunks of ``loss_chunk(steps)``
steps and closes a last, shorter chunk at the final step, so point i ends at (i + 1) * chunk, the last at
``steps``. Trackers plot the curve against these counts."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from odebench.bench.harness.training.train import loss_chunk, loss_steps


def test_loss_steps_at_a_few_lengths():
    assert loss_steps(30, 30) == list(range(1, 31))  # fewer than 200 steps: a point per step
    assert loss_steps(1000, 3) == [10, 20, 30]
    assert loss_steps(1005, 101)[-2:] == [1000, 1005]  # the last chunk is five steps long
    assert loss_steps(60_000, 2) == [50, 100]  # chunks are at most 50 steps
    assert loss_steps(10, 0) == []


@given(st.integers(1, 20_000))
def test_each_point_ends_a_chunk_and_the_last_ends_the_run(steps):
    chunk = loss_chunk(steps)
    n = math.ceil(steps / chunk)  # the number of points fit appends
    ends = loss_steps(steps, n)
    assert len(ends) == n and ends[-1] == steps
    assert ends[:-1] == [chunk * (i + 1) for i in range(n - 1)]
    assert all(isinstance(e, int) for e in ends)
