"""MeanFlow: the identity's target at the exact average velocity, its JVP against finite differences, the
official time sampler in odebench's time, the flow map, and a short training."""

from __future__ import annotations

import math

import torch
from flow_map_cases import ExactVelocity, coupled_batch, exact_map
from torch import nn

from odebench.bench.core.solvers import sample
from odebench.bench.nets.base import build_net
from odebench.methods import get_method
from odebench.methods.meanflow import meanflow_target
from odebench.methods.two_time import TwoTimeNet


def test_the_exact_average_velocity_is_its_own_target_with_zero_loss_and_zero_gradient():
    method = get_method("meanflow", ratio=1.0)  # every pair a jump (r < t), where the JVP term acts
    model = nn.ModuleDict({"u": ExactVelocity()})
    x0, x1 = coupled_batch(512)
    gen = torch.Generator().manual_seed(1)
    loss = method.loss(model, x0, x1, gen)
    loss.backward()
    assert loss.item() < 1e-20
    assert max(p.grad.abs().max().item() for p in model.parameters()) < 1e-10
    # not by accident: the JVP's two parts, v . grad_x U and d_r U, are each far from 0 and cancel
    r, t = torch.full((512,), 0.2, dtype=torch.float64), torch.full((512,), 0.9, dtype=torch.float64)
    x_r, v = (1 - r)[:, None] * x0 + r[:, None] * x1, x1 - x0
    _, d_x = torch.func.jvp(lambda x: model["u"](x, r, t - r), (x_r,), (v,))
    assert d_x.abs().max() > 0.1
    # and a map off the optimum is not its own target
    model["u"].b.data += 0.1
    assert method.loss(model, x0, x1, torch.Generator().manual_seed(1)).item() > 1e-3


def test_the_jvp_target_matches_a_finite_difference_along_the_flow():
    torch.manual_seed(0)
    # times spread over faster features than the default's, so that d_r U is large enough to check at 1e-3
    net = TwoTimeNet(build_net({"name": "mlp", "hidden": 32}, (2,)), scale=20.0).double()
    x = torch.randn(16, 2, dtype=torch.float64)
    v = torch.randn(16, 2, dtype=torch.float64)
    r = torch.rand(16, dtype=torch.float64) * 0.5
    t = r + torch.rand(16, dtype=torch.float64) * 0.5
    u, target = meanflow_target(net, x, r, t, v)
    eps = 1e-4  # the sinusoidal features are computed in float32: a smaller step drowns in their rounding
    with torch.no_grad():
        ahead = net(x + eps * v, r + eps, t - (r + eps))
        behind = net(x - eps * v, r - eps, t - (r - eps))
    du_dr = (ahead - behind) / (2 * eps)  # d/dr U(x_r, r, t) along x' = v, t held
    torch.testing.assert_close(target, v + (t - r)[:, None] * du_dr, rtol=1e-3, atol=1e-4)
    assert (target - v).abs().max() > 0.05  # the derivative term is not negligible here
    torch.testing.assert_close(u, net(x, r, t - r))
    assert u.requires_grad and not target.requires_grad  # stop-gradient target


def test_the_time_sampler_is_the_official_one_in_odebench_time():
    n = 40000
    # v0 orders the two draws, then sets r = t for 1 - ratio = 0.25 of the pairs; v1 sets r = t first, then
    # r = min(t, r), which also makes equal the pairs whose r-draw came out above the t-draw
    above = 0.5 * math.erfc((-0.6 + 4.0) / (1.6 * math.sqrt(2)) / math.sqrt(2))  # P(r_p > t_p)
    for sampler, expected in (("v0", 0.25), ("v1", 0.25 + 0.75 * above)):
        method = get_method("meanflow", tr_sampler=sampler)
        r, t = method.sample_times(n, torch.Generator().manual_seed(0), "cpu")
        assert bool((r <= t).all()) and bool((r >= 0).all()) and bool((t <= 1).all())
        assert abs((r == t).float().mean().item() - expected) < 0.01
    # v1: the paper's t is the raw logit-normal draw (-0.6, 1.6), the start of the odebench jump r = 1 - t_p
    r, _ = get_method("meanflow").sample_times(n, torch.Generator().manual_seed(0), "cpu")
    assert abs((1 - r).median().item() - 1 / (1 + math.exp(0.6))) < 0.01
    _, t = get_method("meanflow", ratio=1.0).sample_times(n, torch.Generator().manual_seed(0), "cpu")
    assert (1 - t).median().item() < 0.05  # r_p ~ sigmoid(N(-4, 1.6^2)): jumps end near the data


def test_the_flow_map_is_one_call_and_the_velocity_is_the_map_at_r_equals_t():
    method = get_method("meanflow")
    model = nn.ModuleDict({"u": ExactVelocity()})
    dyn = method.dynamics(model)
    x0, x1 = coupled_batch(64)
    one = sample(dyn, x0, "flow_map", nfe=1)
    assert one.nfe == 1
    torch.testing.assert_close(one.x, x1)  # the exact average velocity: one jump lands on the partner
    r, t = torch.full((64,), 0.25, dtype=torch.float64), torch.full((64,), 0.75, dtype=torch.float64)
    torch.testing.assert_close(dyn.flow_map(x0, r, t), exact_map(x0, r, t))
    x_r = 0.75 * x0 + 0.25 * x1
    torch.testing.assert_close(dyn.velocity(x_r, r), x1 - x0)  # U at r = t: the path's own velocity
    assert dyn.offers() == method.offers() == {"velocity", "flow_map", "noise_schedule", "x1_hat"}


def test_a_short_training_lowers_the_loss_and_one_step_lands_near_the_data():
    torch.manual_seed(0)
    method = get_method("meanflow")
    model = method.networks(lambda: build_net({"name": "mlp", "hidden": 64}, (2,)), (2,))
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
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
    assert sum(losses[-30:]) < 0.8 * sum(losses[:30])
    with torch.no_grad():
        x = sample(method.dynamics(model), torch.randn(2000, 2, generator=gen), "flow_map", nfe=1).x
    assert (x.mean(0) - torch.tensor([2.0, -1.0])).norm() < 0.3


def test_the_jvp_target_is_computed_in_full_precision_under_a_bf16_autocast():
    """A bf16 run wraps the loss in autocast; the MeanFlow target (a velocity plus a small multiple of a
    derivative) must not be rounded to bf16: the loss is the same as without autocast."""
    method = get_method("meanflow")
    torch.manual_seed(0)
    model = method.networks(lambda: build_net({"name": "mlp", "hidden": 32, "depth": 2}, (2,)), (2,))
    x1 = torch.randn(128, 2)
    x0 = torch.randn(128, 2)
    plain = method.loss(model, x0, x1, torch.Generator().manual_seed(0))
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        under = method.loss(model, x0, x1, torch.Generator().manual_seed(0))
    assert under.dtype == torch.float32
    torch.testing.assert_close(under, plain, rtol=1e-6, atol=0)
