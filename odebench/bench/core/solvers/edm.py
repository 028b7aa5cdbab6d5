"""EDM's samplers (Karras, Aittala, Aila, Laine 2022, Algorithm 2): Heun in the noise level, deterministic
(``edm_heun``) or with "churn" (``edm_sde``).

They work in EDM's variables: the scaled state y = x / alpha_t and the noise-to-signal ratio s = sigma_t /
alpha_t, in which every Gaussian path is variance exploding (y = x1 + s n) and the probability-flow ODE is
dy/ds = (y - D) / s with D = x1_hat. With alpha = 1 (the ``edm`` method) y = x and s is EDM's sigma, and the
loop below is NVlabs/edm's ``edm_sampler``. The noise levels are the time grid's points (mapped to s by the
method's schedule) followed by s = 0 unless the grid already ends there; each step from s_i to s_{i+1}:

    churn        s_hat = s_i (1 + gamma_i),  gamma_i = min(S_churn / N, sqrt(2) - 1) if S_tmin <= s_i <= S_tmax
                 else 0  (N noise levels above 0);  y_hat = y + sqrt(s_hat^2 - s_i^2) S_noise z
    Euler        d = (y_hat - D(y_hat; s_hat)) / s_hat,   y' = y_hat + (s_{i+1} - s_hat) d
    correction   y_{i+1} = y_hat + (s_{i+1} - s_hat) (d + d') / 2,   d' = (y' - D(y'; s_{i+1})) / s_{i+1}

The step onto s = 0 keeps the Euler result (it is D itself), as EDM does; a step from s = infinity (alpha = 0 at
a flow's source end) is Euler too, written as x' = (sigma'/sigma) x + alpha' D (DDIM, finite there). So N levels
cost 2N - 1 network calls (EDM's 18 levels: NFE 35), one fewer when the first level is infinite; a budget buys
the most levels it pays for. ``edm_sde`` draws its noise z every step, as EDM's code does, and takes its settings
from ``Dynamics.churn`` (default :class:`~odebench.bench.core.fields.Churn`); a raised level beyond the method's
own start is held at the start. The trajectory holds the states at the grid's times, the last replaced by the
final result when a step onto s = 0 follows the grid.
"""

from __future__ import annotations

import math

import torch

from odebench.bench.core.fields import BudgetTooSmall, Churn, CountingField, SolveResult
from odebench.bench.core.schedules import ZERO_RATIO, clean_ratios, log_snr_range, to_device
from odebench.bench.core.solvers.base import Solver, register_solver
from odebench.bench.core.time_grids import make_grid


