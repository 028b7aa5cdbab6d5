"""Checks of a given model at load time, before any cell is sampled: a probe of its calling convention and a
plausibility check of its declaration.

:func:`probe` calls the model's velocity (the network through its adapter; for ready-made dynamics that offer a
flow map only, the map from the start of the interval) on a few data points at the start,
middle and end of its interval, and requires an output of the input's shape and dtype with finite values. A
call that raises or returns another shape most often means the wrong adapter (a TorchCFM ``MLP`` called as
``net(x, t)``, a flow_matching model called ``net(t, x)``), so the network is then tried under each other
calling convention on the same points, and the message names the adapter under which it runs.

:func:`implausible` integrates the velocity with a few Euler steps from N(0, I) and compares the samples with
the data's range: samples far outside it (or non-finite) mean the declaration does not fit the network (a
velocity network declared ``eps`` on ``linear`` divides by alpha_t ~ 0 near t = 0 and lands thousands of units
away). It returns the warning's text; the run goes on (a model may be poor without being misdeclared, and a
warning costs nothing if it is wrong).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from odebench.adapters.base import Adapter, DynamicsAdapter, PeerMissing, Plain

__all__ = ["ProbeFailed", "implausible", "probe", "working_adapters"]

#: points per probe call: not a likely data dimension or channel count, so a transposed output does not pass
PROBE_BATCH = 5
#: Euler steps and samples of the plausibility solve (fewer samples for large data: it runs on the CPU)
PLAUSIBILITY_STEPS = 8
PLAUSIBILITY_SAMPLES = 256
#: a sample is far out when a coordinate lies beyond the data's range by more than this many ranges
FAR_RANGES = 2.0
#: the share of far-out samples that makes the warning
FAR_SHARE = 0.1


class ProbeFailed(ValueError):
    """The given network does not work as declared; the message names the likely fix."""


def _conventions(net: nn.Module) -> list[tuple[str, Adapter]]:
    """(adapter name, adapter) for every calling convention a bare network might follow, as velocity networks
    (the convention is what is probed, not the prediction); a peer that is not installed is left out."""
    out: list[tuple[str, Adapter]] = [("plain", Plain(net))]
    try:
        from odebench.adapters.flow_matching import FlowMatching
        from odebench.adapters.torchcfm import TorchCFM

        out += [("torchcfm", TorchCFM(net, time_input="concat")), ("torchcfm", TorchCFM(net, time_input="first")),
                ("flow_matching", FlowMatching(net))]
    except PeerMissing:
        pass
    return out


def _runs(adapter: Adapter, model: nn.Module, x: Tensor, t: Tensor) -> bool:
    """Whether one velocity call returns a finite tensor of x's shape and dtype."""
    try:
        with torch.no_grad():
            v = adapter.dynamics(model).velocity(x, t)
    except Exception:  # any failure of the user's network means "not this convention"
        return False
    return isinstance(v, Tensor) and v.shape == x.shape and v.dtype == x.dtype and bool(torch.isfinite(v).all())


def working_adapters(adapter: Adapter, x: Tensor) -> list[str]:
    """The adapters (names) under which ``adapter``'s network runs on x: [B, *shape] at t = 0.5, other than its
    own calling convention; the one its class suggests (odebench.adapters.detect) first."""
    from odebench.adapters import detect

    if isinstance(adapter, DynamicsAdapter) or adapter.adapter not in ("plain", "torchcfm", "flow_matching"):
        return []  # ready-made dynamics, diffusers: no other convention to try
    net = adapter.module()
    t = torch.full((x.shape[0],), 0.5, dtype=x.dtype, device=x.device)
    mine = (adapter.adapter, getattr(adapter, "time_input", None))
    found: list[str] = []
    for name, other in _conventions(net):
        if (other.adapter, getattr(other, "time_input", None)) != mine and name not in found \
                and _runs(other, other.model(), x, t):
            found.append(name)
    return sorted(found, key=lambda name: name != detect(net))


def _fix(adapter: Adapter, x: Tensor) -> str:
    """What to do about a network that fails its probe: the adapter under which it runs, if one does."""
    found = working_adapters(adapter, x)
    if found:
        also = f" (it also runs as {' and '.join(found[1:])})" if len(found) > 1 else ""
        return (f"it runs under another adapter than {adapter.adapter!r}: use --adapter {found[0]} "
                f"(odebench.evaluate(..., adapter={found[0]!r})){also}")
    return ("no other adapter calls it successfully either: evaluate it on a dataset of the shape it was trained "
            "on (odebench list datasets), or check --adapter")


def _one_call(dyn, x: Tensor, t: Tensor) -> Tensor:
    """One network call at time t ([B]): the velocity, or for dynamics that offer a flow map only, the jump from
    dyn.t0 to t (x: [B, *shape] -> [B, *shape] either way)."""
    if dyn.velocity is not None:
        return dyn.velocity(x, t)
    return dyn.flow_map(x, torch.full_like(t, float(dyn.t0)), t)


