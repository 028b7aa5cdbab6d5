"""The nll metric's summary beside the mean: the median, the share of diverged points (non-finite, or above twice
the uniform bound log2(L) on L-level images) and the validity flag of the bits/dim (``settings["bpd_valid"]``,
false with ``settings["bpd_invalid_reason"]`` where the mean exceeds log2(L) or a point is non-finite)."""

from __future__ import annotations

import math

import pytest
import torch

from odebench.bench.core.fields import Dynamics
from odebench.metrics import METRICS
from odebench.metrics.likelihood import DIVERGED_BOUND_FACTOR, summarise_bpd
from odebench.metrics.registry import EvalContext, MetricUndefined, split_output

LEVELS, SHAPE = 17, (1, 2, 2)
D = math.prod(SHAPE)


def _still(x, t):
    """dx/dt = 0: the model's density is its source's."""
    return 0 * x  # (a product, so that the divergence has a graph to differentiate)


def _uniform_box(x):
    """log-density of the uniform law on [-1, 1)^D."""
    inside = ((x >= -1) & (x < 1)).flatten(1).all(1)
    return torch.where(inside, torch.full((x.shape[0],), -D * math.log(2.0), dtype=x.dtype),
                       torch.full((x.shape[0],), -math.inf, dtype=x.dtype))


def _lattice_images(n: int = 200) -> torch.Tensor:
    k = torch.randint(0, LEVELS, (n, *SHAPE), generator=torch.Generator().manual_seed(0))
    return (2 * k / (LEVELS - 1) - 1).double()


def _measure(log_prob, reference=None, kind="image", meta=None):
    reference = _lattice_images() if reference is None else reference
    ctx = EvalContext(samples=reference, reference=reference, dynamics=Dynamics(velocity=_still),
                      log_prob_source=log_prob, data_kind=kind,
                      data_meta={"levels": LEVELS} if meta is None else meta, gen=torch.Generator().manual_seed(1),
                      options={"nll": {"solver": "euler", "nfe": 2, "divergence": "loop"}})
    return split_output("nll", METRICS.get("nll").fn(ctx))


def test_a_model_uniform_over_the_grey_levels_scores_log2_levels_and_is_valid():
    """The uniform law on [-1, 1)^D puts mass 1/L on every bin of the dequantized data: log2(L) bits/dim for
    every point, mean and median alike, no point diverged, and a valid measurement (at the bound, not above)."""
    values, settings = _measure(_uniform_box)
    assert values["nll.bpd"] == pytest.approx(math.log2(LEVELS), abs=1e-12)
    assert values["nll.bpd_median"] == pytest.approx(math.log2(LEVELS), abs=1e-12)
    assert values["nll.bpd_diverged_share"] == 0.0
    assert settings["bpd_valid"] is True and settings["bpd_invalid_reason"] is None
    assert settings["bpd_bound"] == pytest.approx(math.log2(LEVELS))
    assert settings["diverged_above_bpd"] == pytest.approx(DIVERGED_BOUND_FACTOR * math.log2(LEVELS))


def test_bits_above_the_uniform_bound_are_marked_invalid_with_the_reason():
    """A narrow Gaussian (scale 0.1) spends far more than log2(17) bits/dim on the edge pixels: the mean is still
    reported, but marked invalid; the points above twice the bound count as diverged."""
    scale = 0.1

    def narrow(x):
        return (-0.5 * (x / scale).pow(2) - math.log(scale * math.sqrt(2 * math.pi))).flatten(1).sum(1)

    values, settings = _measure(narrow)
    assert values["nll.bpd"] > math.log2(LEVELS)
    assert settings["bpd_valid"] is False
    assert f"log2({LEVELS})" in settings["bpd_invalid_reason"] and "train.dequantize" in settings["bpd_invalid_reason"]
    assert 0 < values["nll.bpd_diverged_share"] < 1
    assert values["nll.bpd_median"] < values["nll.bpd"]  # the diverged tail pulls the mean, not the median


def test_non_finite_points_are_diverged_and_leave_the_mean_to_the_others():
    """A model with zero density at some test points: those are counted, the mean is over the rest (finite, so
    the record keeps it) and marked invalid with how many were left out."""
    reference = _lattice_images(20)

    def some_outside(x):  # the metric solves the 20 points as one batch, in order: the first 3 get no mass
        lp = _uniform_box(x)
        lp[:3] = -math.inf
        return lp

    values, settings = _measure(some_outside, reference)
    assert values["nll.bpd_diverged_share"] == pytest.approx(3 / 20)
    assert settings["n_nonfinite"] == 3 and settings["bpd_valid"] is False
    assert "3 of 20 points have a non-finite NLL" in settings["bpd_invalid_reason"]
    assert values["nll.bpd"] == pytest.approx(math.log2(LEVELS))
    assert all(math.isfinite(v) for v in values.values())


def test_most_points_non_finite_leaves_no_estimate():
    with pytest.raises(MetricUndefined, match="half or more"):
        summarise_bpd(torch.tensor([1.0, math.inf, math.nan]), LEVELS)
    with pytest.raises(MetricUndefined, match="every one"):
        summarise_bpd(torch.tensor([math.nan, math.nan]), LEVELS)


def test_continuous_points_have_no_bound_and_diverge_only_when_non_finite():
    summary = summarise_bpd(torch.tensor([-3.0, 50.0, 1e6, math.inf]), None)
    assert summary.bound is None and summary.diverged_above is None
    assert summary.diverged_share == 0.25 and summary.median == 50.0 + (1e6 - 50.0) / 2
    assert summary.valid is False and "1 of 4" in summary.reason
    assert summarise_bpd(torch.tensor([-3.0, 50.0]), None).valid is True
