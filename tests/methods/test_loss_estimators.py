"""Each training loss equals its documented estimator on the points its networks were shown.

Stub networks with closed-form outputs record the (x, t) they are called at; from those the test rebuilds the
path point, the noise and the loss value by the formulas of docs/maths.md and the method docstrings. Also: every
loss draws its randomness from the generator it is given, hparam bounds, and the cache-key configs that hide
hparams."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from odebench.methods import get_method
from odebench.methods.base import uniform_t
from odebench.methods.couplings import PairCoupling
from odebench.methods.probability_paths import VPSchedule

D = 3  # an odd width, so a network output split in two halves is not also split in three


class Stub(nn.Module):
    """A network ``f(x, t)`` given by a closed form; records every call."""

    def __init__(self, fn):
        super().__init__()
        self.fn, self.calls = fn, []

    def forward(self, x, t):
        assert t.shape == (x.shape[0],)
        self.calls.append((x.clone(), t.clone()))
        return self.fn(x, t)


def _batch(n=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(n, D, generator=g, dtype=torch.float64),
            1.0 + torch.randn(n, D, generator=g, dtype=torch.float64))


def _tt(t):
    return t[:, None]


def test_curvature_loss_is_flow_matching_from_the_encoded_point_plus_beta_kl():
    """z = mu + sigma x0 with the encoder's moments at t = 0; x_t = t x1 + (1 - t) z; the loss is
    mean ||v(x_t, t) - (x1 - z)||^2 + beta KL(q || N(0, I)) / D."""
    x0, x1 = _batch()
    method = get_method("curvature_min", beta=3.0)
    enc = Stub(lambda x, t: torch.cat([0.5 * x, torch.full_like(x, math.log(0.25))], dim=1))
    v = Stub(lambda x, t: (1 + _tt(t)) * x)
    loss = method.loss(nn.ModuleDict({"v": v, "enc": enc}), x0, x1, torch.Generator().manual_seed(1))
    assert torch.equal(enc.calls[0][1], torch.zeros(len(x1), dtype=torch.float64))
    z = 0.5 * x1 + 0.5 * x0
    (x_t, t), = v.calls
    assert (t >= 0).all() and (t < 1).all()
    torch.testing.assert_close(x_t, _tt(t) * x1 + (1 - _tt(t)) * z)
    flow = ((1 + _tt(t)) * x_t - (x1 - z)).pow(2).mean()
    kl = 0.5 * ((0.5 * x1).pow(2) + 0.25 - 1 - math.log(0.25)).sum(1).mean() / D
    torch.testing.assert_close(loss, flow + 3.0 * kl)


def test_stochastic_interpolant_loss_is_the_antithetic_estimator():
    """With x0 = x1 = 0 the path point is +-gamma(t) z; the loss is the average over the antithetic pair of
    |b|^2 - 2 (dI + s gamma' z) . b + |eta|^2 - 2 s z . eta, gamma(t) = sqrt(a t (1 - t))."""
    a = 0.7
    method = get_method("interpolant", gamma=a)
    net = Stub(lambda x, t: torch.cat([(1 + _tt(t)) * x, x], dim=1))  # b = (1 + t) x, eta = x
    zeros = torch.zeros(64, D, dtype=torch.float64)
    loss = method.loss(nn.ModuleDict({"b_eta": net}), zeros, zeros, torch.Generator().manual_seed(2))
    (xp, t), (xm, t2) = net.calls
    assert torch.equal(t, t2) and torch.equal(xm, -xp)  # the same t, with +z and -z
    g = torch.sqrt(a * t * (1 - t))
    dg = a * (1 - 2 * t) / (2 * g)
    z = xp / _tt(g)
    w, g, dg = 1 + _tt(t), _tt(g), _tt(dg)
    expected = ((w**2 * g**2 - 2 * w * g * dg + g**2 - 2 * g) * z**2).mean()
    torch.testing.assert_close(loss, expected)


def test_diffusion_loss_is_noise_prediction_at_the_vp_point():
    """x_s = a(s) x1 + sigma(s) eps with eps = x0 and s = 1 - t in [s_eps, 1]; loss = mean ||eps_hat - eps||^2."""
    x0, x1 = _batch(4000)
    method = get_method("ddpm")
    net = Stub(lambda x, t: 2 * x)
    loss = method.loss(nn.ModuleDict({"eps": net}), x0, x1, torch.Generator().manual_seed(3))
    (x_s, t), = net.calls
    s = 1 - t
    assert (s >= 1e-5).all() and (s <= 1).all() and s.max() > 0.99
    a, sigma = VPSchedule().alpha_sigma(s)
    torch.testing.assert_close(x_s, _tt(a) * x1 + _tt(sigma) * x0, rtol=1e-5, atol=1e-5)  # s is drawn in float32
    torch.testing.assert_close(loss, (2 * x_s - x0).pow(2).mean())


def test_distilled_rectified_flow_loss_is_the_one_step_error():
    """A distilled flow is trained at t = 0 only: loss = mean ||x1 - (x0 + v(x0, 0))||^2."""
    x0, x1 = _batch()
    v = Stub(lambda x, t: 0.3 * x + 0.1)
    loss = get_method("rf", k=2, distill=True).loss(nn.ModuleDict({"v": v}), x0, x1, None)
    assert torch.equal(v.calls[0][1], torch.zeros(len(x0), dtype=torch.float64))
    torch.testing.assert_close(loss, (x1 - (x0 + 0.3 * x0 + 0.1)).pow(2).mean())


@pytest.mark.parametrize("name, hp", [("fm_ot", {}), ("otcfm", {}), ("curvature_min", {}), ("rf", {}),
                                      ("interpolant", {"gamma": 0.5}), ("fm_diffusion", {})])
def test_every_loss_draws_its_randomness_from_the_given_generator(name, hp):
    """Equal generator seeds give equal losses whatever the global RNG holds."""
    method = get_method(name, **hp)
    torch.manual_seed(0)
    model = method.networks(lambda out_mult=1, **size: nn.Sequential(nn.Linear(D + 1, 16), nn.Tanh(),
                                                            nn.Linear(16, D * out_mult)), (D,))
    model = nn.ModuleDict({k: _TimeNet(m) for k, m in model.items()})
    x0, x1 = _batch(32)
    x0, x1 = x0.float(), x1.float()
    losses = []
    for global_seed in (1, 2):
        torch.manual_seed(global_seed)
        losses.append(method.loss(model, x0, x1, torch.Generator().manual_seed(9)))
    assert torch.equal(losses[0], losses[1])


class _TimeNet(nn.Module):
    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x, t):
        return self.net(torch.cat([x, t[:, None]], 1))


