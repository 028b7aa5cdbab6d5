"""A network of two times: any built-in network (x [B, *shape], t [B]) -> [B, *out], given a second time input.

Flow-map methods condition their network on two scalars per sample: MeanFlow on the time of x and the length of
the jump (Geng et al.'s (t, t - r)), shortcut models on the time and the step size. The built-in networks
(``mlp``, ``unet``) take one time, through one ``SinusoidalTimeEmbedding`` (odebench.bench.nets.embedding) whose
features feed the rest of the network. :class:`TwoTimeNet` swaps that embedding for :class:`PairTimeEmbedding`,
which gives each of the two times half of the same number of features, so the network's layers, widths and
parameter count are unchanged and nothing else in it is touched: ``TwoTimeNet(net)(x, a, b)`` calls
``net(x, [a, b])`` with the two times packed as [B, 2]. The departure from the papers' networks (which embed each
time at full width and add or concatenate the features) is recorded in docs/decisions.md.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

#: the class name of the networks' time embedding (odebench.bench.nets.embedding), found by name: the methods
#: layer does not import the networks' (the import contract in pyproject.toml)
EMBEDDING = "SinusoidalTimeEmbedding"


def sinusoidal(t: Tensor, dim: int, scale: float, max_period: float = 10000.0) -> Tensor:
    """t: [B] -> [B, dim]: cos and sin of scale * t at dim // 2 geometric frequencies from 1 down to 1 / max_period
    (zero-padded to an odd dim), the features SinusoidalTimeEmbedding computes."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device) / half)
    args = (scale * t.float())[:, None] * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    return nn.functional.pad(emb, (0, 1)) if dim % 2 else emb


class PairTimeEmbedding(nn.Module):
    """Times [B, 2] -> [B, dim]: the sinusoidal features of the first time in the first dim // 2 columns and of
    the second in the rest (:func:`sinusoidal` with the given ``scale``)."""

    def __init__(self, dim: int, scale: float):
        super().__init__()
        self.dim, self.scale = dim, scale

    def forward(self, times: Tensor) -> Tensor:
        if times.dim() != 2 or times.shape[1] != 2:
            raise ValueError(f"a two-time network takes its times as [B, 2]; got shape {tuple(times.shape)}")
        first = self.dim // 2
        return torch.cat([sinusoidal(times[:, 0], first, self.scale),
                          sinusoidal(times[:, 1], self.dim - first, self.scale)], dim=1)


class TwoTimeNet(nn.Module):
    """``net`` (a network with one SinusoidalTimeEmbedding, as mlp and unet have) conditioned on two times; it
    keeps ``net``'s device (the embedding holds no tensors).

    ``forward(x, a, b)``: x [B, *shape], a and b [B] -> what ``net`` returns, [B, *out]. ``scale`` multiplies both
    times before their sinusoidal features (frequencies 1 down to 1e-4): 1, the default, embeds them as they are,
    as both papers' official networks do (EDM's positional embedding of (t, t - r) in MeanFlow's code, DiT's
    timestep embedder of t and log2(1 / d) in the shortcut models' code). The single-time networks spread t over
    the frequencies as 1000 t (DDPM's step index); a flow-map loss that differentiates the network in its time
    (MeanFlow's JVP) would then meet derivatives of up to 1000 at initialisation.
    """

    #: why the seed stacks (odebench.bench.nets.stacked) train such a network one model at a time
    stack_refusal = ("a two-time network takes its times as [B, 2] through its own embedding, which the stacked "
                     "MLP's batched forward does not have; its methods' losses also differentiate it forward "
                     "(MeanFlow's JVP) or keep a target copy (shortcut models' EMA)")

    def __init__(self, net: nn.Module, scale: float = 1.0):
        super().__init__()
        found = [(name, m) for name, m in net.named_modules() if type(m).__name__ == EMBEDDING]
        if len(found) != 1:
            raise ValueError(f"a flow-map method conditions its network on two times by splitting its sinusoidal "
                             f"time embedding; {type(net).__name__} has {len(found)} such embeddings, not one: use "
                             f"net.name = \"mlp\" or \"unet\"")
        name, embed = found[0]
        parent = net.get_submodule(name.rpartition(".")[0]) if "." in name else net
        setattr(parent, name.rpartition(".")[2], PairTimeEmbedding(embed.dim, scale))
        self.net = net

    def forward(self, x: Tensor, a: Tensor, b: Tensor) -> Tensor:
        return self.net(x, torch.stack([a, b], dim=1))
