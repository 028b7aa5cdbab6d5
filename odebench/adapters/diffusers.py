"""A diffusers ``UNet2DModel`` (or any network called the same way) with its ``DDPMScheduler``, as an odebench
method.

Mapping. diffusers trains on T discrete timesteps k = 0 .. T - 1 (``num_train_timesteps``), timestep 0 the
least noisy: x_k = sqrt(abar_k) x_data + sqrt(1 - abar_k) eps with abar = ``scheduler.alphas_cumprod``, so its
time runs from the data (k = 0) to the noise (k = T - 1), the other way round from odebench's. The network is
called as ``net(x, k)`` (``UNet2DModel.forward(sample, timestep)``, whose output's ``.sample`` is taken) and
predicts what ``scheduler.config.prediction_type`` says: ``epsilon`` (eps, kind ``eps``), ``sample`` (x_data,
kind ``x1``) or ``v_prediction`` (v = sqrt(abar) eps - sqrt(1 - abar) x_data, kind ``v``; then
eps = sqrt(abar) v + sqrt(1 - abar) x).

Time. Our t in [0, 1] maps to the fractional timestep k(t) = (1 - t)(T - 1): t = 0 is timestep T - 1 (the
source; for the usual linear betas alpha = 0.006 there, so N(0, I) is the source up to that, as for ``ddpm``)
and t = 1 is timestep 0 (sigma = sqrt(beta_0), 0.01 for the usual betas: sampling ends there, one training
noise level short of the data, as diffusers' own schedulers do before their final clean-up step). Between
timesteps the log-SNR lambda_k = log(abar_k / (1 - abar_k)) / 2 is interpolated in k by the monotone cubic
Hermite (PCHIP, Fritsch-Carlson) interpolant, the one ``scipy.interpolate.PchipInterpolator`` builds on unit
spacing, and alpha_t^2 = sigmoid(2 lambda), sigma_t^2 = sigmoid(-2 lambda). This is exact at every timestep
(alpha_t^2 = abar_k to float64 rounding), keeps the path variance-preserving and the log-SNR decreasing in k,
and has a continuous derivative: a linear interpolant would make the probability-flow velocity jump at every
timestep, and fixed-step solvers would then lose their order (with the exact eps of a Gaussian, Heun's error
wandered between 7e-4 and 5e-3 from NFE 100 to 2000 without falling; with PCHIP: 4.3e-3, 1.3e-3, 3.9e-4 at
NFE 100, 200, 400). The network gets the fractional k; its sinusoidal time embedding
takes any real k.

Sampling. The path being Gaussian and variance preserving, this adapter is ``ddpm``'s family
(``odebench.methods.diffusion.GaussianDiffusion``) with the scheduler's schedule in place of the continuous
one: its probability-flow ODE dx/dt = -f x + (g^2 / 2) eps_hat / sigma (every ODE solver), reverse SDE
(``euler_maruyama``), ancestral step, data prediction (DDIM, DPM-Solver++, UniPC) and noise schedule
(``edm``/``logsnr`` grids), with f = d log alpha / ds = sigma^2 dlambda/ds and g^2 = -2 f in the diffusion time
s = 1 - t = k / (T - 1).
"""

from __future__ import annotations

import hashlib
from typing import Any

import torch
from torch import Tensor, nn

from odebench.adapters.base import Adapter, require_peer
from odebench.methods.base import Method, expand_t
from odebench.methods.diffusion import GaussianDiffusion, Schedule

__all__ = ["PREDICTION_KINDS", "Diffusers"]

#: diffusers' prediction_type -> our kind
PREDICTION_KINDS = {"epsilon": "eps", "sample": "x1", "v_prediction": "v"}