def test_uniform_t_fills_the_interval_inside_eps():
    """Training times are uniform on [eps, 1 - eps]: inside it, and reaching close to both ends."""
    t = uniform_t(4000, torch.Generator().manual_seed(0), "cpu", eps=0.1)
    assert t.min() >= 0.1 and t.max() <= 0.9
    assert t.min() < 0.102 and t.max() > 0.898


def test_pair_coupling_draws_aligned_pairs_from_the_generator():
    """Pairs stay pairs (x1[i] belongs to x0[i]) and the draw is fixed by the generator's seed."""
    x0 = torch.arange(10.0)[:, None]
    coupling = PairCoupling(x0, 10 * x0)
    torch.manual_seed(1)
    a0, a1 = coupling.draw(50, torch.Generator().manual_seed(4))
    torch.manual_seed(2)
    b0, _ = coupling.draw(50, torch.Generator().manual_seed(4))
    assert torch.equal(a1, 10 * a0) and torch.equal(a0, b0)


def test_hparam_bounds_are_inclusive_where_documented():
    """beta >= 0 and sigma_min in [0, 1) accept their closed ends; fm_diffusion needs 0 < beta_min < beta_max."""
    get_method("curvature_min", beta=0.0)
    get_method("curvature_min", beta=0.5)
    get_method("fm_ot", sigma_min=0.0)
    for bad in (1.0, 1.5):
        with pytest.raises(ValueError, match="sigma_min"):
            get_method("fm_ot", sigma_min=bad)
    for lo, hi in ((0.0, 20.0), (5.0, 5.0)):
        with pytest.raises(ValueError, match="beta_min"):
            get_method("fm_diffusion", beta_min=lo, beta_max=hi)
    for lo, hi in ((0.0, 12.0), (3.0, 3.0)):
        with pytest.raises(ValueError, match="sigma_min"):
            get_method("score_ve", sigma_min=lo, sigma_max=hi)


def test_fm_diffusion_uses_its_own_schedule_and_stops_at_t_max():
    """Non-default betas reach the hparams and the path (alpha_t = a(1 - t) of that schedule); the dynamics
    end at t_max < 1, where the VP path is still regular."""
    method = get_method("fm_diffusion", beta_min=0.5, beta_max=5.0)
    assert method.hparams == {"beta_min": 0.5, "beta_max": 5.0}
    t = torch.tensor([0.2, 0.7], dtype=torch.float64)
    alpha, sigma = VPSchedule(0.5, 5.0).alpha_sigma(1 - t)
    c = method.path.coefficients(t)
    torch.testing.assert_close(c.alpha_t, alpha)
    torch.testing.assert_close(c.sigma_t, sigma)
    assert method.dynamics(nn.ModuleDict({"v": Stub(lambda x, t: x)})).t1 == 1 - 1e-5


def test_configs_that_hide_inactive_hparams_are_stable():
    """rf round 1 and a deterministic interpolant key only the hparams that act; these dicts name cached
    models, so they must not change."""
    assert get_method("rf", pair_nfe=7).config() == {"name": "rf", "k": 1, "distill": False}
    assert get_method("interpolant", gamma=0.0, path="trig").config() == {"name": "interpolant", "path": "trig",
                                                                          "gamma": 0.0}


def test_score_ve_corrector_uses_the_snr_hparam():
    """The Langevin corrector of score_ve takes its step count and snr from the hparams."""
    method = get_method("score_ve", corrector_steps=3, snr=0.3)
    corr = method.corrector(nn.ModuleDict({"score": Stub(lambda x, t: -x)}))
    assert (corr.n_steps, corr.snr) == (3, 0.3)
