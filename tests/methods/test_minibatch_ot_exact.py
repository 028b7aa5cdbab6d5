"""Minibatch OT pairs a batch by the exact discrete optimal transport plan: among all n! one-to-one pairings of
x0 with x1 it picks one of least total squared distance (checked against brute force over every permutation),
keeps x0 in place, refuses batches of unequal size naming both sizes, and refuses NaN inputs instead of
training on a broken pairing. otcfm's default draws from the plan reach every one of its pairs."""

from __future__ import annotations

import itertools

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from odebench.methods import get_method
from odebench.methods.couplings import minibatch_ot_pairs
from odebench.methods.flow_matching import AffineFlowMatching


def _cost(x0: torch.Tensor, x1: torch.Tensor) -> float:
    return (x0 - x1).flatten(1).pow(2).sum().item()


def _least_cost(x0: torch.Tensor, x1: torch.Tensor) -> float:
    return min(_cost(x0, x1[list(p)]) for p in itertools.permutations(range(len(x0))))


def test_a_hand_checked_batch_where_nearest_neighbours_are_not_optimal():
    """Greedy (x0[0] takes its nearest x1, 0.9 away) leaves x0[1] with a partner 2.1 away: cost 0.81 + 4.41 = 5.22.
    The optimal plan crosses over: 1.1^2 + 0.9^2 = 2.02."""
    x0 = torch.tensor([[0.0], [1.0]], dtype=torch.float64)
    x1 = torch.tensor([[-1.1], [0.9]], dtype=torch.float64)
    p0, p1 = minibatch_ot_pairs(x0, x1)
    assert torch.equal(p0, x0) and torch.equal(p1, torch.tensor([[-1.1], [0.9]], dtype=torch.float64))
    x1 = torch.tensor([[0.9], [-1.1]], dtype=torch.float64)  # the same set, listed the other way round
    assert torch.equal(minibatch_ot_pairs(x0, x1)[1], torch.tensor([[-1.1], [0.9]], dtype=torch.float64))


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 6), seed=st.integers(0, 2**31 - 1))
def test_the_pairing_has_the_least_total_squared_distance_of_all_permutations(n, seed):
    g = torch.Generator().manual_seed(seed)
    x0 = torch.randn(n, 2, 1, generator=g, dtype=torch.float64)  # flattened: [n, *shape] of any shape
    x1 = 2 * torch.randn(n, 2, 1, generator=g, dtype=torch.float64) + 1
    p0, p1 = minibatch_ot_pairs(x0, x1)
    assert torch.equal(p0, x0)
    assert sorted(map(tuple, p1.flatten(1).tolist())) == sorted(map(tuple, x1.flatten(1).tolist()))  # a permutation
    assert _cost(p0, p1) == pytest.approx(_least_cost(x0, x1), rel=1e-12, abs=1e-12)


def test_unequal_batches_are_refused_naming_both_sizes():
    with pytest.raises(ValueError, match="equally many source and target draws; got 3 and 4"):
        minibatch_ot_pairs(torch.zeros(3, 2), torch.zeros(4, 2))


def test_nan_inputs_are_refused_with_the_likely_cause():
    x0 = torch.randn(4, 2, generator=torch.Generator().manual_seed(0))
    x1 = x0.clone()
    x1[1, 0] = float("nan")
    with pytest.warns(UserWarning), pytest.raises(RuntimeError, match="not a permutation; check the inputs for NaN"):
        minibatch_ot_pairs(x0, x1)


def test_otcfm_draws_reach_every_pair_of_the_plan(monkeypatch):
    """Drawing B pairs from the plan with replacement is uniform over its B pairs: across seeds, each is drawn."""
    seen = set()

    def record_pairs(self, model, x0, x1, gen):
        seen.update(tuple(torch.cat([a, b]).tolist()) for a, b in zip(x0, x1, strict=True))
        return torch.zeros(())

    monkeypatch.setattr(AffineFlowMatching, "loss", record_pairs)
    g = torch.Generator().manual_seed(0)
    x0, x1 = torch.randn(8, 2, generator=g), torch.randn(8, 2, generator=g) + 3
    plan = {tuple(torch.cat([a, b]).tolist()) for a, b in zip(*minibatch_ot_pairs(x0, x1), strict=True)}
    method = get_method("otcfm")
    for seed in range(20):
        method.loss(None, x0, x1, torch.Generator().manual_seed(seed))
    assert seen == plan
