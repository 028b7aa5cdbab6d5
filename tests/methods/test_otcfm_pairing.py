"""otcfm turns each batch's exact OT plan into training pairs by drawing from the plan with replacement (as
TorchCFM does), or, with ``pairing = "permutation"``, by keeping each of the plan's pairs once."""

from __future__ import annotations

import pytest
import torch

from odebench.methods import get_method
from odebench.methods.couplings import minibatch_ot_pairs
from odebench.methods.flow_matching import AffineFlowMatching


@pytest.fixture
def seen_pairs(monkeypatch):
    seen = []

    def spy(self, model, x0, x1, gen):
        seen.append((x0.clone(), x1.clone()))
        return torch.zeros(())

    monkeypatch.setattr(AffineFlowMatching, "loss", spy)
    return seen


def _batch(n=64):
    g = torch.Generator().manual_seed(0)
    return torch.randn(n, 2, generator=g), torch.randn(n, 2, generator=g) + 3


def _as_set(x0, x1):
    return {tuple(torch.cat([a, b]).tolist()) for a, b in zip(x0, x1, strict=True)}


def test_sampled_pairs_come_from_the_plan_with_replacement(seen_pairs):
    x0, x1 = _batch()
    plan_pairs = _as_set(*minibatch_ot_pairs(x0, x1))
    get_method("otcfm").loss(None, x0, x1, torch.Generator().manual_seed(1))
    (p0, p1), = seen_pairs
    drawn = [tuple(torch.cat([a, b]).tolist()) for a, b in zip(p0, p1, strict=True)]
    assert len(drawn) == 64 and set(drawn) <= plan_pairs
    assert len(set(drawn)) < 64  # with replacement: some pairs twice, some not at all


def test_permutation_pairing_keeps_every_plan_pair_once(seen_pairs):
    x0, x1 = _batch()
    get_method("otcfm", pairing="permutation").loss(None, x0, x1, torch.Generator().manual_seed(1))
    (p0, p1), = seen_pairs
    assert _as_set(p0, p1) == _as_set(*minibatch_ot_pairs(x0, x1)) and len(p0) == 64
    with pytest.raises(ValueError, match="pairing must be one of"):
        get_method("otcfm", pairing="greedy")
