"""A network of two times: any built-in network (x [B, *shape], t [B]) -> [B, *out], given a second time input.

Flow-map methods condition their network on two scalars per sample: MeanFlow on the time of x and the length of
the jump (Geng et al.'s (t, t - r)), shortcut models on the time and the step size. The built-in networks (``mlp``,
``unet``) take one time, through one :class:`SinusoidalTimeEmbedding` whose features feed the rest of the
network. :class:`TwoTimeNet` swaps that embedding for :class:`PairTimeEmbedding`, which gives each of the two
times half of the same number of features, so the network's layers, widths and parameter count are unchanged and
nothing else in it is touched: ``TwoTimeNet(net)(x, a, b)`` calls ``net(x, [a, b])`` with the two times packed as
[B, 2]. The departure from the papers' networks (which embed each time at full width and add or concatenate the
features) is recorded in docs/decisions.md.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from odebench.bench.nets.embedding import SinusoidalTimeEmbedding


class PairTimeEmbedding(nn.Module):
    """Times [B, 2] -> [B, dim]: the sinusoidal features of the first time in the first dim // 2 columns and of
    the second in the rest, each as :class:`SinusoidalTimeEmbedding` computes them (same scale and period)."""

    def __init__(self, like: SinusoidalTimeEmbedding):
        super().__init__()
        first = like.dim // 2
        self.first = SinusoidalTimeEmbedding(first, scale=like.scale)
        self.second = SinusoidalTimeEmbedding(like.dim - first, scale=like.scale)
        self.dim = like.dim

    def forward(self, times: Tensor) -> Tensor:
        if times.dim() != 2 or times.shape[1] != 2:
            raise ValueError(f"a two-time network takes its times as [B, 2]; got shape {tuple(times.shape)}")
        return torch.cat([self.first(times[:, 0]), self.second(times[:, 1])], dim=1)


class TwoTimeNet(nn.Module):
    """``net`` (a network with one SinusoidalTimeEmbedding, as mlp and unet have) conditioned on two times.

    ``forward(x, a, b)``: x [B, *shape], a and b [B] (each in [0, 1], where the sinusoidal features are spread) ->
    what ``net`` returns, [B, *out].
    """

    #: why the seed stacks (odebench.bench.nets.stacked) train such a network one model at a time
    stack_refusal = ("a two-time network takes its times as [B, 2] through its own embedding, which the stacked "
                     "MLP's batched forward does not have; its methods' losses also differentiate it forward "
                     "(MeanFlow's JVP) or keep a target copy (shortcut models' EMA)")

    def __init__(self, net: nn.Module):
        super().__init__()
        found = [(name, m) for name, m in net.named_modules() if isinstance(m, SinusoidalTimeEmbedding)]
        if len(found) != 1:
            raise ValueError(f"a flow-map method conditions its network on two times by splitting its sinusoidal "
                             f"time embedding; {type(net).__name__} has {len(found)} such embeddings, not one: use "
                             f"net.name = \"mlp\" or \"unet\"")
        name, embed = found[0]
        parent = net.get_submodule(name.rpartition(".")[0]) if "." in name else net
        setattr(parent, name.rpartition(".")[2], PairTimeEmbedding(embed))
        self.net = net

    def forward(self, x: Tensor, a: Tensor, b: Tensor) -> Tensor:
        return self.net(x, torch.stack([a, b], dim=1))
