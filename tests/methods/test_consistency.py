"""Consistency training and distillation (odebench.methods.consistency) against closed forms.

Gaussian data x1 ~ N(m, s^2 I) on EDM's path x = x1 + sigma n has a linear probability-flow ODE: the denoiser is
D(x, sigma) = m + s^2 / (s^2 + sigma^2) (x - m) and (x - m) / sqrt(s^2 + sigma^2) is constant along a trajectory,
so the exact consistency function (the trajectory's state at sigma_min) is

    f*(x, sigma) = m + (x - m) sqrt(s^2 + sigma_min^2) / sqrt(s^2 + sigma^2).

With s = 0 (every data point at m) the trajectories are straight, x = m + sigma n: the CT pair (same n at both
levels) lies on one trajectory and a Heun step of the teacher is exact, so both losses vanish at f* exactly. The
networks below compute F so that the parametrisation gives theta f* + (1 - theta) c_skip x: theta = 1 is exact.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from odebench.bench.core.fields import Unsupported
from odebench.methods import get_method
from odebench.methods.consistency import Frozen, TrainingClock, ct_levels, ct_target_decay
from odebench.methods.edm import EDM

SHAPE = (2,)
MEAN = torch.tensor([0.7, -0.3], dtype=torch.float64)


def exact_consistency(x, sigma, s, sigma_min):
    sig = sigma.reshape(-1, 1)
    return MEAN + (x - MEAN) * math.sqrt(s**2 + sigma_min**2) / (s**2 + sig**2).sqrt()


class ExactF(nn.Module):
    """F of a consistency model whose f is theta f* + (1 - theta) c_skip x (f* of N(MEAN, s^2 I) data)."""

    def __init__(self, method, s: float):
        super().__init__()
        self.method, self.s = method, s
        self.theta = nn.Parameter(torch.ones((), dtype=torch.float64))

    def forward(self, u, c_noise):
        h = self.method.hparams
        sigma = torch.exp(4 * c_noise)
        sd, s_min = h["sigma_data"], h["sigma_min"]
        x = u * (sigma**2 + sd**2).sqrt().reshape(-1, 1)
        c_skip = (sd**2 / ((sigma - s_min) ** 2 + sd**2)).reshape(-1, 1)
        c_out = (sd * (sigma - s_min) / (sigma**2 + sd**2).sqrt()).reshape(-1, 1)
        target = exact_consistency(x, sigma, self.s, s_min)
        safe = torch.where(c_out > 0, c_out, torch.ones_like(c_out))
        return torch.where(c_out > 0, self.theta * (target - c_skip * x) / safe, torch.zeros_like(x))


class ExactEDMDenoiser(nn.Module):
    """EDM's F whose denoiser is the exact D(x, sigma) of N(MEAN, s^2 I) data."""

    def __init__(self, edm: EDM, s: float):
        super().__init__()
        self.edm, self.s = edm, s

    def forward(self, u, c_noise):
        sd = self.edm.sigma_data
        sigma = torch.exp(4 * c_noise).reshape(-1, 1)
        x = u * (sigma**2 + sd**2).sqrt()
        d = MEAN + self.s**2 / (self.s**2 + sigma**2) * (x - MEAN)
        return (d - sd**2 / (sigma**2 + sd**2) * x) / (sigma * sd / (sigma**2 + sd**2).sqrt())


class ExactOTVelocity(nn.Module):
    """fm_ot's velocity for data at MEAN: x_t = t m + (1 - k t) x0, v = m - k x0, k = 1 - sigma_min."""

    def __init__(self, k: float):
        super().__init__()
        self.k = k

    def forward(self, x, t):
        t = t.reshape(-1, 1)
        return MEAN - self.k * (x - t * MEAN) / (1 - self.k * t)


def exact_model(method, s: float, teacher: nn.ModuleDict | None = None) -> nn.ModuleDict:
    nets = {"F": ExactF(method, s), "target": ExactF(method, s).requires_grad_(False), "clock": TrainingClock()}
    if teacher is not None:
        nets["teacher"] = Frozen(teacher)
    model = nn.ModuleDict(nets)
    model["clock"].total.fill_(1000)
    return model


