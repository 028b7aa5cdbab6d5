"""Fixed-step ODE solvers: Euler, explicit midpoint, Heun (explicit trapezoid), classical RK4."""

from __future__ import annotations

from odebench.bench.core.solvers.base import FixedStepSolver, register_solver


@register_solver("euler")
class Euler(FixedStepSolver):
    description = "Euler's method, first order: one evaluation per step"
    evals_per_step = 1

    def step(self, f, x, t, dt, *, dyn, gen, last):
        return x + dt * f(x, t)


@register_solver("midpoint")
class Midpoint(FixedStepSolver):
    description = "Explicit midpoint method, second order: two evaluations per step"
    evals_per_step = 2

    def step(self, f, x, t, dt, *, dyn, gen, last):
        half = 0.5 * dt  # computed once for the state and the time
        k1 = f(x, t)
        return x + dt * f(x + half * k1, t + half)


@register_solver("heun")
class Heun(FixedStepSolver):
    """Heun's method (explicit trapezoid), two evaluations every step, the last one included."""

    evals_per_step = 2

    def step(self, f, x, t, dt, *, dyn, gen, last):
        k1 = f(x, t)
        k2 = f(x + dt * k1, t + dt)
        return x + 0.5 * dt * (k1 + k2)


@register_solver("rk4")
class RK4(FixedStepSolver):
    description = "Classical fourth-order Runge-Kutta method: four evaluations per step"
    evals_per_step = 4

    def step(self, f, x, t, dt, *, dyn, gen, last):
        half = 0.5 * dt
        t_half = t + half  # shared by k2 and k3
        k1 = f(x, t)
        k2 = f(x + half * k1, t_half)
        k3 = f(x + half * k2, t_half)
        k4 = f(x + dt * k3, t + dt)
        return x + dt / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
