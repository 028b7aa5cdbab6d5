"""The solver interface and the fixed-step loop every fixed-step solver shares.

A solver declares what it needs from a method's dynamics (``requires``, e.g. ``{"sde"}``); the plan compares
that with what a method declares it offers, so an unusable pair is skipped before any network exists.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch
from torch import Tensor

from odebench.bench.core.fields import (
    CAPABILITIES,
    BudgetTooSmall,
    CountingField,
    Dynamics,
    Field,
    SolveResult,
    Unsupported,
)
from odebench.bench.core.registry import Registry
from odebench.bench.core.time_grids import make_grid


class Solver(ABC):
    """A registered solver. ``kind`` is "ode" or "sde"; adaptive solvers take rtol/atol instead of nfe.

    ``requires`` names the capabilities (``odebench.bench.core.fields.CAPABILITIES``) the solver needs from a
    method's dynamics; ``description`` is the one line ``odebench list`` shows.
    """

    name: str = ""
    description: str = ""
    kind: str = "ode"
    adaptive: bool = False
    evals_per_step: int = 1
    requires: frozenset[str] = frozenset({"velocity"})

    def unmet(self, offered: frozenset[str], who: str = "this method") -> str | None:
        """Why this solver cannot sample dynamics offering ``offered`` (None: it can)."""
        missing = sorted(self.requires - offered)
        if not missing:
            return None
        return (f"solver {self.name!r} needs {' and '.join(missing)} ({'; '.join(CAPABILITIES[m] for m in missing)}), "
                f"which {who} does not offer (it offers {', '.join(sorted(offered))}); use a solver that needs only "
                f"what it offers")

    def check(self, dyn: Dynamics) -> None:
        """Raise Unsupported when ``dyn`` lacks a capability this solver requires."""
        reason = self.unmet(dyn.offers())
        if reason is not None:
            raise Unsupported(reason)

    def steps_for(self, nfe: int, denoised: bool = False) -> int:
        """Number of steps a budget of ``nfe`` network calls buys; raises BudgetTooSmall below one step.

        ``denoised``: ``nfe`` is what is left after the final denoising call (the message says so).
        """
        steps = nfe // self.evals_per_step
        if steps < 1:
            if denoised:
                raise BudgetTooSmall(
                    f"solver {self.name!r} needs at least {self.evals_per_step + 1} NFE here: "
                    f"{self.evals_per_step} per step plus 1 for the final denoising call; got a budget of "
                    f"{nfe + 1} (the method's hparam denoise = false drops that call)")
            raise BudgetTooSmall(
                f"solver {self.name!r} needs at least {self.evals_per_step} NFE per step; got a budget of {nfe}"
            )
        return steps

    @abstractmethod
    def run(self, dyn: Dynamics, x0: Tensor, *, nfe: int | None, rtol: float | None, atol: float | None,
            grid: str, gen: torch.Generator | None, trajectory: bool) -> SolveResult:
        """Integrate ``dyn`` from x0 at dyn.t0 to dyn.t1."""


SOLVERS: Registry[Solver] = Registry("solver", "odebench.solvers", builtin="odebench.bench.core.solvers")


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
        denoise = final_denoise(self, dyn)
        n = self.steps_for(nfe - (denoise is not None), denoise is not None)
        f = CountingField(self.field_of(dyn))
        ts = make_grid(grid, n, dyn, device=x0.device, dtype=x0.dtype)
        # Times [B] and steps dt are views made once, before the loop: inside it, a step launches only its
        # own arithmetic and the field's calls (no indexing, no per-step allocation, no host sync).
        t_in = ts[:, None].expand(n + 1, x0.shape[0]).unbind(0)
        dts = (ts[1:] - ts[:-1]).unbind(0)
        x = x0
        states = [x0] if trajectory else None
        for i in range(n):
            # before a final denoising call the last step is an ordinary one (it adds its noise), as in Song
            # et al.'s samplers, where only the step that lands on the data end returns its mean
            x = self.step(f, x, t_in[i], dts[i], dyn=dyn, gen=gen, last=i == n - 1 and denoise is None)
            if states is not None:
                states.append(x)
        res = SolveResult(x=x, nfe=f.nfe, t=ts, trajectory=torch.stack(states) if states is not None else None)
        return res if denoise is None else apply_denoise(denoise, res, t_in[n])


def final_denoise(solver: Solver, dyn: Dynamics) -> Field | None:
    """The dynamics' final denoising call if ``solver`` is an SDE sampler and the method declares one."""
    return dyn.denoise if solver.kind == "sde" else None


def apply_denoise(denoise: Field, res: SolveResult, t1: Tensor) -> SolveResult:
    """``res`` followed by the final denoising call at t1 ([B]): one more NFE, the state it returns counts as
    the sample at t = 1, and the trajectory (if any) gains that state."""
    counted = CountingField(denoise)
    x = counted(res.x, t1)
    t = torch.cat([res.t, res.t.new_ones(1)])
    traj = None if res.trajectory is None else torch.cat([res.trajectory, x[None]])
    return SolveResult(x=x, nfe=res.nfe + counted.nfe, t=t, trajectory=traj)
