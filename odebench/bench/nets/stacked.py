"""Several MLPs of one architecture evaluated as one: the members' weights stacked along a leading dimension.

Models that differ only in their seed train together (odebench.bench.harness.training.stacked_fit): every linear
layer becomes one batched matrix product over the members (``torch.baddbmm``) instead of one product per member.
On CPU in float32, member m's slice of a batched product is bit-for-bit the member's own ``nn.Linear`` output,
and so are the gradients (tests/nets/test_stacked.py checks forward and backward); the activations and the time
embedding are elementwise, so they too give each member exactly what it computes alone.

Exactness has three conditions, which ``stackable`` checks.
- One intra-op thread: with more, the batched product and the elementwise kernels split their work between
  threads at other places than the members' own would.
- Every elementwise tensor of a member a multiple of the vector loop's step (``vector_step``: 32 float32 on
  AVX-512, 16 on AVX2): torch's CPU kernels run the vectorised form of an op (exp and sin among them) two
  vector registers at a time and the scalar form on the few elements left at a tensor's end, and the two can
  differ in the last bit; a member's tail would land in the stack's middle. The MLP's elementwise work is the
  time embedding ([B, time_dim / 2]) and the activations ([B, hidden]), so B * time_dim / 2 and B * hidden
  must be multiples (the defaults, 16 and 128 at any batch divisible by 4, are). The optimiser's and the EMA's
  updates are elementwise over each parameter: a parameter whose size is no multiple runs wholly on the scalar
  form alone, and stays there in a stack of at most ``max_members`` (the last layer's bias of a 2-D model, 2
  elements: 15 members on AVX-512, 7 on AVX2).
- No layer so small (batch x fan-in x fan-out below ``BATCHED_PRODUCT_MIN``) that torch's batched product
  takes its own summation loop instead of the member's matrix-product kernel.

Only the MLP stacks: a U-Net's convolutions, normalisations and attention have no batched-weight form here, and
a network registered by a plugin is unknown.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from odebench.bench.nets.mlp import MLP

#: float32 elements per step of torch's vectorised elementwise loop (two vector registers), by CPU capability
VECTOR_STEPS = {"AVX512": 32, "AVX2": 16}


def vector_step() -> tuple[int, int]:
    """(a multiple every exact tensor size must be, a size below which a tensor runs wholly in scalar form) on
    this CPU: both the step of torch's vector loop where the capability is known; elsewhere the widest (32) and
    the narrowest (8: two 128-bit registers) step of any CPU torch supports, so that either way holds."""
    step = VECTOR_STEPS.get(torch.backends.cpu.get_cpu_capability())
    return (step, step) if step else (32, 8)



def stackable(nets: list[nn.Module], batch: int | None = None) -> str | None:
    """None if ``nets`` can be stacked into a :class:`StackedMLP` that computes exactly what each computes alone
    on batches of ``batch`` (None: layout only), else the reason they cannot."""
    refusals = [net.stack_refusal for net in nets if getattr(net, "stack_refusal", None)]
    if refusals:  # a network that says why it never stacks (odebench.methods.two_time)
        return refusals[0]
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
    if batch is not None:
        if torch.get_num_threads() != 1:
            return f"torch runs {torch.get_num_threads()} threads here; stacks are exact on one (--threads 1)"
        widths = {first.embed.freqs.numel(), *(m.out_features for m in first.body[:-1] if isinstance(m, nn.Linear))}
        multiple = vector_step()[0]
        odd = sorted(w for w in widths if batch * w % multiple)
        if odd:
            return (f"batch {batch} x width {odd[0]} is no multiple of {multiple}, where a stack would "
                    f"round differently from a model of its own")
        small = [m for m in first.body if isinstance(m, nn.Linear)
                 and batch * m.in_features * m.out_features < BATCHED_PRODUCT_MIN]
        if small:
            return (f"a layer of {small[0].in_features} x {small[0].out_features} at batch {batch} is below "
                    f"{BATCHED_PRODUCT_MIN} multiply-adds, where torch's batched product sums in another order")
    return None


#: multiply-adds per member below which torch's CPU batched product takes its own loop instead of the member's
#: matrix-product kernel (and sums in another order)
BATCHED_PRODUCT_MIN = 400

def max_members(nets: list[nn.Module]) -> int | None:
    """The most members of these networks' layout a stack may hold and stay exact (None: no limit; 0 or 1: none).

    A parameter whose size is a multiple of the vector loop's step is updated in vector form alone, in a stack
    as alone; one smaller than the step in scalar form alone, as long as the stack's copy of it stays that
    small; any other size is updated partly one way and partly the other (``vector_step``).
    """
    multiple, scalar_below = vector_step()
    limit = None
    for net in nets:
        for p in net.parameters():
            k = p.numel()
            if k % multiple == 0:
                continue
            fits = (scalar_below - 1) // k
            limit = fits if limit is None else min(limit, fits)
    return limit


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
