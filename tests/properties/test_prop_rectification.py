"""Rectification (Liu, Gong, Liu 2023: marginal preservation and the convex-cost theorem), solved exactly.

pi_0 and pi_1 are smoothed empirical laws (a few points, Gaussian kernel eps); X = (X0, X1) is their
independent coupling, or a random pairing of the points, each pair smoothed. Its rectified velocity
v(x, t) = E[X1 - X0 | X_t = x] is exact (odebench.methods.exact.rectified_velocity), and the rectified coupling is
Z1 = ODE_v(Z0), Z0 ~ pi_0. The theory says
  * E c(Z1 - Z0) <= E c(X1 - X0) for every convex c, and
  * Z1 has the law pi_1 (the flow keeps the marginals of X_t).
Expectations are Monte-Carlo means; every comparison allows 4 standard errors plus the solver's error,
estimated by re-solving with half the NFE (rk4 error falls 16x per halving, so this bounds the fine one).
"""

from __future__ import annotations

import math

import torch
from _strategies import F64, assert_same_law, generator, points, seeds, spd
from hypothesis import given, settings
from hypothesis import strategies as st

from odebench.bench.core.solvers import solve
from odebench.methods.exact import independent, rectified_velocity, smoothed_empirical, smoothed_pairs

N_FLOW = 400  # samples pushed through the ODE (the expensive side)
N_COUPLING = 20_000  # samples of the independent coupling (cheap)
NFE = 160


@st.composite
def empirical_problems(draw):
    """(coupling, seed): a coupling of two smoothed empirical laws of 1-3 points in 1-D or 2-D, either
    independent (every pair of points) or a random pairing of the points (a mixture of smoothed pairs)."""
    d = draw(st.integers(1, 2))
    n0, n1 = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    eps = draw(st.floats(0.3, 0.6))
    seed = draw(seeds)
    gen = generator(seed)
    x0 = points(n0, d, 1.5, gen)
    x1 = points(n1, d, 1.5, gen) + draw(st.floats(-1.0, 1.0))
    if draw(st.booleans()):
        return independent(smoothed_empirical(x0, eps), smoothed_empirical(x1, eps)), seed
    n = min(n0, n1)
    return smoothed_pairs(x0[:n], x1[torch.randperm(n1, generator=gen)[:n]], eps), seed


def _rectify(pi, z0):
    """Z1 at NFE and at NFE / 2 (for the solver-error allowance)."""
    field = lambda x, t: rectified_velocity(pi, x, t)
    return solve(field, z0, "rk4", nfe=NFE).x, solve(field, z0, "rk4", nfe=NFE // 2).x


def _costs(d: int, gen: torch.Generator) -> dict:
    """Convex costs c: [N, D] -> [N]; the quadratic form and the hinge directions are random."""
    q = spd(d, gen, 0.1, 3.0)
    w = torch.randn(2, d, generator=gen, dtype=F64)
    return {
        "|z|^2": lambda z: z.pow(2).sum(1),
        "|z|": lambda z: z.norm(dim=1),
        "|z|^4": lambda z: z.pow(2).sum(1).pow(2),
        "z'Qz": lambda z: torch.einsum("ni,ij,nj->n", z, q, z),
        "max(w.z, 0)": lambda z: (z @ w.T).clamp_min(0).max(1).values,
        "softplus(w.z)": lambda z: torch.nn.functional.softplus(z @ w[0]),
    }


def _mean_se(v: torch.Tensor) -> tuple[float, float]:
    return float(v.mean()), float(v.std() / math.sqrt(len(v)))


@settings(max_examples=10)
@given(problem=empirical_problems())
def test_rectification_does_not_increase_convex_costs(problem):
    pi, seed = problem
    gen = generator(seed + 1)
    z0 = pi.source.sample(N_FLOW, gen)
    z1, z1_coarse = _rectify(pi, z0)
    x0, x1 = pi.sample(N_COUPLING, gen)
    for name, c in _costs(pi.mean0.shape[1], gen).items():
        rect, se_rect = _mean_se(c(z1 - z0))
        indep, se_indep = _mean_se(c(x1 - x0))
        solver_err = float((c(z1 - z0) - c(z1_coarse - z0)).abs().mean())
        slack = 4 * math.hypot(se_rect, se_indep) + solver_err
        assert rect <= indep + slack, (name, rect, indep, slack)


@settings(max_examples=10)
@given(problem=empirical_problems())
def test_rectified_flow_keeps_the_target_law(problem):
    """Z1's mean and covariance match pi_1's exact moments, and a two-sample distance to fresh pi_1 draws is
    small next to the same distance for a reference shifted by one standard deviation."""
    pi, seed = problem
    gen = generator(seed + 2)
    z0 = pi.source.sample(N_FLOW, gen)
    z1, z1_coarse = _rectify(pi, z0)
    assert_same_law(z1, z1_coarse, pi.target, gen)
