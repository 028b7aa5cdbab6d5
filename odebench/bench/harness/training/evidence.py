"""What a trained model's record says about its training: its cost and whether it had converged.

**Cost.** One optimisation step is measured once, before training, with torch's FLOP counter on a copy of the
networks (forward and backward of the method's loss on one batch; matrix products and convolutions, the terms
that dominate). ``forward_equivalents_per_step`` divides that by the FLOPs of one forward pass of the spec's
network on the same batch, so every method is charged in the same unit whatever its losses do: about 3 for one
network called once (forward + backward ~ 3 forwards), more for a second network (an encoder) or a second pass
(an antithetic interpolant loss). The pair generation of reflow and distillation is counted from its actual
solve (``pair_flops``), and a model's ``total_flops`` adds its parents'.

**Convergence.** Every training evaluates the EMA weights on a fixed held-out batch at 21 evenly spaced steps
(0, steps/20, ..., steps): source draws and the loss's own randomness come from a generator reset to the same
seed each time, and the data side is the target's held-out split (reflow rounds: fresh pairs of the parent's
flow), so the curve moves only with the weights. Rule: the model counts as *still improving* when the held-out
loss fell, from the mean over the quarter of the evaluations before the last quarter to the mean over the last
quarter, by more than ``TOLERANCE`` (2 %) of its whole fall (from the first evaluation after the start, at
steps/20, to the last quarter); otherwise *converged*. The fall is counted from there, not from step 0, because
the drop from the random initialisation can be 90 % of the whole in the first twentieth of training and would
hide a loss that still falls by a third afterwards. Measuring against the whole fall, not the loss's own size,
keeps the rule meaningful for losses that approach zero (a reflowed flow on its own pairs) or are negative (the
interpolant's quadratic loss). A curve that never fell is not judged (``converged`` is None, with the reason).
The report judges every stored curve again by this rule, so records written under an earlier rule read alike.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from odebench.bench.core import seeding

#: relative drop of the held-out loss, last quarter vs the quarter before, above which a model still improves
TOLERANCE = 0.02
#: fraction of the evaluations in each of the two compared windows
WINDOW = 0.25
#: how many evaluations of the held-out loss a training makes (steps 0 and ``steps`` included)
N_EVALS = 21
#: held-out batch size
N_HELDOUT = 1024


def eval_steps(steps: int) -> list[int]:
    """The completed-step counts at which the held-out loss is evaluated (0 = before the first step)."""
    return sorted({round(i * steps / (N_EVALS - 1)) for i in range(N_EVALS)})


def judge_convergence(curve: list[tuple[int, float]], tolerance: float = TOLERANCE,
                      window: float = WINDOW) -> dict[str, Any]:
    """Converged or still improving, by the rule of the module docstring; ``curve`` is [(step, loss)].

    ``converged_at_step`` is the first evaluated step from which on the rule, applied to the curve up to that
    step, says converged and keeps saying so to the end: the budget that would have sufficed (None: never).
    """
    drop, reason = relative_drop(curve, window)
    if drop is None:
        return {"converged": None, "relative_drop": None, "rule": _rule(tolerance, window), "reason": reason}
    first = None
    for n in range(3, len(curve) + 1):
        d, _ = relative_drop(curve[:n], window)
        settled = d is not None and d <= tolerance
        first = (curve[n - 1][0] if first is None else first) if settled else None
    return {"converged": drop <= tolerance, "relative_drop": drop, "rule": _rule(tolerance, window),
            "converged_at_step": first}


def relative_drop(curve: list[tuple[int, float]], window: float = WINDOW) -> tuple[float | None, str | None]:
    """(fall of the held-out loss over the last window as a fraction of its whole fall, None) or (None, why the
    curve cannot be judged)."""
    losses = [loss for _, loss in curve]
    k = max(1, int(round(window * len(losses))))
    if len(losses) < 2 * k + 2 or not all(math.isfinite(v) for v in losses):
        return None, "too few finite held-out evaluations to judge"
    last, before = sum(losses[-k:]) / k, sum(losses[-2 * k:-k]) / k
    # the fall since the first evaluation after the start: the drop from the random initialisation (often
    # 90 % of the whole in the first twentieth of training) would otherwise hide a loss still falling by a third
    whole = losses[1] - last
    if not whole > 0:
        return None, "the held-out loss never fell below its value after the first stretch of training"
    return (before - last) / whole, None


def _rule(tolerance: float, window: float) -> str:
    return (f"still improving if, over the last {window:.0%} of the held-out evaluations, the loss fell by more "
            f"than {tolerance:.0%} of its whole fall since the first evaluation after the start")


def heldout_evaluator(method, x0: torch.Tensor, x1: torch.Tensor, seed: int, key: str) -> Callable[[nn.Module], float]:
    """``evaluate(model) -> float``: the method's loss on the fixed pairs (x0, x1), [N, *shape] each, with the
    loss's own draws (times, noise) from a generator reset to the same seed on every call."""

    def evaluate(model: nn.Module) -> float:
        was_training = model.training
        model.eval()
        with torch.no_grad():
            gen = seeding.derive(seed, key, "heldout-loss", device=x1.device)
            value = float(method.loss(model, x0, x1, gen))
        model.train(was_training)
        return value

    return evaluate


def count_flops(fn: Callable[[], Any]) -> tuple[Any, int]:
    """(fn(), the FLOPs torch's counter saw while it ran)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        out = fn()
    return out, int(counter.get_total_flops())


def step_cost(method, model: nn.ModuleDict, reference_net: nn.Module, x0: torch.Tensor, x1: torch.Tensor,
              gen: torch.Generator) -> dict[str, Any]:
    """FLOPs of one training step (loss forward + backward on the batch x0, x1) measured on a copy of the
    networks, the FLOPs of one forward of ``reference_net`` on that batch, and their ratio."""
    probe = copy.deepcopy(model).train()

    def one_step():
        probe.zero_grad(set_to_none=True)
        method.loss(probe, x0, x1, gen).backward()

    _, step = count_flops(one_step)
    with torch.no_grad():
        t = torch.full((x1.shape[0],), 0.5, device=x1.device, dtype=x1.dtype)
        _, forward = count_flops(lambda: reference_net(x1, t))
    params = {name: sum(p.numel() for p in net.parameters()) for name, net in model.items()}
    return {"flops_per_step": step, "reference_forward_flops": forward,
            "forward_equivalents_per_step": step / forward if forward else None,
            "params": params, "params_total": sum(params.values()), "batch_size": int(x1.shape[0])}
