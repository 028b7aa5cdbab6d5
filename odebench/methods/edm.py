"""EDM (Karras, Aittala, Aila, Laine 2022): preconditioned denoiser, log-normal noise levels, and its samplers.

The path is variance exploding, x = x1 + sigma n with n ~ N(0, I), and the network F is wrapped so that the
denoiser D(x; sigma) ~ E[x1 | x] has unit-scale inputs and targets at every noise level:

    D(x; sigma) = c_skip x + c_out F(c_in x, c_noise)
    c_skip = sigma_data^2 / (sigma^2 + sigma_data^2),   c_out = sigma sigma_data / sqrt(sigma^2 + sigma_data^2)
    c_in = 1 / sqrt(sigma^2 + sigma_data^2),            c_noise = ln(sigma) / 4

Training draws ln sigma ~ N(P_mean, P_std^2) and minimises lambda(sigma) || D(x1 + sigma n; sigma) - x1 ||^2 with
lambda = (sigma^2 + sigma_data^2) / (sigma sigma_data)^2 (= 1 / c_out^2: unit weight on F's own error). The
source draw x0 ~ N(0, sigma_max^2 I) of a training pair gives the noise, n = x0 / sigma_max.

Unified time. EDM's own time is the noise level itself (its sigma(t) = t); ours runs from the prior (t = 0) to the
data (t = 1), so sigma is affine in t:

    sigma(t) = sigma_max + t (sigma_min - sigma_max),   alpha_t = 1,   t in [0, 1]

and sampling starts from the prior N(0, sigma_max^2 I) at t = 0 (sigma_max = 80, as EDM's sampler) and ends at
sigma_min = 0.002 (t = 1); EDM's samplers (``edm_heun``, ``edm_sde``) then take their last step onto sigma = 0. Being
affine, the map keeps Heun's method unchanged: ``heun`` on the ``edm`` grid takes EDM's steps. The ``uniform``
grid is uniform in sigma (EDM's 'linear' discretisation, far worse at small budgets); use ``edm`` or ``logsnr``.
The network's time input is c_noise = ln(sigma) / 4, not t.

As a Gaussian diffusion in diffusion time s = 1 - t (``GaussianDiffusion``), a = 1 and g^2 = d sigma^2 / ds =
2 sigma (sigma_max - sigma_min), which gives the probability-flow ODE dx/dt = (sigma_max - sigma_min)(D - x) /
sigma, the reverse SDE and the ancestral step of the VE family for free.

Defaults are NVlabs/edm's (``EDMPrecond``, ``EDMLoss``, ``edm_sampler``): sigma_data = 0.5 (for data in
[-1, 1]; the code's default, used for every dataset there), P_mean = -1.2, P_std = 1.2, sigma_min = 0.002,
sigma_max = 80. The stochastic sampler's S_churn = 40, S_tmin = 0.05, S_tmax = 50, S_noise = 1.003 are the
settings NVlabs/edm recommends for ImageNet-64 (256 steps); for CIFAR-10 it recommends the deterministic
sampler with 18 levels (NFE 35). What is CIFAR-10 specific in EDM's training (DDPM++ network with 56M
parameters, batch 512 for 200 Mimg, lr 1e-3 with a 10 Mimg ramp-up, EMA half-life 0.5 Mimg, dropout 0.13,
augmentation probability 0.12) belongs to the spec (``cifar10``), not to the method; the suite has no
augmentation pipeline.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from odebench.bench.core.fields import Churn
from odebench.methods.base import expand_t, register_method
from odebench.methods.diffusion import GaussianDiffusion, Schedule

__all__ = ["EDM"]

EDM_CITATION = ("Karras, Aittala, Aila, Laine. Elucidating the Design Space of Diffusion-Based Generative Models. "
                "NeurIPS 2022. arXiv:2206.00364")


@register_method("edm")
class EDM(GaussianDiffusion):
    """Karras et al.'s preconditioned denoiser with log-normal training noise levels (network key ``"F"``)."""

    reference = "arXiv:2206.00364"
    citation = EDM_CITATION
    needs_gaussian_source = True
    # sigma_min only moves where sampling stops; the churn settings act only in ``edm_sde``
    sampling_hparams = ("sigma_min", "s_churn", "s_tmin", "s_tmax", "s_noise")
    # the uniform grid is uniform in sigma (EDM's 'linear' discretisation, far worse at small budgets)
    suitable_grids = ("edm", "logsnr")
    grid_note = "EDM samples on its rho = 7 noise levels (grid edm) or the log-SNR grid; uniform in sigma is far worse"

    def __init__(self, sigma_data: float = 0.5, p_mean: float = -1.2, p_std: float = 1.2, sigma_min: float = 0.002,
                 sigma_max: float = 80.0, s_churn: float = 40.0, s_tmin: float = 0.05, s_tmax: float = 50.0,
                 s_noise: float = 1.003):
        problems = []
        if not sigma_data > 0:
            problems.append(f"sigma_data must be positive (the data's standard deviation), got {sigma_data}")
        if not p_std > 0:
            problems.append(f"p_std must be positive, got {p_std}")
        if not 0 < sigma_min < sigma_max:
            problems.append(f"need 0 < sigma_min < sigma_max, got {sigma_min}, {sigma_max}")
        if s_churn < 0 or not s_noise > 0 or s_tmin > s_tmax:
            problems.append(f"need s_churn >= 0, s_noise > 0 and s_tmin <= s_tmax, got {s_churn}, {s_noise}, "
                            f"{s_tmin}, {s_tmax}")
        if problems:
            raise ValueError("edm: " + "; ".join(problems))
        super().__init__(sigma_data=float(sigma_data), p_mean=float(p_mean), p_std=float(p_std),
                         sigma_min=float(sigma_min), sigma_max=float(sigma_max), s_churn=float(s_churn),
                         s_tmin=float(s_tmin), s_tmax=float(s_tmax), s_noise=float(s_noise))
        self.sigma_data, self.sigma_min, self.sigma_max = float(sigma_data), float(sigma_min), float(sigma_max)
        self.prior_scale = self.sigma_max
        self.sampling_eps = 0.0  # t = 1 is sigma_min > 0: nothing is singular there

    def networks(self, make_net, shape):
        return nn.ModuleDict({"F": make_net()})

    def schedule(self, s: Tensor) -> Schedule:
        span = self.sigma_max - self.sigma_min
        sigma = self.sigma_min + span * s
        zero = torch.zeros_like(s)
        return Schedule(log_alpha=zero, sigma=sigma, f=zero, g2=2 * span * sigma)

    def s_of_log_snr(self, lam):
        return (torch.exp(-lam) - self.sigma_min) / (self.sigma_max - self.sigma_min)

    def denoise(self, model: nn.ModuleDict, x: Tensor, sigma: Tensor) -> Tensor:
        """D(x; sigma) = c_skip x + c_out F(c_in x, ln(sigma) / 4), x: [B, *shape], sigma: [B]."""
        sd2 = self.sigma_data**2
        total = sigma**2 + sd2
        c_skip = expand_t(sd2 / total, x)
        c_out = expand_t(sigma * self.sigma_data / total.sqrt(), x)
        c_in = expand_t(total.rsqrt(), x)
        return c_skip * x + c_out * model["F"](c_in * x, sigma.log() / 4)

    def eps_hat(self, model, x, s):
        sigma = self.schedule(s).sigma
        return (x - self.denoise(model, x, sigma)) / expand_t(sigma, x)

    def x1_hat(self, model):
        return lambda x, t: self.denoise(model, x, self.schedule(1 - t).sigma)

    def loss(self, model, x0, x1, gen):
        """E lambda(sigma) || D(x1 + sigma n; sigma) - x1 ||^2, ln sigma ~ N(P_mean, P_std^2), n = x0 / sigma_max;
        averaged over batch and dimensions."""
        h = self.hparams
        ln_sigma = h["p_mean"] + h["p_std"] * torch.randn(x1.shape[0], generator=gen, device=x1.device)
        sigma = ln_sigma.exp()
        noisy = x1 + expand_t(sigma, x1) * (x0 / self.prior_scale)
        weight = (sigma**2 + self.sigma_data**2) / (sigma * self.sigma_data) ** 2
        return (expand_t(weight, x1) * (self.denoise(model, noisy, sigma) - x1).pow(2)).mean()

    def dynamics(self, model):
        dyn = super().dynamics(model)
        h = self.hparams
        dyn.churn = Churn(s_churn=h["s_churn"], s_tmin=h["s_tmin"], s_tmax=h["s_tmax"], s_noise=h["s_noise"])
        return dyn

