"""The multistep consistency sampler (Song, Dhariwal, Chen, Sutskever 2023, Algorithm 1): ``consistency``.

A consistency model maps a state at any noise level straight to the data, in one network call: the dynamics'
flow map X(x, r, 1). The sampler jumps from the source to the data, re-noises the result with fresh noise to the
next, lower noise level, jumps again, and so on; the last jump's result is the sample. NFE = the number of jumps.

Noise levels. On the method's path x_t = alpha_t x1 + sigma_t x0 the sampler works in EDM's variables, the
scaled state y = x / alpha_t and the noise-to-signal ratio s_t = sigma_t / alpha_t (a consistency model's own
path is EDM's, alpha = 1 and s = sigma). For a budget of n jumps the time grid (of the cell: use ``edm``, Karras
et al.'s rho = 7 spacing) gives n + 1 times t_0 = t0 < t_1 < ... < t_n = t1; the jumps start from t_0 .. t_{n-1}:

    x_hat = X(x, t_i, t1);   x <- alpha_{t_{i+1}} ( x_hat + sqrt(s_{t_{i+1}}^2 - s_end^2) z ),  z ~ N(0, I)

with s_end = s at t1 (the model's sigma_min, where its boundary condition holds), as the paper's
sqrt(tau^2 - eps^2). One jump is the start's level alone (sigma_max); n jumps take the first n levels of the
(n + 1)-point grid, which on ``edm`` are Karras levels ending at sigma_min (two jumps: 80 and 2.5 on
[0.002, 80]). The paper picks its intermediate levels by a greedy search on FID per dataset; a fixed grid needs
none. The noise z comes from the cell's generator, so a seed gives the same samples. The trajectory holds the
re-noised states at t_0 .. t_{n-1} and the sample at t1.
"""

from __future__ import annotations

import math

import torch

from odebench.bench.core.fields import CountingField, SolveResult
from odebench.bench.core.schedules import clean_ratios
from odebench.bench.core.solvers.base import Solver, register_solver
from odebench.bench.core.time_grids import make_grid


@register_solver("consistency")
class ConsistencySampler(Solver):
    """Jump to the data, re-noise to the next level, repeat (NFE = jumps)."""

    description = ("multistep consistency sampling (Song et al. 2023): jump to the data with the flow map, "
                   "re-noise with fresh noise to the next grid level, repeat; NFE = jumps; use grid 'edm'")
    kind = "sde"  # fresh noise between the jumps
    evals_per_step = 1
    requires = frozenset({"flow_map", "noise_schedule"})

    def run(self, dyn, x0, *, nfe, rtol, atol, grid, gen, trajectory):
        if nfe is None:
            raise ValueError(f"solver {self.name!r} needs an NFE budget (nfe=...): the number of jumps")
        self.check(dyn)
        n = self.steps_for(nfe)
        ts = make_grid(grid, n, dyn, dtype=torch.float64)
        alpha, sigma = dyn.schedule.alpha_sigma(ts)
        a = alpha.tolist()
        sg = clean_ratios(a, sigma.tolist())
        # s = sigma / alpha, infinite at a flow's source end (alpha = 0 there; only the later levels are used)
        level = [si / ai if ai > 0 else math.inf for ai, si in zip(a, sg, strict=True)]
        end = level[-1]
        batch = x0.shape[0]
        dev = dict(device=x0.device, dtype=x0.dtype)
        starts = ts[:n].to(**dev)[:, None].expand(n, batch).unbind(0)
        data_end = torch.full((batch,), float(dyn.t1), **dev)
        jump = CountingField(lambda x, r: dyn.flow_map(x, r, data_end))
        states = [x0] if trajectory else None
        x = x0
        for i in range(n):
            x_hat = jump(x, starts[i])
            if i == n - 1:
                x = x_hat
            else:
                z = torch.randn(x.shape, generator=gen, device=x.device, dtype=x.dtype)
                scale = max(level[i + 1] ** 2 - end**2, 0.0) ** 0.5
                x = (x_hat + scale * z) * a[i + 1]
            if states is not None:
                states.append(x)
        t_out = torch.cat([ts[:n], ts[-1:]]).to(**dev)
        return SolveResult(x=x, nfe=jump.nfe, t=t_out,
                           trajectory=torch.stack(states) if states is not None else None)
