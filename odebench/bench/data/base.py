"""The dataset type, its registry and ``load_dataset``.

Every dataset is a :class:`Dataset` of tensors already in model space (toy sets around the origin; images
scaled to [-1, 1]). Toy sets are generated with a ``torch.Generator`` seeded by ``data_seed``, so the same
seed gives the same points on every machine. The built-in loaders live in this package's other modules
(``toy``, ``digits``, ``images``) and are found by discovery; third-party datasets join through the
``odebench.datasets`` entry-point group: a loader ``f(data_seed: int, **options) -> Dataset``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor

from odebench.bench.core.registry import Registry
from odebench.bench.data.dequantization import uniform_dequantize

DATASETS: Registry[Callable[..., Dataset]] = Registry("dataset", "odebench.datasets", builtin="odebench.bench.data")

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

    def sample(self, n: int, gen: torch.Generator | None, device=None, dequantize: bool = False) -> Tensor:
        """[n, *shape] training points drawn with replacement (each flipped with probability 1/2 if hflip).

        The draw happens on the generator's device, from a copy of the training split kept there: with a
        CUDA generator the data stays on the GPU and no batch crosses the host bus. ``dequantize``: each pixel
        is moved uniformly within its grey level's bin, 2 (k + u) / L - 1 with L = ``meta["levels"]``
        (:mod:`odebench.bench.data.dequantization`), with fresh noise from ``gen`` at every draw.
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
        if dequantize:
            out = uniform_dequantize(out, self.levels_for_dequantization(), gen)
        return out if device is None else out.to(device)

    def levels_for_dequantization(self) -> int:
        """``meta["levels"]``, the grey levels that dequantization spreads; refused where the dataset has none."""
        levels = self.meta.get("levels")
        if self.kind != "image" or levels is None:
            raise ValueError(f"dataset {self.name!r} declares no grey levels (meta['levels']), so its training "
                             f"draws cannot be dequantized; set train.dequantize = false")
        return int(levels)


KINDS = ("points", "image")


def declare_kind(kind: str):
    """Decorator for a registered loader: the kind of data it returns ("points" or "image"), known without
    loading anything, so that a spec check can tell which metrics fit the dataset before any work."""
    if kind not in KINDS:
        raise ValueError(f"dataset kind must be one of {KINDS}, got {kind!r}")

    def deco(loader):
        loader.kind = kind
        return loader

    return deco


def dataset_kind(name: str) -> str | None:
    """The declared kind of a registered dataset (None: its loader declares none; it is known once loaded)."""
    return getattr(DATASETS.get(name), "kind", None)


def load_dataset(name: str, data_seed: int = 0, **options) -> Dataset:
    """Build a registered dataset; unknown names raise with the known ones."""
    return DATASETS.get(name)(data_seed=data_seed, **options)
