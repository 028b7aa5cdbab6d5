"""The Gaussian statistics behind Fréchet distances: the mean and the unbiased covariance, which need two
points and no more."""

import numpy as np
import pytest
import torch

from odebench.metrics.quality import gaussian_stats
from odebench.metrics.registry import MetricUndefined


def test_two_points_give_the_unbiased_covariance():
    """For two points a and b: mean (a + b) / 2, covariance (b - a)(b - a)^T / 2 (divided by N - 1 = 1)."""
    a, b = np.array([1.0, -2.0, 0.5]), np.array([3.0, 1.0, 0.5])
    mu, cov = gaussian_stats(torch.tensor(np.stack([a, b])))
    np.testing.assert_allclose(mu, (a + b) / 2, rtol=0, atol=1e-15)
    np.testing.assert_allclose(cov, np.outer(b - a, b - a) / 2, rtol=0, atol=1e-15)


def test_features_are_columns_even_with_fewer_points_than_features():
    """[N, D] gives a D x D covariance (rows are samples), also for N < D and for D = 1."""
    x = torch.arange(12, dtype=torch.float64).reshape(3, 4) ** 2
    mu, cov = gaussian_stats(x)
    assert mu.shape == (4,) and cov.shape == (4, 4)
    np.testing.assert_allclose(cov, np.cov(x.numpy().T), rtol=1e-15)
    assert gaussian_stats(torch.tensor([[1.0], [3.0]]))[1].shape == (1, 1)


@pytest.mark.parametrize("n", [0, 1])
def test_fewer_than_two_points_are_refused_with_the_fix(n):
    with pytest.raises(MetricUndefined, match=rf"at least 2 points per set .*got {n} \(raise eval.n_samples\)"):
        gaussian_stats(torch.zeros(n, 3))
