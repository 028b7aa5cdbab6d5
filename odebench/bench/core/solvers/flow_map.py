"""The flow-map sampler: jumps of a learned two-time map X(x, r, t) between consecutive times of a grid.

A method that learns the flow map itself (MeanFlow, shortcut models, consistency models) moves a sample from r to t
in one network call, with no integration error of its own: whatever error the samples carry is the map's. A budget
of n NFE buys n jumps on the cell's time grid t_0 = t0 < t_1 < ... < t_n = t1 (t = 0 source, t = 1 data):

    x_{i+1} = X(x_i, t_i, t_{i+1}),

so NFE 1 is the one-step sample X(x0, t0, t1). Every call goes through :class:`CountingMap`, the flow-map form of
:class:`~odebench.bench.core.fields.CountingField`, so the recorded NFE is the calls made (and an NFE cap or a
deadline in force stops the solve there), as for every other solver.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from odebench.bench.core import budgets
from odebench.bench.core.fields import CountingField, SolveResult
from odebench.bench.core.solvers.base import Solver, register_solver
from odebench.bench.core.time_grids import make_grid

FlowMap = Callable[[Tensor, Tensor, Tensor], Tensor]
"""A two-time map ``(x [B, *shape], r [B], t [B]) -> x_t [B, *shape]`` (r <= t), one network call."""


class CountingMap(CountingField):
    """Wraps a flow map and counts its calls, as :class:`CountingField` counts a field's."""

    def __init__(self, flow_map: FlowMap):
        super().__init__(flow_map)

    def __call__(self, x: Tensor, r: Tensor, t: Tensor) -> Tensor:  # type: ignore[override]
        self.nfe += 1
        budgets.check(self.nfe)  # an NFE cap or a deadline in force (core.budgets) stops the solve here
        return self.field(x, r, t)


@register_solver("flow_map")
class FlowMapSolver(Solver):
    description = "jumps of the method's flow map X(x, r, t) between grid times: one network call per jump"
    requires = frozenset({"flow_map"})
    evals_per_step = 1

    def run(self, dyn, x0, *, nfe, rtol, atol, grid, gen, trajectory):
        if nfe is None:
            raise ValueError(f"solver {self.name!r} needs an NFE budget (nfe=...): one network call per jump")
        n = self.steps_for(nfe)
        jump = CountingMap(dyn.flow_map)
        ts = make_grid(grid, n, dyn, device=x0.device, dtype=x0.dtype)
        t_in = ts[:, None].expand(n + 1, x0.shape[0]).unbind(0)  # [B] times, made once before the loop
        x = x0
        states = [x0] if trajectory else None
        for i in range(n):
            x = jump(x, t_in[i], t_in[i + 1])
            if states is not None:
                states.append(x)
        return SolveResult(x=x, nfe=jump.nfe, t=ts, trajectory=torch.stack(states) if states is not None else None)
