"""SDE samplers: Euler-Maruyama on the reverse SDE, the method's ancestral step, and predictor-corrector."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from odebench.bench.core.fields import BudgetTooSmall, CountingField, Field, SolveResult
from odebench.bench.core.solvers.base import (
    SOLVERS,
    FixedStepSolver,
    Solver,
    apply_denoise,
    final_denoise,
    register_solver,
)
from odebench.bench.core.time_grids import make_grid


@register_solver("euler_maruyama")
class EulerMaruyama(FixedStepSolver):
    """dX = b(X, t) dt + g(t) dW; the last step adds no noise (it returns the mean, as Song et al. do)."""

    kind = "sde"
    evals_per_step = 1
    requires = frozenset({"sde"})

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
    requires = frozenset({"ancestral"})

    def field_of(self, dyn):
        return dyn.ancestral_net

    def step(self, f, x, t, dt, *, dyn, gen, last):
        return dyn.ancestral_step(x, f(x, t), t, t + dt, gen, last=last)


@register_solver("pc")
class PredictorCorrector(Solver):
    """Song et al.'s predictor-corrector sampler: at every grid time, ``corrector.n_steps`` Langevin steps
    (one score call each), then one predictor step (one network call): the method's own ``predictor_step``
    (e.g. the reverse-diffusion predictor) when it declares one, else Euler-Maruyama on the drift. A budget of
    n buys n // (1 + n_steps) grid steps (after the final denoising call, when the method declares one);
    without a denoising call the last predictor step returns its mean (no noise).
    """

    kind = "sde"
    requires = frozenset({"sde", "corrector"})

    def run(self, dyn, x0, *, nfe, rtol, atol, grid, gen, trajectory):
        if nfe is None:
            raise ValueError("solver 'pc' needs an NFE budget (nfe=...)")
        denoise = final_denoise(self, dyn)
        per_step = 1 + dyn.corrector.n_steps
        n = (nfe - (denoise is not None)) // per_step
        if n < 1:
            extra = " plus 1 for the final denoising call" if denoise is not None else ""
            raise BudgetTooSmall(f"solver 'pc' with {dyn.corrector.n_steps} corrector step(s) needs at least "
                                 f"{per_step} NFE per step{extra}; got a budget of {nfe}")
        score = CountingField(dyn.corrector.score)
        predict, predictor_calls = self._predictor(dyn)
        ts = make_grid(grid, n, dyn, device=x0.device, dtype=x0.dtype)
        x, states = x0, [x0] if trajectory else None
        for i in range(n):
            t = ts[i].expand(x0.shape[0])
            for _ in range(dyn.corrector.n_steps):
                x = langevin_step(score, x, t, dyn.corrector.snr, gen)
            x = predict(x, t, ts[i + 1] - ts[i], gen, last=i == n - 1 and denoise is None)
            if states is not None:
                states.append(x)
        res = SolveResult(x=x, nfe=score.nfe + predictor_calls.nfe, t=ts,
                          trajectory=torch.stack(states) if states is not None else None)
        return res if denoise is None else apply_denoise(denoise, res, ts[n].expand(x0.shape[0]))

    @staticmethod
    def _predictor(dyn) -> tuple[Callable[..., Tensor], CountingField]:
        """(predictor step ``(x, t, dt, gen, last) -> x_next``, the counter of the network it calls)."""
        if dyn.predictor_step is None:
            drift, em = CountingField(dyn.drift), SOLVERS.get("euler_maruyama")
            return (lambda x, t, dt, gen, last: em.step(drift, x, t, dt, dyn=dyn, gen=gen, last=last)), drift
        net = CountingField(dyn.ancestral_net)
        return (lambda x, t, dt, gen, last: dyn.predictor_step(x, net(x, t), t, t + dt, gen, last=last)), net


def langevin_step(score: Field, x: Tensor, t: Tensor, snr: float, gen: torch.Generator | None) -> Tensor:
    """One Langevin step x + e s + sqrt(2 e) z, e = 2 (snr ||z|| / ||s||)^2, norms averaged over the batch."""
    grad = score(x, t)
    z = torch.randn(x.shape, generator=gen, device=x.device, dtype=x.dtype)
    grad_norm = grad.flatten(1).norm(dim=1).mean()
    noise_norm = z.flatten(1).norm(dim=1).mean()
    step = 2 * (snr * noise_norm / grad_norm.clamp_min(1e-12)) ** 2
    return x + step * grad + (2 * step).sqrt() * z

