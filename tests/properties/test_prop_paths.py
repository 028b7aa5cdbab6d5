"""Affine paths (odebench.methods.probability_paths): boundary conditions, the time derivative, and marginal
preservation.

For x_t = alpha_t x1 + sigma_t x0 with x0 ~ N(0, I) and a Gaussian-mixture x1, the velocity built from the
probability current, v = J / p = E[u_t | x_t = x] (odebench.methods.exact.marginal_velocity), must
  * satisfy the continuity equation d_t p + div(p v) = 0, i.e. d_t log p + div v + v . grad log p = 0, and
  * carry the law of x_0 to the law of x_t when its ODE is solved (checked exactly for Gaussians).
"""

from __future__ import annotations

import torch
from _strategies import (
    F64,
    flow_paths,
    gaussian_mixture_params,
    generator,
    push_gaussian,
    seeds,
    spd,
)
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from odebench.methods.exact import (
    GaussianMixture,
    gaussian,
    independent,
    marginal_log_prob,
    marginal_score,
    marginal_velocity,
    path_marginal,
    vp_alpha_sigma,
)
from odebench.methods.probability_paths import PATHS, OTPath, VPDiffusionPath

paths = st.sampled_from(PATHS.names())
flows = st.sampled_from(flow_paths())


def _pairs(seed: int, n: int = 16, d: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    gen = generator(seed)
    return torch.randn(n, d, generator=gen, dtype=F64), 3 * torch.randn(n, d, generator=gen, dtype=F64)


def _at(t: float, n: int) -> torch.Tensor:
    return torch.full((n,), t, dtype=F64)


@settings(max_examples=12)
@given(name=paths, seed=seeds)
def test_path_boundary_conditions(name, seed):
    """x_t is x0 at t = 0 and x1 at the path's end, up to the offsets each path documents."""
    path = PATHS.get(name)()
    x0, x1 = _pairs(seed)
    start = path.sample(x0, x1, _at(0.0, len(x0))).x_t
    end = path.sample(x0, x1, _at(path.t_max, len(x0))).x_t
    if isinstance(path, OTPath):  # x_1 = x1 + sigma_min x0
        assert torch.allclose(start, x0, atol=1e-12)
        assert torch.allclose(end, x1 + path.sigma_min * x0, atol=1e-12)
    elif isinstance(path, VPDiffusionPath):  # alpha_0 = a(1) > 0 and sigma at t_max = sigma(1 - t_max) > 0
        a1, s1 = vp_alpha_sigma(torch.tensor(1.0, dtype=F64), path.beta_min, path.beta_max)
        assert torch.allclose(start, a1 * x1 + s1 * x0, atol=1e-12)
        a_end, s_end = vp_alpha_sigma(torch.tensor(1 - path.t_max, dtype=F64), path.beta_min, path.beta_max)
        assert torch.allclose(end, a_end * x1 + s_end * x0, atol=1e-9)
        assert float(s_end) < 0.01 and float(a1) < 0.01  # and both offsets are small
    else:
        assert torch.allclose(start, x0, atol=1e-12)
        assert torch.allclose(end, x1, atol=1e-12)


@settings(max_examples=16)
@given(name=paths, seed=seeds, t=st.floats(0.0, 0.99))
def test_path_velocity_is_the_time_derivative(name, seed, t):
    """dx_t equals the central finite difference of x_t in t (float64, h = 1e-6: error ~ h^2 + eps / h)."""
    assume(name != "encdec" or abs(t - 0.5) > 1e-3)  # encdec's two pieces meet at t = 1/2 (C^1 only)
    path = PATHS.get(name)()
    x0, x1 = _pairs(seed)
    h = 1e-6
    t = min(max(t, h), path.t_max - h)
    ps = path.sample(x0, x1, _at(t, len(x0)))
    x_at = lambda s: path.sample(x0, x1, _at(s, len(x0))).x_t
    fd = (x_at(t + h) - x_at(t - h)) / (2 * h)
    assert torch.allclose(ps.dx_t, fd, rtol=1e-6, atol=1e-6)
    assert torch.equal(ps.x_0, x0) and torch.equal(ps.x_1, x1)


def _standard_normal(d: int) -> GaussianMixture:
    return gaussian(torch.zeros(d, dtype=F64), torch.eye(d, dtype=F64))


@settings(max_examples=16)
@given(name=flows, mixture=gaussian_mixture_params(), seed=seeds, t=st.floats(0.05, 0.95))
def test_marginal_velocity_solves_the_continuity_equation(name, mixture, seed, t):
    """d_t log p_t + div v + v . grad log p_t = 0 at random points (d_t by central differences)."""
    path = PATHS.get(name)()
    target = GaussianMixture(*mixture)
    pi = independent(_standard_normal(target.dim), target)
    x = path_marginal(pi, path, t).sample(8, generator(seed)).requires_grad_(True)
    tt = _at(t, len(x))
    h = 1e-5
    dt_logp = (marginal_log_prob(pi, path, x, tt + h) - marginal_log_prob(pi, path, x, tt - h)) / (2 * h)
    v = marginal_velocity(pi, path, x, tt)
    div = sum(torch.autograd.grad(v[:, i].sum(), x, retain_graph=True)[0][:, i] for i in range(x.shape[1]))
    residual = dt_logp + div + (v * marginal_score(pi, path, x, tt)).sum(1)
    scale = dt_logp.abs() + div.abs() + 1.0
    assert (residual.abs() / scale).max() < 1e-6, residual


@settings(max_examples=12)
@given(name=flows, d=st.integers(1, 3), seed=seeds)
def test_marginal_velocity_carries_the_gaussian_path(name, d, seed):
    """Solving dx/dt = v from the exact law of x_0 reaches the exact law of x_t at the path's end (and at
    t = 1/2), for a Gaussian target N(m, C) with a full covariance."""
    gen = generator(seed)
    target = gaussian(3 * torch.randn(d, generator=gen, dtype=F64), spd(d, gen, 0.05, 4.0))
    path = PATHS.get(name)()
    pi = independent(_standard_normal(d), target)
    field = lambda x, t: marginal_velocity(pi, path, x, t)
    start = path_marginal(pi, path, 0.0)
    for t_end in (0.5, path.t_max):
        mean, cov = push_gaussian(field, start.means[0], start.covs[0], "rk4", nfe=240, t1=t_end)
        want = path_marginal(pi, path, t_end)
        assert torch.allclose(mean, want.means[0], rtol=1e-6, atol=1e-6), (t_end, mean, want.means[0])
        assert torch.allclose(cov, want.covs[0], rtol=1e-6, atol=1e-6), (t_end, cov, want.covs[0])
