"""The closed-form log-SNR inverses of the diffusion schedules and of the affine paths: they invert log_snr,
answer in float64 whatever the dtype of lam, land exactly on the interval's ends beyond its log-SNR range,
and a schedule without a closed form falls back to the bisection with the same answers."""

from __future__ import annotations

import pytest
import torch

from odebench.methods import get_method
from odebench.methods.diffusion import DiffusionSchedule
from odebench.methods.edm import EDM
from odebench.methods.probability_paths import PATHS, CoefficientSchedule, LinearPath, path_schedule

F64 = torch.float64


def _diffusion(name, **hp):
    method = get_method(name, **hp)
    return DiffusionSchedule(method), (0.0, 1 - method.sampling_eps)


def _path(name):
    path = PATHS.get(name)()
    return path_schedule(path), (0.0, path.t_max)


SCHEDULES = {
    "edm": lambda: _diffusion("edm"),
    "ddpm": lambda: _diffusion("ddpm"),
    "score_ve": lambda: _diffusion("score_ve", sigma_max=50.0),
    **{f"path-{p}": (lambda p=p: _path(p)) for p in ("linear", "ot", "trig", "vp")},
}


def _inner_lams(schedule, t0, t1, n=17):
    ends = schedule.log_snr(torch.tensor([t0, t1], dtype=F64)).clamp(-6.0, 6.0)
    return torch.linspace(float(ends[0]) + 1e-2, float(ends[1]) - 1e-2, n, dtype=F64)


@pytest.mark.parametrize("name", SCHEDULES)
def test_inverse_inverts_the_log_snr_in_float64(name):
    schedule, (t0, t1) = SCHEDULES[name]()
    lam = _inner_lams(schedule, t0, t1)
    t = schedule.t_of_log_snr(lam, t0, t1)
    assert t.dtype == F64
    torch.testing.assert_close(schedule.log_snr(t), lam, rtol=0, atol=1e-8)
    # a float32 lam is solved in float64 too: the same times as for its exact float64 value
    lam32 = lam.float()
    t32 = schedule.t_of_log_snr(lam32, t0, t1)
    assert t32.dtype == F64
    torch.testing.assert_close(t32, schedule.t_of_log_snr(lam32.double(), t0, t1), rtol=0, atol=1e-12)


# the linear, ot and trig paths reach log-SNR -inf and +inf at their own ends: nothing lies beyond them
FINITE_ENDS = ["edm", "ddpm", "score_ve", "path-vp"]
INTERVALS = [(name, "own") for name in FINITE_ENDS] + [(name, "inner") for name in SCHEDULES]


@pytest.mark.parametrize("name,interval", INTERVALS)
def test_log_snr_beyond_the_interval_lands_exactly_on_its_ends(name, interval):
    schedule, own = SCHEDULES[name]()
    t0, t1 = own if interval == "own" else (0.2, 0.9)
    ends = schedule.log_snr(torch.tensor([t0, t1], dtype=F64))
    assert bool(ends.isfinite().all())
    t = schedule.t_of_log_snr(torch.stack([ends[0] - 10, ends[1] + 10]), t0, t1)
    assert t.tolist() == [t0, t1]


class EDMWithoutClosedForm(EDM):
    """edm's schedule with its closed-form inverse withheld."""

    def s_of_log_snr(self, lam):
        return None


def test_diffusion_schedule_without_a_closed_form_bisects_to_the_same_times():
    closed, bisected = DiffusionSchedule(EDM()), DiffusionSchedule(EDMWithoutClosedForm())
    lam = torch.tensor([-50.0, -4.0, -1.0, 0.0, 2.0, 5.0, 50.0], dtype=F64)
    for t0, t1 in ((0.0, 1.0), (0.2, 0.9)):
        torch.testing.assert_close(bisected.t_of_log_snr(lam, t0, t1), closed.t_of_log_snr(lam, t0, t1),
                                   rtol=0, atol=1e-12)


@pytest.mark.parametrize("inverse", [None, lambda lam: None], ids=["no-inverse", "inverse-gives-none"])
def test_path_schedule_without_a_closed_form_bisects_to_the_same_times(inverse):
    path = LinearPath()
    closed, bisected = path_schedule(path), CoefficientSchedule(path.coefficients, inverse)
    lam = torch.tensor([-50.0, -4.0, -1.0, 0.0, 2.0, 5.0, 50.0], dtype=F64)
    for t0, t1 in ((0.0, 1.0), (0.2, 0.9)):
        torch.testing.assert_close(bisected.t_of_log_snr(lam, t0, t1), closed.t_of_log_snr(lam, t0, t1),
                                   rtol=0, atol=1e-12)


@pytest.mark.parametrize("name", ["ddpm", "path-vp", "edm", "score_ve"])
def test_infinite_log_snr_lands_on_the_ends(name):
    """lam = -inf (pure noise) is the noisy end t0 and lam = +inf (clean data) the data end t1, not NaN."""
    schedule, (t0, t1) = SCHEDULES[name]()
    t = schedule.t_of_log_snr(torch.tensor([float("-inf"), float("inf")], dtype=F64), t0, t1)
    assert t.tolist() == [t0, t1]
