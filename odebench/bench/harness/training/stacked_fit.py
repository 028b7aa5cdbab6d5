"""``fit`` for M models that differ only in their seed, trained as one stacked ensemble.

Each member keeps what a training of its own has: its batches and the loss's draws from its own generator
(odebench.bench.harness.training.member_calls runs each member's loss as it is), its own Adam moments, its own
gradient-norm clip and its own EMA; only the network evaluations and the optimiser's elementwise arithmetic
run once over the stacked weights [M, ...]. On CPU in float32 this gives every member exactly the weights, loss
curve and held-out curve of ``odebench.bench.harness.training.train.fit`` run for it alone
(tests/harness/test_seed_stacks.py checks it bit for bit): batched products and elementwise kernels compute each
member's slice as the member's own tensors would, and the clip's norms are taken member by member, in the
member's own parameter order, over its own slices.

A member whose loss turns non-finite fails alone with DivergenceError; its NaNs stay in its own slices, so the
others train on, unchanged.

Under ``cfg.until_converged`` each member stops where its own training would (the first held-out evaluation
its curve reads converged, ``evidence.settled``): its EMA model, its trained weights and its loss curve are
taken at that step, as ``fit`` ends there, and it stays in the stack, its further steps discarded, so that the
others' arithmetic is unchanged; the stack ends when every member has stopped or failed.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

from odebench.bench.core import budgets
from odebench.bench.harness.training import evidence as ev
from odebench.bench.harness.training.member_calls import member_losses
from odebench.bench.nets.stacked import StackedMLP, max_members, stackable

Fitted = tuple[nn.ModuleDict, list[float]]
"""A member's (EMA model in eval mode, loss curve), as ``train.fit`` returns them."""


def stack_reason(models: Sequence[nn.ModuleDict], batch: int) -> str | None:
    """None if these members' networks can train stacked on batches of ``batch``, exactly as each alone, else
    why not (they then train one at a time)."""
    for name in models[0]:
        reason = stackable([m[name] for m in models], batch)
        if reason is not None:
            return f"network {name!r}: {reason}"
    if any(len(list(m.buffers())) != len(list(models[0].buffers())) for m in models):
        return "the members' networks hold different buffers"
    most = max_members(list(models[0].values()))
    if most is not None and len(models) > most:
        return (f"a parameter's size admits stacks of at most {most} exactly"
                if most > 1 else "a parameter's size is no multiple of the vector width: no stack is exact")
    return None


def stack_size(models: Sequence[nn.ModuleDict]) -> int:
    """The most members of this layout one stack holds exactly (at least 1)."""
    most = max_members(list(models[0].values()))
    return len(models) if most is None else max(1, min(most, len(models)))


def _member_order(stacked: dict[str, StackedMLP], model: nn.ModuleDict) -> list[Tensor]:
    """The stacked leaves in the order of ``model.parameters()`` (the clip sums squares in this order)."""
    leaves = []
    for name in model:
        net = stacked[name]
        for w, b in zip(net.weights, net.biases, strict=True):
            leaves += [w, b]
    if [tuple(p.shape) for p in model.parameters()] != [tuple(p.shape[1:]) for p in leaves]:
        raise ValueError("the stacked leaves do not follow the member's parameter order")
    return leaves


def _clip_members(leaves: list[Tensor], max_norm: float) -> None:
    """``clip_grad_norm_`` for each member on its own slices of the stacked gradients."""
    members = leaves[0].shape[0]
    coefs = []
    for m in range(members):
        norms = torch._foreach_norm([p.grad[m] for p in leaves], 2.0)
        total = torch.linalg.vector_norm(torch.stack(norms), 2.0)
        coefs.append(torch.clamp(max_norm / (total + 1e-6), max=1.0))
    coef = torch.stack(coefs)
    for p in leaves:
        p.grad.mul_(coef.view(-1, *([1] * (p.grad.dim() - 1))))


