"""Non-timing checks behind the performance figures: what a solve does per step, and what it keeps.

The solver loop may launch only a step's own arithmetic besides the field's calls: no indexing of the time
grid, no per-step tensor creation, and no host synchronisation (``.item()``, ``bool(tensor)``). Counted with
a TorchDispatchMode that sees every aten operation, with the field's own operations left out.
"""

from __future__ import annotations

from collections import Counter

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from odebench.bench.core.solvers import SOLVERS, solve


class OpCounter(TorchDispatchMode):
    """Counts aten operations while ``active``; the field switches it off around its own work."""

    def __init__(self):
        super().__init__()
        self.ops: Counter[str] = Counter()
        self.active = True

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if self.active:
            self.ops[str(func.overloadpacket.__name__)] += 1
        return func(*args, **(kwargs or {}))


def _count(solver: str, nfe: int) -> tuple[Counter[str], int, int]:
    """(ops outside the field, field calls seen, reported NFE) for one solve of dx/dt = -x."""
    counter = OpCounter()
    calls = [0]

    def field(x, t):
        counter.active = False
        calls[0] += 1
        out = -x * t[:, None]
        counter.active = True
        return out

    x0 = torch.randn(8, 3, generator=torch.Generator().manual_seed(0))
    with counter:
        res = solve(field, x0, solver, nfe=nfe)
    return counter.ops, calls[0], res.nfe


# arithmetic a step of each solver needs at most (the update formula itself)
OPS_PER_STEP = {"euler": 2, "midpoint": 6, "heun": 7, "rk4": 17}


@pytest.mark.parametrize("solver", list(OPS_PER_STEP))
def test_solver_loop_launches_only_the_step_arithmetic(solver):
    per_step = SOLVERS.get(solver).evals_per_step
    small, _, _ = _count(solver, 4 * per_step)
    large, _, _ = _count(solver, 12 * per_step)
    extra = sum(large.values()) - sum(small.values())
    assert extra / 8 <= OPS_PER_STEP[solver], (solver, large - small)
    assert "_local_scalar_dense" not in large, "a host sync (.item() / bool(tensor)) in the solver loop"


@pytest.mark.parametrize("solver", list(OPS_PER_STEP))
@pytest.mark.parametrize("budget", [4, 9, 16])
def test_nfe_reported_is_calls_made(solver, budget):
    _, calls, nfe = _count(solver, budget)
    assert nfe == calls == (budget // SOLVERS.get(solver).evals_per_step) * SOLVERS.get(solver).evals_per_step


def test_trajectory_kept_only_when_asked():
    x0 = torch.randn(5, 2, generator=torch.Generator().manual_seed(0))
    field = lambda x, t: x * 0 + t[:, None]
    res = solve(field, x0, "heun", nfe=8)
    assert res.trajectory is None
    res = solve(field, x0, "heun", nfe=8, trajectory=True)
    assert res.trajectory.shape == (5, 5, 2)
    torch.testing.assert_close(res.trajectory[-1], res.x)
    torch.testing.assert_close(res.trajectory[0], x0)


# the samplers on a data prediction: a scaled sum of the state and the stored predictions (UniPC: its corrector
# and its predictor), besides the network call
OPS_PER_STEP_X1 = {"ddim": 2, "dpmpp_2m": 3, "dpmpp_3m": 4, "unipc": 7}


def _count_x1(solver: str, nfe: int, grid: str) -> tuple[Counter[str], int, int]:
    from gaussian_paths import VPSchedule

    from odebench.bench.core.fields import Dynamics
    from odebench.bench.core.solvers import sample

    counter = OpCounter()
    calls = [0]

    def x1_hat(x, t):
        counter.active = False
        calls[0] += 1
        out = 0.5 * x * t[:, None]
        counter.active = True
        return out

    dyn = Dynamics(velocity=x1_hat, x1_hat=x1_hat, schedule=VPSchedule(), t1=1 - 1e-3)
    x0 = torch.randn(8, 3, generator=torch.Generator().manual_seed(0))
    with counter:
        res = sample(dyn, x0, solver, nfe=nfe, grid=grid)
    return counter.ops, calls[0], res.nfe


@pytest.mark.parametrize("grid", ["uniform", "logsnr"])
@pytest.mark.parametrize("solver", list(OPS_PER_STEP_X1))
def test_data_prediction_loop_launches_only_the_step_arithmetic(solver, grid):
    small, _, _ = _count_x1(solver, 20, grid)  # 20 and 28 steps: both past the peers' low-step final rule
    large, calls, nfe = _count_x1(solver, 28, grid)
    extra = sum(large.values()) - sum(small.values())
    assert extra / 8 <= OPS_PER_STEP_X1[solver], (solver, large - small)
    # a noise-level grid reads its end levels once, on the host, before the loop; the loop reads nothing
    assert large["_local_scalar_dense"] == small["_local_scalar_dense"], "a host sync in the solver loop"
    assert calls == nfe == 28
