"""A diffusers UNet2DModel with a DDPMScheduler, whose forward returns the exact prediction for Gaussian data,
sampled through the adapter by our probability-flow ODE and by DDIM, gives the closed-form law.

Data N(m, s^2 I) per pixel; at timestep k, x_k = a_k x_data + sig_k eps with a_k^2 = abar_k. The exact noise
prediction is E[eps | x] = sig (x - a m) / (a^2 s^2 + sig^2). Between timesteps the test interpolates the
log-SNR in k with scipy's PchipInterpolator (the convention the adapter documents, computed independently of
it), so the network is exact at every time a solver asks for. The marginals are N(a m, a^2 s^2 + sig^2) per
pixel, and the probability-flow ODE keeps the standardised coordinate: from x at timestep T - 1 it lands at
timestep 0 on mu_0 + sqrt(v_0 / v_T) (x - mu_T), and at the clean end (where the data-prediction samplers end, as
diffusers' do) on m + s (x - mu_T) / sqrt(v_T).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.interpolate import PchipInterpolator

pytest.importorskip("diffusers", reason="the diffusers peer is not installed (pip install 'odebench[peers]')")
from diffusers import DDPMScheduler, UNet2DModel  # noqa: E402
from diffusers.models.unets.unet_2d import UNet2DOutput  # noqa: E402

from odebench.adapters import Diffusers, adapt  # noqa: E402
from odebench.bench.core.solvers import sample  # noqa: E402

MEAN, STD, SHAPE = 0.7, 0.4, (1, 4, 4)


def log_snr(scheduler: DDPMScheduler, k: np.ndarray) -> np.ndarray:
    abar = scheduler.alphas_cumprod.double().numpy()
    lam = 0.5 * (np.log(abar) - np.log1p(-abar))
    return PchipInterpolator(np.arange(len(abar)), lam)(k)


def alpha_sigma(scheduler: DDPMScheduler, k: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    lam = log_snr(scheduler, k)
    return np.sqrt(1 / (1 + np.exp(-2 * lam))), np.sqrt(1 / (1 + np.exp(2 * lam)))


class ExactUNet(UNet2DModel):
    """A (tiny) UNet2DModel whose forward returns the exact prediction of the scheduler's prediction type."""

    def __init__(self, scheduler: DDPMScheduler):
        super().__init__(sample_size=4, in_channels=1, out_channels=1, block_out_channels=(8,), layers_per_block=1,
                         down_block_types=("DownBlock2D",), up_block_types=("UpBlock2D",), norm_num_groups=4)
        self.scheduler_ = scheduler

    def forward(self, sample, timestep, class_labels=None, return_dict=True):
        a, sig = (torch.as_tensor(v, dtype=torch.float64).reshape(-1, 1, 1, 1)
                  for v in alpha_sigma(self.scheduler_, timestep.double().numpy()))
        x = sample.double()
        eps = sig * (x - a * MEAN) / (a**2 * STD**2 + sig**2)
        x0 = (x - sig * eps) / a
        out = {"epsilon": eps, "sample": x0, "v_prediction": a * eps - sig * x0}[self.scheduler_.config.prediction_type]
        return UNet2DOutput(sample=out.to(sample.dtype))


def closed_form_map(scheduler: DDPMScheduler, x: torch.Tensor, clean: bool = False) -> torch.Tensor:
    """Where the exact probability-flow ODE takes x from timestep T - 1 to timestep 0 (``clean``: to the clean
    end, alpha = 1 and sigma = 0)."""
    (a_t, a_0), (s_t, s_0) = alpha_sigma(scheduler, np.array([len(scheduler.alphas_cumprod) - 1.0, 0.0]))
    if clean:
        a_0, s_0 = 1.0, 0.0
    v_t, v_0 = a_t**2 * STD**2 + s_t**2, a_0**2 * STD**2 + s_0**2
    return a_0 * MEAN + math.sqrt(v_0 / v_t) * (x.double() - a_t * MEAN)


