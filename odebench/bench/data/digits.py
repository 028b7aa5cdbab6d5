"""scikit-learn's bundled 8x8 digits as an image dataset (no download)."""

from __future__ import annotations

import torch

from odebench.bench.data.base import DATASETS, Dataset, declare_kind


@DATASETS.register("digits")
@declare_kind("image")
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