def batch(method, n: int = 512, s: float = 0.0, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    x0 = method.hparams["sigma_max"] * torch.randn(n, *SHAPE, generator=gen, dtype=torch.float64)
    x1 = MEAN + s * torch.randn(n, *SHAPE, generator=gen, dtype=torch.float64)
    return x0, x1, gen


def loss_and_grad(method, model, x0, x1, gen):
    model.train()
    loss = method.loss(model, x0, x1, gen)
    (grad,) = torch.autograd.grad(loss, model["F"].theta)
    return float(loss.detach()), float(grad)


CASES = [("consistency_training", {}, None),
         ("consistency_distillation", {"teacher": "edm"}, lambda m: nn.ModuleDict({"F": ExactEDMDenoiser(EDM(), 0.0)})),
         ("consistency_distillation", {"teacher": "fm_ot"},
          lambda m: nn.ModuleDict({"v": ExactOTVelocity(1 - m.parent().hparams["sigma_min"])}))]


@pytest.mark.parametrize("name,hp,teacher", CASES, ids=["ct", "cd-edm", "cd-fm_ot"])
def test_loss_and_gradient_vanish_at_the_exact_consistency_function(name, hp, teacher):
    method = get_method(name, **hp)
    model = exact_model(method, 0.0, teacher(method) if teacher else None)
    x0, x1, gen = batch(method)
    loss, grad = loss_and_grad(method, model, x0, x1, gen)
    assert loss < 1e-20 and abs(grad) < 1e-10
    # away from it (theta = 0.5) the same batch gives a loss and a gradient ten orders of magnitude larger
    model["F"].theta.data.fill_(0.5)
    model["clock"].step.zero_()
    loss, grad = loss_and_grad(method, model, *batch(method))
    assert loss > 1e-8 and abs(grad) > 1e-6


def test_distillation_of_a_gaussian_teacher_is_consistent_to_heuns_order():
    """s > 0: the ODE is curved, Heun's step is not exact; the loss at f* shrinks like the step's error (order 3
    in the step: squared, order 6) as the levels refine, while a wrong map keeps its loss. Four times finer
    steps: about 4^6 = 4096 for Heun (measured 6500), 4^4 = 256 for an Euler step."""
    s = 0.8
    losses = []
    for n_levels in (10, 40):
        method = get_method("consistency_distillation", teacher="edm", n_levels=n_levels)
        model = exact_model(method, s, nn.ModuleDict({"F": ExactEDMDenoiser(EDM(), s)}))
        model.eval()
        with torch.no_grad():
            losses.append(float(method.loss(model, *batch(method, 4096, s))))
    assert losses[1] < losses[0] / 2000
    method = get_method("consistency_distillation", teacher="edm", n_levels=40)
    wrong = exact_model(method, 0.5, nn.ModuleDict({"F": ExactEDMDenoiser(EDM(), s)}))
    wrong.eval()
    with torch.no_grad():
        assert float(method.loss(wrong, *batch(method, 4096, s))) > 100 * losses[1]


@pytest.mark.parametrize("name", ["consistency_training", "consistency_distillation"])
def test_boundary_condition_holds_exactly_for_any_network(name):
    method = get_method(name)
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 2))  # any network, here one that ignores nothing: F(u, c) = W [u, c] + b

    class AnyF(nn.Module):
        def forward(self, u, c):
            return 1e3 * net(torch.cat([u, c.reshape(-1, 1)], 1))

    x = torch.randn(16, *SHAPE)
    sigma_min = torch.full((16,), method.hparams["sigma_min"])
    assert torch.equal(method.consistency(AnyF(), x, sigma_min), x)
    # in unified time: the flow map from t = 1 (sigma_min) to the data end is the identity
    dyn = method.dynamics(nn.ModuleDict({"F": AnyF()}))
    one = torch.ones(16)
    assert torch.equal(dyn.flow_map(x, one, one), x)
    assert not torch.allclose(dyn.flow_map(x, torch.zeros(16), one), x)


def test_flow_map_refuses_targets_before_the_data_end():
    method = get_method("consistency_training")
    dyn = method.dynamics(nn.ModuleDict({"F": nn.Identity()}))
    with pytest.raises(Unsupported, match="only to the data end"):
        dyn.flow_map(torch.zeros(3, 2), torch.zeros(3), torch.full((3,), 0.5))


