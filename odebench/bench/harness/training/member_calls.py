"""Run one method's loss for every member of a stacked ensemble, with the members' network calls batched.

A method's ``loss(model, x0, x1, gen)`` is ordinary code that draws from its generator and calls its networks
(``model["v"](x, t)``). To train M seeds at once without asking methods for a batched form of their loss, each
member's loss runs as it is, in a greenlet of its own, with its own batch and generator, on a stand-in
``model`` whose networks do not compute: a call hands (x, t) to the scheduler and waits. When every member
waits on a call to the same network, the scheduler evaluates the stacked network once on the members' inputs
stacked along a new leading dimension and hands each member its slice. Everything else a loss does (draws,
paths, reductions) runs per member on its own tensors, so each member's loss is what it computes alone.

Greenlets, not threads: the members take turns in a fixed order on one thread, so the run is deterministic and
nothing needs a lock; the autograd mode a member set (``torch.no_grad`` around a target) is kept per member
across the turns.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from greenlet import greenlet
from torch import Tensor, nn


class MemberCallMismatch(RuntimeError):
    """The members' losses did not call the same networks in the same order (data-dependent control flow)."""


@dataclass
class _Call:
    """A member waiting on ``name``(x, t) with autograd in ``grad`` mode."""

    name: str
    x: Tensor
    t: Tensor
    grad: bool


class _MemberNet(nn.Module):
    """Stands in for a member's network ``name``: calling it yields to the scheduler."""

    def __init__(self, name: str, scheduler: greenlet):
        super().__init__()
        self.name = name
        self.scheduler = scheduler

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        return self.scheduler.switch(_Call(self.name, x, t, torch.is_grad_enabled()))


def member_losses(loss: Callable[[nn.ModuleDict, Tensor, Tensor, Any], Tensor], stacked: dict[str, nn.Module],
                  batches: Sequence[tuple[Tensor, Tensor]], gens: Sequence[torch.Generator | None]) -> list[Tensor]:
    """Each member's ``loss(model_m, x0_m, x1_m, gen_m)``, network calls evaluated on ``stacked`` together.

    ``stacked[name]`` maps (x [M, B, ...], t [M, B]) to [M, B, ...] (a StackedMLP); ``batches[m]`` = (x0, x1),
    [B, *shape] each. Returns M scalar losses, each connected to the stacked parameters for one backward pass.
    """
    scheduler = greenlet.getcurrent()
    proxies = nn.ModuleDict({name: _MemberNet(name, scheduler) for name in stacked})
    context = contextvars.copy_context()  # budgets and other context variables reach every member
    members = []
    for (x0, x1), gen in zip(batches, gens, strict=True):
        g = greenlet(lambda x0=x0, x1=x1, gen=gen: loss(proxies, x0, x1, gen))
        g.gr_context = context.copy()
        members.append(g)
    grad_before = torch.is_grad_enabled()
    try:
        state = []
        for g in members:
            torch.set_grad_enabled(grad_before)
            state.append(g.switch())
        while True:
            waiting = [s for s in state if isinstance(s, _Call)]
            if not waiting:
                return state
            if len(waiting) < len(state) or len({(c.name, c.grad) for c in waiting}) > 1:
                raise MemberCallMismatch("the members' losses made different network calls; a method whose "
                                         "calls depend on its data cannot train stacked")
            call = waiting[0]
            with torch.set_grad_enabled(call.grad):
                out = stacked[call.name](torch.stack([c.x for c in waiting]), torch.stack([c.t for c in waiting]))
            state = []
            for m, g in enumerate(members):
                torch.set_grad_enabled(call.grad)  # the member resumes in the mode it called in
                state.append(g.switch(out[m]))
    finally:
        torch.set_grad_enabled(grad_before)
        for g in members:
            if not g.dead:
                g.throw(greenlet.GreenletExit)
