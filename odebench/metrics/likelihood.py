"""Negative log-likelihood of held-out data under a flow, by the instantaneous change of variables.

For dx/dt = v(x, t) carrying the source p_0 (t = 0) to the model p_1 (t = 1) (Chen et al. 2018, FFJORD):

    log p_1(x_1) = log p_0(x_0) - integral_0^1 div v(x_t, t) dt,

where x_0 is found by integrating from the data point x_1 at t = 1 back to t = 0. We solve the augmented
state [x, l] with dl/dt = div v(x, t), l(1) = 0, from t = 1 to t = 0 (through ``odebench.bench.core.solvers.solve``, any
registered ODE solver: dopri5 with tolerances, or a fixed-step solver with an NFE budget), so that
l(0) = -integral_0^1 div v dt and

    NLL(x_1) = -log p_0(x_0) - l(0)   (nats).

Every method is measured through its ODE ``Dynamics.velocity`` (diffusion models through their
probability-flow ODE) and its prior's ``log_prob``; nothing else is assumed (a model with no velocity, one
that offers a flow map only, has no NLL here: the metric is recorded 'not applicable' with the reason).
Where the dynamics stop short of the ends, the integral runs over [dyn.t0, dyn.nll_t1] (diffusion: 1 - 1e-5,
the end of Song et al.'s likelihood integral, closer to the data than sampling's t1), or [dyn.t0, dyn.t1]
when nll_t1 is not set.

Divergence:
  - exact: tr(dv/dx) from the batched Jacobian, ``torch.func.vmap(torch.func.jacrev(v))``; D reverse passes
    per evaluation, fine for D up to ~128.
  - Hutchinson: tr(J) ~ (1/K) sum_k e_k^T J e_k with K probes e_k (Rademacher +-1 or standard Gaussian,
    E[e e^T] = I), drawn once per data point from a ``torch.Generator`` and held fixed along the trajectory
    (as FFJORD does, so the adaptive solver sees a smooth field). The estimate of the NLL is unbiased: the
    state path x_t does not depend on the probes.

Bits per dimension. For points: bpd = NLL / (D ln 2) (continuous). For images whose pixels take L grey
levels k = 0 .. L - 1 (``meta["levels"]``; 256 for 8-bit, 17 for scikit-learn digits), we dequantize
uniformly: recover k from the stored value (the datasets store 2 k / (L - 1) - 1), draw u ~ U[0, 1)^D and set
x = 2 (k + u) / L - 1 in [-1, 1). With y = k + u (unit bins), Jensen gives the bound on the discrete model

    -log P(k) = -log integral_[0,1)^D p_y(k + u) du  <=  E_u[-log p_y(k + u)],

and p_y(y) = p_x(x) |dx/dy| = p_x(x) (2 / L)^D, hence

    bpd = E_u[-log p_y] / (D ln 2) = NLL_x / (D ln 2) + log2(L / 2),

i.e. + 7 for L = 256 (the usual offset for data scaled to [-1, 1]) and + log2(8.5) = 3.087 for L = 17.

The bound measures a density fitted to dequantized data (``train.dequantize``, the same formula at every
training batch; odebench.bench.data.dequantization). The model uniform over [-1, 1)^D scores log2(L), the cost of
storing each pixel uniformly: a mean above that is recorded as invalid (``settings["bpd_valid"]`` false, with
``bpd_invalid_reason``), and so is one over a set where some NLL came out non-finite (the mean is then over the
finite points). Beside the mean the metric gives ``bpd_median`` and ``bpd_diverged_share``: the share of points
that are non-finite or above ``DIVERGED_BOUND_FACTOR`` log2(L) bits/dim (non-finite only on continuous data).

Where the field is trusted on [t0, t1] only but the likelihood is that of the flow over a longer span
(``Dynamics.nll_span``: the latent-noise interpolant, whose field is trained on [t_eps, 1 - t_eps]), the pieces
outside [t0, t1] are one Euler step each (:func:`end_piece`) and the source density is read at the span's start.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch
from torch import Tensor

from odebench.bench.core.solvers import SOLVERS, Field, Unsupported, solve
from odebench.metrics.registry import EvalContext, MetricUndefined, register_metric

__all__ = ["BpdSummary", "NLLConfig", "NLLResult", "bits_per_dim", "dequantize", "divergence_loop", "draw_probes",
           "end_piece", "nll", "quantization_offset_bits", "summarise_bpd", "uniform_bound_bits",
           "velocity_and_divergence_exact", "velocity_and_divergence_hutchinson"]

#: exact divergence up to this many dimensions when the option divergence = "auto"
AUTO_EXACT_MAX_DIM = 128
#: below this many dimensions "auto" takes the exact trace by one backward pass per dimension ("loop"):
#: measured side by side (tests/benchmarks), the loop is cheaper than the batched Jacobian at D = 2 and
#: level with it at D = 16, where vmap's fixed cost stops dominating
AUTO_LOOP_MAX_DIM = 16


# ------------------------------------------------------------------------------------------------ divergence
def velocity_and_divergence_exact(field: Field, x: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
    """v(x, t) and tr(dv/dx) per sample from the batched Jacobian.

    Args:
        field: f(x, t) -> [B, *shape]; must treat samples independently (no batch statistics).
        x: [B, *shape]; t: [B].
    Returns:
        v: [B, *shape]; div: [B].
    """
    d = x[0].numel()

    def one(xi: Tensor, ti: Tensor) -> tuple[Tensor, Tensor]:
        out = field(xi.unsqueeze(0), ti.unsqueeze(0)).squeeze(0)
        return out, out  # the second copy is returned as aux: the value comes for free with the Jacobian

    jac, v = torch.func.vmap(torch.func.jacrev(one, has_aux=True))(x, t)  # jac: [B, *shape, *shape]
    div = jac.reshape(x.shape[0], d, d).diagonal(dim1=1, dim2=2).sum(1)
    return v, div


def divergence_loop(field: Field, x: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
    """v and tr(dv/dx) by one autograd pass per dimension (the plain baseline; slower than the batched one).

    Shapes as in :func:`velocity_and_divergence_exact`.
    """
    with torch.enable_grad():
        xg = x.detach().requires_grad_(True)
        v = field(xg, t)
        flat = v.flatten(1)
        div = torch.zeros(x.shape[0], dtype=v.dtype, device=v.device)
        for i in range(flat.shape[1]):
            g = torch.autograd.grad(flat[:, i].sum(), xg, retain_graph=True)[0]
            div = div + g.flatten(1)[:, i]
    return v.detach(), div.detach()


def draw_probes(n_probes: int, like: Tensor, kind: str = "rademacher",
                gen: torch.Generator | None = None) -> Tensor:
    """[K, B, *shape] Hutchinson probes with E[e e^T] = I: Rademacher (+-1) or standard Gaussian."""
    shape = (n_probes, *like.shape)
    if kind == "rademacher":
        bits = torch.randint(0, 2, shape, generator=gen, device=like.device)
        return (2 * bits - 1).to(like.dtype)
    if kind == "gaussian":
        return torch.randn(shape, generator=gen, device=like.device, dtype=like.dtype)
    raise ValueError(f"unknown probe kind {kind!r}; use 'rademacher' or 'gaussian'")


def velocity_and_divergence_hutchinson(field: Field, x: Tensor, t: Tensor,
                                       probes: Tensor) -> tuple[Tensor, Tensor]:
    """v and the Hutchinson estimate (1/K) sum_k e_k^T (dv/dx) e_k, one vector-Jacobian product per probe.

    Args:
        x: [B, *shape]; t: [B]; probes: [K, B, *shape].
    Returns:
        v: [B, *shape]; div: [B] (an unbiased estimate of the trace).
    """
    v, vjp_fn = torch.func.vjp(lambda y: field(y, t), x)
    (e_jac,) = torch.func.vmap(vjp_fn)(probes)  # [K, B, *shape]: e_k^T J
    return v, (e_jac * probes).flatten(2).sum(2).mean(0)


# ------------------------------------------------------------------------------------------------------ NLL
@dataclass(frozen=True)
class NLLConfig:
    """How the NLL is computed (all of it goes into records).

    Attributes:
        divergence: "exact" (batched Jacobian), "loop" (the same trace, one backward pass per dimension;
            cheaper for very small D) or "hutchinson".
        n_probes: K, Hutchinson probes per data point; probe: "rademacher" or "gaussian".
        solver: registered ODE solver; rtol/atol for adaptive ones, nfe (budget) for fixed-step ones.
    """

    divergence: str = "exact"
    n_probes: int = 1
    probe: str = "rademacher"
    solver: str = "dopri5"
    rtol: float | None = 1e-5
    atol: float | None = 1e-5
    nfe: int | None = None

    def __post_init__(self):
        if self.divergence not in ("exact", "loop", "hutchinson"):
            raise ValueError(f"divergence must be 'exact', 'loop' or 'hutchinson', got {self.divergence!r}")
        if self.n_probes < 1:
            raise ValueError(f"n_probes must be >= 1, got {self.n_probes}")
        solver = SOLVERS.get(self.solver)
        if solver.kind != "ode":
            raise ValueError(f"NLL needs an ODE solver; {self.solver!r} is an SDE solver")
        if solver.adaptive and (self.rtol is None or self.atol is None):
            raise ValueError(f"adaptive solver {self.solver!r} needs rtol and atol")
        if not solver.adaptive and self.nfe is None:
            raise ValueError(f"fixed-step solver {self.solver!r} needs an NFE budget (nfe)")


@dataclass(frozen=True)
class NLLResult:
    """Per-point results of :func:`nll`.

    Attributes:
        nll: [B] -log p_1(x_1) in nats; x0: [B, *shape] the source-side end of each path;
        log_prob_source: [B] log p_0(x0); int_div: [B] integral of div v over [t0, t1]; nfe: field calls.
    """

    nll: Tensor
    x0: Tensor
    log_prob_source: Tensor
    int_div: Tensor
    nfe: int


def nll(field: Field, x1: Tensor, log_prob_source: Callable[[Tensor], Tensor], cfg: NLLConfig = NLLConfig(),
        t0: float = 0.0, t1: float = 1.0, gen: torch.Generator | None = None,
        span: tuple[float, float] | None = None) -> NLLResult:
    """-log p_1(x1) of the flow dx/dt = field(x, t) from the source at t0 to the data at t1.

    Args:
        field: velocity f(x, t) -> [B, *shape], x: [B, *shape], t: [B].
        x1: [B, *shape] data points (already dequantized if discrete).
        log_prob_source: x -> [B] log p_0(x).
        cfg: divergence estimator and solver settings.
        gen: draws the Hutchinson probes (unused for the exact trace).
        span: (s0, s1) with s0 <= t0 < t1 <= s1: the interval the likelihood is defined over when the field is
            trusted on [t0, t1] only (the latent-noise interpolant: (0, 1), its field trained on
            [t_eps, 1 - t_eps]). The end pieces [t1, s1] and [s0, t0] are then one Euler step each, with the
            field and its divergence at the nearest trusted time (:func:`end_piece`): x1 is carried from s1 to
            t1, the solver runs [t0, t1], and x(t0) is carried to s0, where the source's density is read. None:
            the integral is [t0, t1] and the source density is read at t0.
    """
    b, shape, d = x1.shape[0], x1.shape[1:], x1[0].numel()
    if cfg.divergence == "exact":
        vdiv = lambda x, t: velocity_and_divergence_exact(field, x, t)
    elif cfg.divergence == "loop":
        vdiv = lambda x, t: divergence_loop(field, x, t)
    else:
        probes = draw_probes(cfg.n_probes, x1, cfg.probe, gen)
        vdiv = lambda x, t: velocity_and_divergence_hutchinson(field, x, t, probes)

    def augmented(z: Tensor, t: Tensor) -> Tensor:
        v, div = vdiv(z[:, :d].reshape(b, *shape), t)
        return torch.cat([v.reshape(b, d), div.unsqueeze(1)], 1)

    s0, s1 = (t0, t1) if span is None else span
    if not s0 <= t0 < t1 <= s1:
        raise ValueError(f"nll: the likelihood's span ({s0}, {s1}) must hold the solver's interval [{t0}, {t1}]")
    with torch.no_grad():  # torch.func transforms still differentiate inside; nothing else keeps a graph
        x_t1, data_end = end_piece(vdiv, x1, t1, s1 - t1)  # back from s1 to t1
        z1 = torch.cat([x_t1.reshape(b, d), x1.new_zeros(b, 1)], 1)
        res = solve(augmented, z1, cfg.solver, nfe=cfg.nfe, rtol=cfg.rtol, atol=cfg.atol, t0=t1, t1=t0)
        x_t0 = res.x[:, :d].reshape(b, *shape)
        x0, source_end = end_piece(vdiv, x_t0, t0, t0 - s0)  # back from t0 to s0
        # l(t0) = integral_{t1}^{t0} div dt = -integral_{t0}^{t1} div dt, plus the two end pieces
        int_div = -res.x[:, d] + data_end + source_end
        lp0 = log_prob_source(x0)
    nfe = res.nfe + (s1 > t1) + (t0 > s0)
    return NLLResult(nll=-lp0 + int_div, x0=x0, log_prob_source=lp0, int_div=int_div, nfe=nfe)


def end_piece(vdiv: Callable[[Tensor, Tensor], tuple[Tensor, Tensor]], x: Tensor, t: float,
              length: float) -> tuple[Tensor, Tensor]:
    """One backward Euler piece of the augmented flow over [t, t + length] with the field read at t.

    The point x sits at time t + length; it returns (x - length v(x, t), length div v(x, t)): the point at t and
    the piece's integral of div v (both exact to first order in ``length``; the error is O(length^2) times the
    rate of change of the field, measured in tests/metrics/test_interpolant_nll_ends.py). ``length`` = 0 returns
    (x, 0) without calling the field. Shapes: x [B, *shape] -> ([B, *shape], [B]).
    """
    if length <= 0:
        return x, x.new_zeros(x.shape[0])
    v, div = vdiv(x, torch.full((x.shape[0],), t, dtype=x.dtype, device=x.device))
    return x - length * v, length * div


# ----------------------------------------------------------------------------------------- discrete images
def dequantize(x: Tensor, levels: int, gen: torch.Generator | None = None) -> Tensor:
    """Uniform dequantization of images stored as 2 k / (L - 1) - 1, k in {0 .. L - 1}: x = 2 (k + u) / L - 1.

    Args:
        x: [B, *shape] in [-1, 1] on the L-level grid; levels: L.
    Returns:
        [B, *shape] in [-1, 1), u ~ U[0, 1)^D drawn from ``gen``.
    """
    k = torch.round((x + 1) / 2 * (levels - 1))
    if (k - (x + 1) / 2 * (levels - 1)).abs().max() > 1e-3:
        raise ValueError(f"images are not on a {levels}-level grid 2 k / (L - 1) - 1; check meta['levels']")
    u = torch.rand(x.shape, generator=gen, device=x.device, dtype=x.dtype)
    return 2 * (k.clamp(0, levels - 1) + u) / levels - 1


def quantization_offset_bits(levels: int) -> float:
    """log2(L / 2): bits per dimension added by the change of variables x = 2 (k + u) / L - 1."""
    return math.log2(levels / 2)


def bits_per_dim(nll_nats: Tensor, dim: int, levels: int | None = None) -> Tensor:
    """NLL_x / (D ln 2), plus log2(L / 2) for L-level data dequantized by :func:`dequantize`."""
    bpd = nll_nats / (dim * math.log(2))
    return bpd if levels is None else bpd + quantization_offset_bits(levels)


# ------------------------------------------------------------------------------------------ validity of bpd
#: a point whose bpd exceeds this many times the uniform bound log2(L) counts as diverged (on the digits, L = 17:
#: 8.2 bits/dim, twice the cost of storing each pixel uniformly); on continuous data only a non-finite NLL does
DIVERGED_BOUND_FACTOR = 2.0
#: rounding slack of the bound (bits/dim): the uniform model itself, at the bound, is a valid measurement
BOUND_SLACK_BITS = 1e-9


def uniform_bound_bits(levels: int) -> float:
    """log2(L): bits per dimension of the model that is uniform over the L grey levels, the bound that any fitted
    model of L-level data should stay under."""
    return math.log2(levels)


@dataclass(frozen=True)
class BpdSummary:
    """The per-point bits/dim of one model summarised: mean and median, the share of diverged points, and whether
    the mean is a measurement (``valid``) or not, with the reason.

    Attributes:
        mean: mean bpd over the finite points; median: over all points (a non-finite one counts as +inf).
        diverged_share: share of points with a non-finite NLL or a bpd above ``diverged_above``.
        n_nonfinite: points whose NLL came out NaN or infinite.
        bound: log2(L) for L-level data, None for continuous data; diverged_above: the per-point threshold.
        valid: False where the mean exceeds the bound or some point is non-finite; reason: why (None if valid).
    """

    mean: float
    median: float
    diverged_share: float
    n_nonfinite: int
    bound: float | None
    diverged_above: float | None
    valid: bool
    reason: str | None


def summarise_bpd(bpd: Tensor, levels: int | None) -> BpdSummary:
    """:class:`BpdSummary` of per-point bits/dim ``bpd`` [N] (``levels``: L for dequantized images, else None)."""
    finite = torch.isfinite(bpd)
    n_bad = int((~finite).sum())
    if not finite.any():
        raise MetricUndefined(f"nll: every one of the {len(bpd)} log-likelihoods came out non-finite (the solve "
                              f"diverged); try tighter tolerances")
    as_inf = torch.where(finite, bpd, torch.full_like(bpd, math.inf))
    ranked, n = as_inf.sort().values, len(as_inf)
    median = float(ranked[n // 2] if n % 2 else (ranked[n // 2 - 1] + ranked[n // 2]) / 2)
    if not math.isfinite(median):
        raise MetricUndefined(f"nll: {n_bad} of {len(bpd)} log-likelihoods came out non-finite, half or more "
                              f"(the solve diverged); try tighter tolerances")
    mean = float(bpd[finite].mean())
    bound = uniform_bound_bits(levels) if levels is not None else None
    above = DIVERGED_BOUND_FACTOR * bound if bound is not None else None
    diverged = ~finite if above is None else ~finite | (as_inf > above)
    reasons = []
    if n_bad:
        reasons.append(f"{n_bad} of {len(bpd)} points have a non-finite NLL (the mean is over the others)")
    if bound is not None and mean > bound + BOUND_SLACK_BITS:
        reasons.append(f"the mean, {mean:.3g} bits/dim, exceeds log2({levels}) = {bound:.3f}, the cost of a model "
                       f"uniform over the {levels} grey levels: no measurement of a fitted density (a model "
                       f"trained on the undequantized lattice diverges off it, see train.dequantize; a few "
                       f"diverged points pull the mean, see nll.bpd_median and nll.bpd_diverged_share)")
    return BpdSummary(mean=mean, median=median, diverged_share=float(diverged.double().mean()), n_nonfinite=n_bad,
                      bound=bound, diverged_above=above, valid=not reasons,
                      reason="; ".join(reasons) if reasons else None)


# ------------------------------------------------------------------------------------------ registry entry
NLL_OPTIONS = {"max_points", "batch_size", "divergence", "n_probes", "probe", "solver", "rtol", "atol", "nfe",
               "levels"}


def _nll_config(opts: dict, dim: int) -> NLLConfig:
    divergence = opts.get("divergence", "auto")
    if divergence == "auto":
        if dim < AUTO_LOOP_MAX_DIM:
            divergence = "loop"
        else:
            divergence = "exact" if dim <= AUTO_EXACT_MAX_DIM else "hutchinson"
    solver = opts.get("solver", "dopri5")
    adaptive = SOLVERS.get(solver).adaptive
    tol = 1e-5 if adaptive else None
    return NLLConfig(divergence=divergence, n_probes=int(opts.get("n_probes", 1)),
                     probe=opts.get("probe", "rademacher"), solver=solver, rtol=opts.get("rtol", tol),
                     atol=opts.get("atol", tol), nfe=opts.get("nfe"))


@register_metric("nll", higher_is_better=False, reference="arXiv:1810.01367 (FFJORD)",
                 variant="instantaneous change of variables, data -> source; exact trace up to D = 128",
                 per_model=True, family="likelihood",
                 reading=("NLL of continuous data is negative wherever the model's density exceeds 1 (common "
                          'on the 2-D sets): a negative value is no error, only differences between methods '
                          'matter.'))
def _nll_metric(ctx: EvalContext) -> dict:
    """NLL of held-out data (nats per point; .bpd bits/dim, with dequantization for images).

    Beside the mean: .bpd_median and .bpd_diverged_share; settings.bpd_valid and bpd_invalid_reason.
    """
    opts = ctx.opts("nll")
    unknown = set(opts) - NLL_OPTIONS
    if unknown:
        raise ValueError(f"nll: unknown option(s) {sorted(unknown)}; allowed: {sorted(NLL_OPTIONS)}")
    if ctx.dynamics is None or ctx.log_prob_source is None:
        raise ValueError("nll needs the model's dynamics and a source with a log-density (a Gaussian prior); "
                         "it is undefined when the spec names a source dataset")
    if ctx.dynamics.velocity is None:  # recorded 'not applicable' (the harness's reading of Unsupported)
        raise Unsupported("nll integrates the model's ODE with its divergence (the instantaneous change of "
                          "variables), and this model defines no velocity (it offers a flow map only)")
    x = ctx.reference[: int(opts.get("max_points", 1000))]
    dim = x[0].numel()
    cfg = _nll_config(opts, dim)
    levels = None
    if ctx.data_kind == "image":
        levels = opts.get("levels", ctx.data_meta.get("levels"))
        if levels is None:
            raise ValueError("nll on images needs the number of grey levels: set meta['levels'] on the "
                             "dataset or eval.metric_options.nll.levels (256 for 8-bit images)")
        x = dequantize(x, int(levels), ctx.gen)
    dyn = ctx.dynamics
    t1 = dyn.t1 if dyn.nll_t1 is None else dyn.nll_t1
    nlls, nfe = [], 0
    for chunk in x.split(int(opts.get("batch_size", 250))):
        res = nll(dyn.velocity, chunk, ctx.log_prob_source, cfg, dyn.t0, t1, ctx.gen, dyn.nll_span)
        nlls.append(res.nll.double().cpu())
        nfe = max(nfe, res.nfe)
    per_point = torch.cat(nlls)
    bpd = bits_per_dim(per_point, dim, None if levels is None else int(levels))
    summary = summarise_bpd(bpd, None if levels is None else int(levels))
    finite = per_point[torch.isfinite(per_point)]
    settings = {**asdict(cfg), "n_points": len(per_point), "nfe": nfe, "t0": dyn.t0, "t1": t1,
                "span": list(dyn.nll_span) if dyn.nll_span is not None else None,
                "levels": levels, "dequantization": "uniform, x = 2 (k + u) / L - 1" if levels else None,
                "bpd_offset": quantization_offset_bits(int(levels)) if levels else 0.0,
                "bpd_valid": summary.valid, "bpd_invalid_reason": summary.reason, "bpd_bound": summary.bound,
                "diverged_above_bpd": summary.diverged_above, "n_nonfinite": summary.n_nonfinite}
    return {"nll": float(finite.mean()), "nats_per_dim": float(finite.mean() / dim), "bpd": summary.mean,
            "stderr": float(finite.std() / math.sqrt(len(finite))) if len(finite) > 1 else 0.0,
            "bpd_median": summary.median, "bpd_diverged_share": summary.diverged_share, "settings": settings}
