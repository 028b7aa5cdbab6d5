"""Improved precision / recall on configurations with known answers."""

import pytest
import torch

from odebench.metrics import METRICS, EvalContext
from odebench.metrics.precision_recall import knn_radii, manifold_coverage, precision_recall
from odebench.metrics.registry import split_output


def two_blobs(n, seed, modes=(-5.0, 5.0)):
    g = torch.Generator().manual_seed(seed)
    centers = torch.tensor(modes)[torch.randint(len(modes), (n,), generator=g)]
    return torch.stack([centers, torch.zeros(n)], 1) + 0.3 * torch.randn(n, 2, generator=g)


def test_identical_sets_have_full_precision_and_recall():
    x = two_blobs(300, 0)
    assert precision_recall(x, x) == (1.0, 1.0)


def test_far_apart_sets_have_none():
    x = two_blobs(200, 0)
    assert precision_recall(x, x + 100.0) == (0.0, 0.0)


def test_mode_collapse_keeps_precision_and_loses_recall():
    real = two_blobs(1000, 0)
    collapsed = two_blobs(1000, 1, modes=(5.0,))
    p, r = precision_recall(real, collapsed)
    assert p > 0.9
    assert 0.35 < r < 0.65  # only the covered mode's half of the data is recalled


def test_knn_radii_and_coverage_by_hand():
    x = torch.tensor([[0.0], [1.0], [3.0]], dtype=torch.float64)
    torch.testing.assert_close(knn_radii(x, 1), torch.tensor([1.0, 1.0, 2.0], dtype=torch.float64))
    q = torch.tensor([[0.5], [5.5], [4.9]], dtype=torch.float64)
    assert manifold_coverage(q, x, knn_radii(x, 1)).item() == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="k must be"):
        knn_radii(x, 3)


def test_registered_metrics_report_settings():
    real, fake = two_blobs(400, 0), two_blobs(400, 1, modes=(5.0,))
    ctx = EvalContext(samples=fake, reference=real, options={"recall": {"k": 5}})
    p, ps = split_output("precision", METRICS.get("precision").fn(ctx))
    r, rs = split_output("recall", METRICS.get("recall").fn(ctx))
    assert p["precision"] > 0.9 and r["recall"] < 0.65
    assert ps == {"k": 3, "features": "raw", "n_real": 400, "n_fake": 400} and rs["k"] == 5
    assert METRICS.get("precision").higher_is_better
