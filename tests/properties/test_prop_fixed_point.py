"""Fixed points of rectification (Liu, Gong, Liu 2023): straight couplings are unchanged, and reflow of
Gaussians is straight after one round.

A deterministic coupling x1 = b + A x0 whose straight lines never cross (the matrices (1 - t) I + t A are
invertible for t in [0, 1], true for A = expm(B) with |B|_2 < pi) is its own rectification, even when it is
not an optimal transport map (A may rotate): E[X1 - X0 | X_t = x] = x1 - x0 along every line.
The 1-rectified flow between N(0, I) and N(m, C) bends (straightness S > 0); its coupling is an affine map,
so the 2-rectified flow is straight: S = 0 up to solver error, and its coupling is the same map.
Straightness S = int_0^1 E |(Z1 - Z0) - v(Z_t, t)|^2 dt (Liu et al.) is integrated by the trapezoid rule on
the solver's trajectory.
"""

from __future__ import annotations

import torch
from _strategies import F64, generator, seeds, spd
from hypothesis import given, settings
from hypothesis import strategies as st

from odebench.bench.core.solvers import SolveResult, solve
from odebench.methods.exact import affine_map_coupling, gaussian, independent, rectified_velocity


@st.composite
def straight_couplings(draw):
    """(coupling, shift, matrix, seed) for x0 ~ N(mean0, cov0), x1 = shift + expm(B) x0, |B|_2 <= 2."""
    d = draw(st.integers(1, 3))
    seed = draw(seeds)
    gen = generator(seed)
    b = torch.randn(d, d, generator=gen, dtype=F64)
    b = b * draw(st.floats(0.1, 2.0)) / torch.linalg.matrix_norm(b, ord=2)
    matrix = torch.linalg.matrix_exp(b)
    mean0 = torch.randn(d, generator=gen, dtype=F64)
    shift = 2 * torch.randn(d, generator=gen, dtype=F64)
    return affine_map_coupling(mean0, spd(d, gen, 0.2, 2.0), shift, matrix), shift, matrix, seed


@settings(max_examples=15)
@given(problem=straight_couplings())
def test_straight_coupling_is_its_own_rectification(problem):
    pi, shift, matrix, seed = problem
    gen = generator(seed + 1)
    x0 = pi.source.sample(64, gen)
    x1 = shift + x0 @ matrix.T
    t = torch.cat([torch.tensor([1e-3, 1 - 1e-3], dtype=F64), torch.rand(62, generator=gen, dtype=F64)])
    xt = (1 - t)[:, None] * x0 + t[:, None] * x1
    v = rectified_velocity(pi, xt, t)
    scale = 1 + (x1 - x0).abs().max()
    assert torch.allclose(v, x1 - x0, atol=1e-8 * scale, rtol=0), (v - (x1 - x0)).abs().max()
    # and its flow reproduces the coupling
    z1 = solve(lambda x, s: rectified_velocity(pi, x, s), x0, "rk4", nfe=80).x
    assert torch.allclose(z1, x1, atol=1e-8 * scale, rtol=0), (z1 - x1).abs().max()


def _straightness(res: SolveResult, field) -> float:
    """int_0^1 E |(Z1 - Z0) - v(Z_t, t)|^2 dt by the trapezoid rule on the trajectory's time grid."""
    traj, ts = res.trajectory, res.t
    chord = traj[-1] - traj[0]
    gaps = torch.stack([(chord - field(z, s.expand(len(z)))).pow(2).sum(1).mean()
                        for z, s in zip(traj, ts, strict=True)])
    return float(torch.trapezoid(gaps, ts))


@settings(max_examples=10)
@given(d=st.integers(1, 3), seed=seeds)
def test_reflow_of_gaussians_is_straight(d, seed):
    gen = generator(seed)
    eye = torch.eye(d, dtype=F64)
    target = gaussian(2 * torch.randn(d, generator=gen, dtype=F64), spd(d, gen, 0.05, 4.0))
    source = gaussian(torch.zeros(d, dtype=F64), eye)
    z0 = source.sample(128, gen)

    first = independent(source, target)
    field1 = lambda x, t: rectified_velocity(first, x, t)
    run1 = solve(field1, z0, "rk4", nfe=120, trajectory=True)
    s1 = _straightness(run1, field1)

    # the 1-RF flow map is affine (the field is affine in x): read it off the images of 0 and e_i
    ends = solve(field1, torch.cat([torch.zeros(1, d, dtype=F64), eye]), "rk4", nfe=120).x
    shift, matrix = ends[0], (ends[1:] - ends[0]).T
    second = affine_map_coupling(torch.zeros(d, dtype=F64), eye, shift, matrix)
    field2 = lambda x, t: rectified_velocity(second, x, t)
    run2 = solve(field2, z0, "rk4", nfe=120, trajectory=True)
    s2 = _straightness(run2, field2)

    assert s1 > 0.01 * d, s1  # the independent coupling's flow bends
    assert s2 < 1e-8 * s1, (s1, s2)  # reflow is straight ...
    assert torch.allclose(run2.x, run1.x, atol=1e-7), (run2.x - run1.x).abs().max()  # ... with the same map
    # and the map is the OT map m + C^(1/2) z between the Gaussians (symmetric, PSD)
    assert torch.allclose(matrix, matrix.T, atol=1e-7)
    assert torch.allclose(matrix @ matrix, target.covs[0], atol=1e-6)
