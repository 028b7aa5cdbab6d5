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
flow), so the curve moves only with the weights. Because the batch is fixed, the scatter of the curve around
its trend is the jitter of the weights (SGD noise the EMA does not average away), not sampling noise, and it is
measured from the curve itself.

Rule (version ``CONVERGENCE_RULE_VERSION`` = 2): fit a quadratic in the step, by least squares, to the
evaluations of the last half of training (steps >= last / 2; 11 of the 21). Its fall over the last quarter,
``fall = q(0.75 last) - q(last)``, is the trend's drop; its standard error ``fall_se`` follows from the fit's
residual scatter (residual sum of squares over n - 3 degrees of freedom) and the fit's covariance. The model is
*still improving* when both hold:

- the fall is real: ``fall > Z_SCORE * fall_se`` (Z_SCORE = 3, one-sided), so a curve that only wanders
  within its own noise reads converged however small the loss (a reflowed flow at 5e-5 on its own pairs), and
- the fall matters: ``fall > TOLERANCE * whole`` (TOLERANCE = 2 %), ``whole`` the fall from the first
  evaluation after the start (steps/20) to the fit's end value. It is counted from there, not from step 0,
  because the drop from the random initialisation can be 90 % of the whole in the first twentieth of training
  and would hide a loss that still falls by a third afterwards; a curve that never fell below that first
  evaluation has no scale, and a real fall then counts.

Otherwise the model is *converged*: a curve that rises (overfitting) is converged by this rule, which asks only
whether more training would still lower the loss. A curve with fewer than ``MIN_EVALS`` finite evaluations is
not judged (``converged`` is None, with the reason). The quadratic bends with a slowing fall, so a decaying
curve's last quarter is not read off a straight line through the whole half, and its residuals hold the jitter
that second differences of an EMA-smoothed curve would miss.

Every record stores the verdict with the version that judged it (``rule_version``); the report uses a stored
verdict as it is when its version is today's and judges the stored curve again when it is not
(odebench.bench.report.training.current_verdict), so a record written under an earlier rule never shows a
stale flag. ``train.until_converged`` (odebench.bench.harness.spec.train_config) stops a training at the first
evaluation where this rule says converged (``settled``).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from odebench.bench.core import seeding

#: the version of the convergence rule below; stored with every verdict, and the report judges a stored curve
#: again when its version differs (version 1: the relative drop of the last quarter's mean, no noise test)
CONVERGENCE_RULE_VERSION = 2
#: how many standard errors of the curve's own noise the last quarter's fall must exceed to be real
Z_SCORE = 3.0
#: the fall over the last quarter, as a fraction of the whole fall since steps/20, below which it does not matter
TOLERANCE = 0.02
#: how many finite evaluations a curve needs to be judged (the fitted last half then holds 5, two residual
#: degrees of freedom)
MIN_EVALS = 9
#: how many evaluations of the held-out loss a training makes (steps 0 and ``steps`` included)
N_EVALS = 21
#: held-out batch size
N_HELDOUT = 1024

#: the rule in words, as the report's training table quotes it
RULE_TEXT = (f"still improving if the fall of a quadratic fitted to the last half of the held-out evaluations "
             f"over the last quarter of training exceeds {Z_SCORE:g} standard errors of the fit's residual noise "
             f"and {TOLERANCE:.0%} of the whole fall since steps/20 (rule v{CONVERGENCE_RULE_VERSION})")


def eval_steps(steps: int) -> list[int]:
    """The completed-step counts at which the held-out loss is evaluated (0 = before the first step)."""
    return sorted({round(i * steps / (N_EVALS - 1)) for i in range(N_EVALS)})


def judge_convergence(curve: list[tuple[int, float]], not_progress: str = "") -> dict[str, Any]:
    """Converged or still improving, by the rule of the module docstring; ``curve`` is [(step, loss)].

    Returns ``converged`` (True, False, or None with ``reason``), ``converged_at_step``, the trend's ``fall``
    over the last quarter with its standard error ``fall_se``, ``relative_drop`` (fall / whole fall; None
    without a whole fall), ``rule`` (in words) and ``rule_version``. ``converged_at_step`` is the first
    evaluated step from which on the rule, applied to the curve up to that step, says converged and keeps
    saying so to the end: the budget that would have sufficed (None: never). ``not_progress`` (the method's
    ``heldout_not_progress``): why the curve is no progress measure; the verdict is then None with that reason.
    """
    head = {"rule": RULE_TEXT, "rule_version": CONVERGENCE_RULE_VERSION}
    if not_progress:
        return {"converged": None, "converged_at_step": None, "fall": None, "fall_se": None,
                "relative_drop": None, **head, "reason": f"not judged: {not_progress}"}
    trend, reason = last_quarter_fall(curve)
    if trend is None:
        return {"converged": None, "converged_at_step": None, "fall": None, "fall_se": None,
                "relative_drop": None, **head, "reason": reason}
    first = None
    for n in range(MIN_EVALS, len(curve) + 1):
        first = (curve[n - 1][0] if first is None else first) if settled(curve[:n]) else None
    fall, se, whole = trend
    return {"converged": not _improving(fall, se, whole), "converged_at_step": first, "fall": fall, "fall_se": se,
            "relative_drop": fall / whole if whole > 0 else None, **head}


def settled(curve: list[tuple[int, float]]) -> bool:
    """Whether the rule calls the curve so far converged (False where it cannot judge it yet)."""
    trend, _ = last_quarter_fall(curve)
    return trend is not None and not _improving(*trend)


def _improving(fall: float, se: float, whole: float) -> bool:
    return fall > Z_SCORE * se and (whole <= 0 or fall > TOLERANCE * whole)


def last_quarter_fall(curve: list[tuple[int, float]]) -> tuple[tuple[float, float, float] | None, str | None]:
    """((fall, its standard error, whole fall), None) of the quadratic fitted to the last half of ``curve``, or
    (None, why the curve cannot be judged)."""
    steps = [float(s) for s, _ in curve]
    losses = [float(v) for _, v in curve]
    if len(losses) < MIN_EVALS or not all(math.isfinite(v) for v in losses) or steps[-1] <= 0:
        return None, f"fewer than {MIN_EVALS} finite held-out evaluations to judge"
    last = steps[-1]
    x = torch.tensor([(s - last) / last for s in steps if s >= last / 2], dtype=torch.float64)
    y = torch.tensor([v for s, v in zip(steps, losses, strict=True) if s >= last / 2], dtype=torch.float64)
    design = torch.stack([torch.ones_like(x), x, x * x], dim=1)  # q(x) = a + b x + c x^2, x = 0 at the end
    gram_inv = torch.linalg.inv(design.T @ design)
    coef = gram_inv @ design.T @ y
    residual = y - design @ coef
    noise_var = float(residual @ residual) / (len(y) - 3)
    g = torch.tensor([0.0, -0.25, 0.0625], dtype=torch.float64)  # q(-1/4) - q(0): the last quarter's fall
    fall = float(g @ coef)
    se = math.sqrt(max(noise_var * float(g @ gram_inv @ g), 0.0))
    whole = losses[1] - float(coef[0])
    return (fall, se, whole), None


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
