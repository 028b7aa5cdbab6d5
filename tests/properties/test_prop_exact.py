"""The closed forms of odebench.methods.exact against independent answers: the 1-RF velocity for Gaussians of
docs/maths.md ("Closed forms"), autograd of the mixture log-density, sampling moments, the VP path's own
coefficients, and input checks."""

from __future__ import annotations

import math

import pytest
import torch
from _strategies import F64, gaussian_mixture_params, generator, seeds
from hypothesis import given, settings
from hypothesis import strategies as st

from odebench.methods.exact import (
    GaussianMixture,
    GaussianMixtureCoupling,
    gaussian,
    independent,
    rectified_velocity,
    smoothed_empirical,
    vp_alpha_sigma,
    vp_beta,
)
from odebench.methods.probability_paths import VPDiffusionPath, VPSchedule


@settings(max_examples=15)
@given(d=st.integers(1, 3), seed=seeds)
def test_rectified_velocity_matches_the_gaussian_closed_form(d, seed):
    """X0 ~ N(0, I), X1 ~ N(m, diag s^2): v = m + (t s^2 - (1 - t)) / (t^2 s^2 + (1 - t)^2) (x - t m)."""
    gen = generator(seed)
    m = 2 * torch.randn(d, generator=gen, dtype=F64)
    s = 0.1 + 2 * torch.rand(d, generator=gen, dtype=F64)
    source = gaussian(torch.zeros(d, dtype=F64), torch.eye(d, dtype=F64))
    pi = independent(source, gaussian(m, torch.diag(s**2)))
    x = 3 * torch.randn(50, d, generator=gen, dtype=F64)
    t = torch.rand(50, generator=gen, dtype=F64)[:, None]
    want = m + (t * s**2 - (1 - t)) / (t**2 * s**2 + (1 - t) ** 2) * (x - t * m)
    assert torch.allclose(rectified_velocity(pi, x, t[:, 0]), want, rtol=1e-10, atol=1e-10)


@settings(max_examples=15)
@given(mixture=gaussian_mixture_params(), seed=seeds)
def test_mixture_score_is_the_gradient_of_its_log_density(mixture, seed):
    law = GaussianMixture(*mixture)
    x = (2 * torch.randn(20, law.dim, generator=generator(seed), dtype=F64)).requires_grad_(True)
    grad = torch.autograd.grad(law.log_prob(x).sum(), x)[0]
    assert torch.allclose(law.score(x), grad, rtol=1e-10, atol=1e-10)
    # and the density integrates to one in 1-D (trapezoid on a wide grid)
    if law.dim == 1:
        grid = torch.linspace(-12, 12, 20001, dtype=F64)[:, None]
        assert abs(float(torch.trapezoid(law.log_prob(grid).exp(), grid[:, 0])) - 1) < 1e-8


@settings(max_examples=8)
@given(mixture=gaussian_mixture_params(), seed=seeds)
def test_coupling_samples_have_the_exact_moments(mixture, seed):
    """Draws of the independent coupling (N(0, I), mixture) match mean() and covariance() of each side."""
    target = GaussianMixture(*mixture)
    d = target.dim
    pi = independent(gaussian(torch.zeros(d, dtype=F64), torch.eye(d, dtype=F64)), target)
    n = 20_000
    x0, x1 = pi.sample(n, generator(seed))
    for x, law in ((x0, pi.source), (x1, pi.target)):
        cov = law.covariance()
        assert ((x.mean(0) - law.mean()).abs() <= 5 * (cov.diagonal() / n).sqrt()).all()
        tol = 10 * float(cov.abs().max()) / math.sqrt(n)
        assert torch.allclose(torch.cov(x.T).reshape(d, d), cov, atol=tol)
    # independent sides: the cross-covariance is zero within 5 standard errors sd0_i sd1_j / sqrt(n)
    cross = torch.cov(torch.cat([x0, x1], 1).T)[:d, d:]
    var0, var1 = pi.source.covariance().diagonal(), pi.target.covariance().diagonal()
    se = torch.outer(var0, var1).sqrt() / math.sqrt(n)
    assert (cross.abs() <= 5 * se).all()


@settings(max_examples=10)
@given(t=st.floats(0.0, 0.999))
def test_vp_quantities_agree_with_the_vp_path(t):
    """alpha_t = a(1 - t) and sigma_t = sigma(1 - t) of VPDiffusionPath; beta = -2 d log a / ds."""
    tt = torch.tensor([t], dtype=F64)
    c = VPDiffusionPath().coefficients(tt)
    a, sig = vp_alpha_sigma(1 - tt)
    assert torch.allclose(c.alpha_t, a, rtol=1e-12) and torch.allclose(c.sigma_t, sig, rtol=1e-9)
    h, s = 1e-6, 1 - tt
    d_log_a = (VPSchedule().log_alpha(s + h) - VPSchedule().log_alpha(s - h)) / (2 * h)
    assert torch.allclose(vp_beta(s), -2 * d_log_a, rtol=1e-8)


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(ValueError, match="sum to 1"):
        GaussianMixture(torch.tensor([0.5, 0.6], dtype=F64), torch.zeros(2, 1, dtype=F64),
                        torch.ones(2, 1, 1, dtype=F64))
    with pytest.raises(ValueError, match=r"\[K, D, D\]"):
        GaussianMixture(torch.ones(1, dtype=F64), torch.zeros(1, 2, dtype=F64),
                        torch.ones(1, 3, 3, dtype=F64))
    with pytest.raises(ValueError, match="eps must be > 0"):
        smoothed_empirical(torch.zeros(3, 2, dtype=F64), 0.0)
    with pytest.raises(ValueError, match="cov01"):
        eye = torch.eye(2, dtype=F64)[None]
        GaussianMixtureCoupling(torch.ones(1, dtype=F64), torch.zeros(1, 2, dtype=F64),
                                torch.zeros(1, 2, dtype=F64), eye, eye, torch.zeros(1, 3, 3, dtype=F64))
    pi = independent(gaussian(torch.zeros(2, dtype=F64), torch.eye(2, dtype=F64)),
                     gaussian(torch.zeros(2, dtype=F64), torch.eye(2, dtype=F64)))
    with pytest.raises(ValueError, match=r"x \[B, D\] and t \[B\]"):
        rectified_velocity(pi, torch.zeros(4, 2, dtype=F64), torch.zeros(3, dtype=F64))
