"""The authors' variance-preserving trigonometric interpolant (path ``vp_trig``)."""

import pytest
import torch

from odebench.methods import get_method


def test_vp_trig_preserves_unit_variance_and_its_derivatives_are_the_coefficients_slopes():
    method = get_method("interpolant", path="vp_trig", gamma=1.5)
    t = torch.linspace(0.0, 1.0, 41, dtype=torch.float64, requires_grad=True)
    c = method.path.coefficients(t)
    g2 = 1.5 * t * (1 - t)
    torch.testing.assert_close(c.alpha_t**2 + c.sigma_t**2 + g2, torch.ones_like(t))
    for value, slope in ((c.alpha_t, c.d_alpha_t), (c.sigma_t, c.d_sigma_t)):
        (grad,) = torch.autograd.grad(value.sum(), t, retain_graph=True)
        torch.testing.assert_close(grad, slope)
    assert float(c.alpha_t[0]) == 0 and float(c.sigma_t[-1]) == pytest.approx(0, abs=1e-12)


def test_vp_trig_samples_keep_unit_variance_between_unit_gaussians():
    """x_t = I + gamma z with x0, x1, z independent N(0, I): every x_t is N(0, I) (the plain trig path with
    the same gamma is not: its variance is 1 + gamma^2)."""
    gen = torch.Generator().manual_seed(0)
    n = 200_000
    x0, x1, z = (torch.randn(n, 1, generator=gen, dtype=torch.float64) for _ in range(3))
    for path, want in (("vp_trig", 1.0), ("trig", 1.0 + 2.0 * 0.25)):
        method = get_method("interpolant", path=path, gamma=2.0)
        t = torch.full((n,), 0.5, dtype=torch.float64)
        g, _ = method.gamma_of(t)
        x_t = method.path.sample(x0, x1, t).x_t + g[:, None] * z
        assert float(x_t.var()) == pytest.approx(want, rel=0.02)


@pytest.mark.parametrize("gamma", [0.0, 4.0, 5.0])
def test_vp_trig_needs_latent_noise_below_four(gamma):
    with pytest.raises(ValueError, match="vp_trig"):
        get_method("interpolant", path="vp_trig", gamma=gamma)
