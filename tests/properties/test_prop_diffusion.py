"""Diffusion (Song et al. 2021): the probability-flow ODE with the exact score maps the prior to the data law.

In unified time the VP PF-ODE is dx/dt = beta(1 - t) / 2 (x + grad log p_{1-t}(x)), integrated from t = 0
(s = 1, x ~ N(0, I)) to t = 1 - s_eps. For Gaussian-mixture data the score is exact
(odebench.methods.exact.vp_score), so
  * the PF-ODE field is Lipman et al.'s VP-path marginal velocity (two formulas, one field);
  * for Gaussian data the pushed law is computed exactly (the field is affine in x): started from the exact
    p_1 it reaches p_{s_eps}; started from the prior N(0, I) it is within the W2 bound
    Lip(flow) W2(N(0, I), p_1) + W2(p_{s_eps}, data) of the data (W2 of Gaussians: odebench.metrics.quality's
    Fréchet distance, which is W2^2 for Gaussians);
  * for Gaussian-mixture data, samples of p_1 pushed through the ODE match p_{s_eps}'s moments and are close
    to it in energy distance next to a shifted reference.
"""

from __future__ import annotations

import math

import torch
from _strategies import (
    F64,
    assert_same_law,
    gaussian_mixture_params,
    generator,
    push_gaussian,
    seeds,
    spd,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from odebench.bench.core.solvers import solve
from odebench.methods.exact import (
    GaussianMixture,
    gaussian,
    independent,
    marginal_velocity,
    vp_marginal,
    vp_probability_flow,
)
from odebench.methods.probability_paths import VPDiffusionPath
from odebench.metrics.quality import frechet_distance

S_EPS = 1e-5


@settings(max_examples=10)
@given(mixture=gaussian_mixture_params(), seed=seeds)
def test_pf_ode_is_the_vp_path_marginal_velocity(mixture, seed):
    data = GaussianMixture(*mixture)
    d = data.dim
    gen = generator(seed)
    x = 2 * torch.randn(32, d, generator=gen, dtype=F64)
    t = 0.999 * torch.rand(32, generator=gen, dtype=F64)
    pi = independent(gaussian(torch.zeros(d, dtype=F64), torch.eye(d, dtype=F64)), data)
    fm = marginal_velocity(pi, VPDiffusionPath(), x, t)
    pf = vp_probability_flow(data)(x, t)
    assert torch.allclose(pf, fm, rtol=1e-8, atol=1e-8), (pf - fm).abs().max()


def _w2(mean1, cov1, mean2, cov2) -> float:
    fd = frechet_distance(*(a.numpy() for a in (mean1, cov1, mean2, cov2)))
    return math.sqrt(max(fd, 0.0))


@settings(max_examples=10)
@given(d=st.integers(2, 3), seed=seeds)  # odebench.metrics.quality.frechet_distance fails on 1-D inputs (scipy sqrtm)
def test_pf_ode_maps_the_prior_to_gaussian_data(d, seed):
    gen = generator(seed)
    data = gaussian(2 * torch.randn(d, generator=gen, dtype=F64), spd(d, gen, 0.05, 3.0))
    field = vp_probability_flow(data)
    eye = torch.eye(d, dtype=F64)
    p1, p_eps = vp_marginal(data, 1.0), vp_marginal(data, S_EPS)

    mean, cov = push_gaussian(field, p1.means[0], p1.covs[0], "rk4", nfe=200, t1=1 - S_EPS)
    assert torch.allclose(mean, p_eps.means[0], atol=1e-6), (mean, p_eps.means[0])
    assert torch.allclose(cov, p_eps.covs[0], atol=1e-6), (cov, p_eps.covs[0])

    mean, cov = push_gaussian(field, torch.zeros(d, dtype=F64), eye, "rk4", nfe=200, t1=1 - S_EPS)
    lipschitz = float(torch.linalg.eigvalsh(cov).max().sqrt())  # cov = J J^T for the flow's Jacobian J
    bound = (lipschitz * _w2(torch.zeros(d, dtype=F64), eye, p1.means[0], p1.covs[0])
             + _w2(p_eps.means[0], p_eps.covs[0], data.means[0], data.covs[0]))
    assert _w2(mean, cov, data.means[0], data.covs[0]) <= bound + 1e-6
    # and the bound is tight: the prior is N(0, I) up to a(1) ~ 0.007 times the data's scale
    scale = 1 + float(data.means[0].norm() + data.covs[0].trace().sqrt())
    assert bound < 0.02 * scale, (bound, scale)


@settings(max_examples=6)
@given(mixture=gaussian_mixture_params(), seed=seeds)
def test_pf_ode_carries_p1_to_mixture_data(mixture, seed):
    """Samples of p_1 (which is N(0, I) up to a(1) ~ 0.007) pushed by the PF-ODE follow p_{s_eps}."""
    data = GaussianMixture(*mixture)
    gen = generator(seed)
    x1 = vp_marginal(data, 1.0).sample(400, gen)
    field = vp_probability_flow(data)
    x, x_coarse = (solve(field, x1, "rk4", nfe=nfe, t1=1 - S_EPS).x for nfe in (160, 80))
    assert_same_law(x, x_coarse, vp_marginal(data, S_EPS), gen)
