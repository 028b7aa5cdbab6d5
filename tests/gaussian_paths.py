"""Shared by the sampler tests: noise schedules and the exact data prediction of Gaussian data on them.

For data x1 ~ N(m, diag s^2) and x_t = alpha_t x1 + sigma_t x0 (x0 ~ N(0, I) independent), everything is in
closed form per dimension:

    E[x1 | x_t = x] = m + alpha s^2 / (alpha^2 s^2 + sigma^2) (x - alpha m)
    probability-flow ODE solution: x_t = alpha_t m + v_t z,  v_t = sqrt(alpha_t^2 s^2 + sigma_t^2),  z fixed
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from odebench.bench.core.fields import Dynamics
from odebench.bench.core.schedules import NoiseSchedule


class TrigSchedule(NoiseSchedule):
    """alpha = sin(pi t / 2), sigma = cos(pi t / 2): alpha = 0 at t = 0 and sigma = 0 at t = 1 (both ends open)."""

    def alpha_sigma(self, t):
        return torch.sin(math.pi * t / 2), torch.cos(math.pi * t / 2)


class VPSchedule(NoiseSchedule):
    """Song et al.'s VP path (beta 0.1 -> 20) in unified time; alpha(0) = 0.0066, sigma > 0 everywhere."""

    def alpha_sigma(self, t):
        s = 1 - t
        log_a = -0.5 * (0.1 * s + 0.5 * 19.9 * s**2)
        return log_a.exp(), (-torch.expm1(2 * log_a)).sqrt()


class VESchedule(NoiseSchedule):
    """alpha = 1, sigma affine from 80 (t = 0) to 0.002 (t = 1): EDM's path in unified time."""

    def alpha_sigma(self, t):
        return torch.ones_like(t), 80.0 + t * (0.002 - 80.0)


class Gaussian:
    """Data N(m, diag s^2) and its exact data prediction on a schedule."""

    def __init__(self, m: Tensor, s: Tensor):
        self.m, self.s = m, s

    def x1_hat(self, schedule: NoiseSchedule):
        def field(x: Tensor, t: Tensor) -> Tensor:
            a, sg = schedule.alpha_sigma(t)
            a, sg = a[:, None].to(x.dtype), sg[:, None].to(x.dtype)
            return self.m + a * self.s**2 / (a**2 * self.s**2 + sg**2) * (x - a * self.m)

        return field

    def dynamics(self, schedule: NoiseSchedule, t0: float = 0.0, t1: float = 1.0) -> Dynamics:
        """Dynamics whose only field is the exact x1_hat (the velocity is left unusable on purpose)."""

        def no_velocity(x, t):
            raise AssertionError("a data-prediction sampler called the velocity")

        return Dynamics(velocity=no_velocity, x1_hat=self.x1_hat(schedule), schedule=schedule, t0=t0, t1=t1)

    def flow(self, schedule: NoiseSchedule, z: Tensor, t: float) -> Tensor:
        """The probability-flow ODE's state at t of the path through standardised z."""
        a, sg = (v.item() for v in schedule.alpha_sigma(torch.tensor([t], dtype=torch.float64)))
        return a * self.m + (a**2 * self.s**2 + sg**2).sqrt() * z