def test_time_maps_sigma_affinely_like_edm():
    method = get_method("consistency_training")
    sched = method.dynamics(nn.ModuleDict({"F": nn.Identity()})).schedule
    t = torch.tensor([0.0, 0.25, 1.0], dtype=torch.float64)
    alpha, sigma = sched.alpha_sigma(t)
    assert torch.equal(alpha, torch.ones(3, dtype=torch.float64))
    assert torch.allclose(sigma, torch.tensor([80.0, 80 - 0.25 * (80 - 0.002), 0.002], dtype=torch.float64))
    assert torch.allclose(sched.t_of_log_snr(-torch.log(sigma), 0.0, 1.0), t)
    assert method.prior(SHAPE).scale == 80.0


@pytest.mark.parametrize("total", [100, 800_000])
def test_curriculum_follows_the_papers_formulas(total):
    s0, s1, mu0 = 2, 150, 0.9
    for k in (0, 1, total // 3, total // 2, total - 1, total):
        n = math.ceil(math.sqrt(k / total * ((s1 + 1) ** 2 - s0**2) + s0**2) - 1) + 1
        assert ct_levels(k, total, s0, s1) == n
        assert ct_target_decay(k, total, s0, s1, mu0) == pytest.approx(math.exp(s0 * math.log(mu0) / n), rel=1e-15)
    assert ct_levels(0, total, s0, s1) == s0 and ct_levels(total, total, s0, s1) == s1 + 1
    assert ct_target_decay(0, total, s0, s1, mu0) == pytest.approx(mu0)
    assert ct_levels(total // 2, total, s0, s1) == 107  # sqrt((151^2 - 4) / 2 + 4) = 106.8


def test_training_steps_move_the_target_by_the_curriculums_decay():
    method = get_method("consistency_training", s1=10)
    torch.manual_seed(0)
    model = nn.ModuleDict({"F": nn.Linear(2, 2), "target": nn.Linear(2, 2).requires_grad_(False),
                           "clock": TrainingClock()})

    class Net(nn.Module):  # the loss calls F(x, c_noise): a linear layer on x
        def __init__(self, lin):
            super().__init__()
            self.lin = lin

        def forward(self, x, c):
            return self.lin(x)

    model = nn.ModuleDict({"F": Net(model["F"]), "target": Net(model["target"]), "clock": model["clock"]})
    method.prepare(model, 10, None)
    x0, x1 = 80 * torch.randn(8, 2), torch.randn(8, 2)
    model.train()
    method.loss(model, x0, x1, None)  # step 0: the target starts as the online network
    assert torch.equal(model["target"].lin.weight, model["F"].lin.weight)
    with torch.no_grad():
        model["F"].lin.weight.add_(1.0)  # an optimiser step
    before = model["target"].lin.weight.clone()
    method.loss(model, x0, x1, None)  # step 1: the update after step 0, with mu(0)
    mu = ct_target_decay(0, 10, 2, 10, 0.9)
    assert torch.allclose(model["target"].lin.weight, mu * before + (1 - mu) * model["F"].lin.weight)
    assert int(model["clock"].step) == 2
    # a held-out evaluation (no gradient) leaves the target and the clock alone
    model.eval()
    with torch.no_grad():
        method.loss(model, x0, x1, None)
    assert int(model["clock"].step) == 2


def test_loss_refuses_an_unprepared_model():
    method = get_method("consistency_distillation")
    model = nn.ModuleDict({"F": nn.Identity(), "target": nn.Identity(), "clock": TrainingClock()})
    with pytest.raises(RuntimeError, match="not prepared"):
        method.loss(model, torch.zeros(2, 2), torch.zeros(2, 2), None)


@pytest.mark.parametrize("hp, words", [({"teacher": "consistency_training"}, "offers no"),
                                       ({"teacher": "no_such_method"}, "unknown method"),
                                       ({"n_levels": 1}, "n_levels"), ({"mu": 1.0}, "mu must")])
def test_bad_distillation_settings_are_refused(hp, words):
    with pytest.raises(ValueError, match=words):
        get_method("consistency_distillation", **hp)


def test_bad_training_settings_are_refused():
    with pytest.raises(ValueError, match="s0 <= s1"):
        get_method("consistency_training", s0=10, s1=5)
    with pytest.raises(ValueError, match="distance"):
        get_method("consistency_training", distance="lpips")
