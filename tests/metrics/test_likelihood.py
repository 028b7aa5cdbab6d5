"""NLL by the instantaneous change of variables against the closed-form Gaussian flow (docs/maths.md, "Likelihood")."""

import math

import pytest
import torch

from odebench.metrics.likelihood import (
    NLLConfig,
    bits_per_dim,
    dequantize,
    divergence_loop,
    draw_probes,
    nll,
    quantization_offset_bits,
    velocity_and_divergence_exact,
    velocity_and_divergence_hutchinson,
)

M = torch.tensor([1.0, -0.5, 2.0], dtype=torch.float64)
S = torch.tensor([0.5, 1.5, 0.8], dtype=torch.float64)


def gaussian_flow(x, t):
    """Exact 1-RF velocity from N(0, I) to N(m, diag s^2), per dimension."""
    t = t[:, None]
    return M + (t * S**2 - (1 - t)) / (t**2 * S**2 + (1 - t) ** 2) * (x - t * M)


def std_normal_log_prob(x):
    return -0.5 * x.pow(2).sum(1) - 0.5 * x.shape[1] * math.log(2 * math.pi)


def exact_nll(x):
    return -torch.distributions.Normal(M, S).log_prob(x).sum(1)


def data(n, seed=0):
    g = torch.Generator().manual_seed(seed)
    return M + S * torch.randn(n, 3, generator=g, dtype=torch.float64)


@pytest.mark.parametrize("divergence", ["exact", "loop"])
def test_exact_trace_nll_matches_gaussian_within_1e3_nats_per_dim(divergence):
    x1 = data(32)
    cfg = NLLConfig(divergence=divergence, solver="dopri5", rtol=1e-8, atol=1e-8)
    res = nll(gaussian_flow, x1, std_normal_log_prob, cfg)
    err = (res.nll - exact_nll(x1)).abs().max() / 3
    assert err < 1e-3, err
    # the source end is the inverse OT map x0 = (x1 - m) / s
    torch.testing.assert_close(res.x0, (x1 - M) / S, atol=1e-6, rtol=0)
    assert res.nfe > 0


def test_fixed_step_solver_converges_to_the_same_nll():
    x1 = data(16, seed=1)
    res = nll(gaussian_flow, x1, std_normal_log_prob, NLLConfig(solver="rk4", nfe=400, rtol=None, atol=None))
    assert res.nfe == 400
    assert (res.nll - exact_nll(x1)).abs().max() / 3 < 1e-3


# a rotation makes the Jacobian non-diagonal, so that Rademacher probes are noisy too
Q = torch.linalg.qr(torch.randn(3, 3, generator=torch.Generator().manual_seed(7), dtype=torch.float64))[0]


def rotated_flow(x, t):
    """The same flow in rotated coordinates: from N(0, I) to N(Q m, Q diag(s^2) Q^T)."""
    return gaussian_flow(x @ Q, t) @ Q.T


@pytest.mark.parametrize("probe", ["rademacher", "gaussian"])
def test_hutchinson_mean_within_three_standard_errors(probe):
    x1 = data(100, seed=2)
    cfg = NLLConfig(divergence="hutchinson", probe=probe, n_probes=2, rtol=1e-6, atol=1e-6)
    res = nll(rotated_flow, x1 @ Q.T, std_normal_log_prob, cfg, gen=torch.Generator().manual_seed(3))
    diff = res.nll - exact_nll(x1)  # rotations keep the density: log p(Q y) = log p_orig(y)
    se = diff.std() / math.sqrt(len(diff))
    assert se > 1e-3  # the estimator really is noisy
    assert diff.mean().abs() < 3 * se, (diff.mean(), se)


