"""Stochastic interpolants (Albergo & Vanden-Eijnden, ICLR 2023; Albergo, Boffi & Vanden-Eijnden, 2023,
"Stochastic Interpolants: A Unifying Framework for Flows and Diffusions", arXiv:2303.08797).

    x_t = I(t, x0, x1) + gamma(t) z,   z ~ N(0, I) independent of (x0, x1),   I = alpha_t x1 + sigma_t x0

with I(0) = x0, I(1) = x1 and gamma(0) = gamma(1) = 0, for ANY two laws of x0 and x1 (domain transfer, e.g.
``8gaussians -> moons``). Paths (``path``): ``linear`` I = (1 - t) x0 + t x1; ``trig`` I = cos(pi t / 2) x0 +
sin(pi t / 2) x1; ``encdec`` I = cos^2(pi t) x0 on [0, 1/2), cos^2(pi t) x1 on [1/2, 1] (the framework
paper's encoder-decoder interpolant, :class:`odebench.methods.probability_paths.EncoderDecoderPath`). Latent noise
gamma(t) = sqrt(a t (1 - t)) with a = ``gamma`` (0: deterministic interpolant).

Learned fields (quadratic losses, per-dimension averages; the minimisers are the conditional expectations):

    b(t, x)   = E[dI/dt + gamma'(t) z | x_t = x]   by   E[ |b|^2 - 2 (dI/dt + gamma' z) . b ]
    eta(t, x) = E[z | x_t = x]                     by   E[ |eta|^2 - 2 z . eta ]          (gamma > 0 only)

The ODE dx/dt = b carries pi_0 to pi_1. With gamma > 0 the score is s = -eta / gamma and the SDE
dX = (b + eps s) dt + sqrt(2 eps) dW has the same marginals for every eps >= 0 (``eps``), sampled by
``euler_maruyama`` through ``Dynamics.drift`` / ``Dynamics.diffusion``.

Choices and facts (authors' code ``malbergo/stochastic-interpolants``, read for facts only):

- gamma'(t) = a (1 - 2t) / (2 gamma(t)) and s = -eta / gamma blow up at t = 0 and 1. With gamma > 0 we
  train on t ~ U[t_eps, 1 - t_eps] and integrate (ODE and SDE) from t_eps to 1 - t_eps, starting from the
  source draw itself (an O(gamma(t_eps)) = O(sqrt(a t_eps)) approximation of the law of x_{t_eps}) and
  returning x_{1 - t_eps}, which still carries noise of scale gamma(1 - t_eps). With t_eps = 1e-3 and a = 1
  both are ~0.03. With gamma = 0 nothing is singular and time runs over [0, 1].
- The NLL (``odebench.metrics.likelihood``) is that of the flow over [0, 1], where the laws are exactly the
  source's and the data's: the solver integrates [t_eps, 1 - t_eps], and the two end pieces, where b was not
  trained (its target's gamma' z term is unbounded there) and the data end's convolution with N(0, gamma^2)
  is undone, are one Euler step each with b and div b read at t_eps and 1 - t_eps (``Dynamics.nll_span``).
  Read at 1 - t_eps alone, the NLL would be that of the data convolved with noise of scale ~ sqrt(a t_eps),
  which on data with small-scale structure (17 grey levels) is another number altogether. The bias of the
  Euler pieces is O(t_eps^2) times the rate of change of div b: for Gaussian data of scale s it is measured
  against the closed form in tests/metrics/test_interpolant_nll_ends.py.
- Like the authors' losses, ours use antithetic noise (x_t = I +- gamma z with the same t, x0, x1, z): the
  gamma' z and z terms, large near the ends, cancel to first order between the two halves.
- The authors' trigonometric interpolant with gamma > 0 scales I by sqrt(1 - gamma^2), so that x_t keeps unit
  variance for unit-variance x0, x1 (variance preserving): that is ``vp_trig``,
  I = sqrt(1 - a t (1 - t)) (cos(pi t / 2) x0 + sin(pi t / 2) x1), which needs 0 < a < 4 (with a = 0 it is
  ``trig``, refused as a duplicate). ``trig`` keeps the plain cos / sin path of docs/maths.md ("Affine paths")
  for every gamma, which is a valid interpolant as well.
- Their encoder-decoder interpolant is meant with latent noise (I vanishes at t = 1/2), so ``encdec``
  with gamma = 0 is refused.
- Gaussian path. From x0 ~ N(0, I), x_t = alpha_t x1 + sigma_t x0 + gamma z is alpha_t x1 plus Gaussian
  noise of scale sigma_eff = sqrt(sigma_t^2 + gamma^2), and b = alpha' E[x1 | x] + (sigma_eff'/sigma_eff)
  (x - alpha E[x1 | x]) with sigma_eff' = (sigma sigma' + gamma gamma') / sigma_eff (given x1, the noise
  sigma x0 + gamma z is Gaussian and its two parts share it in proportion), so the ``linear`` and ``trig``
  interpolants offer (alpha, sigma_eff) as their ``noise_schedule`` and x1_hat = E[x1 | x] as ``x1_hat``.
  ``encdec`` does not: its alpha_t is 0 on [0, 1/2], where the log-SNR is not increasing. With a source
  dataset the noise is not Gaussian and the plan withdraws ``x1_hat``.
- The authors train b and eta as two networks; with gamma > 0 we use one network with two output heads
  (``make_net(out_mult=2)``: channels [b, eta]), which halves the cost of the antithetic loss and shares
  the features both fields need.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from odebench.methods.base import Dynamics, Method, expand_t, register_method
from odebench.methods.probability_paths import (
    PATHS,
    AffinePath,
    CoefficientSchedule,
    PathCoefficients,
    x1_hat_from_velocity,
)

INTERPOLANT_PATHS = ("linear", "trig", "vp_trig", "encdec")


class VPTrigPath(AffinePath):
    """The authors' variance-preserving trigonometric interpolant: alpha_t = r(t) sin(pi t / 2), sigma_t =
    r(t) cos(pi t / 2), r(t) = sqrt(1 - a t (1 - t)), so that alpha^2 + sigma^2 + gamma^2 = 1 with the latent
    noise gamma(t)^2 = a t (1 - t). t: [B]; each coefficient is shaped like t."""

    def __init__(self, a: float):
        if not 0 < a < 4:
            raise ValueError(f"interpolant: path 'vp_trig' needs 0 < gamma < 4 (its I is scaled by "
                             f"sqrt(1 - gamma t (1 - t))), got gamma={a}; gamma = 0 is path 'trig'")
        self.a = a

    def coefficients(self, t):
        h = math.pi / 2
        r = torch.sqrt(1 - self.a * t * (1 - t))
        dr = -self.a * (1 - 2 * t) / (2 * r)
        sin, cos = torch.sin(h * t), torch.cos(h * t)
        return PathCoefficients(alpha_t=r * sin, sigma_t=r * cos, d_alpha_t=dr * sin + r * h * cos,
                                d_sigma_t=dr * cos - r * h * sin)


@register_method("interpolant")
class StochasticInterpolant(Method):
    """Stochastic interpolant between any two laws; ODE sampling always, SDE sampling when gamma > 0."""

    reference = "arXiv:2303.08797"
    citation = ("Albergo, Boffi, Vanden-Eijnden. Stochastic Interpolants: A Unifying Framework for Flows "
                "and Diffusions. arXiv:2303.08797 (2023); Albergo, Vanden-Eijnden. Building Normalizing "
                "Flows with Stochastic Interpolants. ICLR 2023")
    needs_gaussian_source = False

    sampling_hparams = ("eps",)  # the SDE's diffusion coefficient; the learned fields do not depend on it

    def __init__(self, path: str = "linear", gamma: float = 0.0, eps: float = 1.0, t_eps: float = 1e-3):
        if path not in INTERPOLANT_PATHS:
            raise ValueError(f"interpolant: unknown path {path!r}; choose one of "
                             f"{', '.join(INTERPOLANT_PATHS)}")
        if float(gamma) < 0 or float(eps) < 0:
            raise ValueError(f"interpolant: gamma and eps must be >= 0, got gamma={gamma}, eps={eps}")
        if path == "encdec" and float(gamma) == 0:
            raise ValueError("interpolant: path 'encdec' passes through 0 at t = 1/2 and needs latent noise; "
                             "set gamma > 0 (e.g. gamma = 1.0)")
        if not 0 < float(t_eps) < 0.5:
            raise ValueError(f"interpolant: t_eps must be in (0, 0.5), got {t_eps}")
        super().__init__(path=path, gamma=float(gamma), eps=float(eps), t_eps=float(t_eps))
        self.path: AffinePath = VPTrigPath(float(gamma)) if path == "vp_trig" else PATHS.get(path)()

    def config(self):
        h = self.hparams
        if h["gamma"] == 0:  # eps and t_eps do not act without latent noise: keep them out of the key
            return {"name": self.name, "path": h["path"], "gamma": 0.0}
        return super().config()

    @property
    def stochastic(self) -> bool:
        return self.hparams["gamma"] > 0

    def time_range(self) -> tuple[float, float]:
        """Training and integration interval: [0, 1], or [t_eps, 1 - t_eps] where gamma' is singular."""
        e = self.hparams["t_eps"] if self.stochastic else 0.0
        return e, 1.0 - e

    def gamma_of(self, t: Tensor) -> tuple[Tensor, Tensor]:
        """gamma(t) = sqrt(a t (1 - t)) and gamma'(t) = a (1 - 2t) / (2 gamma(t)), each shaped like t."""
        a = self.hparams["gamma"]
        g = torch.sqrt(a * t * (1 - t))
        return g, a * (1 - 2 * t) / (2 * g)

    def networks(self, make_net, shape):
        if self.stochastic:
            return nn.ModuleDict({"b_eta": make_net(out_mult=2)})
        return nn.ModuleDict({"b": make_net()})

    def fields(self, model: nn.ModuleDict, x: Tensor, t: Tensor) -> tuple[Tensor, Tensor | None]:
        """(b, eta) at (x [B, C, ...], t [B]), each [B, C, ...]; eta is None without latent noise."""
        if not self.stochastic:
            return model["b"](x, t), None
        b, eta = model["b_eta"](x, t).chunk(2, dim=1)
        return b, eta

    def loss(self, model, x0, x1, gen):
        lo, hi = self.time_range()
        t = lo + (hi - lo) * torch.rand(x1.shape[0], generator=gen, device=x1.device)
        ps = self.path.sample(x0, x1, t)  # ps.x_t = I(t), ps.dx_t = dI/dt
        if not self.stochastic:
            b = model["b"](ps.x_t, t)
            return (b.pow(2) - 2 * ps.dx_t * b).mean()
        z = torch.randn(x1.shape, generator=gen, device=x1.device, dtype=x1.dtype)
        g, dg = (expand_t(v, x1) for v in self.gamma_of(t))
        total = x1.new_zeros(())
        for sign in (1.0, -1.0):  # antithetic pair: the same t, x0, x1 and z, with +z and -z
            x_t = ps.x_t + sign * g * z
            b, eta = self.fields(model, x_t, t)
            total = total + (b.pow(2) - 2 * (ps.dx_t + sign * dg * z) * b).mean()
            total = total + (eta.pow(2) - 2 * sign * z * eta).mean()
        return total / 2

    @property
    def gaussian_path(self) -> bool:
        """Whether (alpha, sigma_eff) is a noise schedule with increasing log-SNR (not ``encdec``)."""
        return self.hparams["path"] != "encdec"

    def offers(self):
        have = {"velocity", "sde"} if self.stochastic else {"velocity"}
        if self.gaussian_path:
            have |= {"noise_schedule", "x1_hat"}
        return frozenset(have)

    def effective_coefficients(self, t: Tensor) -> PathCoefficients:
        """alpha_t and the total noise scale sigma_eff = sqrt(sigma_t^2 + gamma(t)^2), with their derivatives."""
        c = self.path.coefficients(t)
        if not self.stochastic:
            return c
        g, dg = self.gamma_of(t)
        s_eff = torch.sqrt(c.sigma_t**2 + g**2)
        return PathCoefficients(alpha_t=c.alpha_t, sigma_t=s_eff, d_alpha_t=c.d_alpha_t,
                                d_sigma_t=(c.sigma_t * c.d_sigma_t + g * dg) / s_eff)

    def gaussian_terms(self, velocity) -> dict:
        """``schedule`` and ``x1_hat`` for Dynamics (empty for ``encdec``)."""
        if not self.gaussian_path:
            return {}
        inverse = self.path.t_of_log_snr if not self.stochastic else None  # with gamma > 0: bisection
        return {"schedule": CoefficientSchedule(self.effective_coefficients, inverse),
                "x1_hat": x1_hat_from_velocity(velocity, self.effective_coefficients)}

    def dynamics(self, model):
        lo, hi = self.time_range()
        if not self.stochastic:
            return Dynamics(velocity=model["b"], t0=lo, t1=hi, **self.gaussian_terms(model["b"]))
        eps = self.hparams["eps"]
        noise = math.sqrt(2 * eps)

        def velocity(x: Tensor, t: Tensor) -> Tensor:
            return self.fields(model, x, t)[0]

        def drift(x: Tensor, t: Tensor) -> Tensor:
            b, eta = self.fields(model, x, t)
            return b - eps * eta / expand_t(self.gamma_of(t)[0], x)  # b + eps * score, score = -eta / gamma

        # the likelihood is that of the flow over [0, 1]: the pieces [0, t_eps] and [1 - t_eps, 1], where the field
        # was not trained, are one Euler step each with b read at t_eps and 1 - t_eps (Dynamics.nll_span)
        return Dynamics(velocity=velocity, drift=drift, diffusion=lambda t: torch.full_like(t, noise),
                        t0=lo, t1=hi, nll_span=(0.0, 1.0), **self.gaussian_terms(velocity))
