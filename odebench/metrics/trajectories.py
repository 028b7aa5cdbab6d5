"""How straight the sampling paths are, and how far the sampler's coupling moves mass.

Straightness (Liu, Gong, Liu 2023, arXiv:2209.03003, eq. "S(Z)"), over the dynamics' interval [t0, t1]
(= [0, 1] except for diffusion, which stops at 1 - s_eps):

    S = integral_{t0}^{t1} E || (Z_{t1} - Z_{t0}) / (t1 - t0) - v(Z_t, t) ||^2 dt,

squared norm summed over the D dimensions. It is zero iff every path is a straight line traversed at constant
speed, and S = integral E|v|^2 dt - E|Z_{t1} - Z_{t0}|^2 / (t1 - t0) >= 0.

Curvature (Lee, Kim, Ye 2023, arXiv:2301.12003) is the same quantity averaged over dimensions, S / D. Their
official code (github.com/sangyun884/fast-ode, ``utils.straightness``, called in ``generate.py`` on the
Euler trajectory of N uniform steps) computes
mean_i mean_{batch, dims} ((x_i - x_{i-1}) / dt - (x_N - x_0))^2: finite-difference velocities along
the sampler's own path, a mean over steps (dt = 1 / N) and a mean over dimensions. We follow it exactly
on the solver's path.

Each is reported twice:
  - reference: the ODE re-simulated from the same x0 with rk4 on a fine uniform grid (``n_steps`` steps,
    200 by default, 4 NFE each); v(Z_t, t) is evaluated at the n_steps + 1 grid states and the integral
    taken by the trapezoid rule. This is the model's own straightness, independent of the swept solver. A model
    with no velocity (a flow map only) has none: straightness and curvature are then 'not applicable'.
  - solver_path: along the swept solver's recorded trajectory Z_{t_0}, ..., Z_{t_T} on its time grid, with the
    secant velocities (Z_{t_{i+1}} - Z_{t_i}) / (t_{i+1} - t_i) and the rectangle rule
    sum_i (t_{i+1} - t_i) || ... ||^2
    (Lee et al.'s estimator; for Euler the secant is exactly v(Z_{t_i}, t_i)). It is what the sampler really
    traversed, so it also measures SDE samplers (whose paths are noisy, hence far from straight).

Transport cost of the coupling the sampler produces (x0 -> its sample): E || Z1 - Z0 ||^p (p = 2 by default),
reported with two references:
  - ``.ot``: the exact optimal transport cost between the same two empirical sets,
    min over pairings of (1/N) sum || x0_i - z1_sigma(i) ||^p (POT ``emd2``, uniform weights), which no pairing
    of those sets can beat, so ``.excess_ot`` = cost - ot is >= 0 (it differs per method and is ~0 in 2-D);
  - ``.reference``: W_p^p(source law, data law), estimated once per pair of laws from large samples and the
    same for every method (:mod:`odebench.metrics.transport_reference`), and ``.excess`` = cost - reference,
    the cost above the cheapest transport of the source law to the data law (it can be slightly negative: the
    model's law is not exactly the data law, and the reference is an estimate). Given only when the context
    carries the source law (``EvalContext.source_sample``) and the data (``train_reference``); records from
    before the reference hold ``.excess`` meaning cost - ot, which loading renames to ``.excess_ot``.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import Tensor

from odebench.bench.core.solvers import Field, Unsupported, solve
from odebench.metrics.budget_guard import refuse_if_over_budget
from odebench.metrics.computed_once import fingerprint
from odebench.metrics.registry import EvalContext, register_metric, require_points
from odebench.metrics.transport_reference import REFERENCE_POINTS, ot_cost, reference_cost

__all__ = ["ot_cost", "reference_trajectory", "straightness_from_velocities", "straightness_secant",
           "transport_cost"]


def _per_sample_sq(x: Tensor, sample_dims: int) -> Tensor:
    """Sum of squares over the trailing ``sample_dims`` dimensions."""
    return x.pow(2).flatten(x.dim() - sample_dims).sum(-1)


def straightness_from_velocities(traj: Tensor, t: Tensor, vel: Tensor) -> Tensor:
    """Per-sample integral of || (Z_end - Z_start) / (t_end - t_start) - v ||^2 by the trapezoid rule.

    Args:
        traj: [T + 1, N, *shape] states on ``t``; t: [T + 1] increasing (or decreasing) times;
        vel: [T + 1, N, *shape] v(Z_t, t) at those states.
    Returns:
        [N] straightness of each path (summed over dimensions).
    """
    k = traj.dim() - 2
    base = (traj[-1] - traj[0]) / (t[-1] - t[0])
    dev = _per_sample_sq(vel - base, k)  # [T + 1, N]
    dt = (t[1:] - t[:-1]).abs().to(dev.dtype)[:, None]
    return (dt * (dev[1:] + dev[:-1]) / 2).sum(0)


def straightness_secant(traj: Tensor, t: Tensor) -> Tensor:
    """Per-sample sum_i dt_i || (Z_end - Z_start) / (t_end - t_start) - (Z_{i+1} - Z_i) / dt_i ||^2.

    Args:
        traj: [T + 1, N, *shape] the solver's states; t: [T + 1] its time grid.
    Returns:
        [N]; on a uniform grid over [0, 1] this is D times Lee et al.'s ``straightness``.
    """
    k = traj.dim() - 2
    dt = (t[1:] - t[:-1]).to(traj.dtype)
    secant = (traj[1:] - traj[:-1]) / dt.reshape(-1, *([1] * (k + 1)))
    base = (traj[-1] - traj[0]) / (t[-1] - t[0])
    return (dt.abs()[:, None] * _per_sample_sq(secant - base, k)).sum(0)


def reference_trajectory(field: Field, x0: Tensor, n_steps: int = 200, t0: float = 0.0,
                         t1: float = 1.0) -> tuple[Tensor, Tensor, Tensor]:
    """Re-simulate from x0 with rk4 on a uniform grid; return (traj [n+1, N, *shape], t [n+1], v on traj)."""
    with torch.no_grad():
        res = solve(field, x0, "rk4", nfe=4 * n_steps, t0=t0, t1=t1, grid="uniform", trajectory=True)
        vel = torch.stack([field(z, ti.expand(len(z))) for z, ti in zip(res.trajectory, res.t, strict=True)])
    return res.trajectory, res.t, vel


def transport_cost(x0: Tensor, x1: Tensor, p: float = 2.0) -> Tensor:
    """E || x1 - x0 ||^p of the pairs (x0_i, x1_i), x0, x1: [N, *shape] -> 0-d tensor."""
    return (x1 - x0).flatten(1).norm(dim=1).pow(p).mean()


# ------------------------------------------------------------------------------------------ registry entries
PATH_OPTIONS = {"max_points", "n_steps"}


def _check(ctx: EvalContext, name: str, allowed: set[str]) -> dict:
    opts = ctx.opts(name)
    unknown = set(opts) - allowed
    if unknown:
        raise ValueError(f"{name}: unknown option(s) {sorted(unknown)}; allowed: {sorted(allowed)}")
    return opts


#: reference straightness already computed in this process, by (dynamics key, x0 fingerprint, steps, t0, t1)
_REFERENCE: OrderedDict[tuple, float] = OrderedDict()
_REFERENCE_KEPT = 256


def reference_straightness(ctx: EvalContext, n: int, n_steps: int) -> float:
    """Mean straightness of the rk4 re-simulation from ctx.x0[:n] on n_steps uniform steps.

    It depends only on the dynamics and the source draws, which every cell of a model shares (draws depend on
    the seed, never on the solver), so with a ``ctx.dynamics_key`` it is solved once per process and model.
    """
    dyn = ctx.dynamics
    if dyn.velocity is None:  # recorded 'not applicable' (the harness's reading of Unsupported), not failed
        raise Unsupported("the reference straightness re-solves the model's ODE and evaluates its velocity, and "
                          "this model defines no velocity (it offers a flow map only): there is no field to measure")
    x0 = ctx.x0[:n].float()
    memo = (ctx.dynamics_key, fingerprint(x0), n_steps, dyn.t0, dyn.t1) if ctx.dynamics_key else None
    if memo in _REFERENCE:
        _REFERENCE.move_to_end(memo)
        return _REFERENCE[memo]
    traj, t, vel = reference_trajectory(dyn.velocity, x0, n_steps, dyn.t0, dyn.t1)
    value = straightness_from_velocities(traj.double(), t.double(), vel.double()).mean().item()
    if memo is not None:
        _REFERENCE[memo] = value
        while len(_REFERENCE) > _REFERENCE_KEPT:
            _REFERENCE.popitem(last=False)
    return value


def _straightness_values(ctx: EvalContext, name: str) -> tuple[float, float, dict]:
    """(reference S, solver-path S, settings), means over paths; ctx.cache shares the reference solve."""
    opts = _check(ctx, name, PATH_OPTIONS)
    if ctx.dynamics is None or ctx.x0 is None:
        raise ValueError(f"{name} needs the model's dynamics and the source draws x0")
    n, n_steps = int(opts.get("max_points", 1000)), int(opts.get("n_steps", 200))
    require_points(name, min(n, len(ctx.x0)))  # a mean over paths, from one path, is no estimate
    key = ("reference_straightness", n, n_steps)
    if key not in ctx.cache:
        ctx.cache[key] = reference_straightness(ctx, n, n_steps)
    path = float("nan")
    if ctx.trajectory is not None and ctx.t_grid is not None and len(ctx.t_grid) > 1:
        path = straightness_secant(ctx.trajectory[:, :n].double(), ctx.t_grid.double()).mean().item()
    settings = {"n_paths": min(n, len(ctx.x0)),
                "reference": f"rk4, {n_steps} uniform steps, trapezoid rule on v at the {n_steps + 1} states",
                "solver_path": "secant velocities on the solver's grid, rectangle rule",
                "solver_path_points": None if ctx.t_grid is None else len(ctx.t_grid)}
    return ctx.cache[key], path, settings


@register_metric("straightness", higher_is_better=False, reference="arXiv:2209.03003",
                 variant="Liu et al.: sum over dims; reference rk4 grid + solver path", needs_trajectory=True,
                 family="path",
                 reading=('Straightness is >= 0 and 0 only for straight paths at constant speed, which one '
                          'Euler step solves exactly; near 0 means few solver steps suffice.'))
def _straightness(ctx: EvalContext) -> dict:
    """Straightness: integral of E||(Z1 - Z0) - v(Z_t, t)||^2 dt (sum over dims); .solver_path: sampler's."""
    ref, path, settings = _straightness_values(ctx, "straightness")
    return {"straightness": ref, "solver_path": path, "settings": settings}


