"""The sample distances depend only on differences between points, so a common translation leaves them
unchanged, also for float32 clouds far from the origin: the distances are computed in float64 whatever the
input dtype. (In float32 a pairwise distance of points near 4096 loses most of its digits to cancellation in
|a|^2 + |b|^2 - 2 a.b, and the uncentred covariance sums likewise.)"""

import pytest
import torch

from odebench.metrics.quality import (
    energy_distance,
    frechet_from_samples,
    mmd_rbf,
    sliced_wasserstein,
    wasserstein2,
)

DISTANCES = {
    "w2": wasserstein2,
    "sliced_w": lambda x, y: sliced_wasserstein(x, y, n_projections=32, gen=torch.Generator().manual_seed(1)),
    "mmd": mmd_rbf,
    "energy": energy_distance,
    "fd": frechet_from_samples,
}


def _grid_cloud(n: int, gen: torch.Generator, shift: float) -> torch.Tensor:
    """float32 points on the 1/64 grid: adding 4096 to them is exact in float32."""
    return (torch.randn(n, 3, generator=gen) * 64).round() / 64 + shift


@pytest.mark.parametrize("name", list(DISTANCES))
def test_distance_of_float32_clouds_is_translation_invariant(name):
    distance = DISTANCES[name]
    gen = torch.Generator().manual_seed(0)
    x, y = _grid_cloud(64, gen, 0.0), _grid_cloud(64, gen, 0.5)
    assert x.dtype == torch.float32
    near = distance(x, y)
    far = distance(x + 4096.0, y + 4096.0)
    assert isinstance(far, float)
    assert far == pytest.approx(near, rel=1e-9, abs=1e-9)
    assert near == pytest.approx(distance(x.double(), y.double()), rel=1e-12, abs=1e-12)
