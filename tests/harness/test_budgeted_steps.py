"""train.forward_equivalents turns a compute budget into a step count: the budget over the measured per-step
cost, rounded, and never fewer than one step; without a measured cost the budget is refused with the way out."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from odebench.bench.harness.training.train import TrainConfig, budgeted_steps


@pytest.mark.parametrize("per_step", [None, 0.0, 3.0])
def test_without_a_compute_budget_the_steps_setting_acts(per_step):
    assert budgeted_steps(TrainConfig(steps=17), per_step) == 17


@pytest.mark.parametrize(("budget", "per_step", "steps"), [
    (600, 3.0, 200),  # a method that costs three forward passes a step buys a third of the budget in steps
    (600, 2.5, 240),
    (10, 3.0, 3),  # 3.33 rounds to 3
    (1, 3.0, 1),  # a budget under one step still trains one step
    (2, 3.0, 1),  # 0.67 rounds to 1
])
def test_a_compute_budget_buys_the_rounded_budget_over_the_per_step_cost(budget, per_step, steps):
    assert budgeted_steps(TrainConfig(steps=17, forward_equivalents=budget), per_step) == steps


@given(budget=st.integers(1, 10**6), per_step=st.floats(0.5, 50.0))
def test_the_compute_spent_is_the_budget_up_to_half_a_step(budget, per_step):
    steps = budgeted_steps(TrainConfig(forward_equivalents=budget), per_step)
    assert steps >= 1
    if budget >= per_step:
        assert abs(steps * per_step - budget) <= per_step / 2 + 1e-9


@pytest.mark.parametrize("per_step", [None, 0.0])
def test_a_compute_budget_without_a_measured_cost_is_refused_with_the_way_out(per_step):
    """The FLOP counter may see nothing (e.g. a network of ops it does not count): the error says so and names
    train.steps as the budget to use instead."""
    with pytest.raises(ValueError, match=r"train\.forward_equivalents needs the per-step cost.*"
                                         r"FLOP counter saw no FLOPs.*budget this training by train\.steps"):
        budgeted_steps(TrainConfig(forward_equivalents=600), per_step)
