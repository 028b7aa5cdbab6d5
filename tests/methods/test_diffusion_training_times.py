"""The diffusion loss draws its training times s ~ U[s_eps, 1] from the generator it is given: the network sees
no time outside the schedule's interval, and the same generator state gives the same loss."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from odebench.methods import get_method


class TimeSpy(nn.Module):
    """An eps network that records the times it is called at; its prediction depends on the time, so the loss
    does too."""

    def __init__(self):
        super().__init__()
        self.times: list[torch.Tensor] = []

    def forward(self, x, t):
        self.times.append(t.detach().clone())
        return x * t.reshape(-1, *[1] * (x.dim() - 1))


def nets(spy: TimeSpy) -> nn.ModuleDict:
    """The spy under both names the diffusion methods call their network by (ddpm: eps, score_ve: score)."""
    return nn.ModuleDict({"eps": spy, "score": spy})


@pytest.mark.parametrize("name,hp", [("ddpm", {}), ("score_ve", {"sigma_max": 50.0})])
def test_training_times_stay_inside_the_schedule_interval(name, hp):
    method = get_method(name, **hp)
    method.s_eps = 0.5  # a wide floor makes any spill past s = 1 certain in 4096 draws
    spy = TimeSpy()
    x1 = torch.randn(4096, 2, generator=torch.Generator().manual_seed(0))
    method.loss(nets(spy), torch.randn_like(x1), x1, torch.Generator().manual_seed(1))
    s = 1 - torch.cat(spy.times)  # the network is called in unified time t = 1 - s
    assert s.min() >= 0.5 - 1e-6 and s.max() <= 1 + 1e-6


@pytest.mark.parametrize("name,hp", [("ddpm", {}), ("score_ve", {"sigma_max": 50.0})])
def test_the_loss_is_a_function_of_the_generator_state(name, hp):
    method = get_method(name, **hp)
    net = nets(TimeSpy())
    x1 = torch.randn(64, 2, generator=torch.Generator().manual_seed(0))
    x0 = torch.randn_like(x1)
    first = method.loss(net, x0, x1, torch.Generator().manual_seed(7))
    torch.manual_seed(123)  # the global stream must play no part
    second = method.loss(net, x0, x1, torch.Generator().manual_seed(7))
    assert torch.equal(first, second)
