"""The samplers on a data prediction (DDIM, DPM-Solver++, UniPC): closed forms, convergence orders on Gaussian
data, NFE, and parity with diffusers' schedulers for the same eps network and time steps."""

from __future__ import annotations

import math

import pytest
import torch
from gaussian_paths import Gaussian, TrigSchedule, VESchedule, VPSchedule

from odebench.bench.core.fields import Dynamics, Unsupported
from odebench.bench.core.schedules import NoiseSchedule
from odebench.bench.core.solvers import SOLVERS, sample, solve
from odebench.bench.core.solvers.multistep import dpm_orders, unipc_orders

X1_SOLVERS = ["ddim", "ddim_eta1", "dpmpp_2m", "dpmpp_3m", "dpmpp_2m_sde", "unipc"]
SCHEDULES = {"vp": (VPSchedule(), 0.0, 1 - 1e-3), "trig": (TrigSchedule(), 0.0, 1.0), "ve": (VESchedule(), 0.0, 1.0)}
DATA = Gaussian(torch.tensor([0.3, -0.5, 0.1], dtype=torch.float64), torch.tensor([0.5, 0.2, 1.0], dtype=torch.float64))


def _start(schedule: NoiseSchedule, t0: float, n: int = 200) -> tuple[torch.Tensor, torch.Tensor]:
    """(standardised z, x at t0 on the exact probability-flow path through z)."""
    z = torch.randn(n, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    return z, DATA.flow(schedule, z, t0)


# ------------------------------------------------------------------------------------------------ closed forms
@pytest.mark.parametrize("name", list(SCHEDULES))
@pytest.mark.parametrize("solver", ["ddim", "dpmpp_2m", "dpmpp_3m", "unipc"])
def test_exact_for_a_point_mass_at_any_step_count(name, solver):
    """A point mass (the Gaussian with s = 0) has a constant data prediction D = m, and the exponential
    integrators solve dx/dt = (sigma'/sigma) x + (alpha' - sigma' alpha / sigma) D exactly when D is constant:
    one step (and every step count) lands on alpha_t1 m + sigma_t1 z. DDIM is *not* exact in one step for a
    Gaussian with s > 0 (its error then falls at order 1, below)."""
    schedule, t0, t1 = SCHEDULES[name]
    point = Gaussian(DATA.m, torch.zeros(3, dtype=torch.float64))
    z, x0 = _start(schedule, t0)
    x0 = point.flow(schedule, z, t0)
    exact = point.flow(schedule, z, t1)
    for nfe in (1, 3, 8):
        res = sample(point.dynamics(schedule, t0, t1), x0, solver, nfe=nfe, grid="logsnr")
        torch.testing.assert_close(res.x, exact, rtol=1e-10, atol=1e-10)
        assert res.nfe == nfe


def test_ddim_eta1_is_the_ddpm_ancestral_step():
    """DDIM with eta = 1 on x1_hat = (x - sigma eps) / alpha is Ho et al.'s posterior step: ddpm's own
    ``ancestral`` solver (without its final denoising call) gives the same samples for the same noise draws."""
    from odebench.methods import get_method

    method = get_method("ddpm", denoise=False)
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.Tanh(), torch.nn.Linear(16, 3)).double()
    model = torch.nn.ModuleDict({"eps": _TimeNet(net)})
    dyn = method.dynamics(model)
    x0 = torch.randn(64, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    with torch.no_grad():
        a = sample(dyn, x0, "ddim_eta1", nfe=10, gen=torch.Generator().manual_seed(2))
        b = sample(dyn, x0, "ancestral", nfe=10, gen=torch.Generator().manual_seed(2))
    assert a.nfe == b.nfe == 10
    torch.testing.assert_close(a.x, b.x, rtol=1e-9, atol=1e-9)


class _TimeNet(torch.nn.Module):
    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x, t):
        return torch.tanh(self.net(torch.cat([x, t[:, None].to(x.dtype)], 1)))


# ------------------------------------------------------------------------------------------------------ orders
def _errors(solver: str, name: str, steps=(16, 32, 64, 128)) -> list[float]:
    schedule, t0, t1 = SCHEDULES[name]
    z, x0 = _start(schedule, t0)
    exact = DATA.flow(schedule, z, t1)
    dyn = DATA.dynamics(schedule, t0, t1)
    return [(sample(dyn, x0, solver, nfe=n, grid="logsnr").x - exact).abs().max().item() for n in steps]


