"""EDM's samplers: on the edm method with an exact denoiser they are NVlabs/edm's Algorithm 2 step for step
(written out below from the paper, float64), Heun on the edm grid is the same sampler without its last step,
and the budget buys EDM's 2N - 1 evaluations."""

from __future__ import annotations

import math

import pytest
import torch
from gaussian_paths import Gaussian, TrigSchedule, VPSchedule

from odebench.bench.core.solvers import SOLVERS, sample
from odebench.methods import get_method

M = torch.tensor([0.3, -0.5, 0.1], dtype=torch.float64)
S = torch.tensor([0.5, 0.2, 1.0], dtype=torch.float64)


def exact_denoiser(x, sigma):
    """E[x1 | x1 + sigma n = x] for x1 ~ N(M, diag S^2)."""
    s2 = sigma[:, None] ** 2
    return M + S**2 / (S**2 + s2) * (x - M)


class ExactF(torch.nn.Module):
    """The network F whose preconditioned denoiser c_skip x + c_out F(c_in x, c_noise) is exact."""

    def __init__(self, sigma_data: float):
        super().__init__()
        self.sd = sigma_data

    def forward(self, x_in, c_noise):
        sigma = torch.exp(4 * c_noise)[:, None]
        total = sigma**2 + self.sd**2
        x = x_in * total.sqrt()
        c_skip, c_out = self.sd**2 / total, sigma * self.sd / total.sqrt()
        return (exact_denoiser(x, sigma[:, 0]) - c_skip * x) / c_out


def edm_algorithm(latents, n_levels, churn=(0.0, 0.0, math.inf, 1.0), gen=None):
    """Karras et al.'s Algorithm 2 (sigma_min 0.002, sigma_max 80, rho 7), in float64, as its reference code."""
    s_churn, s_min, s_max, s_noise = churn
    i = torch.arange(n_levels, dtype=torch.float64)
    t = (80 ** (1 / 7) + i / (n_levels - 1) * (0.002 ** (1 / 7) - 80 ** (1 / 7))) ** 7
    t = torch.cat([t, torch.zeros(1, dtype=torch.float64)])
    x = latents * t[0]
    for k in range(n_levels):
        t_cur, t_next = t[k], t[k + 1]
        gamma = min(s_churn / n_levels, math.sqrt(2) - 1) if s_min <= t_cur <= s_max else 0.0
        t_hat = t_cur + gamma * t_cur
        noise = torch.randn(x.shape, generator=gen, dtype=x.dtype) if gen is not None else 0.0
        x_hat = x + (t_hat**2 - t_cur**2).sqrt() * s_noise * noise
        d_cur = (x_hat - exact_denoiser(x_hat, t_hat.expand(len(x)))) / t_hat
        x_next = x_hat + (t_next - t_hat) * d_cur
        if k < n_levels - 1:
            d_prime = (x_next - exact_denoiser(x_next, t_next.expand(len(x)))) / t_next
            x_next = x_hat + (t_next - t_hat) * (0.5 * d_cur + 0.5 * d_prime)
        x = x_next
    return x


@pytest.fixture(scope="module")
def edm_dynamics():
    method = get_method("edm")
    return method.dynamics(torch.nn.ModuleDict({"F": ExactF(0.5)}))


def _latents(n=16):
    return torch.randn(n, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)