class EDMSampler(Solver):
    """Shared loop of ``edm_heun`` and ``edm_sde``."""

    requires = frozenset({"x1_hat"})
    evals_per_step = 2  # Heun; the plan's minimum budget (the exact count depends on the method's ends)
    stochastic = False

    def levels_for(self, nfe: int, infinite_start: bool, zero_end: bool) -> int:
        """Grid steps n a budget buys: n + [end above 0] steps, all Heun but those from s = inf or onto 0."""
        n = (nfe + 1 + int(infinite_start)) // 2 - int(not zero_end)
        if n < 1:
            least = max(1, 1 + 2 * int(not zero_end) - int(infinite_start))
            raise BudgetTooSmall(f"solver {self.name!r} needs at least {least} NFE on this method (a Heun step "
                                 f"and the final step onto sigma = 0); got a budget of {nfe}")
        return n

    def run(self, dyn, x0, *, nfe, rtol, atol, grid, gen, trajectory):
        if nfe is None:
            raise ValueError(f"fixed-step solver {self.name!r} needs an NFE budget (nfe=...)")
        self.check(dyn)
        lam0, lam1 = log_snr_range(dyn.schedule, dyn.t0, dyn.t1)
        n = self.levels_for(nfe, lam0 == -math.inf, lam1 > -math.log(ZERO_RATIO))
        ts = make_grid(grid, n, dyn, dtype=torch.float64)
        return self.integrate(dyn, x0, ts, gen=gen, trajectory=trajectory)

    def integrate(self, dyn, x0, ts, *, gen=None, trajectory=False) -> SolveResult:
        """Sample from x0 at ts[0] through the increasing times ``ts`` of the method's time, then onto s = 0."""
        self.check(dyn)
        sched = dyn.schedule
        ts64 = ts.detach().to(device="cpu", dtype=torch.float64)
        alpha, sigma = sched.alpha_sigma(ts64)
        a = alpha.tolist()
        sg = clean_ratios(a, sigma.tolist())
        lev = [si / ai if ai > 0 else math.inf for ai, si in zip(a, sg, strict=True)]  # s = sigma / alpha
        if lev[-1] > 0:  # the final step onto s = 0 returns D
            lev.append(0.0)
        n_levels = sum(v > 0 for v in lev)
        churn = (dyn.churn or Churn()) if self.stochastic else Churn(s_churn=0.0)
        s_start = lev[0]
        # raised levels s_hat and their times (the churn's only use of the schedule inside the loop)
        s_hat = []
        for s_i in lev[:-1]:
            gamma = (min(churn.s_churn / n_levels, math.sqrt(2) - 1)
                     if churn.s_churn > 0 and churn.s_tmin <= s_i <= churn.s_tmax else 0.0)
            s_hat.append(min(s_i * (1 + gamma), s_start))
        t_hat = ts64[: len(s_hat)].clone()
        raised = [i for i, (h, s_i) in enumerate(zip(s_hat, lev, strict=False)) if h > s_i]
        if raised:
            lam = -torch.log(torch.tensor([s_hat[i] for i in raised], dtype=torch.float64))
            t_hat[raised] = sched.t_of_log_snr(lam, dyn.t0, dyn.t1)
        a_hat = list(a[: len(s_hat)])
        for i in raised:
            a_hat[i] = float(sched.alpha_sigma(t_hat[i : i + 1])[0][0])

        batch = x0.shape[0]
        dev = dict(device=x0.device, dtype=x0.dtype)
        t_grid = to_device(ts64, **dev)[:, None].expand(len(ts64), batch).unbind(0)
        t_raised = to_device(t_hat, **dev)[:, None].expand(len(t_hat), batch).unbind(0)
        f = CountingField(dyn.x1_hat)
        states = [x0] if trajectory else None
        x = x0
        for i in range(len(lev) - 1):
            s_i, s_h, s_n = lev[i], s_hat[i], lev[i + 1]
            z = (torch.randn(x.shape, generator=gen, device=x.device, dtype=x.dtype) if self.stochastic else None)
            if s_h == math.inf:  # from a flow's source end: the Euler (DDIM) step, written in x
                d = f(x, t_raised[i])
                x = x.mul(sg[i + 1] / sg[i]).add_(d, alpha=a[i + 1])
            else:
                y = x if a[i] == 1.0 else x / a[i]
                if s_h > s_i:
                    y = y + math.sqrt(s_h**2 - s_i**2) * churn.s_noise * z
                x_h = y if a_hat[i] == 1.0 else y * a_hat[i]
                d_cur = (y - f(x_h, t_raised[i])) / s_h
                y_next = y + (s_n - s_h) * d_cur
                if s_n > 0:  # Heun's correction (none onto s = 0)
                    x_n = y_next if a[i + 1] == 1.0 else y_next * a[i + 1]
                    d_prime = (y_next - f(x_n, t_grid[i + 1])) / s_n
                    y_next = y + (s_n - s_h) * (0.5 * d_cur + 0.5 * d_prime)
                    x = y_next if a[i + 1] == 1.0 else y_next * a[i + 1]
                else:
                    x = y_next  # the data estimate (alpha = 1 at the data end)
            if states is not None:
                states.append(x)
        if states is not None and len(lev) > len(ts64):
            del states[-2]  # the step onto s = 0 ends at t1 in the method's time: its result stands for t1
        traj = torch.stack(states) if states is not None else None
        return SolveResult(x=x, nfe=f.nfe, t=to_device(ts64, **dev), trajectory=traj)


@register_solver("edm_heun")
class EDMHeun(EDMSampler):
    description = "EDM's deterministic sampler: Heun in the noise level, Euler onto sigma = 0 (2N - 1 NFE)"


@register_solver("edm_sde")
class EDMStochastic(EDMSampler):
    description = "EDM's stochastic sampler: Heun with churn (S_churn, S_tmin, S_tmax, S_noise from the method)"
    kind = "sde"
    stochastic = True
