"""Per-sample and derived generators: distinct streams per index, seed and tag; a draw depends only on
(seed, tag, index), never on batching. (A seeding that ignored the index or the seed once passed every test.)"""

import torch

from odebench.bench.core import seeding


def _normal3(gen: torch.Generator) -> torch.Tensor:
    return torch.randn(1, 3, generator=gen)


def test_per_sample_draws_differ_between_indices():
    x = seeding.per_sample(_normal3, 0, "x0", 0, 16)
    assert x.shape == (16, 3)
    assert torch.unique(x, dim=0).shape[0] == 16  # no two indices share a stream


def test_per_sample_draws_differ_between_seeds_and_tags():
    a = seeding.per_sample(_normal3, 0, "x0", 0, 8)
    assert not torch.equal(a, seeding.per_sample(_normal3, 1, "x0", 0, 8))
    assert not torch.equal(a, seeding.per_sample(_normal3, 0, "x1", 0, 8))
    # every row differs, not just one: a seed that only shifts the index would share rows
    b = seeding.per_sample(_normal3, 1, "x0", 0, 8)
    assert not any(torch.equal(r, s) for r in a for s in b)


def test_per_sample_draw_depends_only_on_seed_and_index():
    whole = seeding.per_sample(_normal3, 7, "x0", 0, 10)
    parts = torch.cat([seeding.per_sample(_normal3, 7, "x0", 0, 3), seeding.per_sample(_normal3, 7, "x0", 3, 7)])
    assert torch.equal(whole, parts)
    assert torch.equal(whole[5:6], seeding.per_sample(_normal3, 7, "x0", 5, 1))


def test_derived_streams_are_distinct_and_reproducible():
    draw = [torch.rand(4, generator=seeding.derive(0, *tags)) for tags in (("a",), ("b",), ("a", 1))]
    assert not torch.equal(draw[0], draw[1]) and not torch.equal(draw[0], draw[2])
    assert torch.equal(draw[0], torch.rand(4, generator=seeding.derive(0, "a")))
    assert not torch.equal(draw[0], torch.rand(4, generator=seeding.derive(1, "a")))




def test_seed_of_is_pinned():
    """Derived seeds are stable across processes, machines and releases: a changed value would silently change
    every cell's training batches and noise."""
    assert seeding.seed_of(0, "batches") == 9056796353946789650
    assert seeding.seed_of(7, "abc", 3) == 7404423247672211556
