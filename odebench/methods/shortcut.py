"""Shortcut models (Frans, Hafner, Levine, Abbeel 2025): one network s(x, t, d) conditioned on the step size d.

Time: the official code's, which is odebench's (t = 0 noise, t = 1 data), on the path of its code
x_t = (1 - (1 - 1e-5) t) x0 + t x1 with velocity x1 - (1 - 1e-5) x0. Step sizes are powers of two,
d = 2^-k for the level k = 0 (one step over [0, 1]) .. K = log2(``denoise_timesteps``) = 7 (d = 1/128).

Training (each batch, as the official ``targets_shortcut.py``):
  - flow matching on the last 1 - 1/``bootstrap_every`` of the batch: t uniform on the grid {0, 1/128, ..,
    127/128}, target x1 - (1 - 1e-5) x0, at the finest level K. The paper writes this as d = 0; the official code
    conditions it on its smallest step, d = 1/128, and so do we: "d = 0" below means that level.
  - self-consistency on the first 1/``bootstrap_every`` of the batch: levels k = 0 .. K - 1 in equal shares
    (the remainder at k = 0), t uniform on the multiples of d = 2^-k below 1, and the target
    s(x, t, 2d) <- (s(x, t, d) + s(x', t + d, d)) / 2 with x' = x + d s(x, t, d) for the half step d (the
    network at level k + 1), both evaluated by the EMA copy of the network (``target_ema``, the official code's
    ``target_update_rate``), x' and the target clipped to [-``clip``, ``clip``] as the official code does.
  - the loss is the mean squared error over the whole batch.

The network is :class:`TwoTimeNet`, given (t, k) with k = log2(1 / d) as the official DiT embeds its time and its
``dt_base``. The EMA copy lives in the model (``s_target``), starts as a copy of ``s`` and moves towards it by
1 - ``target_ema`` at the start of every loss call (after each optimiser step, as the official code updates it).

Sampling: the flow map X(x, r, t) = x + (t - r) s(x, r, d) for the jump's length t - r; a dyadic jump d = 2^-k
uses its own level, another jump the level of the dyadic step above it (log2 of the step count rounded down, as
the official sampler conditions a step count that is no power of two), and a jump below 1/128 the finest level.
The velocity is s at "d = 0" (the finest level), so the ODE solvers, the NLL and the straightness apply.
"""

from __future__ import annotations

import copy
import math

import torch
from torch import Tensor, nn

from odebench.methods.base import Dynamics, Method, expand_t, register_method
from odebench.methods.two_time import TwoTimeNet

#: the official path's noise scale at t = 1 (x_t = (1 - (1 - SIGMA_MIN) t) x0 + t x1)
SIGMA_MIN = 1e-5


