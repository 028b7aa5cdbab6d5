"""A model's training cost as its cells record it: ``total_flops`` and ``total_seconds`` add the model's own
FLOPs and seconds to those of every parent it was trained from (reflow rounds, distillation), and the total is
unknown (None) as soon as one model of the chain was cached before FLOPs were recorded. The record form, once
made, is kept as it is: a model rebuilt from it (no parent attached) records the same totals again."""

from __future__ import annotations

import copy

import pytest
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from odebench.bench.harness.training.train import TrainedModel

CONVERGED = {"converged": True, "converged_at_step": 40, "reason": None}


def trained(
    seconds: float, flops: int | None = None, parent: TrainedModel | None = None, *, cost: bool = True, key: str = "k"
) -> TrainedModel:
    """A model with the evidence a training writes (``flops`` None: the cost carries no FLOPs)."""
    evidence = {"heldout": {"steps": [0, 10], "loss": [1.0, 0.5]}, "convergence": dict(CONVERGED)}
    if cost:
        evidence["cost"] = {
            "steps": 10,
            "flops_per_step": 3,
            "seconds": seconds,
            **({"flops": flops} if flops is not None else {}),
        }
    return TrainedModel(nn.ModuleDict(), key, seconds, False, [1.0, 0.5], parent, evidence)


def old(seconds: float, parent: TrainedModel | None = None) -> TrainedModel:
    """A model cached before training evidence was recorded: its evidence is empty."""
    return TrainedModel(nn.ModuleDict(), "old", seconds, True, [], parent, {})


def test_a_chain_adds_its_parents_flops_and_seconds():
    """Round 3 of a reflow chain: 100 + 30 + 7 FLOPs, 4 + 2 + 1.5 seconds, computed by hand."""
    first = trained(1.5, 7, key="a")
    second = trained(2.0, 30, first, key="b")
    third = trained(4.0, 100, second, key="c")
    assert (first.total_flops(), second.total_flops(), third.total_flops()) == (7, 37, 137)
    before = copy.deepcopy(third.evidence)
    record = third.evidence_record()
    assert record == {**before, "cost": {**before["cost"], "total_flops": 137, "total_seconds": 7.5}}
    assert third.evidence == before  # the model's own evidence is not changed by making its record
    assert first.evidence_record()["cost"] == {**first.evidence["cost"], "total_flops": 7, "total_seconds": 1.5}


def test_a_parent_without_recorded_flops_makes_the_total_unknown():
    """Unknown, not the child's own share: a total that silently left out a parent would understate the cost."""
    for parent in (old(2.0), trained(2.0, None), trained(2.0, 30, old(1.0))):
        child = trained(4.0, 100, parent)
        assert child.total_flops() is None
        cost = child.evidence_record()["cost"]
        assert cost["total_flops"] is None and cost["flops"] == 100
        assert cost["total_seconds"] == pytest.approx(child.total_train_seconds())
    assert trained(4.0, None, trained(2.0, 30)).total_flops() is None  # the model's own FLOPs unknown


def test_a_model_without_evidence_records_none_and_one_without_a_cost_records_its_seconds():
    assert old(3.0).evidence_record() == {} and old(3.0).total_flops() is None
    bare = trained(3.0, cost=False)
    assert bare.total_flops() is None
    record = bare.evidence_record()
    assert record == {**bare.evidence, "cost": {"total_flops": None, "total_seconds": 3.0}}


def test_the_record_form_is_kept_when_a_model_is_rebuilt_from_it():
    """A cell evaluated in another process rebuilds its model from the record form (no parent attached, the
    chain's seconds as its own): its record must carry the chain's totals, not its own FLOPs again."""
    chain = trained(4.0, 100, trained(2.0, 30, trained(1.5, 7)))
    record = chain.evidence_record()
    rebuilt = TrainedModel(nn.ModuleDict(), chain.key, chain.total_train_seconds(), True, [], None, record)
    assert rebuilt.evidence_record() == record
    assert rebuilt.evidence_record()["cost"]["total_flops"] == 137 != record["cost"]["flops"]
    alone = trained(4.0, 100)  # a model without parents, fresh: its totals are its own
    assert alone.evidence_record()["cost"]["total_flops"] == 100


@given(
    chain=st.lists(
        st.tuples(st.one_of(st.none(), st.integers(0, 10**15)), st.floats(0.0, 1e4, allow_nan=False)),
        min_size=1,
        max_size=5,
    )
)
def test_totals_are_the_sums_over_the_chain(chain):
    """From the first model to the last: the total FLOPs are the sum when every model's are known."""
    model = None
    for flops, seconds in chain:
        model = trained(seconds, flops, model)
    known = all(f is not None for f, _ in chain)
    assert model.total_flops() == (sum(f for f, _ in chain) if known else None)
    cost = model.evidence_record()["cost"]
    assert cost["total_flops"] == model.total_flops()
    assert cost["total_seconds"] == pytest.approx(sum(s for _, s in chain))
