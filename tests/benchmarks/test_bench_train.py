"""Training throughput: ``odebench.bench.harness.training.train.fit`` with ``fm_ot`` against TorchCFM's
ConditionalFlowMatcher loop.

Both sides train the same network (the suite's MLP, 2-D, hidden 128, depth 3, same initial weights) with
the same optimizer (torch.optim.Adam, same learning rate) on the same batches (256 points: x0 ~ N(0, I),
x1 from moons). Two TorchCFM loops:

- "torchcfm loop": the loop of TorchCFM's README: sample (t, x_t, u_t) with
  ``ConditionalFlowMatcher(sigma=0).sample_location_and_conditional_flow``, MSE, backward, Adam step;
  no EMA and no clipping, so it does less work than ``fit``.
- "torchcfm loop + EMA + clip": the same plus gradient-norm clipping (1.0) and a per-parameter EMA update
  after every step, as TorchCFM's CIFAR-10 training script does; the same work as ``fit``.

Throughput is steps per second; the recorded ratio is ours / baseline of the time for the same number of
steps (below 1 = ours is faster).
"""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from odebench.bench.data import load_dataset
from odebench.bench.harness.training.train import TrainConfig, fit
from odebench.bench.nets.mlp import MLP
from odebench.methods import get_method
from odebench.methods.couplings import IndependentCoupling

torchcfm = pytest.importorskip("torchcfm", reason="the training benchmark compares against torchcfm "
                               "(pip install --no-deps 'torchcfm>=1.0.7')")

STEPS = 200
BATCH = 256
LR = 2e-3
ROUNDS = 5


def _net() -> nn.Module:
    torch.manual_seed(0)
    return MLP((2,), hidden=128, depth=3)


@pytest.fixture(scope="module")
def moons():
    return load_dataset("moons")


def _torchcfm_loop(moons, ema_and_clip: bool):
    """A training loop written as TorchCFM documents it (see the module docstring)."""
    fm = torchcfm.ConditionalFlowMatcher(sigma=0.0)

    def train():
        model = _net()
        ema = copy.deepcopy(model) if ema_and_clip else None
        opt = torch.optim.Adam(model.parameters(), lr=LR)
        gen = torch.Generator().manual_seed(0)
        for _ in range(STEPS):
            opt.zero_grad()
            x0 = torch.randn(BATCH, 2, generator=gen)
            x1 = moons.sample(BATCH, gen)
            t, xt, ut = fm.sample_location_and_conditional_flow(x0, x1)
            loss = torch.mean((model(xt, t) - ut) ** 2)
            loss.backward()
            if ema_and_clip:
                nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            if ema_and_clip:
                with torch.no_grad():
                    for p_ema, p in zip(ema.parameters(), model.parameters(), strict=True):
                        p_ema.mul_(0.999).add_(p, alpha=0.001)
        return model

    return train


@pytest.mark.parametrize("ema_and_clip", [False, True], ids=["torchcfm-loop", "torchcfm-loop+ema+clip"])
def test_fm_ot_training_throughput(compare, moons, ema_and_clip):
    method = get_method("fm_ot")
    cfg = TrainConfig(steps=STEPS, batch_size=BATCH, lr=LR, ema_decay=0.999, grad_clip=1.0)

    def ours():
        coupling = IndependentCoupling(lambda n, g: torch.randn(n, 2, generator=g),
                                       lambda n, g: moons.sample(n, g))
        return fit(method, nn.ModuleDict({"v": _net()}), coupling, cfg, torch.Generator().manual_seed(0))

    name = "torchcfm loop + EMA + clip" if ema_and_clip else "torchcfm loop (no EMA/clip)"
    comp = compare("train-fm_ot", f"fit fm_ot, {STEPS} steps, batch {BATCH}", ours,
                   _torchcfm_loop(moons, ema_and_clip), name, ROUNDS, "<= 1.0")
    if comp is not None:
        comp_steps = STEPS / comp.ours_s
        print(f"\nfm_ot fit: {comp_steps:.1f} steps/s; {name}: {STEPS / comp.baseline_s:.1f} steps/s")