def _rates(errors: list[float]) -> list[float]:
    return [math.log2(a / b) for a, b in zip(errors, errors[1:], strict=False)]


@pytest.mark.parametrize("name", ["vp", "ve"])
def test_convergence_orders_on_gaussian_data(name):
    """On the log-SNR grid, halving the step: DDIM's error halves (order 1), DPM-Solver++(2M)'s quarters
    (order 2), UniPC-2 (predictor + corrector) reaches order 3; 3M's first-order warm-up step keeps its global
    order at 2, but it is the more accurate of the two multistep methods."""
    ddim, dpm2, dpm3, unipc = (_errors(s, name) for s in ("ddim", "dpmpp_2m", "dpmpp_3m", "unipc"))
    assert all(0.85 < r < 1.2 for r in _rates(ddim)), _rates(ddim)
    assert all(1.75 < r < 2.3 for r in _rates(dpm2)), _rates(dpm2)
    assert _rates(unipc)[-1] > 2.8, _rates(unipc)
    assert _rates(dpm3)[-1] > 1.9 and all(e3 < e2 for e3, e2 in zip(dpm3, dpm2, strict=True)), (dpm3, dpm2)


def test_dpmpp_2m_on_an_open_interval():
    """alpha = 0 at t0 and sigma = 0 at t1 (the trig path, like a flow's): the first and last steps are exact
    limits (E = e^-h = 0), nothing is infinite, and the order is still 2."""
    errs = _errors("dpmpp_2m", "trig")
    assert all(math.isfinite(e) for e in errs)
    assert _rates(errs)[-1] > 1.8, _rates(errs)


# ---------------------------------------------------------------------------------------- NFE, noise, refusals
@pytest.mark.parametrize("solver", X1_SOLVERS)
def test_nfe_trajectory_and_last_step_mean(solver):
    schedule, t0, t1 = SCHEDULES["vp"]
    dyn = DATA.dynamics(schedule, t0, t1)
    _, x0 = _start(schedule, t0, n=5)
    res = sample(dyn, x0, solver, nfe=7, grid="logsnr", gen=torch.Generator().manual_seed(0), trajectory=True)
    assert res.nfe == 7 and res.trajectory.shape == (8, 5, 3) and res.t.shape == (8,)
    torch.testing.assert_close(res.trajectory[0], x0)
    torch.testing.assert_close(res.trajectory[-1], res.x)
    assert res.t[0] == t0 and abs(res.t[-1].item() - t1) < 1e-12
    # one step is the last step: no noise, whatever the generator
    one = [sample(dyn, x0, solver, nfe=1, gen=torch.Generator().manual_seed(s)).x for s in (0, 1)]
    torch.testing.assert_close(one[0], one[1], rtol=0, atol=0)


def test_stochastic_variants_draw_noise_and_the_others_do_not():
    schedule, t0, t1 = SCHEDULES["vp"]
    dyn = DATA.dynamics(schedule, t0, t1)
    _, x0 = _start(schedule, t0, n=5)
    for solver in X1_SOLVERS:
        a, b = (sample(dyn, x0, solver, nfe=6, gen=torch.Generator().manual_seed(s)).x for s in (0, 1))
        assert torch.equal(a, b) == (SOLVERS.get(solver).kind == "ode"), solver


def test_plain_fields_and_dynamics_without_x1_hat_are_refused():
    with pytest.raises(Unsupported, match="x1_hat"):
        solve(lambda x, t: -x, torch.zeros(2, 3), "dpmpp_2m", nfe=4)
    with pytest.raises(Unsupported, match="x1_hat"):
        sample(Dynamics(velocity=lambda x, t: -x, schedule=VPSchedule()), torch.zeros(2, 3), "ddim", nfe=4)


def test_order_rules_follow_the_peers_defaults():
    assert dpm_orders(5, 2, final_sigma_zero=False) == [1, 2, 2, 2, 1]  # fewer than 15 steps: last is first order
    assert dpm_orders(16, 2, final_sigma_zero=False) == [1] + [2] * 15
    assert dpm_orders(16, 2, final_sigma_zero=True) == [1] + [2] * 14 + [1]
    assert dpm_orders(6, 3, final_sigma_zero=True) == [1, 2, 3, 3, 2, 1]
    assert unipc_orders(4) == [1, 2, 2, 1]


