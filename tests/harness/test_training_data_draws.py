"""What a training draws from: the held-out sources, the reflow pair sources and the pairs each come from their
own generator derived from (seed, model key), so a model's data is reproducible whatever the global RNG holds,
differs between models, and the held-out batch is never a copy of the training draws; a reflow round reports
the FLOPs spent making its pairs."""

from __future__ import annotations

import pytest
import torch
from threads import torch_threads

from odebench.bench.core import seeding
from odebench.bench.data import load_dataset
from odebench.bench.harness.training import evidence as ev
from odebench.bench.harness.training.train import Problem, TrainedModel, build_model, source_sampler, training_data
from odebench.methods import get_method

RF2 = {"k": 2, "n_pairs": 16, "pair_solver": "euler", "pair_nfe": 1}


@pytest.fixture(autouse=True)
def one_thread():
    with torch_threads(1):
        yield


def _problem(source=None) -> Problem:
    return Problem(target=load_dataset("moons", n_train=256, n_test=32), source=source,
                   net={"name": "mlp", "hidden": 8, "depth": 1})


def _reflow(problem):
    method = get_method("rf", **RF2)
    torch.manual_seed(0)
    parent = TrainedModel(build_model(method.parent(), problem).eval(), "parent-key", 0.0, True)
    return method, parent


@pytest.mark.parametrize("source", [None, "8gaussians"])
def test_held_out_sources_come_from_their_own_stream_of_the_seed_and_key(source):
    """Without a parent the held-out batch is (derive(seed, key, "heldout-sources") draws of the source, the
    data's test split): the same for the same seed and key whatever the global RNG did in between, and another
    for another key or seed."""
    problem = _problem(None if source is None else load_dataset(source, n_train=256, n_test=32))
    method = get_method("fm_ot")
    draw = source_sampler(method, problem, "cpu")
    torch.manual_seed(1)
    x0, x1 = training_data(method, problem, None, 5, "key-a", "cpu").heldout
    assert torch.equal(x1, problem.target.test)
    assert torch.equal(x0, draw(len(x1), seeding.derive(5, "key-a", "heldout-sources")))
    torch.manual_seed(2)
    again = training_data(method, problem, None, 5, "key-a", "cpu").heldout[0]
    assert torch.equal(again, x0)
    assert not torch.equal(training_data(method, problem, None, 5, "key-b", "cpu").heldout[0], x0)
    assert not torch.equal(training_data(method, problem, None, 6, "key-a", "cpu").heldout[0], x0)


def test_reflow_pairs_and_held_out_pairs_come_from_their_own_streams_and_report_their_flops():
    """Under a parent, the pair sources are derive(seed, key, "pair-sources") draws, the pairs the parent's
    flow of them, and the held-out sources derive(seed, key, "heldout-sources") draws: a separate stream, so
    the held-out pairs are not training pairs. pair_flops is what making the training pairs cost."""
    problem = _problem()
    method, parent = _reflow(problem)
    draw = source_sampler(method, problem, "cpu")
    torch.manual_seed(1)
    data = training_data(method, problem, parent, 5, "key-a", "cpu")
    x0 = draw(RF2["n_pairs"], seeding.derive(5, "key-a", "pair-sources"))
    assert torch.equal(data.coupling.x0, x0)
    x1, flops = ev.count_flops(lambda: method.make_pairs(parent.model, x0, seeding.derive(5, "key-a", "pairs")))
    assert torch.equal(data.coupling.x1, x1)
    assert data.pair_flops == flops > 0
    held0, held1 = data.heldout
    assert torch.equal(held0, draw(ev.N_HELDOUT, seeding.derive(5, "key-a", "heldout-sources")))
    assert torch.equal(held1, method.make_pairs(parent.model, held0, seeding.derive(5, "key-a", "heldout-pairs")))
    assert not torch.equal(held0[:RF2["n_pairs"]], data.coupling.x0)
    torch.manual_seed(2)
    other = training_data(method, problem, parent, 5, "key-b", "cpu")
    assert not torch.equal(other.coupling.x0, data.coupling.x0)
    assert not torch.equal(other.heldout[0], held0)


def test_without_a_parent_no_pair_flops_are_spent():
    problem = _problem()
    assert training_data(get_method("fm_ot"), problem, None, 0, "key", "cpu").pair_flops == 0
