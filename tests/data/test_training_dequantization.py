"""Training on uniformly dequantized draws (``train.dequantize``): each pixel k of an L-level image moves to
2 (k + u) / L - 1, u ~ U[0, 1), fresh at every batch, deterministic in the batch generator; the same formula as
the NLL metric's test-point dequantization; keyed into the model and cell ids only when on; on by default where
a spec measures ``nll`` on images."""

from __future__ import annotations

import pytest
import torch

from odebench.bench.core import seeding
from odebench.bench.data import Dataset, load_dataset
from odebench.bench.data.dequantization import lattice_index, uniform_dequantize
from odebench.bench.harness.spec.sweep import SpecError, load_spec, parse_spec
from odebench.bench.harness.spec.train_config import TrainConfig
from odebench.bench.harness.training.train import Problem, model_key, training_data
from odebench.methods import get_method
from odebench.metrics.likelihood import dequantize as metric_dequantize

LEVELS = 17


def _lattice(n: int = 64, seed: int = 0) -> torch.Tensor:
    k = torch.randint(0, LEVELS, (n, 1, 8, 8), generator=torch.Generator().manual_seed(seed))
    return 2 * k / (LEVELS - 1) - 1


def test_draws_lie_in_the_bin_of_their_grey_level_and_leave_the_lattice():
    """x = 2 k / (L - 1) - 1 becomes a point of [2 k / L - 1, 2 (k + 1) / L - 1), i.e. (k + u) / L with u in
    [0, 1) on the [0, 1] scale, and off the lattice almost surely."""
    x = _lattice()
    k = lattice_index(x, LEVELS)
    y = uniform_dequantize(x, LEVELS, torch.Generator().manual_seed(3))
    u = (y + 1) / 2 * LEVELS - k
    assert u.min() >= 0 and u.max() < 1
    assert u.std() > 0.2  # spread over the bin (uniform: 0.289), not a constant shift
    with pytest.raises(ValueError, match="not on a 17-level grid"):
        lattice_index(y, LEVELS)


def test_the_training_and_the_metric_dequantize_alike():
    """The same generator state gives the same points through the data side and through the NLL metric: a
    model trained on these draws is scored on the density it was fitted to."""
    x = _lattice()
    ours = uniform_dequantize(x, LEVELS, torch.Generator().manual_seed(11))
    theirs = metric_dequantize(x, LEVELS, torch.Generator().manual_seed(11))
    assert torch.equal(ours, theirs)


def test_dataset_draws_differ_per_step_and_are_deterministic_per_seed():
    """One training image: every draw picks it, so what differs between steps is the dequantization noise; the
    same generator seed repeats the sequence, another seed gives another."""
    image = _lattice(1)
    data = Dataset("one", "image", train=image, test=image, meta={"levels": LEVELS})
    gen = torch.Generator().manual_seed(0)
    first, second = data.sample(4, gen, dequantize=True), data.sample(4, gen, dequantize=True)
    assert not torch.equal(first, second)
    assert not torch.equal(first[0], first[1])  # each row gets its own noise too
    again = torch.Generator().manual_seed(0)
    assert torch.equal(data.sample(4, again, dequantize=True), first)
    assert torch.equal(data.sample(4, again, dequantize=True), second)
    assert not torch.equal(data.sample(4, torch.Generator().manual_seed(1), dequantize=True), first)
    assert torch.equal(data.sample(4, torch.Generator().manual_seed(0)), image.expand(4, -1, -1, -1))


def test_points_have_no_levels_to_dequantize():
    points = load_dataset("moons", n_train=16, n_test=4)
    with pytest.raises(ValueError, match="train.dequantize = false"):
        points.sample(4, torch.Generator().manual_seed(0), dequantize=True)


def test_training_data_dequantizes_the_batches_and_the_held_out_batch():
    digits = load_dataset("digits")
    problem = Problem(target=digits, source=None, net={"name": "mlp", "hidden": 8, "depth": 1})
    method = get_method("fm_ot")
    plain = training_data(method, problem, None, 0, "key", "cpu")
    noisy = training_data(method, problem, None, 0, "key", "cpu", dequantize=True)
    gen = seeding.derive(0, "key", "batches")
    x1 = noisy.coupling.draw(32, gen)[1]
    k = lattice_index(plain.coupling.draw(32, seeding.derive(0, "key", "batches"))[1], LEVELS)
    u = (x1 + 1) / 2 * LEVELS - k
    assert u.min() >= 0 and u.max() < 1 and u.std() > 0.2
    held_plain, held_noisy = plain.heldout[1], noisy.heldout[1]
    assert torch.equal(lattice_index(held_plain, LEVELS), torch.floor((held_noisy + 1) / 2 * LEVELS))
    assert not torch.equal(held_plain, held_noisy)


def test_dequantization_keys_the_model_only_when_on():
    problem = Problem(target=load_dataset("digits"), source=None, net={"name": "mlp"})
    method = get_method("ddpm")
    before = model_key(method, problem, TrainConfig(), 0, None)
    assert model_key(method, problem, TrainConfig(dequantize=False), 0, None) == before
    assert model_key(method, problem, TrainConfig(dequantize=True), 0, None) != before


def _spec(metrics: list[str], train: dict | None = None, target: str = "digits") -> dict:
    raw = {"name": "deq", "methods": [{"name": "fm_ot"}], "datasets": [{"target": target}],
           "solvers": [{"name": "euler", "nfe": [2]}], "eval": {"metrics": metrics}}
    if train is not None:
        raw["train"] = train
    return raw


def test_a_spec_measuring_nll_on_images_trains_dequantized_unless_it_says_otherwise():
    assert parse_spec(_spec(["nll"])).cells[0].train["dequantize"] is True
    assert parse_spec(_spec(["fd"])).cells[0].train["dequantize"] is False
    assert parse_spec(_spec(["nll"], {"dequantize": False})).cells[0].train["dequantize"] is False
    assert parse_spec(_spec(["fd"], {"dequantize": True})).cells[0].train["dequantize"] is True
    assert parse_spec(_spec(["nll", "w2"], target="moons")).cells[0].train["dequantize"] is False
    assert load_spec("study-digits").cells[0].train["dequantize"] is True
    undequantized = parse_spec(_spec(["fd"])).cells[0]
    assert undequantized.id == parse_spec(_spec(["fd"], {"dequantize": False})).cells[0].id
    assert parse_spec(_spec(["nll"])).cells[0].training_key() != parse_spec(
        _spec(["nll"], {"dequantize": False})).cells[0].training_key()


def test_a_spec_refuses_to_dequantize_points():
    with pytest.raises(SpecError, match="no grey levels"):
        parse_spec(_spec(["w2"], {"dequantize": True}, target="moons"))
