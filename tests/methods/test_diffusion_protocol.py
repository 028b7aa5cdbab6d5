"""Song et al.'s sampling and likelihood protocol for the diffusion baselines: the final denoising call of
the SDE samplers, the reverse-diffusion predictor of VE's pc, and the likelihood integral to s = 1e-5."""

import math

import pytest
import torch
from test_diffusion import SD, M, exact_model
from torch import nn

from odebench.bench.core.solvers import sample
from odebench.metrics import METRICS
from odebench.metrics.registry import EvalContext


class RecordingNet(nn.Module):
    """Wraps a network and records the time of every call ([B] -> its first entry)."""

    def __init__(self, net):
        super().__init__()
        self.net, self.times = net, []

    def forward(self, x, t):
        self.times.append(float(t[0]))
        return self.net(x, t)


def recorded(name: str, **hp):
    method, model = exact_model(name, **hp)
    key = next(iter(model))
    model[key] = RecordingNet(model[key])
    return method, model, model[key]


@pytest.mark.parametrize("name, solver, nfe, hp", [
    ("ddpm", "euler_maruyama", 6, {}), ("ddpm", "ancestral", 6, {}), ("score_ve", "euler_maruyama", 6, {}),
    ("score_ve", "ancestral", 6, {}), ("score_ve", "pc", 7, {"corrector_steps": 1})])
def test_sde_samplers_end_with_a_counted_denoising_call_to_s0(name, solver, nfe, hp):
    """The last network call is at t1 (s = sampling_eps), on the state the grid ended with, and the sample is
    Tweedie's (x - sigma eps_hat) / a there: the sample sits at s = 0 and the call is in the NFE."""
    method, model, net = recorded(name, **hp)
    dyn = method.dynamics(model)
    res = sample(dyn, method.prior((2,)).sample(16, torch.Generator().manual_seed(0)), solver, nfe=nfe,
                 gen=torch.Generator().manual_seed(1), trajectory=True)
    assert res.nfe == nfe == len(net.times)
    assert net.times[-1] == pytest.approx(dyn.t1)
    assert float(res.t[-1]) == 1.0 and float(res.t[-2]) == pytest.approx(dyn.t1)
    before = res.trajectory[-2]
    t1 = torch.full((16,), dyn.t1)
    sch = method.schedule(1 - t1)
    eps = method.eps_hat(model, before, 1 - t1)
    tweedie = (before - sch.sigma[:, None] * eps) / sch.log_alpha.exp()[:, None]
    torch.testing.assert_close(res.x, tweedie)
    torch.testing.assert_close(res.trajectory[-1], res.x)


@pytest.mark.parametrize("name, solver", [("ddpm", "euler_maruyama"), ("score_ve", "pc")])
def test_without_denoise_the_sampler_ends_at_t1_with_its_mean(name, solver):
    method, model, net = recorded(name, denoise=False, **({"corrector_steps": 1} if solver == "pc" else {}))
    dyn = method.dynamics(model)
    assert dyn.denoise is None
    x0 = method.prior((2,)).sample(16, torch.Generator().manual_seed(0))
    res = sample(dyn, x0, solver, nfe=6, gen=torch.Generator().manual_seed(1))
    assert res.nfe == 6 and float(res.t[-1]) == pytest.approx(dyn.t1)
    assert net.times[-1] < dyn.t1  # the last call starts the last step; nothing is called at t1


def test_ode_solvers_never_denoise():
    method, model, net = recorded("ddpm")
    dyn = method.dynamics(model)
    res = sample(dyn, torch.randn(8, 2), "euler", nfe=5)
    assert res.nfe == 5 and float(res.t[-1]) == pytest.approx(dyn.t1) and net.times[-1] < dyn.t1


def test_denoising_takes_one_nfe_of_the_budget_and_says_so():
    from odebench.bench.core.fields import BudgetTooSmall

    method, model = exact_model("ddpm")
    with pytest.raises(BudgetTooSmall, match="plus 1 for the final denoising call"):
        sample(method.dynamics(model), torch.randn(4, 2), "euler_maruyama", nfe=1)


