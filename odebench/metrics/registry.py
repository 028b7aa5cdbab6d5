"""Metric registry: each metric declares its name, direction, reference and variant, and what it needs.

A registered metric is called with an :class:`EvalContext` and returns a float or a dict of floats (the
first key being the headline value), or raises :class:`MetricUndefined` when the cell's samples cannot give
an estimate (the metric is then failed for that cell, with the reason). A dict may also carry
``"settings"``: a dict of the settings that produced the numbers (probe count, tolerance, sample count,
feature-extractor hash, ...); the harness stores it in the record's ``metric_info[name]["settings"]``
(see :func:`split_output`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from odebench.bench.core.registry import Registry
from odebench.bench.core.solvers import Dynamics


class MetricUndefined(ValueError):
    """The metric cannot be estimated from what the cell gives it (e.g. MMD from fewer than two samples).

    The harness records the metric as failed for that cell, with this message, and keeps the cell's other
    metrics; a metric never returns NaN for a case it cannot handle.
    """


def require_points(name: str, samples: int, held_out: int | None = None, minimum: int = 2) -> None:
    """Raise MetricUndefined unless ``samples`` (and ``held_out``, where the metric compares with held-out data)
    reach ``minimum``: a distance or a path statistic from one point is no estimate, whatever number it gives."""
    if samples >= minimum and (held_out is None or held_out >= minimum):
        return
    got = f"{samples} samples" + (f" and {held_out} held-out points" if held_out is not None else "")
    per = " per set" if held_out is not None else ""
    raise MetricUndefined(f"{name} needs at least {minimum} points{per}; got {got} (raise eval.n_samples or "
                          f"eval.metric_options.{name}.max_points)")


@dataclass
class EvalContext:
    """Everything a metric may use for one evaluated cell.

    Attributes:
        samples: [N, *shape] generated samples (t = 1 end).
        reference: [M, *shape] held-out data (the target's test split).
        train_reference: [M', *shape] the target's training split, for metrics whose protocol compares with it
            (FID against training-set statistics, as the papers report it); None where not given.
        x0: [N, *shape] the source draws the samples started from.
        trajectory: [T + 1, N, *shape] states on ``t_grid`` along the swept solver's path, or None.
        t_grid: [T + 1] times of ``trajectory``.
        dynamics: the model's dynamics (for metrics that query the field, e.g. NLL, straightness).
        log_prob_source: x -> [B] log-density of the source (for NLL), or None if not tractable.
        data_kind: "points" or "image"; data_meta: the dataset's meta.
        gen: generator for metrics that draw (projections, probes).
        options: per-metric options from the spec (e.g. {"sliced_w": {"n_projections": 256}}).
        cache: scratch space shared by the metrics of one cell (e.g. the reference trajectory that both
            ``straightness`` and ``curvature`` read), so that it is computed once.
        source_sample: ``(n, gen) -> [n, *shape]`` draws of the source law (t = 0), for references that
            compare the source law with the data law (the transport reference); None where not given.
        law_key: names the pair (source law, data law) -- source, target, data seed and options -- so that a
            reference computed from the laws is keyed and seeded by it; '' where not given.
        cache_dir: a folder inside the run's ``--out`` (``<out>/.cache``, checked by the harness) where a metric
            may keep what it computes once, such as FID's reference statistics; None outside a run.
        dynamics_key: names ``dynamics`` exactly -- the trained model, the method's settings (sampling-only
            hparams included) and the device -- so that work depending only on the dynamics and ``x0``, which
            every cell of a model shares, is done once per process (the path metrics' reference solve); ''
            where not given: nothing is then remembered across cells.
    """

    samples: Tensor
    reference: Tensor
    x0: Tensor | None = None
    trajectory: Tensor | None = None
    t_grid: Tensor | None = None
    dynamics: Dynamics | None = None
    log_prob_source: Callable[[Tensor], Tensor] | None = None
    data_kind: str = "points"
    data_meta: dict[str, Any] = field(default_factory=dict)
    gen: torch.Generator | None = None
    options: dict[str, dict[str, Any]] = field(default_factory=dict)
    cache: dict[str, Any] = field(default_factory=dict)
    train_reference: Tensor | None = None
    source_sample: Callable[[int, torch.Generator], Tensor] | None = None
    law_key: str = ""
    cache_dir: Path | None = None
    dynamics_key: str = ""

    def opts(self, metric: str) -> dict[str, Any]:
        return dict(self.options.get(metric, {}))


@dataclass(frozen=True)
class Metric:
    """A registered metric and its metadata (carried into every record)."""

    name: str
    fn: Callable[[EvalContext], float | dict[str, float]]
    higher_is_better: bool
    reference: str = ""
    variant: str = ""
    kinds: tuple[str, ...] = ("points", "image")
    description: str = ""
    #: whether the metric reads ctx.trajectory (the harness records the solver's path only then)
    needs_trajectory: bool = False
    #: whether the value depends only on the trained model and the metric's options, not on the cell's solver,
    #: budget or samples (e.g. NLL with its own solver): the harness then computes it once per model, with a
    #: generator derived from the model, and every cell of that model records the same value
    per_model: bool = False
    #: where the report puts it: "quality" (sample quality), "path" (straightness, transport) or "likelihood"
    family: str = "quality"
    #: preference as a dataset's headline metric (lower first); None: never the headline
    headline_rank: int | None = None
    #: one sentence for the report, under every table showing the metric: what its values mean near zero,
    #: below zero or at their floor (e.g. an unbiased estimate that can dip below 0)
    reading: str = ""

    def metadata(self) -> dict[str, Any]:
        meta = {"higher_is_better": self.higher_is_better, "reference": self.reference, "variant": self.variant}
        if self.per_model:
            meta["per_model"] = True
        return meta


METRICS: Registry[Metric] = Registry("metric", "odebench.metrics", builtin="odebench.metrics")

FAMILIES = ("quality", "path", "likelihood")


def register_metric(name: str, *, higher_is_better: bool, reference: str = "", variant: str = "",
                    kinds: tuple[str, ...] = ("points", "image"), needs_trajectory: bool = False,
                    per_model: bool = False, family: str = "quality", headline_rank: int | None = None,
                    reading: str = ""):
    """Decorator for ``fn(ctx: EvalContext) -> float | dict``; its docstring's first line describes it.

    ``per_model=True`` declares that ``fn`` reads only ``dynamics``, ``log_prob_source``, ``reference``,
    the data fields, ``gen`` and its options (never the cell's samples or trajectory); see Metric.per_model.
    ``family`` and ``headline_rank`` place it in the report, ``reading`` tells its reader what a value near
    or below zero means (see Metric).
    """
    if family not in FAMILIES:
        raise ValueError(f"metric {name!r}: family must be one of {FAMILIES}, got {family!r}")

    def deco(fn):
        doc = (fn.__doc__ or "").strip().splitlines()
        METRICS.add(name, Metric(name, fn, higher_is_better, reference, variant, kinds, doc[0] if doc else "",
                                 needs_trajectory, per_model, family, headline_rank, reading))
        return fn

    return deco


def headline_order() -> tuple[str, ...]:
    """Registered metrics that can head a leaderboard, most preferred first."""
    ranked = [m for m in map(METRICS.get, METRICS.names()) if m.headline_rank is not None]
    return tuple(m.name for m in sorted(ranked, key=lambda m: (m.headline_rank, m.name)))


def family_of(family: str) -> tuple[str, ...]:
    """Names of the registered metrics of one family (``FAMILIES``), sorted."""
    return tuple(n for n in METRICS.names() if METRICS.get(n).family == family)


SETTINGS_KEY = "settings"


def split_output(name: str, out: float | dict[str, Any]) -> tuple[dict[str, float], dict[str, Any]]:
    """Turn a metric's return value into (record values, settings).

    Values are keyed ``name`` for the headline (a float, or the dict key equal to ``name``) and
    ``name.key`` for the others; ``out["settings"]`` (if present) is returned separately, unchanged.
    """
    if not isinstance(out, dict):
        return {name: float(out)}, {}
    out = dict(out)
    settings = out.pop(SETTINGS_KEY, {})
    if not isinstance(settings, dict):
        raise TypeError(f"metric {name!r}: 'settings' must be a dict, got {type(settings).__name__}")
    values = {name if k == name else f"{name}.{k}": float(v) for k, v in out.items()}
    return values, settings
