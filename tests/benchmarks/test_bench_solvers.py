"""Sampler overhead: ``solve`` at NFE 100 against 100 bare network calls and against torchdiffeq; the samplers on
a data prediction (DDIM, DPM-Solver++, UniPC) against 100 bare calls of the network they step with.

The network is the suite's MLP on 2-D points (hidden 128, depth 3). Everything runs under
``torch.inference_mode`` as the harness samples. The bare baseline is the floor any sampler pays: 100 calls
of the same network on the same batch. torchdiffeq's fixed-grid ``odeint`` gets the same number of network
calls (euler: 100 steps, midpoint and heun2: 50, rk4: 25; its rk4 is the 3/8 rule, also 4 calls a step).
"""

from __future__ import annotations

import pytest
import torch
from torchdiffeq import odeint

from odebench.bench.core.fields import Dynamics
from odebench.bench.core.solvers import SOLVERS, sample, solve
from odebench.bench.nets.mlp import MLP

NFE = 100
BATCHES = [256, 10_000]
ROUNDS = {256: 7, 10_000: 3}


@pytest.fixture(scope="module")
def net():
    torch.manual_seed(0)
    return MLP((2,), hidden=128, depth=3).eval()


def _x0(batch: int) -> torch.Tensor:
    return torch.randn(batch, 2, generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize("solver", ["euler", "heun", "rk4"])
def test_overhead_vs_bare_calls(compare, net, solver, batch):
    x0 = _x0(batch)
    t = torch.full((batch,), 0.5)

    def bare():
        for _ in range(NFE):
            net(x0, t)

    def ours():
        return solve(net, x0, solver, nfe=NFE)

    with torch.inference_mode():
        assert ours().nfe == NFE
        compare(f"sampler-vs-bare-b{batch}", f"{solver} NFE {NFE}, batch {batch}", ours, bare,
                f"{NFE} bare net calls", ROUNDS[batch], "<= 1.05")


TORCHDIFFEQ_PEER = {"euler": "euler", "midpoint": "midpoint", "heun": "heun2", "rk4": "rk4"}


@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize("solver", list(TORCHDIFFEQ_PEER))
def test_vs_torchdiffeq(compare, net, solver, batch):
    x0 = _x0(batch)
    steps = SOLVERS.get(solver).steps_for(NFE)
    grid = torch.linspace(0.0, 1.0, steps + 1)
    calls = [0]

    def field(t, x):  # torchdiffeq's signature is f(t, x) with a 0-d t
        calls[0] += 1
        return net(x, t.expand(batch))

    def peer():
        return odeint(field, x0, grid, method=TORCHDIFFEQ_PEER[solver])

    def ours():
        return solve(net, x0, solver, nfe=NFE)

    with torch.inference_mode():
        peer()
        assert calls[0] == NFE == ours().nfe, "the two sides must make the same number of network calls"
        compare(f"sampler-vs-torchdiffeq-b{batch}", f"{solver} NFE {NFE}, batch {batch}", ours, peer,
                f"torchdiffeq odeint {TORCHDIFFEQ_PEER[solver]}", ROUNDS[batch], "< 1")


@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize("grid", ["uniform", "logsnr"])
@pytest.mark.parametrize("solver", ["ddim", "dpmpp_2m", "dpmpp_3m", "unipc"])
def test_data_prediction_overhead_vs_bare_calls(compare, net, solver, grid, batch):
    """The network is the data prediction itself (as edm's preconditioned denoiser would be), on fm_diffusion's
    VP path; ours includes building the grid and the step coefficients."""
    from odebench.methods.probability_paths import VPDiffusionPath, path_schedule

    x0 = _x0(batch)
    t = torch.full((batch,), 0.5)
    path = VPDiffusionPath()
    dyn = Dynamics(velocity=net, x1_hat=net, schedule=path_schedule(path), t1=path.t_max)

    def bare():
        for _ in range(NFE):
            net(x0, t)

    def ours():
        return sample(dyn, x0, solver, nfe=NFE, grid=grid)

    with torch.inference_mode():
        assert ours().nfe == NFE
        compare(f"x1-sampler-vs-bare-b{batch}", f"{solver}/{grid} NFE {NFE}, batch {batch}", ours, bare,
                f"{NFE} bare net calls", ROUNDS[batch], "<= 1.05")
