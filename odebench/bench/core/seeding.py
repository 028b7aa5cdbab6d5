"""Generators derived from a cell's seed: every random draw in odebench takes one of these.

``derive(seed, *tags)`` gives an independent stream per purpose (training batches, pair generation, SDE
noise, ...). ``per_sample`` draws sample i from its own generator seeded by (seed, tag, i), as EDM's
StackedRandomGenerator does, so a sample never depends on the batch size or on where a run resumed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import torch
from torch import Tensor

from odebench.bench.core import budgets


def seed_of(seed: int, *tags: object) -> int:
    """A 63-bit seed from (seed, *tags), stable across processes and Python versions."""
    digest = hashlib.sha256(repr((int(seed), *map(str, tags))).encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def derive(seed: int, *tags: object, device: str | torch.device = "cpu") -> torch.Generator:
    """A fresh generator for one purpose of one cell."""
    return torch.Generator(device=device).manual_seed(seed_of(seed, *tags))


def per_sample(draw_one: Callable[[torch.Generator], Tensor], seed: int, tag: str, start: int,
               count: int) -> Tensor:
    """Stack draws i = start .. start + count - 1, each from its own generator.

    Args:
        draw_one: ``gen -> [1, *shape]`` (e.g. ``lambda g: prior.sample(1, g)``).
    Returns:
        [count, *shape].

    A wall-clock budget in force (odebench.bench.core.budgets) is checked every ``DEADLINE_EVERY`` draws: 200,000
    draws take minutes, and a cell's budget covers them.
    """
    draws = []
    for i in range(start, start + count):
        if (i - start) % DEADLINE_EVERY == DEADLINE_EVERY - 1:
            budgets.check_deadline()
        draws.append(draw_one(torch.Generator().manual_seed(seed_of(seed, tag, i))))
    return torch.cat(draws)


#: per_sample checks the wall-clock budget once per this many draws (a few milliseconds of work)
DEADLINE_EVERY = 256
