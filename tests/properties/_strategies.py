"""Hypothesis strategies for small random problems (float64 torch tensors), and shared checks.

Scalars come from hypothesis (so failures shrink); the bulk of each random matrix comes from a torch
generator seeded by a hypothesis-drawn integer, so examples stay cheap to draw.
"""

from __future__ import annotations

import math

import torch
from hypothesis import strategies as st

F64 = torch.float64

#: registered paths that are transports on their own; the encoder-decoder interpolant passes through 0 at
#: t = 1/2 and is only used with latent noise (tests/properties/test_prop_interpolants.py)
NEEDS_LATENT_NOISE = ("encdec",)


def flow_paths() -> list[str]:
    from odebench.methods.probability_paths import PATHS

    return [name for name in PATHS.names() if name not in NEEDS_LATENT_NOISE]

seeds = st.integers(0, 2**31 - 1)
dims = st.integers(1, 2)


def generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def points(n: int, d: int, spread: float, gen: torch.Generator) -> torch.Tensor:
    """[n, d] points uniform in [-spread, spread]^d."""
    return spread * (2 * torch.rand(n, d, generator=gen, dtype=F64) - 1)


def spd(d: int, gen: torch.Generator, low: float = 0.2, high: float = 2.0) -> torch.Tensor:
    """A random [d, d] symmetric positive definite matrix with eigenvalues in [low, high]."""
    q, _ = torch.linalg.qr(torch.randn(d, d, generator=gen, dtype=F64))
    eig = low + (high - low) * torch.rand(d, generator=gen, dtype=F64)
    return (q * eig) @ q.T


@st.composite
def gaussian_mixture_params(draw, max_components: int = 3, max_dim: int = 2, dim: int | None = None):
    """(weights [K], means [K, D], covs [K, D, D]) of a random Gaussian mixture with full covariances."""
    d = dim if dim is not None else draw(st.integers(1, max_dim))
    k = draw(st.integers(1, max_components))
    gen = generator(draw(seeds))
    w = torch.rand(k, generator=gen, dtype=F64) + 0.2
    means = points(k, d, 2.0, gen)
    covs = torch.stack([spd(d, gen, 0.1, 1.0) for _ in range(k)])
    return w / w.sum(), means, covs


@st.composite
def mixture_pairs(draw, max_components: int = 3, max_dim: int = 2):
    """Parameters of two random Gaussian mixtures on the same R^D (a source and a target)."""
    d = draw(st.integers(1, max_dim))
    return (draw(gaussian_mixture_params(max_components, dim=d)),
            draw(gaussian_mixture_params(max_components, dim=d)))


def push_gaussian(field, mean: torch.Tensor, cov: torch.Tensor, solver: str, nfe: int, t0: float = 0.0,
                  t1: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Push N(mean, cov) through the solved flow of a field that is affine in x, exactly.

    The flow map of an affine ODE is affine, x -> c + J x, and Runge-Kutta steps commute with affine maps, so
    solving from mean and from mean + R e_i (R R^T = cov) gives c + J mean and its image columns J R. The
    pushed law is N(c + J mean, (J R)(J R)^T) with no Monte-Carlo error.
    """
    from odebench.bench.core.solvers import solve

    vals, vecs = torch.linalg.eigh(cov)
    root = vecs * vals.clamp_min(0).sqrt()
    starts = torch.cat([mean[None], mean[None] + root.T])  # [1 + D, D]
    end = solve(field, starts, solver, nfe=nfe, t0=t0, t1=t1).x
    cols = (end[1:] - end[0]).T
    return end[0], cols @ cols.T


def assert_same_law(z: torch.Tensor, z_coarse: torch.Tensor, law, gen: torch.Generator) -> None:
    """Check that samples z: [N, D] (solved at some NFE; z_coarse at half of it) follow ``law``.

    * mean and covariance within 4 Monte-Carlo standard errors of the law's exact moments, plus the change
      from the coarse solve (an upper bound on the fine solve's error for a converging solver);
    * the energy distance (odebench.metrics.quality) to fresh draws of the law is small next to the distance of
      fresh draws shifted by one standard deviation per coordinate.
    """
    from odebench.metrics.quality import energy_distance

    n = len(z)
    mean, cov = law.mean(), law.covariance()
    # per-sample unbiased estimates of cov, as the mean is known exactly
    products = lambda x: (x - mean)[:, :, None] * (x - mean)[:, None, :]
    slack_mean = 4 * (cov.diagonal() / n).sqrt() + (z.mean(0) - z_coarse.mean(0)).abs()
    assert ((z.mean(0) - mean).abs() <= slack_mean).all(), (z.mean(0), mean, slack_mean)
    prod, prod_coarse = products(z), products(z_coarse)
    slack_cov = 4 * prod.std(0) / math.sqrt(n) + (prod.mean(0) - prod_coarse.mean(0)).abs() + 1e-12
    assert ((prod.mean(0) - cov).abs() <= slack_cov).all(), (prod.mean(0), cov, slack_cov)
    fresh = law.sample(n, gen)
    shifted = law.sample(n, gen) + cov.diagonal().sqrt()
    near, far = energy_distance(z, fresh), energy_distance(shifted, fresh)
    assert near < 0.15 * far, (near, far)