def test_divergence_estimators_agree_on_a_neural_field():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(6, 32), torch.nn.Tanh(), torch.nn.Linear(32, 5)).double()
    field = lambda x, t: net(torch.cat([x, t[:, None]], 1)) * torch.cos(t)[:, None]
    x = torch.randn(7, 5, dtype=torch.float64)
    t = torch.rand(7, dtype=torch.float64)
    v1, d1 = velocity_and_divergence_exact(field, x, t)
    v2, d2 = divergence_loop(field, x, t)
    torch.testing.assert_close(v1, field(x, t))
    torch.testing.assert_close(v1, v2)
    torch.testing.assert_close(d1, d2)
    probes = draw_probes(20000, x, "rademacher", torch.Generator().manual_seed(0))
    _, d3 = velocity_and_divergence_hutchinson(field, x, t, probes)
    torch.testing.assert_close(d3, d1, atol=0.05 * d1.abs().max().item() + 0.02, rtol=0)


def test_probes_have_identity_second_moment_and_right_values():
    g = torch.Generator().manual_seed(0)
    like = torch.zeros(3, 4)
    r = draw_probes(5000, like, "rademacher", g)
    assert set(r.unique().tolist()) == {-1.0, 1.0}
    gauss = draw_probes(5000, like, "gaussian", g)
    assert abs(gauss.pow(2).mean().item() - 1) < 0.02
    with pytest.raises(ValueError, match="rademacher"):
        draw_probes(1, like, "sphere")


def test_dequantize_stays_in_the_right_bin_and_offset_formula():
    levels = 17
    k = torch.arange(levels, dtype=torch.float32).repeat(50)
    x = 2 * k / (levels - 1) - 1  # how odebench.bench.data stores digits
    xd = dequantize(x[:, None], levels, torch.Generator().manual_seed(0))[:, 0]
    assert (xd >= -1).all() and (xd < 1).all()
    back = torch.floor((xd + 1) / 2 * levels)
    assert torch.equal(back, k)
    assert quantization_offset_bits(256) == 7.0
    assert abs(quantization_offset_bits(17) - math.log2(8.5)) < 1e-12
    assert bits_per_dim(torch.tensor(64 * math.log(2)), 64, 256).item() == pytest.approx(8.0)
    with pytest.raises(ValueError, match="grid"):
        dequantize(torch.tensor([[0.3]]), levels)


def test_uniform_model_gets_exactly_log2_levels_bits():
    """A model uniform on [-1, 1)^D has NLL_x = D ln 2, so bpd = 1 + log2(L / 2) = log2(L): one bin of L."""
    d = 4
    assert bits_per_dim(torch.tensor(d * math.log(2)), d, 17).item() == pytest.approx(math.log2(17))


def test_config_rejects_bad_settings():
    with pytest.raises(ValueError, match="divergence"):
        NLLConfig(divergence="approx")
    with pytest.raises(ValueError, match="NFE"):
        NLLConfig(solver="euler", rtol=None, atol=None)
    with pytest.raises(ValueError, match="SDE"):
        NLLConfig(solver="euler_maruyama", nfe=10)


def test_auto_divergence_takes_the_loop_for_small_dimension_and_the_jacobian_above():
    from odebench.metrics.likelihood import AUTO_LOOP_MAX_DIM, _nll_config

    assert _nll_config({}, 2).divergence == "loop"
    assert _nll_config({}, AUTO_LOOP_MAX_DIM).divergence == "exact"
    assert _nll_config({}, 64).divergence == "exact"
    assert _nll_config({}, 3072).divergence == "hutchinson"


A = torch.tensor([[0.3, 0.8], [-0.4, -0.1]], dtype=torch.float64)


def linear_flow(x, t):
    """v(x, t) = A x: x1 = exp(A) x0, div v = tr A everywhere."""
    return x @ A.T


