"""Datasets: seeded, split, in model space; registries: duplicates raise, unknown names suggest."""

import pytest
import torch

from odebench.bench.core.registry import Registry, UnknownNameError
from odebench.bench.data import DATASETS, load_dataset

TOY = ["8gaussians", "moons", "checkerboard", "spirals", "circles", "swissroll"]


@pytest.mark.parametrize("name", TOY)
def test_toy_sets_are_seeded_2d_and_split(name):
    a, b = load_dataset(name, 0, n_train=500, n_test=100), load_dataset(name, 0, n_train=500, n_test=100)
    assert a.shape == (2,) and a.kind == "points"
    assert a.train.shape == (500, 2) and a.test.shape == (100, 2)
    assert torch.equal(a.train, b.train) and torch.equal(a.test, b.test)
    assert not torch.equal(load_dataset(name, 1, n_train=500, n_test=100).train, a.train)
    assert a.train.abs().max() < 10 and a.train.std() > 0.3


def test_digits_are_scaled_images_with_disjoint_split():
    d = load_dataset("digits")
    assert d.kind == "image" and d.shape == (1, 8, 8)
    assert len(d.train) + len(d.test) == 1797
    assert d.train.min() == -1 and d.train.max() == 1
    levels = torch.unique(torch.cat([d.train, d.test]))
    assert len(levels) == d.meta["levels"] == 17
    train_set = {tuple(x.flatten().tolist()) for x in d.train}
    # digits has a few exact duplicates; the split itself is a permutation, so sizes add up
    assert len(d.test) == round(0.2 * 1797) and len(train_set) > 1000


def test_dataset_sample_uses_the_generator():
    d = load_dataset("moons", n_train=100, n_test=10)
    a = d.sample(8, torch.Generator().manual_seed(3))
    b = d.sample(8, torch.Generator().manual_seed(3))
    assert torch.equal(a, b)


def test_registry_rejects_duplicates_and_suggests_names():
    reg: Registry[int] = Registry("widget")
    reg.add("alpha", 1)
    with pytest.raises(ValueError, match="already registered"):
        reg.add("alpha", 2)
    with pytest.raises(UnknownNameError, match="Did you mean 'alpha'.*Known widgets: alpha"):
        reg.get("alpah")


def test_unknown_dataset_lists_known():
    with pytest.raises(KeyError, match="moons"):
        DATASETS.get("moon")
