"""Adaptive ODE solvers, swept by tolerance: torchdiffeq's Dormand-Prince 5(4)."""

from __future__ import annotations

import torch

from odebench.bench.core.fields import CountingField, SolveResult
from odebench.bench.core.solvers.base import Solver, register_solver


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
