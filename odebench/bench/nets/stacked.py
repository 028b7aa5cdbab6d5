"""Several MLPs of one architecture evaluated as one: the members' weights stacked along a leading dimension.

Models that differ only in their seed train together (odebench.bench.harness.stacked_fit): every linear layer
becomes one batched matrix product over the members (``torch.baddbmm``) instead of one product per member. On
CPU in float32, member m's slice of a batched product is bit-for-bit the member's own ``nn.Linear`` output, and so
are the gradients (tests/nets/test_stacked.py checks forward and backward); the activations and the time
embedding are elementwise, so they too give each member exactly what it computes alone.

Only the MLP stacks: a U-Net's convolutions, normalisations and attention have no batched-weight form here, and
a network registered by a plugin is unknown. ``stackable`` says which networks can.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from odebench.bench.nets.mlp import MLP


def stackable(nets: list[nn.Module]) -> str | None:
    """None if ``nets`` can be stacked into a :class:`StackedMLP`, else the reason they cannot."""
    if any(type(net) is not MLP for net in nets):
        names = sorted({type(net).__name__ for net in nets if type(net) is not MLP})
        return f"only the MLP stacks ({', '.join(names)} trains one model at a time)"
    first = nets[0]
    layout = [(n, p.shape) for n, p in first.named_parameters()]
    for net in nets[1:]:
        if (net.shape, net.out_shape, net.embed.dim, net.embed.scale) != (
                first.shape, first.out_shape, first.embed.dim, first.embed.scale) \
                or [(n, p.shape) for n, p in net.named_parameters()] != layout \
                or not torch.equal(net.embed.freqs, first.embed.freqs):
            return "the members' MLPs differ in their layout"
    return None


class StackedMLP(nn.Module):
    """M MLPs of one layout: (x [M, B, *shape], t [M, B]) -> [M, B, *out_shape].

    Holds the members' parameters as leaves [M, *parameter shape] (``weights[i]`` [M, out, in], ``biases[i]``
    [M, out]); ``write_back`` copies member m's slices into an :class:`MLP` of the same layout.
    """

    def __init__(self, members: list[MLP]):
        super().__init__()
        reason = stackable(members)
        if reason is not None:
            raise ValueError(reason)
        first = members[0]
        self.shape, self.out_shape = first.shape, first.out_shape
        self.embed = first.embed  # parameter-free: one copy serves every member
        linears = [[m for m in net.body if isinstance(m, nn.Linear)] for net in members]
        self.activations = [type(m) for m in first.body if not isinstance(m, nn.Linear)]
        self.weights = nn.ParameterList(
            nn.Parameter(torch.stack([layers[i].weight.detach() for layers in linears]).clone())
            for i in range(len(linears[0])))
        self.biases = nn.ParameterList(
            nn.Parameter(torch.stack([layers[i].bias.detach() for layers in linears]).clone())
            for i in range(len(linears[0])))
        if any(a is not nn.SiLU for a in self.activations):
            raise ValueError("the stacked MLP knows the SiLU activation only")

    @property
    def members(self) -> int:
        return self.weights[0].shape[0]

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        """x: [M, B, *shape], t: [M, B] -> [M, B, *out_shape], member by member what MLP.forward gives."""
        m, b = x.shape[0], x.shape[1]
        h = torch.cat([x.flatten(2), self.embed(t.reshape(-1)).to(x.dtype).view(m, b, -1)], dim=2)
        last = len(self.weights) - 1
        for i, (w, bias) in enumerate(zip(self.weights, self.biases, strict=True)):
            h = torch.baddbmm(bias.unsqueeze(1), h, w.transpose(1, 2))
            if i < last:
                h = nn.functional.silu(h)
        return h.view(m, b, *self.out_shape)

    @torch.no_grad()
    def write_back(self, member: int, net: MLP) -> None:
        """Copy member ``member``'s weights into ``net`` (an MLP of the same layout)."""
        linears = [m for m in net.body if isinstance(m, nn.Linear)]
        for layer, w, bias in zip(linears, self.weights, self.biases, strict=True):
            layer.weight.copy_(w[member])
            layer.bias.copy_(bias[member])
