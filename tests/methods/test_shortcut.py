"""Shortcut models: the targets at the exact map, the batch's split and levels, the EMA target network, the flow
map's levels, and a short training."""

from __future__ import annotations

import torch
from flow_map_cases import ExactVelocity, coupled_batch, exact_map
from torch import nn

from odebench.bench.core.solvers import sample
from odebench.bench.nets.base import build_net
from odebench.methods import get_method
from odebench.methods.shortcut import SIGMA_MIN

C = 1 - SIGMA_MIN  # the official path's x0 coefficient at t = 1


def exact_model() -> nn.ModuleDict:
    return nn.ModuleDict({"s": ExactVelocity(C), "s_target": ExactVelocity(C).requires_grad_(False)})


def test_the_exact_map_meets_both_targets_with_zero_loss_and_zero_gradient():
    method = get_method("shortcut")
    model = exact_model()
    x0, x1 = coupled_batch(512)
    loss = method.loss(model, x0, x1, torch.Generator().manual_seed(0))
    loss.backward()
    assert loss.item() < 1e-15
    assert max(p.grad.abs().max().item() for p in model["s"].parameters()) < 1e-10
    # the self-consistency target of level k is two half steps at level k + 1: at the exact map, s itself
    t, k = torch.full((512,), 0.25, dtype=torch.float64), torch.full((512,), 1.0, dtype=torch.float64)
    x = (1 - C * 0.25) * x0 + 0.25 * x1
    torch.testing.assert_close(method.consistency_target(model["s"], x, t, k), x1 - C * x0)
    model["s"].b.data += 0.1  # off the optimum, both parts see it
    assert method.loss(model, x0, x1, torch.Generator().manual_seed(0)).item() > 1e-3


class Spy(nn.Module):
    """A network of (x, t, level) that records its calls and returns 0."""

    def __init__(self, calls: list):
        super().__init__()
        self.w = nn.Parameter(torch.zeros(()))
        self.calls = calls

    def forward(self, x, t, level):
        self.calls.append((x.clone(), t.clone(), level.clone()))
        return self.w * x


def test_a_quarter_of_the_batch_trains_self_consistency_on_dyadic_levels_through_the_ema_network():
    method = get_method("shortcut")
    online, target = [], []
    model = nn.ModuleDict({"s": Spy(online), "s_target": Spy(target).requires_grad_(False)})
    x0, x1 = coupled_batch(256)
    method.loss(model, x0.float(), x1.float(), torch.Generator().manual_seed(0))
    [(_, t, level)] = online
    nb = 256 // 4
    assert bool((level[nb:] == 7).all())  # flow matching at the finest level (the paper's d = 0)
    assert torch.equal(level[:nb].unique(), torch.arange(7.0))  # levels 0 .. 6: d = 1 .. 1/64
    assert bool((t[nb:] * 128 == (t[nb:] * 128).round()).all())  # on the 1/128 grid
    d = torch.exp2(-level[:nb])
    assert bool(((t[:nb] / d) == (t[:nb] / d).round()).all()) and bool((t[:nb] + d <= 1).all())
    # both half steps of the target come from the EMA copy, at the next level, the second one d / 2 later
    assert len(target) == 2
    assert torch.equal(target[0][2], level[:nb] + 1) and torch.equal(target[1][1], t[:nb] + d / 2)


def test_the_target_network_follows_the_online_one_by_the_ema_rate():
    method = get_method("shortcut", target_ema=0.9)
    model = method.networks(lambda: build_net({"name": "mlp", "hidden": 16, "depth": 1}, (2,)), (2,))
    for p, q in zip(model["s"].parameters(), model["s_target"].parameters(), strict=True):
        assert torch.equal(p, q) and not q.requires_grad
        with torch.no_grad():
            p.add_(1.0)
    before = [q.clone() for q in model["s_target"].parameters()]
    method.update_target(model)
    for q, q0 in zip(model["s_target"].parameters(), before, strict=True):
        torch.testing.assert_close(q, q0 + 0.1)