@pytest.mark.parametrize("nfe", [35, 9, 3])
def test_edm_heun_is_edm_algorithm(edm_dynamics, nfe):
    latents = _latents()
    res = sample(edm_dynamics, 80 * latents, "edm_heun", nfe=nfe, grid="edm")
    assert res.nfe == nfe  # N = (nfe + 1) / 2 levels: 18 for 35
    torch.testing.assert_close(res.x, edm_algorithm(latents, (nfe + 1) // 2), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("nfe", [35, 11])
def test_edm_sde_is_edm_algorithm_with_churn(edm_dynamics, nfe):
    """With the edm method's defaults (S_churn 40, S_tmin 0.05, S_tmax 50, S_noise 1.003) and the same draws."""
    latents = _latents()
    res = sample(edm_dynamics, 80 * latents, "edm_sde", nfe=nfe, grid="edm", gen=torch.Generator().manual_seed(3))
    ref = edm_algorithm(latents, (nfe + 1) // 2, (40.0, 0.05, 50.0, 1.003), torch.Generator().manual_seed(3))
    torch.testing.assert_close(res.x, ref, rtol=1e-12, atol=1e-12)
    assert not torch.allclose(res.x, edm_algorithm(latents, (nfe + 1) // 2))  # the churn did act


def test_heun_on_the_edm_grid_is_edm_without_its_last_step(edm_dynamics):
    """sigma is affine in the edm method's time, so ``heun`` on the ``edm`` grid takes EDM's Heun steps down to
    sigma_min; EDM's own sampler then takes one more (Euler onto sigma = 0, which returns D)."""
    x0 = 80 * _latents()
    heun = sample(edm_dynamics, x0, "heun", nfe=34, grid="edm")
    edm = sample(edm_dynamics, x0, "edm_heun", nfe=35, grid="edm")
    t1 = torch.ones(len(x0), dtype=torch.float64)
    torch.testing.assert_close(edm.x, edm_dynamics.x1_hat(heun.x, t1), rtol=1e-10, atol=1e-10)


def test_the_uniform_grid_of_edm_is_uniform_in_sigma(edm_dynamics):
    res = sample(edm_dynamics, 80 * _latents(), "euler", nfe=4, trajectory=True)
    sigma = get_method("edm").schedule(1 - res.t.to(torch.float64)).sigma
    torch.testing.assert_close(sigma[1:] - sigma[:-1], torch.full((4,), (0.002 - 80) / 4, dtype=torch.float64))


@pytest.mark.parametrize("infinite_start,zero_end,budget,levels,used", [
    (False, False, 35, 17, 35),  # edm, ddpm: N - 1 grid steps, then onto 0
    (False, False, 4, 1, 3),
    (True, False, 8, 4, 8),  # fm_ot: its first step (from alpha = 0) is Euler
    (True, True, 8, 5, 8),  # rf: its grid ends on sigma = 0
    (True, True, 1, 1, 1),
])
def test_budget_buys_edm_levels(infinite_start, zero_end, budget, levels, used):
    solver = SOLVERS.get("edm_heun")
    assert solver.levels_for(budget, infinite_start, zero_end) == levels
    steps = levels + (not zero_end)  # the grid's steps, and the one onto sigma = 0 unless the grid ends there
    euler = min(steps, 1 + infinite_start)  # onto 0, and from alpha = 0 (one step may be both)
    assert 2 * steps - euler == used <= budget


def test_too_small_a_budget_is_refused(edm_dynamics):
    from odebench.bench.core.fields import BudgetTooSmall

    with pytest.raises(BudgetTooSmall, match="at least 3"):
        sample(edm_dynamics, _latents(), "edm_heun", nfe=2)


@pytest.mark.parametrize("schedule,t1", [(TrigSchedule(), 1.0), (VPSchedule(), 1 - 1e-3)])
def test_on_other_paths_it_converges_at_order_two_onto_the_data(schedule, t1):
    """On a flow-like path (alpha = 0 at t0, sigma = 0 at t1) and on VP, the sampler in EDM's scaled variables
    reaches the exact data point of the probability-flow path at order 2."""
    data = Gaussian(M, S)
    dyn = data.dynamics(schedule, 0.0, t1)
    z = _latents(200)
    x0 = data.flow(schedule, z, 0.0)
    target = M + S * z  # the flow's end at sigma = 0
    errs = []
    for nfe in (32, 64, 128):
        res = sample(dyn, x0, "edm_heun", nfe=nfe, grid="edm")
        assert nfe - 1 <= res.nfe <= nfe  # (the two Euler ends of the trig path make the count even)
        errs.append((res.x - target).abs().max().item())
    rates = [math.log2(a / b) for a, b in zip(errs, errs[1:], strict=False)]
    assert all(r > 1.8 for r in rates), (errs, rates)
