"""A diffusers ``UNet2DModel`` (or any network called the same way) with its ``DDPMScheduler``, as an odebench
method.

Mapping. diffusers trains on T discrete timesteps k = 0 .. T - 1 (``num_train_timesteps``), timestep 0 the
least noisy: x_k = sqrt(abar_k) x_data + sqrt(1 - abar_k) eps with abar = ``scheduler.alphas_cumprod``, so its
time runs from the data (k = 0) to the noise (k = T - 1), the other way round from odebench's. The network is
called as ``net(x, k)`` (``UNet2DModel.forward(sample, timestep)``, whose output's ``.sample`` is taken) and
predicts what ``scheduler.config.prediction_type`` says: ``epsilon`` (eps, kind ``eps``), ``sample`` (x_data,
kind ``x1``) or ``v_prediction`` (v = sqrt(abar) eps - sqrt(1 - abar) x_data, kind ``v``; then
eps = sqrt(abar) v + sqrt(1 - abar) x).

Time. Our t in [0, 1] maps to the fractional timestep k(t) = (1 - t) T - 1: t = 0 is timestep T - 1 (the
source; for the usual linear betas alpha = 0.006 there, so N(0, I) is the source up to that, as for ``ddpm``),
timestep 0 (sigma = sqrt(beta_0), 0.01 for the usual betas) is t = 1 - 1/T, and t = 1 is "timestep -1", the clean
end (alpha_bar = 1, sigma = 0) where diffusers' schedulers end: DDIM's last step goes to alpha_bar = 1
(``set_alpha_to_one``), DPM-Solver++'s to sigma = 0 (``final_sigmas_type="zero"``), and DDPM's last step
returns the posterior mean at timestep 0, which is the data prediction there. With this map the ``uniform``
grid of n steps puts the network calls on diffusers' ``trailing`` timesteps (999, 899, ..., 99 for 10 of 1000),
and the ``leading``, ``trailing`` and ``linspace`` grids (``odebench.bench.core.time_grids``) are diffusers'
spacings themselves. Between timesteps the log-SNR lambda_k = log(abar_k / (1 - abar_k)) / 2 is interpolated in k
by the monotone cubic Hermite (PCHIP, Fritsch-Carlson) interpolant, the one ``scipy.interpolate.PchipInterpolator``
builds on unit spacing, and alpha_t^2 = sigmoid(2 lambda), sigma_t^2 = sigmoid(-2 lambda). This is exact at every
timestep (alpha_t^2 = abar_k to float64 rounding), keeps the path variance-preserving and the log-SNR decreasing
in k, and has a continuous derivative: a linear interpolant would make the probability-flow velocity jump at
every timestep, and fixed-step solvers would then lose their order (with the exact eps of a Gaussian, Heun's
error wandered between 7e-4 and 5e-3 from NFE 100 to 2000 without falling; with PCHIP: 4.3e-3, 1.3e-3, 3.9e-4
at NFE 100, 200, 400). Between timestep 0 and the clean end sigma^2 falls linearly in k to 0 (1 - abar_0) (k + 1);
only its end (alpha = 1, sigma = 0) is ever used by a solver with a timestep or uniform grid. The network gets the
fractional k (its sinusoidal time embedding takes any real k), never below 0: it was trained on k >= 0.

The final step. The data-prediction samplers (DDIM, DPM-Solver++, UniPC) run to the clean end t = 1
(``Dynamics.data_t1``): their last step lands on sigma = 0, which is the data prediction at the last grid point,
as diffusers' is (one network call, one step of the budget). Every other solver runs to timestep 0
(t1 = 1 - 1/T, the last noise level trained on): the SDE samplers (``ancestral``, ``euler_maruyama``, ``pc``)
then end with the data prediction there (``Dynamics.denoise``, one more network call, counted: DDPM's final
posterior mean), while the ODE solvers return the probability-flow map to timestep 0 itself (an ODE map is never
denoised in odebench; its samples keep the noise sigma_0 = sqrt(beta_0)). EDM's samplers also end at
timestep 0.

What odebench does not do that diffusers may: DDIM built from a DDPM config inherits ``clip_sample=True`` and
clips its data prediction to [-1, 1] at every step; odebench never clips (set ``clip_sample=False`` in diffusers
to compare). A zero-terminal-SNR schedule (``rescale_betas_zero_snr=True``: alpha_bar = 0 at the last timestep)
is refused when the adapter is built: its source has alpha = 0, where the probability-flow drift is infinite and
a noise prediction says nothing about the data (diffusers samples such models with v-prediction and trailing
steps from the data prediction, which this adapter does not offer).

Sampling. The path being Gaussian and variance preserving, this adapter is ``ddpm``'s family
(``odebench.methods.diffusion.GaussianDiffusion``) with the scheduler's schedule in place of the continuous
one: its probability-flow ODE dx/dt = -f x + (g^2 / 2) eps_hat / sigma (every ODE solver), reverse SDE
(``euler_maruyama``), ancestral step, data prediction (DDIM, DPM-Solver++, UniPC) and noise schedule
(``edm``/``logsnr`` grids), with f = d log alpha / ds = sigma^2 dlambda/ds and g^2 = -2 f in the diffusion time
s = 1 - t = (k + 1) / T.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace
from typing import Any

import torch
from torch import Tensor, nn

from odebench.adapters.base import Adapter, require_peer
from odebench.bench.core.fields import Dynamics, TrainTimesteps
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
    needs_gaussian_source = True

    def __init__(self, net: nn.Module, scheduler: Any, kind: str | None = None):
        require_peer("diffusers", "diffusers")
        if not isinstance(net, nn.Module):
            raise TypeError(f"diffusers adapter: expected a torch.nn.Module, got {type(net).__name__}")
        abar = getattr(scheduler, "alphas_cumprod", None)
        if not isinstance(abar, Tensor) or abar.dim() != 1 or len(abar) < 2:
            raise TypeError(f"diffusers adapter: the scheduler must have alphas_cumprod (a DDPMScheduler); got "
                            f"{type(scheduler).__name__}")
        if float(abar[-1]) <= 0.0:
            raise ValueError("diffusers adapter: the scheduler's alphas_cumprod is 0 at its last timestep (a "
                             "zero-terminal-SNR schedule, rescale_betas_zero_snr=True), which odebench does not "
                             "support: its source has alpha = 0, where the probability-flow drift is infinite and a "
                             "noise prediction says nothing about the data; evaluate a model trained without "
                             "rescale_betas_zero_snr")
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
        # the SDE and ODE solvers stop at timestep 0 (t = 1 - 1/T), the least noisy the network was trained on
        self.sampling_eps = self.nll_eps = 1.0 / self.n_steps
        self.steps_offset = int(getattr(getattr(scheduler, "config", None), "steps_offset", 0) or 0)
        Method.__init__(self, **self.identity())

    def settings(self) -> dict[str, Any]:
        digest = hashlib.sha256(self.abar.numpy().tobytes()).hexdigest()
        return {"num_train_timesteps": self.n_steps, "alphas_cumprod_sha256": digest, "steps_offset": self.steps_offset,
                "timestep_of_t": "(1 - t) T - 1", "final_step": "clean"}

    def timestep(self, t: Tensor) -> Tensor:
        """Our t: [B] -> diffusers' fractional timestep k = (1 - t) T - 1 (-1 at t = 1: the clean end)."""
        return (1 - t) * self.n_steps - 1

    def time_of(self, k: Tensor) -> Tensor:
        """diffusers' timesteps k -> our t = 1 - (k + 1) / T (k = -1: the clean end t = 1)."""
        return 1 - (k + 1) / self.n_steps

    def log_snr_at(self, k: Tensor) -> tuple[Tensor, Tensor]:
        """(lambda(k), dlambda/dk) at fractional timesteps k in [-1, T - 1] (float64): the PCHIP interpolant of
        lambda_k for k >= 0; below, sigma^2 = (1 - abar_0)(k + 1) down to 0 (lambda = +inf at k = -1)."""
        k = k.to(torch.float64).clamp(-1, self.n_steps - 1)
        lam, d = self.lam.to(k.device), self.slopes.to(k.device)
        kk = k.clamp_min(0)
        j = torch.floor(kk).clamp(0, self.n_steps - 2).long()
        w = kk - j
        w2, w3 = w * w, w * w * w
        l0, l1, d0, d1 = lam[j], lam[j + 1], d[j], d[j + 1]
        value = (2 * w3 - 3 * w2 + 1) * l0 + (w3 - 2 * w2 + w) * d0 + (3 * w2 - 2 * w3) * l1 + (w3 - w2) * d1
        slope = (6 * w2 - 6 * w) * (l0 - l1) + (3 * w2 - 4 * w + 1) * d0 + (3 * w2 - 2 * w) * d1
        # the clean-up segment from timestep 0 to the clean end: sigma^2 = c u, alpha^2 = 1 - c u, u = k + 1
        c, u = 1 - float(self.abar[0]), (k + 1).clamp_max(1)
        tail = 0.5 * (torch.log1p(-c * u) - torch.log(c * u))
        tail_slope = 0.5 * (-c / (1 - c * u) - 1 / u)
        below = k < 0
        return torch.where(below, tail, value), torch.where(below, tail_slope, slope)

    def schedule(self, s: Tensor) -> Schedule:
        lam, slope = self.log_snr_at(s * self.n_steps - 1)
        sigma2 = torch.sigmoid(-2 * lam)
        f = sigma2 * slope * self.n_steps  # d log alpha / ds = sigma^2 dlambda/ds
        dtype = s.dtype
        return Schedule(log_alpha=(0.5 * torch.nn.functional.logsigmoid(2 * lam)).to(dtype),
                        sigma=sigma2.sqrt().to(dtype), f=f.to(dtype), g2=(-2 * f).to(dtype))

    def eps_hat(self, model: nn.ModuleDict, x: Tensor, s: Tensor) -> Tensor:
        k = (s.to(torch.float64) * self.n_steps - 1).clamp_min(0)  # never below the least noisy trained timestep
        out = model["net"](x, k.to(x.dtype))
        out = out[0] if isinstance(out, tuple) else getattr(out, "sample", out)
        if self.kind == "eps":
            return out
        sch = self.schedule(s.to(torch.float64))
        a, sigma = expand_t(sch.log_alpha.exp().to(x.dtype), x), expand_t(sch.sigma.to(x.dtype), x)
        if self.kind == "x1":
            return (x - a * out) / sigma
        return a * out + sigma * x  # v = a eps - sigma x_data

    def dynamics(self, model: nn.ModuleDict) -> Dynamics:
        """``GaussianDiffusion``'s dynamics to timestep 0, with the SDE samplers' final data prediction there, the
        clean end t = 1 for the data-prediction samplers, and the training timesteps for diffusers' spacings."""
        dyn = super().dynamics(model)
        return replace(dyn, denoise=dyn.x1_hat, data_t1=1.0, nll_t1=None,
                       timesteps=TrainTimesteps(self.n_steps, self.time_of, self.steps_offset))

    def offers(self) -> frozenset[str]:
        return super().offers() | {"train_timesteps"}

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