def test_the_flow_map_conditions_each_jump_on_its_dyadic_level_and_the_velocity_on_the_finest():
    method = get_method("shortcut")
    calls: list = []
    dyn = method.dynamics(nn.ModuleDict({"s": Spy(calls), "s_target": Spy([])}))
    x = torch.zeros(3, 2)
    for nfe, level in ((1, 0.0), (2, 1.0), (4, 2.0), (8, 3.0), (128, 7.0), (256, 7.0), (3, 1.0)):
        calls.clear()
        assert sample(dyn, x, "flow_map", nfe=nfe).nfe == nfe
        assert all(bool((c[2] == level).all()) for c in calls), (nfe, calls[0][2])
    calls.clear()
    dyn.velocity(x, torch.full((3,), 0.5))
    assert bool((calls[0][2] == 7).all())
    exact = method.dynamics(exact_model())
    x0, x1 = coupled_batch(64)
    torch.testing.assert_close(sample(exact, x0, "flow_map", nfe=1).x, x1, atol=1e-4, rtol=0)
    r, t = torch.full((64,), 0.25, dtype=torch.float64), torch.full((64,), 0.75, dtype=torch.float64)
    torch.testing.assert_close(exact.flow_map(x0, r, t), exact_map(x0, r, t, C))


def test_a_short_training_lowers_the_loss():
    torch.manual_seed(0)
    method = get_method("shortcut")
    model = method.networks(lambda: build_net({"name": "mlp", "hidden": 64}, (2,)), (2,))
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=2e-3)
    gen = torch.Generator().manual_seed(0)
    losses = []
    for _ in range(300):
        x0 = torch.randn(256, 2, generator=gen)
        x1 = 0.5 * torch.randn(256, 2, generator=gen) + torch.tensor([2.0, -1.0])
        loss = method.loss(model, x0, x1, gen)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert sum(losses[-30:]) < 0.5 * sum(losses[:30])
    with torch.no_grad():  # the finest level learns first (the coarse ones bootstrap from it through the EMA)
        x = sample(method.dynamics(model), torch.randn(2000, 2, generator=gen), "flow_map", nfe=128).x
    assert (x.mean(0) - torch.tensor([2.0, -1.0])).norm() < 0.3


def test_a_held_out_evaluation_leaves_the_target_network_where_it_was():
    """Only a training step moves s_target: the held-out loss (no grad, eval mode) measures the model, never
    changes it, so its value does not depend on how many evaluations came before."""
    method = get_method("shortcut", target_ema=0.5)
    model = method.networks(lambda: build_net({"name": "mlp", "hidden": 16, "depth": 1}, (2,)), (2,))
    with torch.no_grad():
        for p in model["s"].parameters():
            p.add_(1.0)
    before = [q.clone() for q in model["s_target"].parameters()]
    x0, x1 = coupled_batch(64)
    model.eval()
    with torch.no_grad():
        first = method.loss(model, x0.float(), x1.float(), torch.Generator().manual_seed(0))
        second = method.loss(model, x0.float(), x1.float(), torch.Generator().manual_seed(0))
    assert torch.equal(first, second)
    assert all(torch.equal(q, q0) for q, q0 in zip(model["s_target"].parameters(), before, strict=True))
    model.train()
    method.loss(model, x0.float(), x1.float(), torch.Generator().manual_seed(0))
    assert not all(torch.equal(q, q0) for q, q0 in zip(model["s_target"].parameters(), before, strict=True))


class ModeSpy(nn.Module):
    """Records whether it was called in training mode."""

    def __init__(self, modes: list):
        super().__init__()
        self.w = nn.Parameter(torch.zeros(()))
        self.modes = modes

    def forward(self, x, t, level):
        self.modes.append(self.training)
        return self.w * x


def test_the_target_network_runs_in_eval_mode_and_is_left_as_it_was():
    """No dropout in the self-consistency target (the official code calls it with train=False)."""
    method = get_method("shortcut")
    modes: list = []
    model = nn.ModuleDict({"s": Spy([]), "s_target": ModeSpy(modes).requires_grad_(False)})
    x0, x1 = coupled_batch(64)
    method.loss(model, x0.float(), x1.float(), torch.Generator().manual_seed(0))
    assert modes == [False, False] and model["s_target"].training
