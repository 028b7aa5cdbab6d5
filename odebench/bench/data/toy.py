"""Toy 2-D point sets (8gaussians, moons, checkerboard, spirals, circles, swissroll), each drawn from a
generator seeded by ``data_seed`` (so the same seed gives the same points everywhere), split into train/test."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from odebench.bench.data.base import DATASETS, Dataset


def _toy(name: str, draw: Callable[[int, torch.Generator], Tensor], data_seed: int, n_train: int,
         n_test: int) -> Dataset:
    gen = torch.Generator().manual_seed(10_000 + data_seed)
    pts = draw(n_train + n_test, gen).float()
    return Dataset(name=name, kind="points", train=pts[:n_train], test=pts[n_train:])


def _register_toy(name: str):
    def deco(draw: Callable[[int, torch.Generator], Tensor]):
        def loader(data_seed: int = 0, n_train: int = 20000, n_test: int = 5000) -> Dataset:
            return _toy(name, draw, data_seed, n_train, n_test)

        loader.__doc__ = draw.__doc__
        loader.kind = "points"
        DATASETS.add(name, loader)
        return draw

    return deco


@_register_toy("8gaussians")
def eight_gaussians(n: int, gen: torch.Generator) -> Tensor:
    """Eight Gaussians (std 0.5) on a circle of radius 4, then scaled by 1/1.414 (as in FFJORD)."""
    angles = torch.arange(8) * (2 * math.pi / 8)
    centers = 4 * torch.stack([torch.cos(angles), torch.sin(angles)], 1)
    k = torch.randint(8, (n,), generator=gen)
    return (centers[k] + 0.5 * torch.randn(n, 2, generator=gen)) / 1.414


@_register_toy("moons")
def moons(n: int, gen: torch.Generator) -> Tensor:
    """Two interleaved half circles (noise 0.05), centred and scaled by 2."""
    upper = torch.rand(n, generator=gen) < 0.5
    theta = math.pi * torch.rand(n, generator=gen)
    x = torch.where(upper, torch.cos(theta), 1 - torch.cos(theta))
    y = torch.where(upper, torch.sin(theta), 0.5 - torch.sin(theta))
    pts = torch.stack([x, y], 1) + 0.05 * torch.randn(n, 2, generator=gen)
    return 2 * (pts - torch.tensor([0.5, 0.25]))


@_register_toy("checkerboard")
def checkerboard(n: int, gen: torch.Generator) -> Tensor:
    """Uniform on the black squares of a 4x4 board on [-4, 4]^2 (as in FFJORD)."""
    x1 = 4 * torch.rand(n, generator=gen) - 2
    x2 = torch.rand(n, generator=gen) - 2 * torch.randint(0, 2, (n,), generator=gen)
    x2 = x2 + torch.floor(x1) % 2
    return 2 * torch.stack([x1, x2], 1)


@_register_toy("spirals")
def spirals(n: int, gen: torch.Generator) -> Tensor:
    """Two interleaved spirals (as in FFJORD's 2spirals)."""
    t = torch.sqrt(torch.rand(n, generator=gen)) * 540 * (2 * math.pi) / 360
    sign = torch.where(torch.rand(n, generator=gen) < 0.5, -1.0, 1.0)
    x = sign * (-torch.cos(t) * t) + 0.5 * torch.rand(n, generator=gen)
    y = sign * (torch.sin(t) * t) + 0.5 * torch.rand(n, generator=gen)
    return torch.stack([x, y], 1) / 3 + 0.1 * torch.randn(n, 2, generator=gen)


@_register_toy("circles")
def circles(n: int, gen: torch.Generator) -> Tensor:
    """Two concentric circles (radii 3 and 1.5, noise 0.08 x 3)."""
    inner = torch.rand(n, generator=gen) < 0.5
    theta = 2 * math.pi * torch.rand(n, generator=gen)
    r = torch.where(inner, 0.5, 1.0)
    pts = r[:, None] * torch.stack([torch.cos(theta), torch.sin(theta)], 1)
    return 3 * (pts + 0.08 * torch.randn(n, 2, generator=gen))


@_register_toy("swissroll")
def swissroll(n: int, gen: torch.Generator) -> Tensor:
    """The 2-D swiss roll (t sin t, t cos t)/5 with t in [1.5 pi, 4.5 pi], noise 1.0 / 5."""
    t = 1.5 * math.pi * (1 + 2 * torch.rand(n, generator=gen))
    pts = torch.stack([t * torch.cos(t), t * torch.sin(t)], 1) + torch.randn(n, 2, generator=gen)
    return pts / 5
