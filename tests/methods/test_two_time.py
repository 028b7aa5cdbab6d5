"""A network of two times: the built-in networks given a second time input without any other change."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from odebench.bench.nets.base import build_net
from odebench.bench.nets.embedding import SinusoidalTimeEmbedding
from odebench.bench.nets.stacked import stackable
from odebench.methods.two_time import TwoTimeNet

CASES = [({"name": "mlp", "hidden": 32, "depth": 2}, (2,)),
         ({"name": "unet", "ch": 32, "ch_mult": [1, 2], "attn_resolutions": [], "num_res_blocks": 1}, (1, 8, 8))]


@pytest.mark.parametrize("cfg,shape", CASES, ids=["mlp", "unet"])
def test_both_times_reach_the_output_and_the_layers_are_the_network_s_own(cfg, shape):
    base = build_net(cfg, shape)
    n_params = sum(p.numel() for p in base.parameters())
    net = TwoTimeNet(base)
    assert sum(p.numel() for p in net.parameters()) == n_params
    x, a, b = torch.randn(3, *shape), torch.full((3,), 0.3), torch.full((3,), 0.1)
    out = net(x, a, b)
    assert out.shape == (3, *shape)
    assert not torch.allclose(out, net(x, a, torch.full((3,), 0.6)))  # the second time matters
    assert not torch.allclose(out, net(x, torch.full((3,), 0.8), b))  # and the first


def test_the_embedding_gives_each_time_half_the_sinusoidal_features():
    net = TwoTimeNet(build_net({"name": "mlp", "time_dim": 32}, (2,)))
    a, b = torch.rand(5), torch.rand(5)
    emb = net.net.embed(torch.stack([a, b], 1))
    assert emb.shape == (5, 32)
    torch.testing.assert_close(emb[:, :16], SinusoidalTimeEmbedding(16, scale=1.0)(a))
    torch.testing.assert_close(emb[:, 16:], SinusoidalTimeEmbedding(16, scale=1.0)(b))
    scaled = TwoTimeNet(build_net({"name": "mlp", "time_dim": 32}, (2,)), scale=1000.0)
    torch.testing.assert_close(scaled.net.embed(torch.stack([a, b], 1))[:, :16], SinusoidalTimeEmbedding(16)(a))


def test_a_network_without_one_sinusoidal_embedding_is_refused_with_the_fix():
    class Bare(nn.Module):
        def forward(self, x, t):
            return x

    with pytest.raises(ValueError, match='net.name = "mlp" or "unet"'):
        TwoTimeNet(Bare())


def test_seed_stacks_refuse_it_and_say_why():
    nets = [TwoTimeNet(build_net({"name": "mlp"}, (2,))) for _ in range(2)]
    assert "two-time network" in stackable(nets, batch=256)
