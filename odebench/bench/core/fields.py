"""The types every solver and method share: fields, dynamics, solve results, and the NFE counter.

Time runs from the source (t = 0) to the data (t = 1). A field is ``f(x, t) -> dx/dt`` with x: [B, *shape] and
t: [B]. NFE is the number of calls actually made to a network, counted by :class:`CountingField`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import Tensor

from odebench.bench.core import budgets
from odebench.bench.core.schedules import NoiseSchedule

#: What a method's dynamics can offer a solver, by name: almost every method offers ``velocity`` (its ODE; a
#: method that learns only a two-time map, such as a consistency model, offers ``flow_map`` instead); the others
#: are optional. Solvers declare the subset they require (``Solver.requires``), methods the subset they offer
#: (``Method.offers``), and the plan skips a pair whose requirement is not met before any network is built.
CAPABILITIES = {
    "velocity": "an ODE velocity field dx/dt = v(x, t)",
    "flow_map": "a two-time map X(x, r, t): the state at time t of the flow through x at time r, one network call "
                "per jump (consistency, shortcut and MeanFlow models)",
    "sde": "an SDE with the ODE's marginals: drift b(x, t) and noise scale g(t)",
    "ancestral": "a DDPM-style ancestral step x_t -> x_{t + dt} drawn from the Gaussian posterior",
    "corrector": "a Langevin corrector (the score of the marginals at a fixed time)",
    "noise_schedule": "the path's alpha_t and sigma_t (x_t = alpha_t x1 + sigma_t x0), which map noise-level time "
                      "grids (edm, logsnr) to the method's time",
    "x1_hat": "a data prediction x1_hat(x, t) = E[x1 | x_t = x] on a Gaussian path (x0 ~ N(0, I) independent of "
              "x1), which DDIM, DPM-Solver++, UniPC and EDM's samplers step with",
    "train_timesteps": "the discrete training timesteps of a diffusers-style scheduler, which diffusers' timestep "
                       "spacings (leading, trailing, linspace) space",
}

#: capabilities that rest on the source being the method's Gaussian prior: with a source dataset (domain
#: transfer) the plan withdraws them, so a solver needing one is skipped for such a cell
GAUSSIAN_SOURCE_ONLY = frozenset({"x1_hat"})

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


@dataclass(frozen=True)
class Churn:
    """Settings of EDM's stochastic sampler (Karras et al., Algorithm 2), used by the ``edm_sde`` solver.

    At a noise-to-signal ratio s in [s_tmin, s_tmax] a step first raises the noise to s (1 + gamma),
    gamma = min(s_churn / N, sqrt(2) - 1) for N noise levels, adding fresh noise scaled by s_noise. The defaults
    are those NVlabs/edm recommends for its ImageNet-64 model (with 256 steps); its CIFAR-10 recommendation is
    the deterministic sampler (s_churn = 0, i.e. ``edm_heun``).
    """

    s_churn: float = 40.0
    s_tmin: float = 0.05
    s_tmax: float = 50.0
    s_noise: float = 1.003


@dataclass(frozen=True)
class TrainTimesteps:
    """The T discrete training timesteps k = 0 .. T - 1 of a diffusers-style scheduler (k = 0 the least noisy),
    which the ``leading``, ``trailing`` and ``linspace`` time grids space as diffusers' schedulers do.

    Attributes:
        count: T (``num_train_timesteps``).
        time_of: timesteps k (float64 tensor) -> the method's time t; ``time_of(-1)`` is the clean end, where the
            schedulers' final step lands (alpha_bar = 1, sigma = 0).
        steps_offset: the scheduler's ``steps_offset``, added to the ``leading`` spacing.
    """

    count: int
    time_of: Callable[[Tensor], Tensor]
    steps_offset: int = 0


@dataclass
class Dynamics:
    """How a trained model moves samples from t0 (source side) to t1 (data side).

    Attributes:
        velocity: ODE field dx/dt = v(x, t), x: [B, *shape], t: [B]; None for a method that defines no velocity
            (a consistency model): the ODE solvers, straightness and NLL are then skipped with the reason.
        flow_map: two-time map ``(x, r, t) -> x_t``: x [B, *shape] at time r [B] carried to time t [B] (r <= t,
            both in [t0, t1]), one network call; None if the method learns no such map.
        drift: SDE drift b(x, t) whose SDE dX = b dt + g(t) dW has the ODE's marginals; None if ODE-only.
        diffusion: g(t): [B] -> [B], the SDE's noise scale; given with ``drift``.
        ancestral_net: the network call of the ancestral sampler (e.g. epsilon prediction), [B, *shape].
        ancestral_step: ``(x, net_out, t, t_next, gen, last) -> x_next``, the maths of one DDPM-style step
            given ``net_out = ancestral_net(x, t)``; with ``last=True`` (the step onto t1) it returns the
            mean, without noise; optional.
        corrector: Langevin corrector of the ``pc`` solver; None if the method defines none.
        x1_hat: data prediction E[x1 | x_t = x] on a Gaussian path, [B, *shape]; given with ``schedule``.
        schedule: the path's alpha_t, sigma_t (:class:`NoiseSchedule`); None if the method's path is not of
            the form x_t = alpha_t x1 + sigma_t x0.
        churn: settings of EDM's stochastic sampler; None: the ``Churn`` defaults.
        t0, t1: integration interval; diffusion models stop short of the data end (t1 = 1 - s_eps).
        denoise: the SDE samplers' final noise removal, x(t1) -> a clean sample at t = 1 (for diffusion:
            Tweedie's E[x_data | x_t1 = x], one network call, counted in the NFE); None: an SDE sample ends
            at t1. ODE solvers never apply it (the ODE map stays the flow itself).
        predictor_step: the ``pc`` solver's predictor as the method declares it,
            ``(x, net_out, t, t_next, gen, last) -> x_next`` given ``net_out = ancestral_net(x, t)`` (e.g. the
            reverse-diffusion predictor); None: Euler-Maruyama on ``drift``.
        nll_t1: where the likelihood integral ends when it is not t1 (diffusion: 1 - 1e-5, closer to the data
            than sampling stops); None: t1.
        data_t1: where the data-prediction samplers (DDIM, DPM-Solver++, UniPC) end when it is not t1: a time
            beyond t1 where the schedule reaches sigma = 0, onto which their last step lands on the data
            prediction of the last grid point (diffusers' final step onto alpha_bar = 1); None: t1.
        timesteps: the discrete training timesteps the ``train_timesteps`` grids space; None if the method has
            none.
        nll_span: the interval the likelihood is defined over when the velocity is trusted on [t0, t1] only
            (the latent-noise interpolant: (0, 1), its field trained on [t_eps, 1 - t_eps]): the NLL adds the
            pieces outside [t0, t1] by one Euler step each (odebench.metrics.likelihood.end_piece); None: the
            integral is [t0, nll_t1 or t1] and the source's density is read at t0.
    """

    velocity: Field | None = None
    flow_map: Callable[[Tensor, Tensor, Tensor], Tensor] | None = None
    drift: Field | None = None
    diffusion: Callable[[Tensor], Tensor] | None = None
    ancestral_net: Field | None = None
    ancestral_step: Callable[..., Tensor] | None = None
    corrector: LangevinCorrector | None = None
    t0: float = 0.0
    t1: float = 1.0
    x1_hat: Field | None = None
    schedule: NoiseSchedule | None = None
    churn: Churn | None = None
    denoise: Field | None = None
    predictor_step: Callable[..., Tensor] | None = None
    nll_t1: float | None = None
    data_t1: float | None = None
    timesteps: TrainTimesteps | None = None
    nll_span: tuple[float, float] | None = None

    def offers(self) -> frozenset[str]:
        """The capabilities (keys of ``CAPABILITIES``) these dynamics fill in."""
        have = set()
        if self.velocity is not None:
            have.add("velocity")
        if self.flow_map is not None:
            have.add("flow_map")
        if self.drift is not None and self.diffusion is not None:
            have.add("sde")
        if self.ancestral_net is not None and self.ancestral_step is not None:
            have.add("ancestral")
        if self.corrector is not None:
            have.add("corrector")
        if self.schedule is not None:
            have.add("noise_schedule")
            if self.x1_hat is not None:
                have.add("x1_hat")
        if self.timesteps is not None:
            have.add("train_timesteps")
        return frozenset(have)


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
        budgets.check(self.nfe)  # an NFE cap or a deadline in force (core.budgets) stops the solve here
        return self.field(x, t)