@register_metric("curvature", higher_is_better=False, reference="arXiv:2301.12003",
                 variant="Lee et al.: straightness / D (mean over dims)", needs_trajectory=True, family="path",
                 reading=('Curvature is >= 0 and 0 only for straight paths at constant speed; near 0 means few'
                          ' solver steps suffice.'))
def _curvature(ctx: EvalContext) -> dict:
    """Curvature (Lee et al.): the straightness averaged over dimensions; .solver_path: the sampler's."""
    ref, path, settings = _straightness_values(ctx, "curvature")
    d = ctx.samples[0].numel()
    return {"curvature": ref / d, "solver_path": path / d, "settings": {**settings, "dim": d}}


@register_metric("transport_cost", higher_is_better=False, reference="arXiv:2209.03003",
                 variant=("E||Z1 - Z0||^p of the sampler's coupling; .ot exact OT of the same sets (POT emd2); "
                          ".reference W_p^p(source law, data law), .excess the cost above it"), family="path",
                 reading=("The exact OT cost (.ot) of the same two sets bounds the sampler's cost from below, "
                          'so .excess_ot is >= 0 up to floating-point rounding (-2e-15 is 0). .reference is '
                          'W_p^p(source law, data law), the same for every method; .excess, the cost above it, '
                          'compares methods, and a value near 0 means a coupling as cheap as optimal transport.'))
