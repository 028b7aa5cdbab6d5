"""The stacked MLP computes, member by member, bit for bit what each member's own MLP computes."""

from __future__ import annotations

import pytest
import torch
from threads import torch_threads

from odebench.bench.nets.mlp import MLP
from odebench.bench.nets.stacked import StackedMLP, max_members, stackable, vector_step
from odebench.bench.nets.unet import UNet


@pytest.fixture(autouse=True)
def one_thread():  # seed stacks are exact on one torch thread
    with torch_threads(1):
        yield


def members(n: int, shape=(2,), **kwargs) -> list[MLP]:
    nets = []
    for seed in range(n):
        torch.manual_seed(seed)
        nets.append(MLP(shape, **kwargs))
    return nets


@pytest.mark.parametrize("shape, hidden, batch", [((2,), 128, 256), ((2,), 32, 8), ((64,), 256, 128),
                                                  ((3,), 64, 12)])
def test_forward_and_gradients_equal_each_member_alone(shape, hidden, batch):
    nets = members(3, shape, hidden=hidden, depth=3)
    assert stackable(nets, batch) is None
    stacked = StackedMLP(nets)
    gen = torch.Generator().manual_seed(0)
    x, t = torch.randn(3, batch, *shape, generator=gen), torch.rand(3, batch, generator=gen)
    weights = torch.randn(3, batch, *shape, generator=gen)

    out = stacked(x, t)
    grads = torch.autograd.grad((out * weights).sum(), [*stacked.weights, *stacked.biases])
    for m, net in enumerate(nets):
        alone = net(x[m], t[m])
        assert torch.equal(out[m], alone)
        own = torch.autograd.grad((alone * weights[m]).sum(), list(net.parameters()))
        linears = [layer for layer in net.body if isinstance(layer, torch.nn.Linear)]
        n = len(linears)
        for i in range(n):
            assert torch.equal(grads[i][m], own[2 * i])  # weight
            assert torch.equal(grads[n + i][m], own[2 * i + 1])  # bias


def test_write_back_restores_each_member():
    nets = members(2, hidden=32, depth=2)
    stacked = StackedMLP(nets)
    fresh = members(2, hidden=32, depth=2)
    for net in fresh:
        for p in net.parameters():
            torch.nn.init.zeros_(p)
    for m, net in enumerate(fresh):
        stacked.write_back(m, net)
        for a, b in zip(net.state_dict().values(), nets[m].state_dict().values(), strict=True):
            assert torch.equal(a, b)


def test_what_cannot_stack_exactly_is_refused_with_the_reason():
    assert "only the MLP" in stackable([UNet((1, 8, 8)), UNet((1, 8, 8))])
    assert "layout" in stackable([MLP((2,), hidden=32), MLP((2,), hidden=64)])
    # 7 x 100 and 7 x 5 (time_dim 10) are no multiples of the vector loop: a stack would round otherwise
    assert "no multiple" in stackable(members(2, hidden=100, time_dim=10), batch=7)
    # 4 x 32 x 2 = 256 multiply-adds in the last layer: torch's batched product sums those in a loop of its own
    assert "multiply-adds" in stackable(members(2, hidden=32), batch=4)
    torch.set_num_threads(2)
    assert "threads" in stackable(members(2), batch=256)


def test_odd_sizes_do_round_differently_which_is_why_they_are_refused():
    """The refusal above is not caution only: at these sizes a stack really differs in the last bit."""
    nets = members(4, hidden=100, time_dim=10)
    gen = torch.Generator().manual_seed(0)
    x, t = torch.randn(4, 7, 2, generator=gen), torch.rand(4, 7, generator=gen)
    alone = torch.stack([net(x[m], t[m]) for m, net in enumerate(nets)])
    assert not torch.equal(StackedMLP(nets)(x, t), alone)
    small = members(2, hidden=32)
    x, t = torch.randn(2, 4, 2, generator=gen), torch.rand(2, 4, generator=gen)
    assert not torch.equal(StackedMLP(small)(x, t), torch.stack([net(x[m], t[m]) for m, net in enumerate(small)]))


def test_max_members_follows_the_small_parameters():
    # a 2-D output layer has a bias of 2 elements: updated in scalar form alone below one vector step
    step = vector_step()[1]
    assert max_members(members(1, (2,), hidden=128)) == (step - 1) // 2
    assert max_members(members(1, (64,), hidden=256)) is None  # every parameter a multiple of the step
    assert max_members(members(1, (3,), hidden=100)) == 0  # a bias of 100: no stack is exact