# ------------------------------------------------------------------------------------------ parity with diffusers
class TableSchedule(NoiseSchedule):
    """A peer's (alpha, sigma) at its own time steps, placed at t_i = i / n of our unified time."""

    def __init__(self, alpha: list[float], sigma: list[float]):
        self.a = torch.tensor(alpha, dtype=torch.float64)
        self.s = torch.tensor(sigma, dtype=torch.float64)

    def alpha_sigma(self, t):
        i = torch.round(t.to(torch.float64) * (len(self.a) - 1)).long()
        return self.a[i], self.s[i]


def _eps_net():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(5, 32), torch.nn.SiLU(), torch.nn.Linear(32, 4))
    return lambda x, k: torch.tanh(net(torch.cat([x, (k.float() / 1000)[:, None]], 1)))


def _peer_run(scheduler, steps: int, x0, eps, generator=None, **step_kw):
    scheduler.set_timesteps(steps)
    x = x0.clone()
    if generator is not None:
        step_kw["generator"] = generator
    for k in scheduler.timesteps:
        x = scheduler.step(eps(x, k.expand(len(x))), k, x, **step_kw).prev_sample
    return x


def _ours(solver: str, timesteps: list[int], alpha: list[float], sigma: list[float], x0, eps, gen=None):
    """Our sampler through the peer's points: D = (x - sigma eps(x, k)) / alpha at the peer's time step k."""
    n = len(timesteps)
    table = TableSchedule(alpha, sigma)
    ks = torch.tensor(timesteps + [0])

    def x1_hat(x, t):
        i = torch.round(t.to(torch.float64) * n).long()
        a, s = (v.to(x.dtype)[:, None] for v in table.alpha_sigma(t))
        return (x - s * eps(x, ks[i])) / a

    dyn = Dynamics(velocity=lambda x, t: x, x1_hat=x1_hat, schedule=table)
    return SOLVERS.get(solver).integrate(dyn, x0, torch.linspace(0, 1, n + 1, dtype=torch.float64), gen=gen).x


def _assert_parity(ours, peer):
    scale = peer.abs().max().item()
    assert (ours - peer).abs().max().item() <= 2e-6 * max(scale, 1.0), ((ours - peer).abs().max().item(), scale)


@pytest.mark.parametrize("steps", [4, 10, 20])
@pytest.mark.parametrize("eta", [0.0, 1.0])
def test_ddim_matches_diffusers(steps, eta):
    diffusers = pytest.importorskip("diffusers")
    sched = diffusers.DDIMScheduler(clip_sample=False)  # set_alpha_to_one: the last step lands on alpha = 1
    eps = _eps_net()
    x0 = torch.randn(32, 4, generator=torch.Generator().manual_seed(1))
    peer = _peer_run(sched, steps, x0, eps, torch.Generator().manual_seed(5), eta=eta)
    abar = [float(sched.alphas_cumprod[k]) for k in sched.timesteps] + [1.0]
    ours = _ours("ddim" if eta == 0 else "ddim_eta1", sched.timesteps.tolist(), [math.sqrt(v) for v in abar],
                 [math.sqrt(1 - v) for v in abar], x0, eps, torch.Generator().manual_seed(5))
    _assert_parity(ours, peer)


PEERS = {  # our solver -> the diffusers scheduler and its settings (defaults otherwise: lower_order_final, sigma 0)
    "dpmpp_2m": ("DPMSolverMultistepScheduler", {}),
    "dpmpp_3m": ("DPMSolverMultistepScheduler", {"solver_order": 3}),
    "dpmpp_2m_sde": ("DPMSolverMultistepScheduler", {"algorithm_type": "sde-dpmsolver++"}),
    "unipc": ("UniPCMultistepScheduler", {}),
}


@pytest.mark.parametrize("steps", [4, 10, 20])
@pytest.mark.parametrize("solver", list(PEERS))
def test_multistep_matches_diffusers(solver, steps):
    diffusers = pytest.importorskip("diffusers")
    cls, kw = PEERS[solver]
    sched = getattr(diffusers, cls)(**kw)
    eps = _eps_net()
    x0 = torch.randn(32, 4, generator=torch.Generator().manual_seed(1))
    gen = torch.Generator().manual_seed(5) if solver == "dpmpp_2m_sde" else None
    peer = _peer_run(sched, steps, x0, eps, gen)
    sig = sched.sigmas.double()  # the peer's sigma / alpha at each point, the last 0
    alpha = (1 / (sig**2 + 1).sqrt()).tolist()
    sigma = (sig / (sig**2 + 1).sqrt()).tolist()
    ours = _ours(solver, sched.timesteps.tolist(), alpha, sigma, x0, eps, torch.Generator().manual_seed(5))
    _assert_parity(ours, peer)
