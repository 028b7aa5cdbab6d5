"""Sample-quality distances between two point clouds x: [N, *shape] and y: [M, *shape] (flattened).

- ``w2``: exact 2-Wasserstein distance between the empirical laws, W2 = sqrt(min_P sum P_ij |x_i - y_j|^2),
  solved by POT's network simplex (``ot.emd2``) with uniform weights.
- ``sliced_w``: sliced 2-Wasserstein, sqrt(E_theta W2^2(theta.x, theta.y)) over random unit directions;
  1-D W2 between equal-size sorted projections (quantile matching when sizes differ).
- ``mmd``: unbiased squared MMD with a sum of RBF kernels k(a, b) = sum_h exp(-|a - b|^2 / (2 h^2)) over
  bandwidths h = scale * median pairwise distance, scale in (0.5, 1, 2, 4) by default.
- ``energy``: energy distance 2 E|X - Y| - E|X - X'| - E|Y - Y'| (V-statistic).
- ``frechet``: |mu_x - mu_y|^2 + tr(C_x + C_y - 2 (C_x C_y)^(1/2)) of the raw coordinates (the same formula
  FID applies to Inception features).
"""

from __future__ import annotations

import numpy as np
import torch
from scipy import linalg
from torch import Tensor

from odebench.metrics.budget_guard import refuse_if_over_budget
from odebench.metrics.registry import EvalContext, MetricUndefined, register_metric, require_points


def _flat64(x: Tensor) -> Tensor:
    return x.detach().flatten(1).to("cpu", torch.float64)


def wasserstein2(x: Tensor, y: Tensor) -> float:
    """Exact W2 between the empirical laws of x: [N, ...] and y: [M, ...] (uniform weights)."""
    import ot

    a, b = _flat64(x).numpy(), _flat64(y).numpy()
    cost = ot.dist(a, b, metric="sqeuclidean")
    w = ot.emd2(np.full(len(a), 1 / len(a)), np.full(len(b), 1 / len(b)), cost, numItermax=10_000_000)
    return float(np.sqrt(max(w, 0.0)))


def sliced_wasserstein(x: Tensor, y: Tensor, n_projections: int = 256,
                       gen: torch.Generator | None = None) -> float:
    """Sliced W2: sqrt of the mean over random unit directions of the 1-D W2^2 of the projections."""
    a, b = _flat64(x), _flat64(y)
    theta = torch.randn(a.shape[1], n_projections, generator=gen, dtype=torch.float64)
    theta = theta / theta.norm(dim=0, keepdim=True)
    pa, pb = (a @ theta).sort(0).values, (b @ theta).sort(0).values
    if len(pa) != len(pb):  # compare quantile functions on a common grid
        q = torch.linspace(0, 1, max(len(pa), len(pb)), dtype=torch.float64)
        pa, pb = (torch.quantile(p, q, dim=0) for p in (pa, pb))
    return float((pa - pb).pow(2).mean().sqrt())


def mmd_rbf(x: Tensor, y: Tensor, scales: tuple[float, ...] = (0.5, 1.0, 2.0, 4.0)) -> float:
    """Unbiased MMD^2 with a multi-bandwidth RBF kernel; bandwidths scale the median pairwise distance.

    Raises MetricUndefined below two points per set (the unbiased within-set terms divide by n (n - 1)) and
    when all points coincide (no bandwidth).
    """
    a, b = _flat64(x), _flat64(y)
    if min(len(a), len(b)) < 2:
        raise MetricUndefined(f"mmd needs at least 2 points per set; got {len(a)} samples and {len(b)} "
                              f"held-out points (raise eval.n_samples or metric_options.mmd.max_points)")
    z = torch.cat([a, b])
    d2 = torch.cdist(z, z).pow(2)
    if not (d2 > 0).any():
        raise MetricUndefined("mmd: every point coincides, so the median distance (the bandwidth) is 0")
    median = d2[d2 > 0].median().sqrt()
    k = sum(torch.exp(-d2 / (2 * (s * median) ** 2)) for s in scales)
    n, m = len(a), len(b)
    kxx, kyy, kxy = k[:n, :n], k[n:, n:], k[:n, n:]
    term_x = (kxx.sum() - kxx.diagonal().sum()) / (n * (n - 1))
    term_y = (kyy.sum() - kyy.diagonal().sum()) / (m * (m - 1))
    return float(term_x + term_y - 2 * kxy.mean())


def energy_distance(x: Tensor, y: Tensor) -> float:
    """2 E|X - Y| - E|X - X'| - E|Y - Y'| over the empirical laws (V-statistic, >= 0)."""
    a, b = _flat64(x), _flat64(y)
    return float(2 * torch.cdist(a, b).mean() - torch.cdist(a, a).mean() - torch.cdist(b, b).mean())


