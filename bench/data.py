"""Dataset registry: toy 2-D sets and scikit-learn's bundled 8x8 digits, each with a seeded train/test split.

Every dataset is a :class:`Dataset` of tensors already in model space (toy sets around the origin; images
scaled to [-1, 1]). Toy sets are generated with a ``torch.Generator`` seeded by ``data_seed``, so the same
seed gives the same points on every machine. Third-party datasets join through the ``odebench.datasets``
entry-point group: a loader ``f(data_seed: int, **options) -> Dataset``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor

from bench.registry import Registry

DATASETS: Registry[Callable[..., Dataset]] = Registry("dataset", "odebench.datasets")

#: the spec's name for "the method's own prior" as source
GAUSSIAN_SOURCE = "gaussian"


@dataclass
class Dataset:
    """A dataset in model space.

    Attributes:
        name: registry name.
        kind: "points" (vectors) or "image" ([C, H, W], values in [-1, 1]).
        train, test: [N, *shape] tensors.
        meta: facts metrics need (e.g. ``levels`` of quantisation for images).
    """

    name: str
    kind: str
    train: Tensor
    test: Tensor
    meta: dict = field(default_factory=dict)
    #: random horizontal flips of training draws (image augmentation; the test split is never flipped)
    hflip: bool = False
    _resident: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.train.shape[1:])

    def sample(self, n: int, gen: torch.Generator | None, device=None) -> Tensor:
        """[n, *shape] training points drawn with replacement (each flipped with probability 1/2 if hflip).

        The draw happens on the generator's device, from a copy of the training split kept there: with a
        CUDA generator the data stays on the GPU and no batch crosses the host bus.
        """
        where = gen.device if gen is not None else torch.device("cpu")
        if where.type == "cpu":
            train = self.train
        else:  # copy once per device, then index there
            if str(where) not in self._resident:
                self._resident[str(where)] = self.train.to(where)
            train = self._resident[str(where)]
        idx = torch.randint(len(train), (n,), generator=gen, device=where)
        out = train[idx]
        if self.hflip:
            flip = torch.rand(n, generator=gen, device=where) < 0.5
            out = torch.where(flip.view(-1, *[1] * (out.dim() - 1)), out.flip(-1), out)
        return out if device is None else out.to(device)


def load_dataset(name: str, data_seed: int = 0, **options) -> Dataset:
    """Build a registered dataset; unknown names raise with the known ones."""
    return DATASETS.get(name)(data_seed=data_seed, **options)


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


@DATASETS.register("digits")
def digits(data_seed: int = 0, test_fraction: float = 0.2) -> Dataset:
    """scikit-learn's bundled 8x8 digits (1797 images, 17 grey levels 0..16), as [N, 1, 8, 8] in [-1, 1].

    The split is a permutation drawn from ``data_seed``; ``meta['levels'] = 17`` tells dequantisation how
    many grey levels the pixels have.
    """
    from sklearn.datasets import load_digits

    raw = torch.from_numpy(load_digits().images).float()  # [1797, 8, 8], values 0..16
    x = (raw / 16 * 2 - 1).unsqueeze(1)
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(data_seed))
    n_test = int(round(test_fraction * len(x)))
    return Dataset(name="digits", kind="image", train=x[perm[n_test:]], test=x[perm[:n_test]],
                   meta={"levels": 17, "labels_available": True})


# Image directories (CIFAR-10 batches, folders of PNG/JPEG) register themselves on import.
from bench import image_data as _image_data  # noqa: E402,F401
