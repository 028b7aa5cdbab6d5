"""The predictor-corrector solver's last step and its budget refusals: without a final denoising call the
predictor step onto t1, and only that one, returns its mean (no noise), whether the predictor is
Euler-Maruyama on the drift or the method's own ``predictor_step``; with a denoising call every predictor step
is noisy, since the denoiser removes the noise. A budget too small names what one grid step costs."""

import re

import pytest
import torch

from odebench.bench.core.fields import LangevinCorrector
from odebench.bench.core.solvers import BudgetTooSmall, Dynamics, sample


def _dynamics(n_steps: int = 0, **extra) -> Dynamics:
    """Drift -x with noise 0.5 and the exact score of N(0, I); no corrector steps unless asked, so the states
    change only through the predictor."""
    return Dynamics(
        velocity=lambda x, t: -x,
        drift=lambda x, t: -x,
        diffusion=lambda t: torch.full_like(t, 0.5),
        corrector=LangevinCorrector(score=lambda x, t: -x, n_steps=n_steps, snr=0.1),
        **extra,
    )


def test_euler_maruyama_predictor_adds_noise_on_every_step_but_the_last():
    """States [n + 1, B, D] on the uniform grid of step 1/4: each step before the last is its mean x - x dt plus
    noise 0.5 sqrt(dt) z; the last step is exactly its mean."""
    x0 = torch.randn(64, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    res = sample(_dynamics(), x0, "pc", nfe=4, gen=torch.Generator().manual_seed(1), trajectory=True)
    traj, dt = res.trajectory, 0.25
    assert traj.shape == (5, 64, 2)
    for i in range(3):
        noise = traj[i + 1] - (traj[i] - dt * traj[i])
        assert noise.abs().min() > 0 and 0.5 * 0.25 < noise.std() < 1.5 * 0.25, i  # g sqrt(dt) = 0.25
    torch.testing.assert_close(res.x, traj[3] - dt * traj[3], rtol=0, atol=1e-15)


class _Predictor:
    """A method's predictor step x + (t_next - t) net_out, plus noise unless ``last``; records each ``last``."""

    def __init__(self):
        self.lasts = []

    def __call__(self, x, net_out, t, t_next, gen, last):
        self.lasts.append(last)
        step = x + (t_next - t)[:, None] * net_out
        return step if last else step + 0.1 * torch.randn(x.shape, generator=gen, dtype=x.dtype)


@pytest.mark.parametrize("n_steps,nfe,n", [(0, 3, 3), (1, 8, 4)])
def test_method_predictor_is_told_last_on_the_step_onto_t1_only(n_steps, nfe, n):
    predictor = _Predictor()
    dyn = _dynamics(n_steps, ancestral_net=lambda x, t: -x, predictor_step=predictor)
    x0 = torch.randn(5, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    res = sample(dyn, x0, "pc", nfe=nfe, gen=torch.Generator().manual_seed(3), trajectory=True)
    assert predictor.lasts == [False] * (n - 1) + [True]
    assert res.nfe == nfe and len(res.t) == n + 1


@pytest.mark.parametrize("own_predictor", [False, True])
def test_with_a_final_denoising_call_no_predictor_step_is_last(own_predictor):
    """The denoiser follows the last predictor step, so that step keeps its noise; the denoising call costs one
    NFE and its state ends the trajectory."""
    predictor = _Predictor()
    extra = {"ancestral_net": lambda x, t: -x, "predictor_step": predictor} if own_predictor else {}
    dyn = _dynamics(denoise=lambda x, t: 0.5 * x, **extra)
    x0 = torch.randn(64, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    res = sample(dyn, x0, "pc", nfe=4, gen=torch.Generator().manual_seed(5), trajectory=True)
    traj = res.trajectory
    assert res.nfe == 4 and traj.shape == (5, 64, 2)
    torch.testing.assert_close(res.x, 0.5 * traj[3], rtol=0, atol=0)
    if own_predictor:
        assert predictor.lasts == [False] * 3
    else:
        noise = traj[3] - (traj[2] - traj[2] / 3)
        assert noise.abs().min() > 0


@pytest.mark.parametrize(
    "denoise,nfe,text",
    [
        (None, 1, "needs at least 2 NFE per step; got a budget of 1"),
        (lambda x, t: x, 2, "needs at least 2 NFE per step plus 1 for the final denoising call; got a budget of 2"),
    ],
)
def test_too_small_a_budget_says_what_one_grid_step_costs(denoise, nfe, text):
    """One corrector step and one predictor step per grid time, plus the denoising call when there is one."""
    with pytest.raises(BudgetTooSmall, match=re.escape(f"solver 'pc' with 1 corrector step(s) {text}")):
        sample(_dynamics(1, denoise=denoise), torch.zeros(3, 2), "pc", nfe=nfe)


def test_no_budget_is_refused_with_the_option_to_set():
    with pytest.raises(ValueError, match=re.escape("solver 'pc' needs an NFE budget (nfe=...)")):
        sample(_dynamics(1), torch.zeros(3, 2), "pc")