def gaussian_stats(x: Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Mean [D] and unbiased covariance [D, D] of x: [N, ...] (flattened), float64; N >= 2."""
    if len(x) < 2:
        raise MetricUndefined(f"a Fréchet distance needs at least 2 points per set (an unbiased covariance); "
                              f"got {len(x)} (raise eval.n_samples)")
    a = _flat64(x).numpy()
    return a.mean(0), np.atleast_2d(np.cov(a, rowvar=False))


def frechet_distance(mu1: np.ndarray, cov1: np.ndarray, mu2: np.ndarray, cov2: np.ndarray) -> float:
    """|mu1 - mu2|^2 + tr(C1 + C2 - 2 (C1 C2)^(1/2)) for means [D] and covariances [D, D].

    tr (C1 C2)^(1/2) is computed as the sum of sqrt(eig(R C2 R)) with R = C1^(1/2) from a symmetric
    eigendecomposition: R C2 R is similar to C1 C2, symmetric and positive semi-definite, so this is exact and
    stays stable when the covariances are singular (constant pixels, fewer samples than features), where a
    general sqrtm of C1 C2 warns and loses accuracy.
    """
    diff = mu1 - mu2
    w, v = linalg.eigh(cov1)
    root1 = (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T
    inner = root1 @ cov2 @ root1
    tr_covmean = np.sqrt(np.clip(linalg.eigvalsh((inner + inner.T) / 2), 0.0, None)).sum()
    return float(diff @ diff + np.trace(cov1) + np.trace(cov2) - 2 * tr_covmean)


def frechet_from_samples(x: Tensor, y: Tensor) -> float:
    return frechet_distance(*gaussian_stats(x), *gaussian_stats(y))


# ------------------------------------------------------------------------------------------ registry entries
def _capped(ctx: EvalContext, name: str, default: int) -> tuple[Tensor, Tensor]:
    """Equal-size sets: the first min(N, M, max_points) samples and held-out points (at least 2 of each, else
    MetricUndefined).

    Equal sizes make every method's estimate carry the same finite-sample bias (the W2 "noise floor" of two
    draws from one law), and keep exact OT at n x n rather than n x M.
    """
    cap = int(ctx.opts(name).get("max_points", default))
    require_points(name, min(len(ctx.samples), cap), min(len(ctx.reference), cap))
    n = min(len(ctx.samples), len(ctx.reference), cap)
    return ctx.samples[:n], ctx.reference[:n]


@register_metric("w2", higher_is_better=False, reference="POT ot.emd2", variant="exact, uniform weights",
                 headline_rank=2,
                 reading=('W2 is >= 0; two independent draws of the same law are not 0 apart at a finite '
                          'sample size, so compare methods with one another (and with that floor), not with 0 '
                          '(two 2000-point draws of moons are about 0.1 apart).'))
def _w2(ctx: EvalContext) -> float:
    """Exact 2-Wasserstein distance between samples and held-out data (POT network simplex)."""
    x, y = _capped(ctx, "w2", 4000)
    refuse_if_over_budget("w2", len(x), lambda k: wasserstein2(x[:k], y[:k]), "exact OT")
    return wasserstein2(x, y)


@register_metric("sliced_w", higher_is_better=False, variant="sliced W2, 256 projections", headline_rank=4,
                 reading=('Sliced W2 is >= 0; two independent draws of the same law are not 0 apart at a '
                          'finite sample size, so compare methods with one another (and with that floor), not '
                          'with 0.'))
def _sliced(ctx: EvalContext) -> float:
    """Sliced 2-Wasserstein distance over random directions."""
    require_points("sliced_w", len(ctx.samples), len(ctx.reference))
    return sliced_wasserstein(ctx.samples, ctx.reference, int(ctx.opts("sliced_w").get("n_projections", 256)),
                              ctx.gen)


@register_metric("mmd", higher_is_better=False, variant="unbiased MMD^2, RBF x (0.5, 1, 2, 4) x median",
                 headline_rank=5,
                 reading=('The unbiased MMD^2 estimate is 0 on average when samples and data share their law, '
                          'so it can come out slightly negative: a value within noise of 0, negative or not, '
                          'means no difference detectable at this sample size, not better than 0.'))
def _mmd(ctx: EvalContext) -> float:
    """Unbiased squared MMD with a multi-bandwidth RBF kernel."""
    x, y = _capped(ctx, "mmd", 4000)
    refuse_if_over_budget("mmd", len(x), lambda k: mmd_rbf(x[:k], y[:k]), "the kernel matrix")
    return mmd_rbf(x, y)


@register_metric("energy", higher_is_better=False, variant="V-statistic", headline_rank=6,
                 reading=('The energy distance is >= 0, and the V-statistic keeps a small positive floor: two '
                          'independent draws of the same law are not 0 apart at a finite sample size, so compare '
                          'methods with one another (and with that floor), not with 0.'))
def _energy(ctx: EvalContext) -> float:
    """Energy distance between samples and held-out data."""
    x, y = _capped(ctx, "energy", 4000)
    refuse_if_over_budget("energy", len(x), lambda k: energy_distance(x[:k], y[:k]), "the distance matrices")
    return energy_distance(x, y)


@register_metric("fd", higher_is_better=False, variant="raw coordinates", headline_rank=3,
                 reading=('FD is >= 0 and compares only means and covariances: 0 does not mean equal laws, and'
                          ' at a finite sample size its floor is above 0.'))
def _fd(ctx: EvalContext) -> float:
    """Fréchet distance of the raw coordinates (Gaussian fit of samples vs held-out data)."""
    return frechet_from_samples(ctx.samples, ctx.reference)