@register_method("shortcut")
class ShortcutModel(Method):
    """Shortcut model: s(x, t, d) for dyadic steps d; flow map X(x, r, t) = x + (t - r) s(x, r, t - r)."""

    reference = "arXiv:2410.12557"
    citation = ("Frans, Hafner, Levine, Abbeel. One Step Diffusion via Shortcut Models. ICLR 2025. "
                "arXiv:2410.12557")
    needs_gaussian_source = False  # flow matching and self-consistency on the straight path work from any source

    def __init__(self, denoise_timesteps: int = 128, bootstrap_every: int = 4, target_ema: float = 0.999,
                 clip: float = 4.0):
        k = math.log2(int(denoise_timesteps)) if int(denoise_timesteps) > 0 else -1
        if k < 1 or k != int(k):
            raise ValueError(f"shortcut: denoise_timesteps must be a power of two >= 2 (the finest step is "
                             f"1 / denoise_timesteps), got {denoise_timesteps}")
        if int(bootstrap_every) < 1:
            raise ValueError(f"shortcut: bootstrap_every must be >= 1 (1 / bootstrap_every of the batch trains "
                             f"self-consistency), got {bootstrap_every}")
        if not 0.0 <= float(target_ema) < 1.0:
            raise ValueError(f"shortcut: target_ema must be in [0, 1) (0: the online network), got {target_ema}")
        if float(clip) <= 0:
            raise ValueError(f"shortcut: clip must be > 0 (the official code clips targets at 4), got {clip}")
        super().__init__(denoise_timesteps=int(denoise_timesteps), bootstrap_every=int(bootstrap_every),
                         target_ema=float(target_ema), clip=float(clip))
        self.finest = int(k)  # K = log2(denoise_timesteps)

    def networks(self, make_net, shape):
        s = TwoTimeNet(make_net())
        return nn.ModuleDict({"s": s, "s_target": copy.deepcopy(s).requires_grad_(False)})

    # ------------------------------------------------------------------------------------------- training
    def levels(self, n: int, like: Tensor) -> Tensor:
        """[n] levels k of the self-consistency samples, in ``like``'s dtype and device: 0 .. K - 1 in equal
        shares, the remainder at k = 0."""
        per = n // self.finest
        k = torch.arange(self.finest - 1, -1, -1, device=like.device, dtype=like.dtype).repeat_interleave(per)
        return torch.cat([k, k.new_zeros(n - len(k))])

    @torch.no_grad()
    def update_target(self, model: nn.ModuleDict) -> None:
        """s_target <- s_target + (1 - target_ema) (s - s_target)."""
        torch._foreach_lerp_(list(model["s_target"].parameters()), list(model["s"].parameters()),
                             1 - self.hparams["target_ema"])

    @torch.no_grad()
    def consistency_target(self, net: nn.Module, x: Tensor, t: Tensor, k: Tensor) -> Tensor:
        """The average of two half steps of ``net`` at level k + 1 from (x, t): the target of level k, [B, *shape]."""
        clip = self.hparams["clip"]
        half = expand_t(0.5 * torch.exp2(-k), x)  # d / 2 for d = 2^-k
        was_training = net.training
        net.eval()  # the target network runs as at inference, as the official code's train=False
        try:
            v1 = net(x, t, k + 1)
            x2 = (x + half * v1).clamp(-clip, clip)
            v2 = net(x2, t + half.flatten(), k + 1)
        finally:
            net.train(was_training)
        return ((v1 + v2) / 2).clamp(-clip, clip)

    def loss(self, model, x0, x1, gen):
        h = self.hparams
        if torch.is_grad_enabled() and model.training:  # a training step, not a held-out evaluation, moves it
            self.update_target(model)
        n, device = x1.shape[0], x1.device
        nb = n // h["bootstrap_every"]
        c = 1 - SIGMA_MIN
        # self-consistency part: the first nb samples
        k = self.levels(nb, x1)
        sections = torch.exp2(k)
        t_b = torch.floor(torch.rand(nb, generator=gen, device=device, dtype=x1.dtype) * sections) / sections
        x_b = (1 - c * expand_t(t_b, x1[:nb])) * x0[:nb] + expand_t(t_b, x1[:nb]) * x1[:nb]
        target_b = self.consistency_target(model["s_target"], x_b, t_b, k)  # no dropout in it (eval mode)
        # flow-matching part: the rest, at the finest level
        steps = h["denoise_timesteps"]
        t_f = torch.randint(0, steps, (n - nb,), generator=gen, device=device).to(x1.dtype) / steps
        x0f, x1f = x0[nb:], x1[nb:]
        x_f = (1 - c * expand_t(t_f, x1f)) * x0f + expand_t(t_f, x1f) * x1f
        target_f = x1f - c * x0f
        x_t, t = torch.cat([x_b, x_f]), torch.cat([t_b, t_f])
        levels = torch.cat([k, torch.full_like(t_f, float(self.finest))])
        return (model["s"](x_t, t, levels) - torch.cat([target_b, target_f])).pow(2).mean()

    # ------------------------------------------------------------------------------------------- sampling
    def level_of(self, step: Tensor) -> Tensor:
        """[B] levels k for jumps of length ``step`` [B]: floor(log2(1 / step)) in [0, K] (K for a zero step)."""
        k = torch.floor(-torch.log2(step.clamp_min(2.0 ** -(self.finest + 1))) + 1e-6)
        return k.clamp(0, self.finest)

    def dynamics(self, model):
        net, finest = model["s"], float(self.finest)

        def velocity(x: Tensor, t: Tensor) -> Tensor:
            return net(x, t, torch.full_like(t, finest))  # "d = 0": the flow-matching level

        def flow_map(x: Tensor, r: Tensor, t: Tensor) -> Tensor:
            return x + expand_t(t - r, x) * net(x, r, self.level_of(t - r))

        return Dynamics(velocity=velocity, flow_map=flow_map)

    def offers(self):
        """The flow map and its flow-matching velocity (the path is not the linear one exactly, so no schedule)."""
        return frozenset({"velocity", "flow_map"})
