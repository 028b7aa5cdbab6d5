"""Stochastic interpolants (odebench.methods.interpolants): gamma's boundary conditions and derivative, and marginal
preservation of the exact velocity b and score -eta / gamma through the method's own dynamics.

x_t = I(t, x0, x1) + gamma(t) z between two Gaussian mixtures (any two densities: the source need not be
N(0, I)). For these, b(x, t) = E[dI/dt + gamma' z | x_t = x] and eta(x, t) = E[z | x_t = x] are exact
(odebench.methods.exact with ``gamma``), and
  * b solves the continuity equation d_t log p + div b + b . grad log p = 0 (the velocity built from the
    probability current), for every interpolant path including encdec, which needs gamma > 0;
  * the method's ODE, fed the exact b, carries the exact law of x_{t_eps} to that of x_{1 - t_eps}
    (computed exactly for Gaussians), and its SDE dX = (b + eps s) dt + sqrt(2 eps) dW, fed the exact b
    and eta, does the same in law for mixtures (Monte Carlo).
"""

from __future__ import annotations

import torch
from _strategies import (
    F64,
    assert_same_law,
    generator,
    mixture_pairs,
    push_gaussian,
    seeds,
    spd,
)
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from odebench.bench.core.solvers import sample
from odebench.methods.exact import (
    GaussianMixture,
    gaussian,
    independent,
    interpolant_denoiser,
    marginal_log_prob,
    marginal_score,
    marginal_velocity,
    path_marginal,
)
from odebench.methods.interpolants import INTERPOLANT_PATHS, StochasticInterpolant

gammas = st.floats(0.1, 2.0)


def _interpolant(path: str, a: float, eps: float = 1.0) -> StochasticInterpolant:
    return StochasticInterpolant(path=path, gamma=a, eps=eps)


def _gamma64(method: StochasticInterpolant):
    """The method's gamma(t) -> (gamma, gamma') evaluated in float64."""
    return lambda t: method.gamma_of(t.to(F64))


def _exact_model(pi, method: StochasticInterpolant) -> dict:
    """The exact fields in the method's network layout: "b", or "b_eta" = [b, eta] along dim 1."""
    if not method.stochastic:
        return {"b": lambda x, t: marginal_velocity(pi, method.path, x, t)}
    gamma = _gamma64(method)
    return {"b_eta": lambda x, t: torch.cat([marginal_velocity(pi, method.path, x, t, gamma),
                                             interpolant_denoiser(pi, method.path, x, t, gamma)], 1)}


@settings(max_examples=10)
@given(a=gammas, t=st.floats(0.01, 0.99))
def test_gamma_vanishes_at_the_ends_and_has_the_right_derivative(a, t):
    method = _interpolant("linear", a)
    ends = method.gamma_of(torch.tensor([0.0, 1.0], dtype=F64))[0]
    assert torch.equal(ends, torch.zeros(2, dtype=F64))
    h = 1e-6
    g = lambda s: method.gamma_of(torch.tensor([s], dtype=F64))[0]
    fd = (g(t + h) - g(t - h)) / (2 * h)
    assert torch.allclose(method.gamma_of(torch.tensor([t], dtype=F64))[1], fd, rtol=1e-6, atol=1e-6)
    assert float(g(t)) > 0


@settings(max_examples=15)
@given(path=st.sampled_from(INTERPOLANT_PATHS), a=gammas, pair=mixture_pairs(), seed=seeds,
       t=st.floats(0.02, 0.98))
def test_interpolant_velocity_solves_the_continuity_equation(path, a, pair, seed, t):
    assume(path != "encdec" or abs(t - 0.5) > 1e-3)  # encdec's pieces meet at t = 1/2 (C^1 only)
    method = _interpolant(path, a)
    pi = independent(*(GaussianMixture(*p) for p in pair))
    gamma = _gamma64(method)
    x = path_marginal(pi, method.path, t, gamma).sample(8, generator(seed)).requires_grad_(True)
    tt = torch.full((len(x),), t, dtype=F64)
    h = 1e-6
    log_p = lambda s: marginal_log_prob(pi, method.path, x, tt + s, gamma)
    dt_logp = (log_p(h) - log_p(-h)) / (2 * h)
    b = marginal_velocity(pi, method.path, x, tt, gamma)
    div = sum(torch.autograd.grad(b[:, i].sum(), x, retain_graph=True)[0][:, i] for i in range(x.shape[1]))
    residual = dt_logp + div + (b * marginal_score(pi, method.path, x, tt, gamma)).sum(1)
    assert (residual.abs() / (dt_logp.abs() + div.abs() + 1)).max() < 1e-5, residual


@settings(max_examples=10)
@given(path=st.sampled_from(INTERPOLANT_PATHS), a=st.sampled_from([0.0, 0.5, 1.0]), d=st.integers(1, 2),
       seed=seeds)
def test_interpolant_ode_carries_the_gaussian_marginals(path, a, d, seed):
    assume(not (path in ("encdec", "vp_trig") and a == 0))  # both are refused without latent noise
    gen = generator(seed)
    source = gaussian(torch.randn(d, generator=gen, dtype=F64), spd(d, gen, 0.2, 2.0))
    target = gaussian(2 * torch.randn(d, generator=gen, dtype=F64), spd(d, gen, 0.1, 3.0))
    method = _interpolant(path, a)
    pi = independent(source, target)
    dyn = method.dynamics(_exact_model(pi, method))
    gamma = _gamma64(method) if method.stochastic else None
    start = path_marginal(pi, method.path, dyn.t0, gamma)
    mean, cov = push_gaussian(dyn.velocity, start.means[0], start.covs[0], "rk4", nfe=200, t0=dyn.t0,
                              t1=dyn.t1)
    want = path_marginal(pi, method.path, dyn.t1, gamma)
    assert torch.allclose(mean, want.means[0], rtol=1e-5, atol=1e-5), (mean, want.means[0])
    assert torch.allclose(cov, want.covs[0], rtol=1e-5, atol=1e-5), (cov, want.covs[0])


@settings(max_examples=5)
@given(path=st.sampled_from(INTERPOLANT_PATHS), eps=st.sampled_from([0.5, 1.0]), pair=mixture_pairs(),
       seed=seeds)
def test_interpolant_sde_carries_the_mixture_marginals(path, eps, pair, seed):
    method = _interpolant(path, 1.0, eps)
    pi = independent(*(GaussianMixture(*p) for p in pair))
    dyn = method.dynamics(_exact_model(pi, method))
    gamma = _gamma64(method)
    gen = generator(seed)
    x = path_marginal(pi, method.path, dyn.t0, gamma).sample(400, gen)
    ends = [sample(dyn, x, "euler_maruyama", nfe=n, gen=generator(seed + n)).x for n in (200, 100)]
    assert_same_law(ends[0], ends[1], path_marginal(pi, method.path, dyn.t1, gamma), gen)
