"""ODE/SDE solvers in the unified time convention (t = 0 source, t = 1 data), with counted NFE.

Every solve goes through :func:`solve` (ODE) or :func:`sample` (ODE or SDE from a :class:`Dynamics`), and
always returns one :class:`SolveResult`. NFE is the number of calls actually made to the field, counted by
:class:`CountingField` around it -- never inferred from a step count. A requested budget maps to steps per
solver (euler: n, midpoint/heun: n // 2, rk4: n // 4); a budget below a solver's minimum raises
:class:`BudgetTooSmall`, which the harness turns into a "skipped" cell.

The solvers live in this package by kind (``ode``, ``adaptive``, ``sde``) and are found by discovery; third-party
solvers join through the ``odebench.solvers`` entry-point group.
"""

from __future__ import annotations

import torch
from torch import Tensor

from odebench.bench.core import budgets
from odebench.bench.core.fields import (
    BudgetTooSmall,
    CountingField,
    Dynamics,
    Field,
    LangevinCorrector,
    SolveResult,
    Unsupported,
)
from odebench.bench.core.solvers.base import SOLVERS, FixedStepSolver, Solver, register_solver
from odebench.bench.core.time_grids import GRIDS

__all__ = ["GRIDS", "SOLVERS", "BudgetTooSmall", "CountingField", "Dynamics", "Field", "FixedStepSolver",
           "LangevinCorrector", "SolveResult", "Solver", "Unsupported", "register_solver", "sample", "solve"]


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
    s = SOLVERS.get(solver)
    s.check(dyn)  # Unsupported when the dynamics lack what the solver requires
    with budgets.adaptive_solve(s.adaptive):  # an NFE cap in force binds adaptive solves only
        return s.run(dyn, x0, nfe=nfe, rtol=rtol, atol=atol, grid=grid, gen=gen, trajectory=trajectory)


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
    dyn = Dynamics(velocity=field, t0=t0, t1=t1)
    s.check(dyn)  # a solver needing more than a velocity (a data prediction) needs the method's Dynamics
    with budgets.adaptive_solve(s.adaptive):
        return s.run(dyn, x0, nfe=nfe, rtol=rtol, atol=atol, grid=grid, gen=None, trajectory=trajectory)
