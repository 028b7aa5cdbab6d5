"""Conventions of the affine paths and their schedules: a path sample carries its times, the OT path's default
sigma_min, uniform training times by default, and closed-form log-SNR inverses that keep full relative
precision at the noisy end (where t is tiny, below what a bisection on [0, 1] resolves)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from odebench.methods import get_method
from odebench.methods.base import uniform_t
from odebench.methods.probability_paths import PATHS, OTPath, path_schedule

F64 = torch.float64
#: log-SNR values far on the noisy side: t ~ e^lam is 1e-13 .. 1e-26, below 2^-64 for the last ones
FAR_NOISY = torch.tensor([-30.0, -45.0, -60.0], dtype=F64)


@pytest.mark.parametrize("name", ["linear", "ot", "trig", "vp", "encdec"])
def test_path_sample_carries_its_inputs_and_times(name):
    gen = torch.Generator().manual_seed(0)
    x0, x1 = torch.randn(4, 2, generator=gen), torch.randn(4, 2, generator=gen)
    t = torch.tensor([0.1, 0.4, 0.6, 0.9])
    ps = PATHS.get(name)().sample(x0, x1, t)
    assert ps.t is t and ps.x_0 is x0 and ps.x_1 is x1


def test_ot_path_default_sigma_min_is_lipmans_small_constant():
    """Lipman et al.'s OT path keeps a small sigma_min (1e-4 by default, as fm_ot): sigma_1 = sigma_min."""
    c = OTPath().coefficients(torch.tensor([0.0, 1.0], dtype=F64))
    torch.testing.assert_close(c.sigma_t, torch.tensor([1.0, 1e-4], dtype=F64))
    torch.testing.assert_close(c.d_sigma_t, torch.full((2,), -(1 - 1e-4), dtype=F64))


def test_uniform_t_draws_from_the_whole_unit_interval_by_default():
    a = uniform_t(64, torch.Generator().manual_seed(3), "cpu")
    b = uniform_t(64, torch.Generator().manual_seed(3), "cpu", eps=0.0)
    assert torch.equal(a, b) and torch.equal(a, torch.rand(64, generator=torch.Generator().manual_seed(3)))


def _assert_inverts_in_relative_precision(schedule):
    t = schedule.t_of_log_snr(FAR_NOISY, 0.0, 1.0)
    assert bool((t > 0).all()), t
    torch.testing.assert_close(schedule.log_snr(t), FAR_NOISY, rtol=1e-10, atol=0)


@pytest.mark.parametrize("name", ["linear", "ot", "trig"])
def test_path_schedule_inverts_far_noisy_log_snr_in_closed_form(name):
    _assert_inverts_in_relative_precision(path_schedule(PATHS.get(name)()))


@pytest.mark.parametrize("path", ["linear", "trig"])
def test_deterministic_interpolant_schedule_inverts_far_noisy_log_snr_in_closed_form(path):
    """Without latent noise the interpolant's schedule is its path's, with the path's closed-form inverse."""
    method = get_method("interpolant", path=path, gamma=0.0)
    dyn = method.dynamics(nn.ModuleDict({"b": nn.Identity()}))
    _assert_inverts_in_relative_precision(dyn.schedule)