def test_nll_of_a_linear_flow_is_its_closed_form():
    """For v = A x from N(0, I): x0 = exp(-A) x1, the divergence integral is tr A, and NLL = -log p0(x0) + tr A;
    the result carries all four (one point or several, every exact estimator)."""
    x1 = torch.tensor([[0.7, -1.2], [2.0, 0.5], [-0.3, 0.1]], dtype=torch.float64)
    x0 = x1 @ torch.linalg.matrix_exp(-A).T
    cfg = dict(solver="dopri5", rtol=1e-10, atol=1e-10)
    for divergence in ("exact", "loop"):
        for x in (x1, x1[:1]):
            res = nll(linear_flow, x, std_normal_log_prob, NLLConfig(divergence=divergence, **cfg))
            want = x0[: len(x)]
            torch.testing.assert_close(res.x0, want, atol=1e-8, rtol=0)
            torch.testing.assert_close(res.int_div, torch.full((len(x),), 0.2, dtype=torch.float64),
                                       atol=1e-8, rtol=0)
            torch.testing.assert_close(res.log_prob_source, std_normal_log_prob(want), atol=1e-7, rtol=0)
            torch.testing.assert_close(res.nll, 0.2 - std_normal_log_prob(want), atol=1e-7, rtol=0)


def test_hutchinson_nll_uses_the_probes_drawn_from_the_generator():
    """With one fixed probe e per point the divergence estimate of v = A x is e^T A e all along the path, so
    int_div equals it exactly, with e the first draw of ``gen`` (whatever the global stream)."""
    x1 = torch.randn(16, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    for probe in ("rademacher", "gaussian"):
        cfg = NLLConfig(divergence="hutchinson", n_probes=1, probe=probe, solver="rk4", nfe=8, rtol=None,
                        atol=None)
        e = draw_probes(1, x1, probe, torch.Generator().manual_seed(3))[0]
        torch.manual_seed(0)
        res = nll(linear_flow, x1, std_normal_log_prob, cfg, gen=torch.Generator().manual_seed(3))
        torch.testing.assert_close(res.int_div, ((e @ A.T) * e).sum(1), atol=1e-12, rtol=0)


def test_exact_divergences_of_a_linear_field_are_its_trace_for_a_single_point():
    """One point of a linear field: v = A x and div = tr A from the batched Jacobian and from the loop."""
    x = torch.tensor([[1.5, -2.0]], dtype=torch.float64)
    t = torch.zeros(1, dtype=torch.float64)
    for fn in (velocity_and_divergence_exact, divergence_loop):
        v, div = fn(linear_flow, x, t)
        torch.testing.assert_close(v, x @ A.T)
        torch.testing.assert_close(div, torch.tensor([0.2], dtype=torch.float64))


def test_loop_divergence_keeps_the_fields_dtype():
    """The loop's trace comes back in the field's dtype (bfloat16 stays bfloat16)."""
    x = torch.tensor([[1.0, 2.0], [0.5, -1.0]], dtype=torch.bfloat16)
    a = A.to(torch.bfloat16)
    v, div = divergence_loop(lambda y, t: y @ a.T, x, torch.zeros(2, dtype=torch.bfloat16))
    assert v.dtype == div.dtype == torch.bfloat16
    torch.testing.assert_close(div, torch.full((2,), 0.2, dtype=torch.bfloat16), atol=0.01, rtol=0)


def test_hutchinson_estimate_is_the_probe_quadratic_form():
    """For a linear field and given probes, the estimate is (1/K) sum_k e_k^T A e_k exactly (Gaussian probes,
    where e J e != e J / e)."""
    x = torch.tensor([[1.0, 2.0], [0.5, -1.0], [0.0, 3.0]], dtype=torch.float64)
    probes = draw_probes(4, x, "gaussian", torch.Generator().manual_seed(2))
    _, div = velocity_and_divergence_hutchinson(linear_flow, x, torch.zeros(3, dtype=torch.float64), probes)
    want = ((probes @ A.T) * probes).sum(2).mean(0)
    torch.testing.assert_close(div, want, atol=1e-12, rtol=0)


def test_probes_come_from_the_generator_in_the_dtype_of_the_data():
    """Rademacher probes (the default kind) are +-1 and Gaussian ones standard normal draws, both of the data's
    dtype and shape [K, B, *shape], drawn from ``gen`` alone."""
    like = torch.zeros(3, 2, dtype=torch.float64)
    for kind in ("rademacher", "gaussian"):
        torch.manual_seed(0)
        a = draw_probes(4, like, kind, torch.Generator().manual_seed(5))
        torch.manual_seed(1)
        b = draw_probes(4, like, kind, torch.Generator().manual_seed(5))
        assert a.dtype == torch.float64 and a.shape == (4, 3, 2) and torch.equal(a, b)
    g = torch.Generator().manual_seed(5)
    assert torch.equal(draw_probes(4, like, gen=torch.Generator().manual_seed(5)),
                       (2 * torch.randint(0, 2, (4, 3, 2), generator=g) - 1).double())
    g = torch.Generator().manual_seed(5)
    assert torch.equal(draw_probes(4, like, "gaussian", torch.Generator().manual_seed(5)),
                       torch.randn(4, 3, 2, generator=g, dtype=torch.float64))


def test_dequantize_adds_uniform_noise_from_the_generator_and_clamps_to_the_end_bins():
    """x = 2 (k + u) / L - 1 with u the generator's U[0, 1) draw in the data's dtype; levels one step beyond
    either end of the grid fall into the end bins, so the result stays in [-1, 1)."""
    levels = 5
    k = torch.tensor([[-1.0, 0.0, 2.0, 4.0, 5.0]], dtype=torch.float64)
    x = 2 * k / (levels - 1) - 1
    torch.manual_seed(0)
    out = dequantize(x, levels, torch.Generator().manual_seed(7))
    u = torch.rand(x.shape, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    torch.testing.assert_close(out, 2 * (k.clamp(0, levels - 1) + u) / levels - 1, atol=1e-15, rtol=0)
    assert out.dtype == torch.float64 and (out >= -1).all() and (out < 1).all()


def test_bits_per_dim_of_continuous_points_has_no_offset():
    """Without grey levels, bits/dim = NLL / (D ln 2)."""
    assert bits_per_dim(torch.tensor(6 * math.log(2)), 3).item() == pytest.approx(2.0, rel=1e-12)


def test_adaptive_config_needs_both_tolerances():
    """An adaptive solver is refused when either rtol or atol is missing."""
    for tol in (dict(rtol=None), dict(atol=None)):
        with pytest.raises(ValueError, match="rtol and atol"):
            NLLConfig(solver="dopri5", **tol)


def test_nll_options_reach_the_config():
    """Every NLL option reaches NLLConfig; the defaults are auto divergence (exact up to D = 128 inclusive),
    one Rademacher probe, dopri5 at 1e-5, and no tolerances for a fixed-step solver."""
    from odebench.metrics.likelihood import AUTO_EXACT_MAX_DIM, _nll_config

    assert _nll_config({}, AUTO_EXACT_MAX_DIM).divergence == "exact"
    assert _nll_config({}, AUTO_EXACT_MAX_DIM + 1).divergence == "hutchinson"
    assert _nll_config({}, 20) == NLLConfig(divergence="exact", n_probes=1, probe="rademacher", solver="dopri5",
                                            rtol=1e-5, atol=1e-5, nfe=None)
    assert _nll_config({"solver": "euler", "nfe": 8}, 20) == NLLConfig(
        divergence="exact", solver="euler", rtol=None, atol=None, nfe=8)
    opts = {"divergence": "hutchinson", "n_probes": 3, "probe": "gaussian", "solver": "rk4", "rtol": 1e-3,
            "atol": 1e-4, "nfe": 12}
    assert _nll_config(opts, 2) == NLLConfig(**opts)
    assert _nll_config({"divergence": "loop"}, 64).divergence == "loop"
