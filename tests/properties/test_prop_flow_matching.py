"""Flow matching (Lipman et al. 2023, Theorem 2): conditional and marginal losses have equal gradients.

At every time t, L_CFM(theta) = E |v_theta(x_t, t) - u_t|^2 and
L_FM(theta) = E |v_theta(x_t, t) - v(x_t, t)|^2 with v(x, t) = E[u_t | x_t = x] differ by the theta-free
constant E |u_t - v(x_t, t)|^2, so their parameter gradients are equal.

The expectations are computed, not sampled: Gauss-Hermite quadrature over the jointly Gaussian (x0, x1) of
every coupling component for L_CFM (x_t and u_t from odebench.methods.probability_paths), and over every Gaussian
component of the law of x_t for L_FM (v from odebench.methods.exact.marginal_velocity). The integrands are
smooth, so the rules converge fast; the tolerance is the change from a coarser rule (which bounds the finer
rule's error), and that change must stay below 3% of the gradient (it is usually far below 0.1%), so a marginal
velocity that moved the gradient by a few percent would fail.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from _strategies import F64, flow_paths, gaussian_mixture_params, generator, seeds
from hypothesis import given, settings
from hypothesis import strategies as st

from odebench.bench.nets.mlp import MLP
from odebench.methods.exact import GaussianMixture, gaussian, independent, marginal_velocity, path_marginal
from odebench.methods.probability_paths import PATHS, AffinePath

RULES = ((8, 30), (12, 60))  # (nodes per joint dimension, nodes per marginal dimension): coarse, fine


def _hermite(n: int, dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Tensor-product Gauss-Hermite rule for N(0, I_dim): nodes [n^dim, dim], weights [n^dim] (sum 1)."""
    z, w = np.polynomial.hermite_e.hermegauss(n)
    grid = np.stack(np.meshgrid(*[z] * dim, indexing="ij"), -1).reshape(-1, dim)
    weights = np.prod(np.stack(np.meshgrid(*[w] * dim, indexing="ij"), -1).reshape(-1, dim), 1)
    return torch.tensor(grid, dtype=F64), torch.tensor(weights / math.sqrt(2 * math.pi) ** dim, dtype=F64)


def _root(cov: torch.Tensor) -> torch.Tensor:
    vals, vecs = torch.linalg.eigh(cov)
    return vecs * vals.clamp_min(0).sqrt()


def _losses(net, pi, path: AffinePath, t: float, rule: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """(L_CFM, L_FM) at time t by quadrature (squared error summed over dimensions)."""
    d = pi.mean0.shape[1]
    z, w = _hermite(rule[0], 2 * d)
    x0s, x1s, ws = [], [], []
    for k in range(len(pi.weights)):
        joint = torch.cat([torch.cat([pi.cov00[k], pi.cov01[k]], 1),
                           torch.cat([pi.cov01[k].T, pi.cov11[k]], 1)])
        x = torch.cat([pi.mean0[k], pi.mean1[k]]) + z @ _root(joint).T
        x0s.append(x[:, :d]), x1s.append(x[:, d:]), ws.append(pi.weights[k] * w)
    weights = torch.cat(ws)
    tt = torch.full_like(weights, t)
    ps = path.sample(torch.cat(x0s), torch.cat(x1s), tt)
    conditional = (weights * (net(ps.x_t, tt) - ps.dx_t).pow(2).sum(1)).sum()

    law = path_marginal(pi, path, t)
    z, w = _hermite(rule[1], d)
    xs = torch.cat([law.means[k] + z @ _root(law.covs[k]).T for k in range(len(law.weights))])
    weights = torch.cat([law.weights[k] * w for k in range(len(law.weights))])
    tt = torch.full_like(weights, t)
    marginal = (weights * (net(xs, tt) - marginal_velocity(pi, path, xs, tt)).pow(2).sum(1)).sum()
    return conditional, marginal


@settings(max_examples=12)
@given(name=st.sampled_from(flow_paths()), mixture=gaussian_mixture_params(), seed=seeds,
       t=st.floats(0.02, 0.95))
def test_conditional_and_marginal_fm_gradients_agree(name, mixture, seed, t):
    path = PATHS.get(name)()
    target = GaussianMixture(*mixture)
    d = target.dim
    pi = independent(gaussian(torch.zeros(d, dtype=F64), torch.eye(d, dtype=F64)), target)
    gen = generator(seed)
    net = MLP((d,), hidden=16, depth=1, time_dim=4).to(F64)
    with torch.no_grad():  # seeded weights: independent of the global RNG and of test order
        for p in net.parameters():
            p.copy_(0.7 * torch.randn(p.shape, generator=gen, dtype=F64))
    params = list(net.parameters())
    flat = lambda loss: torch.cat([g.flatten() for g in torch.autograd.grad(loss, params)])
    (c_coarse, m_coarse), (c_fine, m_fine) = (_losses(net, pi, path, t, rule) for rule in RULES)
    g_c, g_m = flat(c_fine), flat(m_fine)
    quad_err = float((g_c - flat(c_coarse)).norm() + (g_m - flat(m_coarse)).norm())
    gap = float((g_c - g_m).norm())
    assert gap <= quad_err + 1e-10 * float(g_m.norm()), (gap, quad_err, float(g_m.norm()))
    assert quad_err < 3e-2 * float(g_m.norm()), (quad_err, float(g_m.norm()))  # the check has teeth