def test_reverse_diffusion_predictor_is_songs_update():
    """VE: x + (sigma^2 - sigma'^2) score + sqrt(sigma^2 - sigma'^2) z. VP with the exact transition
    (beta = 1 - r^2): (2 - sqrt(1 - beta)) x + beta score + sqrt(beta) z."""
    x, eps = torch.randn(5, 2, dtype=torch.float64), torch.randn(5, 2, dtype=torch.float64)
    t, t_next = torch.full((5,), 0.3, dtype=torch.float64), torch.full((5,), 0.45, dtype=torch.float64)
    ve, _ = exact_model("score_ve")
    sig, sig_next = ve.schedule(1 - t).sigma[0], ve.schedule(1 - t_next).sigma[0]
    torch.testing.assert_close(ve.reverse_diffusion_step(x, eps, t, t_next, None, last=True),
                               x + (sig**2 - sig_next**2) * (-eps / sig))
    vp, _ = exact_model("ddpm")
    now, nxt = vp.schedule(1 - t), vp.schedule(1 - t_next)
    beta = 1 - ((now.log_alpha - nxt.log_alpha).exp()[0]) ** 2
    torch.testing.assert_close(vp.reverse_diffusion_step(x, eps, t, t_next, None, last=True),
                               (2 - (1 - beta).sqrt()) * x + beta * (-eps / now.sigma[0]))
    n = 40000
    ones = torch.ones(n, dtype=torch.float64)
    draws = ve.reverse_diffusion_step(x[:1].expand(n, 2), eps[:1].expand(n, 2), 0.3 * ones, 0.45 * ones,
                                      torch.Generator().manual_seed(2))
    assert abs(draws.std(0) / (sig**2 - sig_next**2).sqrt() - 1).max() < 0.03


def test_ve_pc_uses_the_reverse_diffusion_predictor_by_default():
    ve, model = exact_model("score_ve")
    assert ve.hparams["predictor"] == "reverse_diffusion"
    dyn = ve.dynamics(model)
    assert dyn.predictor_step == ve.reverse_diffusion_step
    em, model = exact_model("score_ve", predictor="euler_maruyama")
    assert em.dynamics(model).predictor_step is None
    x0 = torch.randn(64, 2) * 50
    a = sample(dyn, x0, "pc", nfe=21, gen=torch.Generator().manual_seed(4)).x
    b = sample(em.dynamics(model), x0, "pc", nfe=21, gen=torch.Generator().manual_seed(4)).x
    assert not torch.allclose(a, b)


def test_pc_with_the_reverse_diffusion_predictor_reaches_the_gaussian_law():
    ve, model = exact_model("score_ve")
    gen = torch.Generator().manual_seed(5)
    x = sample(ve.dynamics(model), ve.prior((2,)).sample(20000, gen), "pc", nfe=401, gen=gen).x
    assert (x.mean(0) - M).abs().max() < 0.06 and (x.std(0) / SD - 1).abs().max() < 0.05


class NarrowEps(nn.Module):
    """The exact eps of data N(m, sd^2 I) under ddpm's path: sigma (x - a m) / (a^2 sd^2 + sigma^2)."""

    def __init__(self, method, m: float, sd: float):
        super().__init__()
        self.method, self.m, self.sd = method, m, sd

    def forward(self, x, t):
        sch = self.method.schedule(1 - t)
        a, sig = sch.log_alpha.exp()[:, None], sch.sigma[:, None]
        return sig * (x - a * self.m) / (a**2 * self.sd**2 + sig**2)


def test_vp_likelihood_integrates_to_1e5_and_gets_the_exact_nll():
    """The nll metric ends its integral at s = 1e-5 (recorded in its settings), not at sampling's 1e-3. For
    narrow data N(0.3, 0.01^2 I) with the exact eps it then meets the data's own NLL (measured: within 0.001
    nats); integrating to 1e-3, where the path's noise is about as wide as the data, is off by 0.19 nats."""
    from odebench.methods import get_method

    method = get_method("ddpm")
    m, sd = 0.3, 0.01
    dyn = method.dynamics(nn.ModuleDict({"eps": NarrowEps(method, m, sd)}))
    assert dyn.t1 == pytest.approx(1 - 1e-3) and dyn.nll_t1 == pytest.approx(1 - 1e-5)
    x = m + sd * torch.randn(200, 2, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    ctx = EvalContext(samples=x, reference=x, dynamics=dyn,
                      log_prob_source=lambda z: method.prior((2,)).log_prob(z),
                      options={"nll": {"divergence": "exact", "rtol": 1e-6, "atol": 1e-6}})
    out = METRICS.get("nll").fn(ctx)
    assert out["settings"]["t1"] == pytest.approx(1 - 1e-5)
    exact = float((0.5 * ((x - m) / sd) ** 2 + math.log(sd) + 0.5 * math.log(2 * math.pi)).sum(1).mean())
    assert out["nll"] == pytest.approx(exact, abs=0.05)
