"""ODE/SDE solvers in the unified time convention (t = 0 source, t = 1 data), with counted NFE.

Every solve goes through :func:`solve` (ODE) or :func:`sample` (ODE or SDE from a :class:`Dynamics`), and
always returns one :class:`SolveResult`. NFE is the number of calls actually made to the field, counted by
:class:`CountingField` around it -- never inferred from a step count. A requested budget maps to steps per
solver (euler: n, midpoint/heun: n // 2, rk4: n // 4); a budget below a solver's minimum raises
:class:`BudgetTooSmall`, which the harness turns into a "skipped" cell.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from bench.registry import Registry

Field = Callable[[Tensor, Tensor], Tensor]
"""A velocity field ``f(x, t) -> dx/dt`` with x: [B, *shape], t: [B]."""


class BudgetTooSmall(ValueError):
    """The NFE budget is below what the solver needs for one step (the cell is skipped, not failed)."""


class Unsupported(ValueError):
    """The dynamics lack what the solver needs (e.g. an SDE solver on an ODE-only method)."""


@dataclass(frozen=True)
class LangevinCorrector:
    """Langevin MCMC steps at a fixed time, used by the ``pc`` solver (Song et al.'s predictor-corrector).

    Each step draws z ~ N(0, I) and sets x <- x + e * score(x, t) + sqrt(2 e) z with the step size
    e = 2 (snr * ||z|| / ||score||)^2, the norms averaged over the batch (as in Song et al.'s sampler).

    Attributes:
        score: grad_x log p_t(x), a field (x [B, *shape], t [B]) -> [B, *shape]; each call is a network call.
        n_steps: corrector steps per grid time (each costs one NFE).
        snr: target signal-to-noise ratio of a step.
    """

    score: Field
    n_steps: int = 1
    snr: float = 0.16


@dataclass
class Dynamics:
    """How a trained model moves samples from t0 (source side) to t1 (data side).

    Attributes:
        velocity: ODE field dx/dt = v(x, t), x: [B, *shape], t: [B].
        drift: SDE drift b(x, t) whose SDE dX = b dt + g(t) dW has the ODE's marginals; None if ODE-only.
        diffusion: g(t): [B] -> [B], the SDE's noise scale; given with ``drift``.
        ancestral_net: the network call of the ancestral sampler (e.g. epsilon prediction), [B, *shape].
        ancestral_step: ``(x, net_out, t, t_next, gen, last) -> x_next``, the maths of one DDPM-style step
            given ``net_out = ancestral_net(x, t)``; with ``last=True`` (the step onto t1) it returns the
            mean, without noise; optional.
        corrector: Langevin corrector of the ``pc`` solver; None if the method defines none.
        t0, t1: integration interval; diffusion models stop short of the data end (t1 = 1 - s_eps).
    """

    velocity: Field
    drift: Field | None = None
    diffusion: Callable[[Tensor], Tensor] | None = None
    ancestral_net: Field | None = None
    ancestral_step: Callable[..., Tensor] | None = None
    corrector: LangevinCorrector | None = None
    t0: float = 0.0
    t1: float = 1.0


@dataclass(frozen=True)
class SolveResult:
    """Outcome of one solve.

    Attributes:
        x: final state at t1, [B, *shape].
        nfe: network evaluations actually made.
        t: time grid, [T + 1]: the steps taken (fixed step) or the requested output times (adaptive).
        trajectory: states on ``t``, [T + 1, B, *shape], or None if not requested.
    """

    x: Tensor
    nfe: int
    t: Tensor
    trajectory: Tensor | None = None


class CountingField:
    """Wraps a field and counts its calls; every solver sees the field only through this."""

    def __init__(self, field: Field):
        self.field = field
        self.nfe = 0

    def __call__(self, x: Tensor, t: Tensor) -> Tensor:
        self.nfe += 1
        return self.field(x, t)


# ----------------------------------------------------------------------------------------------- time grids
GRIDS: Registry[Callable[..., Tensor]] = Registry("time grid")


@GRIDS.register("uniform")
def uniform_grid(n_steps: int, t0: float = 0.0, t1: float = 1.0, device=None, dtype=None) -> Tensor:
    """n_steps + 1 equally spaced times from t0 to t1."""
    return torch.linspace(t0, t1, n_steps + 1, device=device, dtype=dtype)


@GRIDS.register("cosine")
def cosine_grid(n_steps: int, t0: float = 0.0, t1: float = 1.0, device=None, dtype=None) -> Tensor:
    """Times denser near both ends: t0 + (t1 - t0) (1 - cos(pi u)) / 2 for uniform u."""
    u = torch.linspace(0.0, 1.0, n_steps + 1, device=device, dtype=dtype)
    return t0 + (t1 - t0) * (1 - torch.cos(math.pi * u)) / 2


# -------------------------------------------------------------------------------------------------- solvers
class Solver(ABC):
    """A registered solver. ``kind`` is "ode" or "sde"; adaptive solvers take rtol/atol instead of nfe."""

    name: str = ""
    kind: str = "ode"
    adaptive: bool = False
    evals_per_step: int = 1

    def steps_for(self, nfe: int) -> int:
        """Number of steps a budget of ``nfe`` network calls buys; raises BudgetTooSmall below one step."""
        steps = nfe // self.evals_per_step
        if steps < 1:
            raise BudgetTooSmall(
                f"solver {self.name!r} needs at least {self.evals_per_step} NFE per step; got a budget of {nfe}"
            )
        return steps

    @abstractmethod
    def run(self, dyn: Dynamics, x0: Tensor, *, nfe: int | None, rtol: float | None, atol: float | None,
            grid: str, gen: torch.Generator | None, trajectory: bool) -> SolveResult:
        """Integrate ``dyn`` from x0 at dyn.t0 to dyn.t1."""


SOLVERS: Registry[Solver] = Registry("solver", "odebench.solvers")


def register_solver(name: str):
    """Class decorator: instantiate and register a Solver subclass under ``name``."""

    def deco(cls: type[Solver]) -> type[Solver]:
        cls.name = name
        SOLVERS.add(name, cls())
        return cls

    return deco


class FixedStepSolver(Solver):
    """Owns the loop over a time grid; subclasses write only ``step``."""

    @abstractmethod
    def step(self, f: Field, x: Tensor, t: Tensor, dt: Tensor, *, dyn: Dynamics,
             gen: torch.Generator | None, last: bool) -> Tensor:
        """Advance x from t to t + dt.

        Args:
            f: the counted field (``field_of(dyn)``); t: [B] broadcast time; dt: 0-d tensor;
            dyn: the dynamics (for SDE terms); gen: noise generator; last: whether this is the final step.
        """

    def field_of(self, dyn: Dynamics) -> Field:
        return dyn.velocity

    def run(self, dyn, x0, *, nfe, rtol, atol, grid, gen, trajectory):
        if nfe is None:
            raise ValueError(f"fixed-step solver {self.name!r} needs an NFE budget (nfe=...)")
        n = self.steps_for(nfe)
        f = CountingField(self.field_of(dyn))
        ts = GRIDS.get(grid)(n, dyn.t0, dyn.t1, device=x0.device, dtype=x0.dtype)
        # Times [B] and steps dt are views made once, before the loop: inside it, a step launches only its
        # own arithmetic and the field's calls (no indexing, no per-step allocation, no host sync).
        t_in = ts[:, None].expand(n + 1, x0.shape[0]).unbind(0)
        dts = (ts[1:] - ts[:-1]).unbind(0)
        x = x0
        states = [x0] if trajectory else None
        for i in range(n):
            x = self.step(f, x, t_in[i], dts[i], dyn=dyn, gen=gen, last=i == n - 1)
            if states is not None:
                states.append(x)
        traj = torch.stack(states) if states is not None else None
        return SolveResult(x=x, nfe=f.nfe, t=ts, trajectory=traj)


@register_solver("euler")
class Euler(FixedStepSolver):
    evals_per_step = 1

    def step(self, f, x, t, dt, *, dyn, gen, last):
        return x + dt * f(x, t)


@register_solver("midpoint")
class Midpoint(FixedStepSolver):
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
    evals_per_step = 4

    def step(self, f, x, t, dt, *, dyn, gen, last):
        half = 0.5 * dt
        t_half = t + half  # shared by k2 and k3
        k1 = f(x, t)
        k2 = f(x + half * k1, t_half)
        k3 = f(x + half * k2, t_half)
        k4 = f(x + dt * k3, t + dt)
        return x + dt / 6 * (k1 + 2 * k2 + 2 * k3 + k4)


@register_solver("dopri5")
class Dopri5(Solver):
    """torchdiffeq's adaptive Dormand-Prince 5(4); swept by rtol/atol, reports the NFE it used."""

    adaptive = True
    n_trajectory_points = 65

    def run(self, dyn, x0, *, nfe, rtol, atol, grid, gen, trajectory):
        from torchdiffeq import odeint

        if rtol is None or atol is None:
            raise ValueError("adaptive solver 'dopri5' needs tolerances (rtol=..., atol=...)")
        f = CountingField(dyn.velocity)
        batch = x0.shape[0]
        n_out = self.n_trajectory_points if trajectory else 2
        ts = torch.linspace(dyn.t0, dyn.t1, n_out, device=x0.device, dtype=x0.dtype)
        # torchdiffeq does not shorten its last step to end at t1: it steps past and interpolates back, so the
        # field would be called beyond t1 (for ddpm, at s < 0 where sigma -> 0). step_t = [t1] makes the last
        # step land on t1 exactly, and every call stays inside [t0, t1].
        ys = odeint(lambda t, x: f(x, t.expand(batch)), x0, ts, rtol=rtol, atol=atol, method="dopri5",
                    options={"step_t": ts[-1:]})
        return SolveResult(x=ys[-1], nfe=f.nfe, t=ts, trajectory=ys if trajectory else None)


@register_solver("euler_maruyama")
class EulerMaruyama(FixedStepSolver):
    """dX = b(X, t) dt + g(t) dW; the last step adds no noise (it returns the mean, as Song et al. do)."""

    kind = "sde"
    evals_per_step = 1

    def run(self, dyn, x0, *, nfe, rtol, atol, grid, gen, trajectory):
        if dyn.drift is None or dyn.diffusion is None:
            raise Unsupported("this method has no SDE dynamics (drift and diffusion); use an ODE solver")
        return super().run(dyn, x0, nfe=nfe, rtol=rtol, atol=atol, grid=grid, gen=gen, trajectory=trajectory)

    def field_of(self, dyn):
        return dyn.drift

    def step(self, f, x, t, dt, *, dyn, gen, last):
        x_mean = x + dt * f(x, t)
        if last:
            return x_mean
        z = torch.randn(x.shape, generator=gen, device=x.device, dtype=x.dtype)
        g = dyn.diffusion(t).reshape(-1, *([1] * (x.dim() - 1)))
        return x_mean + g * dt.abs().sqrt() * z


@register_solver("ancestral")
class Ancestral(FixedStepSolver):
    """The method's own ancestral step (DDPM): x_{t+dt} ~ p(x_{t+dt} | x_t), one network call per step."""

    kind = "sde"
    evals_per_step = 1

    def run(self, dyn, x0, *, nfe, rtol, atol, grid, gen, trajectory):
        if dyn.ancestral_step is None or dyn.ancestral_net is None:
            raise Unsupported("this method defines no ancestral sampler; use euler_maruyama or an ODE solver")
        return super().run(dyn, x0, nfe=nfe, rtol=rtol, atol=atol, grid=grid, gen=gen, trajectory=trajectory)

    def field_of(self, dyn):
        return dyn.ancestral_net

    def step(self, f, x, t, dt, *, dyn, gen, last):
        return dyn.ancestral_step(x, f(x, t), t, t + dt, gen, last=last)


@register_solver("pc")
class PredictorCorrector(Solver):
    """Song et al.'s predictor-corrector sampler: at every grid time, ``corrector.n_steps`` Langevin steps
    (one score call each), then one Euler-Maruyama predictor step (one drift call). A budget of n buys
    n // (1 + n_steps) grid steps; the last predictor step returns its mean (no noise).
    """

    kind = "sde"

    def run(self, dyn, x0, *, nfe, rtol, atol, grid, gen, trajectory):
        if dyn.corrector is None or dyn.drift is None or dyn.diffusion is None:
            raise Unsupported("this method defines no Langevin corrector (or no SDE); use euler_maruyama")
        if nfe is None:
            raise ValueError("solver 'pc' needs an NFE budget (nfe=...)")
        per_step = 1 + dyn.corrector.n_steps
        n = nfe // per_step
        if n < 1:
            raise BudgetTooSmall(f"solver 'pc' with {dyn.corrector.n_steps} corrector step(s) needs at least "
                                 f"{per_step} NFE per step; got a budget of {nfe}")
        score = CountingField(dyn.corrector.score)
        drift = CountingField(dyn.drift)
        ts = GRIDS.get(grid)(n, dyn.t0, dyn.t1, device=x0.device, dtype=x0.dtype)
        x, states = x0, [x0] if trajectory else None
        predictor = SOLVERS.get("euler_maruyama")
        for i in range(n):
            t = ts[i].expand(x0.shape[0])
            for _ in range(dyn.corrector.n_steps):
                x = langevin_step(score, x, t, dyn.corrector.snr, gen)
            x = predictor.step(drift, x, t, ts[i + 1] - ts[i], dyn=dyn, gen=gen, last=i == n - 1)
            if states is not None:
                states.append(x)
        traj = torch.stack(states) if states is not None else None
        return SolveResult(x=x, nfe=score.nfe + drift.nfe, t=ts, trajectory=traj)


def langevin_step(score: Field, x: Tensor, t: Tensor, snr: float, gen: torch.Generator | None) -> Tensor:
    """One Langevin step x + e s + sqrt(2 e) z, e = 2 (snr ||z|| / ||s||)^2, norms averaged over the batch."""
    grad = score(x, t)
    z = torch.randn(x.shape, generator=gen, device=x.device, dtype=x.dtype)
    grad_norm = grad.flatten(1).norm(dim=1).mean()
    noise_norm = z.flatten(1).norm(dim=1).mean()
    step = 2 * (snr * noise_norm / grad_norm.clamp_min(1e-12)) ** 2
    return x + step * grad + (2 * step).sqrt() * z


def sample(dyn: Dynamics, x0: Tensor, solver: str = "euler", *, nfe: int | None = None,
           rtol: float | None = None, atol: float | None = None, grid: str = "uniform",
           gen: torch.Generator | None = None, trajectory: bool = False) -> SolveResult:
    """Move x0 (at dyn.t0) to dyn.t1 with a registered ODE or SDE solver.

    Args:
        dyn: the method's dynamics.
        x0: [B, *shape] source samples.
        solver: registered name (``odebench list`` shows them).
        nfe: budget for fixed-step solvers; rtol/atol for adaptive ones.
        grid: registered time-grid name for fixed-step solvers.
        gen: generator for SDE noise.
        trajectory: also return the states on the time grid.
    """
    return SOLVERS.get(solver).run(dyn, x0, nfe=nfe, rtol=rtol, atol=atol, grid=grid, gen=gen,
                                   trajectory=trajectory)


def solve(field: Field, x0: Tensor, solver: str = "euler", *, nfe: int | None = None,
          rtol: float | None = None, atol: float | None = None, t0: float = 0.0, t1: float = 1.0,
          grid: str = "uniform", trajectory: bool = False) -> SolveResult:
    """Integrate the ODE dx/dt = field(x, t) from t0 to t1 (t1 < t0 integrates backwards).

    Args:
        field: f(x, t) with x: [B, *shape], t: [B].
        x0: [B, *shape] state at t0.
    """
    s = SOLVERS.get(solver)
    if s.kind != "ode":
        raise Unsupported(f"solver {solver!r} is an SDE solver; use sample() with the method's Dynamics")
    return s.run(Dynamics(velocity=field, t0=t0, t1=t1), x0, nfe=nfe, rtol=rtol, atol=atol, grid=grid,
                 gen=None, trajectory=trajectory)