def fit_stacked(method, models: Sequence[nn.ModuleDict], couplings: Sequence, cfg, gens: Sequence[torch.Generator],
                heldouts: Sequence[Callable[[nn.Module], float]] | None = None,
                heldout_curves: Sequence[list[tuple[int, float]]] | None = None,
                report: Callable[[int, int], None] | None = None) -> list[Fitted | Exception]:
    """Train ``models`` (one per member) together; per member (EMA model in eval mode, loss curve) or the error.

    Arguments are ``train.fit``'s, one per member: ``couplings[m].draw(batch, gens[m])`` gives member m's batches
    and ``gens[m]`` also serves its loss's draws; ``heldouts[m](ema_m)`` is appended to ``heldout_curves[m]`` at
    ``training_evidence.eval_steps(cfg.steps)``. ``report(done, total)`` is called at every loss read-back.
    """
    from odebench.bench.harness.training.train import diverged, ema_weight, loss_chunk, stops_early

    if cfg.until_converged and heldouts is None:
        raise ValueError("train.until_converged needs the held-out evaluation (heldouts) to judge convergence")
    early = stops_early(method, cfg)
    n = len(models)
    emas = [copy.deepcopy(m).requires_grad_(False) for m in models]
    stacked = {name: StackedMLP([m[name] for m in models]) for name in models[0]}
    leaves = _member_order(stacked, models[0])
    ema_leaves = [p.detach().clone() for p in leaves]
    opt = torch.optim.Adam(leaves, lr=cfg.lr, weight_decay=cfg.weight_decay)
    chunk = loss_chunk(cfg.steps)
    curves: list[list[float]] = [[] for _ in range(n)]
    failed: list[Exception | None] = [None] * n
    running = torch.zeros(n)
    checkpoints = set(ev.eval_steps(cfg.steps)) if heldouts is not None else set()
    stopped: list[Fitted | None] = [None] * n  # a member that converged: what its own fit returned there

    def training(m: int) -> bool:
        return failed[m] is None and stopped[m] is None

    def evaluate_heldout(step: int) -> None:
        _write_back(ema_leaves, leaves, emas)
        for m in range(n):
            if training(m):
                heldout_curves[m].append((step, heldouts[m](emas[m])))
                if early and 0 < step < cfg.steps and ev.settled(heldout_curves[m]):
                    stop(m, step)

    def stop(m: int, step: int) -> None:
        """Member m ends here, as ``fit`` ends at a converged evaluation."""
        if step % chunk:  # the chunk it stops in, as the last chunk of a full budget
            value = float(running[m]) / (((step - 1) % chunk) + 1)
            if not math.isfinite(value):
                failed[m] = diverged(f"train {method.name}", value, step, cfg)
                return
            curves[m].append(value)
        _write_back(ema_leaves, leaves, emas, models, members=[m])
        ema = copy.deepcopy(emas[m])
        with torch.no_grad():
            for b_ema, b in zip(ema.buffers(), models[m].buffers(), strict=True):
                b_ema.copy_(b)
        stopped[m] = (ema.eval(), list(curves[m]))

    if 0 in checkpoints:
        evaluate_heldout(0)
    for step in range(cfg.steps):
        budgets.check_deadline()
        batches = [coupling.draw(cfg.batch_size, gen) for coupling, gen in zip(couplings, gens, strict=True)]
        losses = member_losses(method.loss, stacked, batches, gens)
        opt.zero_grad(set_to_none=True)
        torch.autograd.backward(losses)
        if cfg.grad_clip > 0:
            _clip_members(leaves, cfg.grad_clip)
        opt.step()
        with torch.no_grad():
            torch._foreach_lerp_(ema_leaves, leaves, ema_weight(cfg, step))
            running += torch.stack([loss.detach() for loss in losses])
        if (step + 1) % chunk == 0 or step + 1 == cfg.steps:
            values = [v / ((step % chunk) + 1) for v in running.tolist()]
            running.zero_()
            for m, value in enumerate(values):
                if not training(m):
                    continue
                if not math.isfinite(value):
                    failed[m] = diverged(f"train {method.name}", value, step + 1, cfg)
                else:
                    curves[m].append(value)
            if report is not None:
                report(step + 1, cfg.steps)
        if step + 1 in checkpoints:
            evaluate_heldout(step + 1)
        if not any(training(m) for m in range(n)):
            if report is not None and step + 1 < cfg.steps:
                report(cfg.steps, cfg.steps)  # done: the progress line counts the budget as spent
            break
    going = [m for m in range(n) if training(m)]
    _write_back(ema_leaves, leaves, emas, models, members=going)
    for m in going:
        with torch.no_grad():
            for b_ema, b in zip(emas[m].buffers(), models[m].buffers(), strict=True):
                b_ema.copy_(b)
    return [failed[m] if failed[m] is not None else stopped[m] or (emas[m].eval(), curves[m]) for m in range(n)]


@torch.no_grad()
def _write_back(ema_leaves: list[Tensor], leaves: list[Tensor], emas: Sequence[nn.ModuleDict],
                models: Sequence[nn.ModuleDict] | None = None, members: Sequence[int] | None = None) -> None:
    """Copy the stacked EMA weights into each member's EMA model (and the trained weights into ``models``);
    ``members``: only these (default: all)."""
    for m in range(len(emas)) if members is None else members:
        ema = emas[m]
        for target, source in zip(ema.parameters(), ema_leaves, strict=True):
            target.copy_(source[m])
        if models is not None:
            for target, source in zip(models[m].parameters(), leaves, strict=True):
                target.copy_(source[m])
