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

from odebench.metrics import computed_once
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


def sorted_projections(x: Tensor, theta: Tensor) -> Tensor:
    """[P, N]: the projections of x: [N, D] (float64) on the P unit directions theta: [D, P], each row in
    increasing order.

    NumPy sorts (its vectorised sort, several times faster on a CPU than ``torch.sort`` along the sample axis);
    sorting gives the same values whatever the algorithm.
    """
    rows = np.ascontiguousarray((x @ theta).numpy().T)
    rows.sort(axis=1)
    return torch.from_numpy(rows)


def quantiles_of_sorted(rows: Tensor, q: Tensor) -> Tensor:
    """[P, len(q)]: the q-quantiles of each row of rows: [P, N] (already sorted), by linear interpolation
    between order statistics at rank q (N - 1): the same arithmetic as ``torch.quantile`` (whose own sort would
    repeat the work)."""
    ranks = q * (rows.shape[-1] - 1)
    below = ranks.long()
    return rows[:, below].lerp_(rows[:, ranks.ceil().long()], ranks - below)


def sliced_wasserstein(x: Tensor, y: Tensor, n_projections: int = 256,
                       gen: torch.Generator | None = None) -> float:
    """Sliced W2: sqrt of the mean over random unit directions of the 1-D W2^2 of the projections.

    Each set's projections are sorted once; with unequal sizes both quantile functions are compared on a
    common grid of max(N, M) levels.
    """
    a, b = _flat64(x), _flat64(y)
    theta = torch.randn(a.shape[1], n_projections, generator=gen, dtype=torch.float64)
    theta = theta / theta.norm(dim=0, keepdim=True)
    pa, pb = sorted_projections(a, theta), sorted_projections(b, theta)
    if pa.shape[1] != pb.shape[1]:  # compare quantile functions on a common grid
        q = torch.linspace(0, 1, max(pa.shape[1], pb.shape[1]), dtype=torch.float64)
        pa, pb = quantiles_of_sorted(pa, q), quantiles_of_sorted(pb, q)
    return float((pa - pb).pow(2).mean().sqrt())


#: rows of the squared-distance matrix per step of MMD's kernel pass: about 2**17 entries (1 MB in float64), so
#: that a block stays in cache while the kernels of all bandwidths are summed over it
_KERNEL_BLOCK_ENTRIES = 2**17


def lower_median(values: np.ndarray) -> float:
    """The lower median of a 1-D array (element (len - 1) // 2 in increasing order), as ``torch.median``
    defines it, by a linear-time selection instead of a sort; ``values`` is reordered in place."""
    k = (len(values) - 1) // 2
    values.partition(k)
    return float(values[k])


def rbf_block_sums(d2: Tensor, n: int, denominators: list[Tensor]) -> tuple[float, float, float]:
    """Sums of k = sum_h exp(-d2 / denominator_h) over the blocks of a squared-distance matrix d2: [n + m, n + m]
    of the stacked sets (x first, n rows): (x-x block without its diagonal, y-y block without its diagonal,
    x-y block).

    One pass over d2 in blocks of rows: every bandwidth's kernel is evaluated on a block while it is in cache,
    with the arithmetic of ``exp(-d2 / denominator)`` summed over the bandwidths in order, and no matrix of
    d2's size is allocated.
    """
    total = d2.shape[0]
    step = max(1, _KERNEL_BLOCK_ENTRIES // total)
    xx = yy = xy = 0.0
    buf, acc = torch.empty(step, total, dtype=d2.dtype), torch.empty(step, total, dtype=d2.dtype)
    for first, last in ((0, n), (n, total)):  # blocks never straddle the two sets
        for start in range(first, last, step):
            stop = min(start + step, last)
            rows, k, e = d2[start:stop], acc[:stop - start], buf[:stop - start]
            for h, denominator in enumerate(denominators):
                # exp(-(d2 / c)) is exp((-d2) / c) to the bit: IEEE division is symmetric in the sign
                torch.div(rows, denominator, out=e if h else k).neg_().exp_()
                if h:
                    k += e
            diagonal = float(k.diagonal(offset=start).sum())  # entries (i, i) of the rows start..stop
            if first == 0:
                xx += float(k[:, :n].sum()) - diagonal
                xy += float(k[:, n:].sum())
            else:
                yy += float(k[:, n:].sum()) - diagonal
    return xx, yy, xy


def mmd_rbf(x: Tensor, y: Tensor, scales: tuple[float, ...] = (0.5, 1.0, 2.0, 4.0)) -> float:
    """Unbiased MMD^2 with a multi-bandwidth RBF kernel; bandwidths scale the median pairwise distance.

    The median is that of the positive entries of the squared-distance matrix of the stacked sets (its
    diagonal included where rounding leaves it above 0, as ``torch.cdist`` does past 25 points), the lower
    median for an even count; the kernels' block sums are then taken in one pass (:func:`rbf_block_sums`).

    Raises MetricUndefined below two points per set (the unbiased within-set terms divide by n (n - 1)) and
    when all points coincide (no bandwidth).
    """
    a, b = _flat64(x), _flat64(y)
    if min(len(a), len(b)) < 2:
        raise MetricUndefined(f"mmd needs at least 2 points per set; got {len(a)} samples and {len(b)} "
                              f"held-out points (raise eval.n_samples or metric_options.mmd.max_points)")
    z = torch.cat([a, b])
    d2 = torch.cdist(z, z).pow_(2)
    flat = d2.numpy().reshape(-1)
    positive = flat[flat > 0]
    if not len(positive):
        raise MetricUndefined("mmd: every point coincides, so the median distance (the bandwidth) is 0")
    median = torch.tensor(lower_median(positive), dtype=torch.float64).sqrt()
    xx, yy, xy = rbf_block_sums(d2, len(a), [2 * (s * median) ** 2 for s in scales])
    n, m = len(a), len(b)
    return float(xx / (n * (n - 1)) + yy / (m * (m - 1)) - 2 * (xy / (n * m)))


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
                          'sample size, so compare methods with one another (and with that floor, the '
                          "leaderboard's two-sample floor row), not with 0."))
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
    reference = computed_once.per_process("gaussian_stats", ctx.reference, gaussian_stats)
    return frechet_distance(*gaussian_stats(ctx.samples), *reference)