class Diffusers(GaussianDiffusion, Adapter):
    """``net`` (a ``UNet2DModel``) with ``scheduler`` (a ``DDPMScheduler``, or anything with ``alphas_cumprod``
    and ``config.prediction_type``); see the module docstring for the mapping."""

    adapter = "diffusers"
    kinds = tuple(PREDICTION_KINDS.values())
    sampling_eps = 0.0  # sampling ends at timestep 0 (t = 1)
    needs_gaussian_source = True

    def __init__(self, net: nn.Module, scheduler: Any, kind: str | None = None):
        require_peer("diffusers", "diffusers")
        if not isinstance(net, nn.Module):
            raise TypeError(f"diffusers adapter: expected a torch.nn.Module, got {type(net).__name__}")
        abar = getattr(scheduler, "alphas_cumprod", None)
        if not isinstance(abar, Tensor) or abar.dim() != 1 or len(abar) < 2:
            raise TypeError(f"diffusers adapter: the scheduler must have alphas_cumprod (a DDPMScheduler); got "
                            f"{type(scheduler).__name__}")
        prediction = getattr(getattr(scheduler, "config", None), "prediction_type", "epsilon")
        if prediction not in PREDICTION_KINDS:
            raise ValueError(f"diffusers adapter: prediction_type {prediction!r} is not one of "
                             f"{', '.join(PREDICTION_KINDS)}")
        own = PREDICTION_KINDS[prediction]
        if kind is not None and kind != own:
            raise ValueError(f"diffusers adapter: the scheduler says the network predicts {prediction!r} (kind "
                             f"{own!r}), not {kind!r}; drop kind or fix scheduler.config.prediction_type")
        self.net, self.kind, self.path = net, own, None
        self.abar = abar.detach().to(torch.float64).cpu()
        self.n_steps = len(self.abar)
        # log-SNR of each timestep: lambda_k = log(abar_k / (1 - abar_k)) / 2, decreasing in k
        self.lam = 0.5 * (torch.log(self.abar) - torch.log1p(-self.abar))
        self.slopes = pchip_slopes(self.lam)
        self.t0, self.t1 = 0.0, 1.0
        Method.__init__(self, **self.identity())

    def settings(self) -> dict[str, Any]:
        digest = hashlib.sha256(self.abar.numpy().tobytes()).hexdigest()
        return {"num_train_timesteps": self.n_steps, "alphas_cumprod_sha256": digest}

    def timestep(self, t: Tensor) -> Tensor:
        """Our t: [B] -> diffusers' fractional timestep k = (1 - t)(T - 1)."""
        return (1 - t) * (self.n_steps - 1)

    def log_snr_at(self, k: Tensor) -> tuple[Tensor, Tensor]:
        """(lambda(k), dlambda/dk) at fractional timesteps k (float64): the PCHIP interpolant of lambda_k."""
        k = k.to(torch.float64).clamp(0, self.n_steps - 1)
        lam, d = self.lam.to(k.device), self.slopes.to(k.device)
        j = torch.floor(k).clamp(0, self.n_steps - 2).long()
        w = k - j
        w2, w3 = w * w, w * w * w
        l0, l1, d0, d1 = lam[j], lam[j + 1], d[j], d[j + 1]
        value = (2 * w3 - 3 * w2 + 1) * l0 + (w3 - 2 * w2 + w) * d0 + (3 * w2 - 2 * w3) * l1 + (w3 - w2) * d1
        slope = (6 * w2 - 6 * w) * (l0 - l1) + (3 * w2 - 4 * w + 1) * d0 + (3 * w2 - 2 * w) * d1
        return value, slope

    def schedule(self, s: Tensor) -> Schedule:
        lam, slope = self.log_snr_at(s * (self.n_steps - 1))
        sigma2 = torch.sigmoid(-2 * lam)
        f = sigma2 * slope * (self.n_steps - 1)  # d log alpha / ds = sigma^2 dlambda/ds
        dtype = s.dtype
        return Schedule(log_alpha=(0.5 * torch.nn.functional.logsigmoid(2 * lam)).to(dtype),
                        sigma=sigma2.sqrt().to(dtype), f=f.to(dtype), g2=(-2 * f).to(dtype))

    def eps_hat(self, model: nn.ModuleDict, x: Tensor, s: Tensor) -> Tensor:
        out = model["net"](x, (s * (self.n_steps - 1)).to(x.dtype))
        out = out[0] if isinstance(out, tuple) else getattr(out, "sample", out)
        if self.kind == "eps":
            return out
        sch = self.schedule(s.to(torch.float64))
        a, sigma = expand_t(sch.log_alpha.exp().to(x.dtype), x), expand_t(sch.sigma.to(x.dtype), x)
        if self.kind == "x1":
            return (x - a * out) / sigma
        return a * out + sigma * x  # v = a eps - sigma x_data

    def loss(self, model, x0, x1, gen):
        raise NotImplementedError("a given model is evaluated as it is, never trained by odebench")


def pchip_slopes(y: Tensor) -> Tensor:
    """The node derivatives of the monotone cubic Hermite interpolant of y on unit spacing (Fritsch-Carlson, with
    scipy's PchipInterpolator end conditions): the harmonic mean of the neighbouring secants where they share a
    sign, else 0; at the ends the three-point one-sided formula, limited to keep the shape."""
    m = y[1:] - y[:-1]
    d = torch.zeros_like(y)
    same = m[:-1] * m[1:] > 0
    d[1:-1] = torch.where(same, 2 / (1 / torch.where(same, m[:-1], 1.0) + 1 / torch.where(same, m[1:], 1.0)), 0.0)
    for i, (m0, m1) in ((0, (m[0], m[1] if len(m) > 1 else m[0])), (-1, (m[-1], m[-2] if len(m) > 1 else m[-1]))):
        end = (3 * m0 - m1) / 2
        if torch.sign(end) != torch.sign(m0):
            end = torch.zeros_like(end)
        elif torch.sign(m0) != torch.sign(m1) and end.abs() > 3 * m0.abs():
            end = 3 * m0
        d[i] = end
    return d