def _transport(ctx: EvalContext) -> dict:
    """Transport cost E||Z1 - Z0||^p of the sampler's coupling, its excess over exact OT and over the dataset's
    transport reference W_p^p(source law, data law)."""
    opts = _check(ctx, "transport_cost", {"max_points", "p", "reference_points"})
    if ctx.x0 is None:
        raise ValueError("transport_cost needs the source draws x0 the samples started from")
    n, p = int(opts.get("max_points", 2000)), float(opts.get("p", 2.0))
    require_points("transport_cost", min(n, len(ctx.x0), len(ctx.samples)))
    x0, x1 = ctx.x0[:n].double(), ctx.samples[:n].double()
    cost = transport_cost(x0, x1, p).item()
    refuse_if_over_budget("transport_cost", len(x0), lambda k: ot_cost(x0[:k], x1[:k], p), "exact OT")
    best = ot_cost(x0, x1, p)
    out = {"transport_cost": cost, "ot": best, "excess_ot": cost - best}
    settings = {"n_pairs": len(x0), "p": p, "ot": "POT emd2, uniform weights"}
    if ctx.source_sample is not None and ctx.train_reference is not None and ctx.law_key:
        ref = reference_cost(ctx.source_sample, ctx.train_reference, ctx.law_key,
                             int(opts.get("reference_points", REFERENCE_POINTS)), p, cache_dir=ctx.cache_dir)
        out.update(reference=ref["reference"], excess=cost - ref["reference"])
        settings["reference"] = {"laws": ctx.law_key, "n": ref["n"], "halves": ref["halves"],
                                 "estimator": "exact OT (POT emd2) between n source draws and n data points"}
    return {**out, "settings": settings}