@pytest.fixture(scope="module")
def x0() -> torch.Tensor:
    return torch.randn(4000, *SHAPE, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("prediction", ["epsilon", "sample", "v_prediction"])
def test_probability_flow_ode_gives_the_closed_form_law(prediction, x0):
    scheduler = DDPMScheduler(num_train_timesteps=1000, prediction_type=prediction)
    adapter = adapt((ExactUNet(scheduler), scheduler))
    assert isinstance(adapter, Diffusers) and adapter.kind == {"epsilon": "eps", "sample": "x1"}.get(prediction, "v")
    dyn = adapter.dynamics(adapter.model())
    exact = closed_form_map(scheduler, x0)
    with torch.no_grad():
        coarse = float((sample(dyn, x0[:500], "heun", nfe=100).x.double() - exact[:500]).abs().max())
        out = sample(dyn, x0, "heun", nfe=400).x.double()
    fine = float((out - exact).abs().max())
    assert fine < 1e-3 and fine < coarse / 6  # Heun keeps its second order: the schedule is C1 in time
    # the law: N(a_0 m - sqrt(v_0 / v_T) a_T m, v_0 / v_T) per pixel from x0 ~ N(0, I); sample error ~ 1 / sqrt(n)
    law = closed_form_map(scheduler, torch.zeros(1)), closed_form_map(scheduler, torch.ones(1)) - \
        closed_form_map(scheduler, torch.zeros(1))
    n = out.numel()
    assert abs(out.mean() - law[0]) < 4 * float(law[1]) / math.sqrt(n)
    assert abs(out.std() / float(law[1]) - 1) < 4 / math.sqrt(2 * n)


def test_ddim_on_the_data_prediction_converges_to_the_same_law_at_the_clean_end(x0):
    scheduler = DDPMScheduler(num_train_timesteps=1000)
    adapter = adapt((ExactUNet(scheduler), scheduler))
    dyn = adapter.dynamics(adapter.model())
    exact = closed_form_map(scheduler, x0[:500], clean=True)
    errors = []
    with torch.no_grad():
        for nfe in (25, 100):
            errors.append(float((sample(dyn, x0[:500], "ddim", nfe=nfe).x.double() - exact).abs().max()))
    assert errors[1] < 0.1 and errors[1] < errors[0] / 3  # first order in the step on a Gaussian (not a point
    # mass), as docs/decisions.md (33) says of DDIM with an exact data prediction


def test_the_schedule_is_the_schedulers_at_every_timestep():
    scheduler = DDPMScheduler(num_train_timesteps=1000)
    adapter = Diffusers(ExactUNet(scheduler), scheduler)
    k = torch.arange(1000, dtype=torch.float64)
    sch = adapter.schedule((k + 1) / 1000)
    assert torch.allclose(sch.log_alpha.exp() ** 2, scheduler.alphas_cumprod.double(), rtol=1e-12, atol=0)
    assert torch.allclose(sch.sigma**2, 1 - scheduler.alphas_cumprod.double(), rtol=1e-10, atol=0)
    assert torch.allclose(adapter.timestep(torch.tensor([0.0, 0.999, 1.0], dtype=torch.float64)),
                          torch.tensor([999.0, 0.0, -1.0], dtype=torch.float64), rtol=0, atol=1e-9)
    end = adapter.schedule(torch.zeros(1, dtype=torch.float64))  # the clean end t = 1, diffusers' alpha_bar = 1
    assert float(end.log_alpha) == 0.0 and float(end.sigma) == 0.0
    k = torch.rand(2000, dtype=torch.float64, generator=torch.Generator().manual_seed(0)) * 999
    lam, slope = adapter.log_snr_at(k)
    pchip = PchipInterpolator(np.arange(1000), adapter.lam.numpy())
    assert np.allclose(lam.numpy(), pchip(k.numpy()), rtol=0, atol=1e-12)
    assert np.allclose(slope.numpy(), pchip.derivative()(k.numpy()), rtol=0, atol=1e-12)
    assert (slope < 0).all()  # monotone: the log-SNR falls towards the noise
    with pytest.raises(ValueError, match="predicts 'epsilon'"):
        Diffusers(ExactUNet(scheduler), scheduler, kind="x1")
