"""Noise schedules of Gaussian paths in unified time, and the noise-level spacings built on them.

A method on an affine path x_t = alpha_t x1 + sigma_t x0 (t = 0 source, t = 1 data) describes its path to the
solvers by a :class:`NoiseSchedule`: alpha_t and sigma_t as functions of t. Two derived quantities carry the
samplers of the diffusion literature:

    log-SNR             lambda(t) = log(alpha_t / sigma_t)       increasing in t, -inf where alpha = 0,
                                                                 +inf where sigma = 0
    noise-to-signal     s(t) = sigma_t / alpha_t = exp(-lambda)  EDM's sigma (Karras et al. write x / alpha
                                                                 = x1 + s n, a variance-exploding path)

Noise-level time grids (``edm``, ``logsnr`` in ``odebench.bench.core.time_grids``) space their points in s or
lambda and map them back to each method's own t with :meth:`NoiseSchedule.t_of_log_snr`, so one grid means the
same noise levels for every method, whatever its time variable. Formulas: docs/maths.md, "Gaussian paths" and
"Time grids".
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod

import torch
from torch import Tensor

#: EDM's noise range (Karras et al.; NVlabs/edm's sampler defaults, which it also applies to other models):
#: noise-level grids space their points between these ratios, or the method's own ends where those lie inside,
#: and then put the method's own ends t0 and t1 in place of the first and last points
SIGMA_MAX = 80.0
SIGMA_MIN = 0.002
#: a noise-to-signal ratio below this is the rounding of an exact 0 (cos(pi / 2) is 6e-17 in float64) and is
#: taken as 0 by the samplers
ZERO_RATIO = 1e-10
#: Karras et al.'s rho: the ``edm`` grid is uniform in s^(1 / rho)
RHO = 7.0


class NoiseSchedule(ABC):
    """alpha_t and sigma_t of a path x_t = alpha_t x1 + sigma_t x0 with x0 ~ N(0, I), in unified time.

    Subclasses give :meth:`alpha_sigma`; the log-SNR must increase with t on the method's interval (the
    default inverse is a bisection on it). Every function takes t of any shape and dtype (solvers pass float64).
    """

    @abstractmethod
    def alpha_sigma(self, t: Tensor) -> tuple[Tensor, Tensor]:
        """(alpha_t, sigma_t), each shaped like t."""

    def log_snr(self, t: Tensor) -> Tensor:
        """lambda(t) = log alpha_t - log sigma_t (-inf where alpha = 0, +inf where sigma = 0)."""
        alpha, sigma = self.alpha_sigma(t)
        return torch.log(alpha) - torch.log(sigma)

    def t_of_log_snr(self, lam: Tensor, t0: float, t1: float) -> Tensor:
        """The t in [t0, t1] with log_snr(t) = lam, by bisection in float64 (exact to float64 precision).

        Values of lam beyond the interval's own log-SNR return the nearer end.
        """
        lam = lam.to(torch.float64)
        lo = torch.full_like(lam, float(t0))
        hi = torch.full_like(lam, float(t1))
        for _ in range(64):  # each halving gains a bit; 64 exhaust float64 on [0, 1]
            mid = 0.5 * (lo + hi)
            below = self.log_snr(mid) < lam
            lo = torch.where(below, mid, lo)
            hi = torch.where(below, hi, mid)
        return 0.5 * (lo + hi)


def log_snr_range(schedule: NoiseSchedule, t0: float, t1: float) -> tuple[float, float]:
    """(lambda(t0), lambda(t1)) in float64; either may be infinite."""
    lam = schedule.log_snr(torch.tensor([t0, t1], dtype=torch.float64))
    return float(lam[0]), float(lam[1])


def noise_level_times(levels: Tensor, schedule: NoiseSchedule, t0: float, t1: float) -> Tensor:
    """Times [n + 1] (float64, from t0 to t1) of the noise-to-signal ratios ``levels`` [n + 1] (decreasing),
    the first and last replaced by the method's own ends t0 and t1."""
    ts = schedule.t_of_log_snr(-torch.log(levels.to(torch.float64)), t0, t1)
    ts[0], ts[-1] = t0, t1
    return ts


def level_range(schedule: NoiseSchedule, t0: float, t1: float) -> tuple[float, float]:
    """(s_hi, s_lo): the noise-to-signal ratios at t0 and t1, clipped into [SIGMA_MIN, SIGMA_MAX] (an infinite
    ratio at a flow's source end, a zero one at its data end, or a tiny one as fm_ot's 1e-4)."""
    lam0, lam1 = log_snr_range(schedule, t0, t1)
    s_hi = min(math.exp(-lam0), SIGMA_MAX) if lam0 > -math.inf else SIGMA_MAX
    s_lo = max(math.exp(-lam1), SIGMA_MIN) if lam1 < math.inf else SIGMA_MIN
    if s_lo >= s_hi:  # a method living inside a narrow noise range: its own ends
        s_hi, s_lo = math.exp(-lam0), math.exp(-lam1)
    return s_hi, s_lo


def clean_ratios(alpha: list[float], sigma: list[float]) -> list[float]:
    """sigma with the values whose ratio to alpha is below ZERO_RATIO set to 0 (rounding of an exact 0)."""
    return [0.0 if a > 0 and s < ZERO_RATIO * a else s for a, s in zip(alpha, sigma, strict=True)]


def karras_levels(n_steps: int, s_hi: float, s_lo: float, rho: float = RHO) -> Tensor:
    """n_steps + 1 noise-to-signal ratios from s_hi down to s_lo, uniform in s^(1 / rho) (Karras et al.)."""
    u = torch.linspace(0.0, 1.0, n_steps + 1, dtype=torch.float64)
    a, b = s_hi ** (1 / rho), s_lo ** (1 / rho)
    return (a + u * (b - a)) ** rho


def log_snr_levels(n_steps: int, s_hi: float, s_lo: float) -> Tensor:
    """n_steps + 1 noise-to-signal ratios from s_hi down to s_lo, uniform in lambda = -log s."""
    return torch.exp(torch.linspace(-math.log(s_hi), -math.log(s_lo), n_steps + 1, dtype=torch.float64).neg())


def to_device(t: Tensor, device=None, dtype=None) -> Tensor:
    """A host tensor (computed in float64 on the CPU) on ``device`` in ``dtype``, without a host synchronisation:
    to a GPU through pinned memory and an asynchronous copy (a plain copy from pageable memory waits for it)."""
    t = t.to(dtype=dtype or t.dtype)
    if device is None or torch.device(device).type != "cuda":
        return t.to(device=device)
    return t.pin_memory().to(device=device, non_blocking=True)
