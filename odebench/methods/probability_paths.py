"""Probability paths shared by the method families, in the unified time (t = 0 source x0, t = 1 data x1).

An affine path is x_t = alpha_t x1 + sigma_t x0 with conditional velocity u_t = alpha'_t x1 + sigma'_t x0.
``PATHS`` maps spec names to path classes; each path returns a :class:`PathCoefficients` dataclass whose
names follow the maths, and :meth:`AffinePath.sample` returns a :class:`PathSample`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from odebench.bench.core.registry import Registry
from odebench.bench.core.schedules import NoiseSchedule

__all__ = ["PATHS", "AffinePath", "CoefficientSchedule", "EncoderDecoderPath", "LinearPath", "OTPath",
           "PathCoefficients", "PathSample", "TrigPath", "VPDiffusionPath", "VPSchedule", "path_schedule",
           "x1_hat_from_velocity"]


@dataclass(frozen=True)
class PathCoefficients:
    """alpha_t, sigma_t and their time derivatives, each [B] (or any shape of t)."""

    alpha_t: Tensor
    sigma_t: Tensor
    d_alpha_t: Tensor
    d_sigma_t: Tensor


@dataclass(frozen=True)
class PathSample:
    """A draw from the conditional path: x_t and its conditional velocity dx_t = u_t, all [B, *shape]."""

    x_0: Tensor
    x_t: Tensor
    x_1: Tensor
    t: Tensor
    dx_t: Tensor


class AffinePath:
    """x_t = alpha_t x1 + sigma_t x0; subclasses implement ``coefficients``."""

    #: largest t the path may be trained or sampled at (paths with sigma_1 = 0 and a singular derivative
    #: there stop short)
    t_max: float = 1.0

    def coefficients(self, t: Tensor) -> PathCoefficients:
        raise NotImplementedError

    def t_of_log_snr(self, lam: Tensor) -> Tensor | None:
        """The t with log(alpha_t / sigma_t) = lam in closed form, or None (the schedule then bisects)."""
        return None

    def sample(self, x0: Tensor, x1: Tensor, t: Tensor) -> PathSample:
        """x0, x1: [B, *shape]; t: [B]."""
        c = self.coefficients(t)
        view = (-1,) + (1,) * (x1.dim() - 1)
        a, s = c.alpha_t.reshape(view), c.sigma_t.reshape(view)
        da, ds = c.d_alpha_t.reshape(view), c.d_sigma_t.reshape(view)
        return PathSample(x_0=x0, x_t=a * x1 + s * x0, x_1=x1, t=t, dx_t=da * x1 + ds * x0)


class CoefficientSchedule(NoiseSchedule):
    """The noise schedule of a path given by its ``coefficients(t) -> PathCoefficients`` (alpha_t, sigma_t), with
    the closed-form inverse ``inverse(lam) -> t`` of its log-SNR where there is one (else bisection)."""

    def __init__(self, coefficients: Callable[[Tensor], PathCoefficients],
                 inverse: Callable[[Tensor], Tensor | None] | None = None):
        self.coefficients = coefficients
        self.inverse = inverse

    def alpha_sigma(self, t):
        c = self.coefficients(t)
        return c.alpha_t, c.sigma_t

    def t_of_log_snr(self, lam, t0, t1):
        t = self.inverse(lam.to(torch.float64)) if self.inverse is not None else None
        return super().t_of_log_snr(lam, t0, t1) if t is None else t.clamp(t0, t1)


def path_schedule(path: AffinePath) -> CoefficientSchedule:
    """The noise schedule of an affine path, with its closed-form log-SNR inverse."""
    return CoefficientSchedule(path.coefficients, path.t_of_log_snr)


def x1_hat_from_velocity(velocity: Callable[[Tensor, Tensor], Tensor],
                         coefficients: Callable[[Tensor], PathCoefficients]) -> Callable[[Tensor, Tensor], Tensor]:
    """The data prediction E[x1 | x_t = x] of a marginal velocity on the affine path ``coefficients``.

    v = alpha' E[x1 | x] + sigma' E[x0 | x] and x = alpha E[x1 | x] + sigma E[x0 | x] give

        E[x1 | x] = (sigma v - sigma' x) / (sigma alpha' - sigma' alpha),

    finite at both ends of the linear and OT paths (the denominator is 1 on the linear path).
    """

    def x1_hat(x: Tensor, t: Tensor) -> Tensor:
        c = coefficients(t)
        view = (-1,) + (1,) * (x.dim() - 1)
        sig, dsig = c.sigma_t.reshape(view), c.d_sigma_t.reshape(view)
        den = (c.sigma_t * c.d_alpha_t - c.d_sigma_t * c.alpha_t).reshape(view)
        return (sig * velocity(x, t) - dsig * x) / den

    return x1_hat


PATHS: Registry[type[AffinePath]] = Registry("path", "odebench.paths")


@PATHS.register("linear")
class LinearPath(AffinePath):
    """Rectified flow / linear interpolant: alpha_t = t, sigma_t = 1 - t, u = x1 - x0."""

    def coefficients(self, t):
        one = torch.ones_like(t)
        return PathCoefficients(alpha_t=t, sigma_t=1 - t, d_alpha_t=one, d_sigma_t=-one)

    def t_of_log_snr(self, lam):
        return torch.sigmoid(lam)  # t / (1 - t) = e^lam


@PATHS.register("ot")
class OTPath(AffinePath):
    """Lipman et al.'s OT path: alpha_t = t, sigma_t = 1 - (1 - sigma_min) t, u = x1 - (1 - sigma_min) x0."""

    def __init__(self, sigma_min: float = 1e-4):
        self.sigma_min = float(sigma_min)

    def coefficients(self, t):
        one = torch.ones_like(t)
        k = 1 - self.sigma_min
        return PathCoefficients(alpha_t=t, sigma_t=1 - k * t, d_alpha_t=one, d_sigma_t=-k * one)

    def t_of_log_snr(self, lam):
        return 1 / (torch.exp(-lam) + (1 - self.sigma_min))  # t / (1 - k t) = e^lam


@PATHS.register("trig")
class TrigPath(AffinePath):
    """Trigonometric interpolant: alpha_t = sin(pi t / 2), sigma_t = cos(pi t / 2)."""

    def coefficients(self, t):
        h = math.pi / 2
        return PathCoefficients(alpha_t=torch.sin(h * t), sigma_t=torch.cos(h * t),
                                d_alpha_t=h * torch.cos(h * t), d_sigma_t=-h * torch.sin(h * t))

    def t_of_log_snr(self, lam):
        return torch.atan(torch.exp(lam)) * (2 / math.pi)  # tan(pi t / 2) = e^lam


@dataclass(frozen=True)
class VPSchedule:
    """The variance-preserving (VP) schedule, the one every VP method uses (ddpm, fm_diffusion, the exact
    fields of ``odebench.methods.exact``), in diffusion time s (s = 0 data, s = 1 noise; unified t = 1 - s).

    beta(s) = beta_min + (beta_max - beta_min) s, T(s) = int_0^s beta = beta_min s + (beta_max - beta_min) s^2 / 2,
    a(s) = exp(-T(s) / 2) and sigma(s) = sqrt(1 - a(s)^2), so x_s = a(s) x_data + sigma(s) eps has unit variance
    for unit-variance data. All functions take s of any shape and return that shape.
    """

    beta_min: float = 0.1
    beta_max: float = 20.0

    def beta(self, s: Tensor) -> Tensor:
        """beta(s) = -2 d log a / ds."""
        return self.beta_min + (self.beta_max - self.beta_min) * s

    def log_alpha(self, s: Tensor) -> Tensor:
        """log a(s) = -T(s) / 2."""
        return -0.5 * (self.beta_min * s + 0.5 * (self.beta_max - self.beta_min) * s**2)

    def alpha_sigma(self, s: Tensor) -> tuple[Tensor, Tensor]:
        """(a(s), sigma(s)); sigma^2 = 1 - a^2 through expm1, accurate near s = 0 where a^2 -> 1."""
        log_a = self.log_alpha(s)
        return log_a.exp(), (-torch.expm1(2 * log_a)).clamp_min(1e-20).sqrt()

    def s_of_log_snr(self, lam: Tensor) -> Tensor:
        """The s with log(a(s) / sigma(s)) = lam: T(s) = -log a^2 = log(1 + e^(-2 lam)), solved for s."""
        big_t = torch.nn.functional.softplus(-2 * lam)
        d = self.beta_max - self.beta_min
        s = 2 * big_t / (self.beta_min + torch.sqrt(self.beta_min**2 + 2 * d * big_t))
        # lam = -inf gives T = inf and the quotient inf / inf; s grows without bound there, so the answer is inf
        # (the callers clamp it to the interval's noisy end)
        return torch.where(torch.isinf(big_t), torch.full_like(s, float("inf")), s)


@PATHS.register("vp")
class VPDiffusionPath(AffinePath):
    """Lipman et al.'s diffusion (VP) path: alpha_t = a(1 - t), sigma_t = sqrt(1 - a(1 - t)^2).

    At t = 0, alpha = a(1) ~ 0.0066, so the source is only approximately N(0, I). At t = 1, sigma = 0 and
    d sigma / dt is singular, so training and sampling stop at ``t_max = 1 - 1e-5``.
    """

    t_max = 1 - 1e-5

    def __init__(self, beta_min: float = 0.1, beta_max: float = 20.0):
        self.beta_min, self.beta_max = float(beta_min), float(beta_max)
        self.schedule = VPSchedule(self.beta_min, self.beta_max)

    def coefficients(self, t):
        s = 1 - t
        alpha, sigma = self.schedule.alpha_sigma(s)
        d_alpha = alpha * self.schedule.beta(s) / 2  # d/dt a(1 - t) = -a'(s) = a(s) T'(s) / 2
        d_sigma = -alpha * d_alpha / sigma
        return PathCoefficients(alpha_t=alpha, sigma_t=sigma, d_alpha_t=d_alpha, d_sigma_t=d_sigma)

    def t_of_log_snr(self, lam):
        return 1 - self.schedule.s_of_log_snr(lam)


@PATHS.register("encdec")
class EncoderDecoderPath(AffinePath):
    """Encoder-decoder interpolant (Albergo, Boffi, Vanden-Eijnden 2023, "Stochastic Interpolants: A Unifying
    Framework", Sec. on encoding-decoding interpolants): I(t) = cos^2(pi t) x0 on [0, 1/2) and cos^2(pi t) x1
    on [1/2, 1], i.e. alpha_t = cos^2(pi t) 1[t >= 1/2], sigma_t = cos^2(pi t) 1[t < 1/2].

    The path passes through 0 at t = 1/2 (it "encodes" x0 into nothing and "decodes" x1 out of it), so it is
    only a valid transport when a latent noise gamma(t) z with gamma(1/2) > 0 is added: the stochastic
    interpolant method refuses it with gamma = 0. Both pieces are C^1 at t = 1/2 (value and derivative vanish
    there). The derivative is the exact d/dt cos^2(pi t) = -pi sin(2 pi t) (the authors' reference code
    ``interflow/fabrics.py`` writes this derivative with a different constant factor; we differentiate the
    definition).
    """

    def coefficients(self, t):
        c2 = torch.cos(math.pi * t) ** 2
        dc2 = -math.pi * torch.sin(2 * math.pi * t)
        second = (t >= 0.5).to(t.dtype)
        first = 1 - second
        return PathCoefficients(alpha_t=c2 * second, sigma_t=c2 * first, d_alpha_t=dc2 * second,
                                d_sigma_t=dc2 * first)