def probe(adapter: Adapter, model: nn.Module, data: Tensor, where: str) -> None:
    """Call the velocity of ``adapter`` on ``model`` at PROBE_BATCH points of ``data``: [N, *shape] (moved to the
    model's device) at the start, middle and end of its interval; raise ProbeFailed naming the fix when a call
    raises, or returns another shape or dtype, or non-finite values. ``where`` names the data in messages."""
    x = data[:PROBE_BATCH]
    x = x.to(next(model.parameters(), x).device)
    shape = tuple(x.shape[1:])
    dyn = adapter.dynamics(model)
    for s in (dyn.t0, 0.5 * (dyn.t0 + dyn.t1), dyn.t1):
        t = torch.full((x.shape[0],), float(s), dtype=x.dtype, device=x.device)
        try:
            with torch.no_grad():
                v = _one_call(dyn, x, t)
        except Exception as exc:  # the network's own error, reported with the likely fix
            first = (str(exc).strip().splitlines() or [""])[0][:200]
            raise ProbeFailed(f"the model does not take {where}'s data (points of shape {shape}) at t = {s:g}: "
                              f"{type(exc).__name__}: {first}; {_fix(adapter, x)}") from exc
        if not isinstance(v, Tensor) or tuple(v.shape) != tuple(x.shape):
            got = tuple(v.shape[1:]) if isinstance(v, Tensor) else type(v).__name__
            raise ProbeFailed(f"the model maps {where}'s points of shape {shape} to shape {got} at t = {s:g}: a "
                              f"velocity must keep the shape; {_fix(adapter, x)}")
        if v.dtype != x.dtype:
            raise ProbeFailed(f"the model returns {str(v.dtype).removeprefix('torch.')} for "
                              f"{str(x.dtype).removeprefix('torch.')} input at t = {s:g}: the solver would feed "
                              f"that back to it; build the network (or cast its output) in the input's dtype")
        if not bool(torch.isfinite(v).all()):
            raise ProbeFailed(f"the model's velocity on points of {where} at t = {s:g} is not finite (NaN or inf): "
                              f"check the weights, and that --kind and --path are what it was trained with "
                              f"(now {_declared(adapter)})")


def _declared(adapter: Adapter) -> str:
    """What the model was declared to predict, and on which path, in the words of its options."""
    if adapter.adapter == "diffusers":  # the scheduler says both
        return f"kind {adapter.kind!r} from the scheduler's prediction_type, its noise schedule"
    path = adapter.identity().get("path")
    return f"kind {adapter.kind!r}, path {path if path is not None else 'none'!r}"


def implausible(adapter: Adapter, model: nn.Module, data: Tensor, where: str,
                seed: int = 0) -> str | None:
    """The warning's text when a short solve of the model lands far outside ``data``'s range, else None.

    PLAUSIBILITY_STEPS Euler steps over the model's interval from N(0, I) draws (PLAUSIBILITY_SAMPLES of them,
    fewer for data of more than 1,024 dimensions); a sample is far out when a coordinate is non-finite or lies
    beyond the data's [min, max] by more than FAR_RANGES times the range (per coordinate, and at least the
    median range, so a constant pixel does not count). Warns when more than FAR_SHARE of the samples are."""
    device = next(model.parameters(), data).device
    dim = math.prod(data.shape[1:])
    n = PLAUSIBILITY_SAMPLES if dim <= 1024 else 16
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn((n, *data.shape[1:]), generator=gen, dtype=data.dtype).to(device)
    dyn = adapter.dynamics(model)
    ts = torch.linspace(dyn.t0, dyn.t1, PLAUSIBILITY_STEPS + 1, dtype=torch.float64)
    with torch.no_grad():
        for a, b in zip(ts[:-1], ts[1:], strict=True):
            t = torch.full((n,), float(a), dtype=x.dtype, device=device)
            if dyn.velocity is None:  # a flow-map-only model: its own jumps over the same grid
                x = dyn.flow_map(x, t, torch.full_like(t, float(b)))
            else:
                x = x + float(b - a) * dyn.velocity(x, t)
    flat, ref = x.reshape(n, -1).cpu(), data.reshape(len(data), -1)
    lo, hi = ref.min(0).values, ref.max(0).values
    span = (hi - lo).clamp_min(float((hi - lo).median()))
    margin = FAR_RANGES * span
    far = (~torch.isfinite(flat) | (flat < lo - margin) | (flat > hi + margin)).any(1)
    share = float(far.float().mean())
    if share <= FAR_SHARE:
        return None
    finite = flat[torch.isfinite(flat)]
    biggest = f"{float(finite.abs().max()):.3g}" if finite.numel() else "none finite"
    return (f"a {PLAUSIBILITY_STEPS}-step Euler solve of the model put {share:.0%} of {n} samples far outside "
            f"the range of {where} ([{float(lo.min()):.3g}, {float(hi.max()):.3g}]; largest |x|: {biggest}): the model "
            f"is probably declared with the wrong --kind or --path (now {_declared(adapter)}; a velocity network "
            f"declared kind eps on path linear does this), or the weights are not the trained ones; the sweep "
            f"goes on")
