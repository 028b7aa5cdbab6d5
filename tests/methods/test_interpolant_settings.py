"""The stochastic interpolant's settings: which values it accepts at the edges of their ranges (and what its
refusals say), the time interval with and without latent noise, and ``fields`` without latent noise."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from odebench.methods import get_method


class _Field(nn.Module):
    """A field that depends on both x and t: x (1 + t) + t."""

    def forward(self, x, t):
        return x * (1 + t[:, None]) + t[:, None]


def test_unknown_path_lists_the_known_ones():
    with pytest.raises(ValueError, match="unknown path 'nope'; choose one of linear, trig, vp_trig, encdec"):
        get_method("interpolant", path="nope")


def test_encdec_without_latent_noise_says_to_set_gamma():
    with pytest.raises(ValueError, match=r"'encdec' passes through 0 .* needs latent noise; set gamma > 0"):
        get_method("interpolant", path="encdec", gamma=0.0)


def test_eps_zero_is_the_probability_flow_and_is_accepted():
    """eps = 0 is a valid SDE diffusion coefficient (the drift is then b itself); only eps < 0 is refused."""
    method = get_method("interpolant", gamma=1.0, eps=0.0)
    model = nn.ModuleDict({"b_eta": _TwoHeads()})
    dyn = method.dynamics(model)
    x, t = torch.randn(5, 2, generator=torch.Generator().manual_seed(0)), torch.full((5,), 0.3)
    torch.testing.assert_close(dyn.drift(x, t), dyn.velocity(x, t))
    torch.testing.assert_close(dyn.diffusion(t), torch.zeros(5))
    with pytest.raises(ValueError, match="gamma and eps must be >= 0"):
        get_method("interpolant", gamma=1.0, eps=-1e-9)


class _TwoHeads(nn.Module):
    def forward(self, x, t):
        return torch.cat([x * t[:, None], x + 1], dim=1)


@pytest.mark.parametrize("t_eps", [0.0, 0.5, -0.1, 0.7])
def test_t_eps_outside_the_open_interval_is_refused(t_eps):
    with pytest.raises(ValueError, match=r"t_eps must be in \(0, 0.5\)"):
        get_method("interpolant", gamma=1.0, t_eps=t_eps)


@pytest.mark.parametrize("t_eps", [1e-12, 0.4999])
def test_t_eps_just_inside_the_open_interval_is_accepted(t_eps):
    assert get_method("interpolant", gamma=1.0, t_eps=t_eps).time_range() == (t_eps, 1.0 - t_eps)


def test_without_latent_noise_time_runs_over_the_whole_interval():
    """t_eps only keeps t away from the ends where gamma' is singular; with gamma = 0 nothing is singular and
    training and sampling use [0, 1] whatever t_eps says."""
    method = get_method("interpolant", gamma=0.0, t_eps=0.1)
    assert method.time_range() == (0.0, 1.0)
    dyn = method.dynamics(nn.ModuleDict({"b": _Field()}))
    assert (dyn.t0, dyn.t1) == (0.0, 1.0)
    assert get_method("interpolant", gamma=1.0, t_eps=0.1).time_range() == (0.1, 0.9)


def test_fields_without_latent_noise_are_the_velocity_network_and_no_eta():
    method = get_method("interpolant", gamma=0.0)
    model = nn.ModuleDict({"b": _Field()})
    x = torch.randn(4, 3, generator=torch.Generator().manual_seed(0))
    t = torch.tensor([0.0, 0.25, 0.5, 1.0])
    b, eta = method.fields(model, x, t)
    assert eta is None
    torch.testing.assert_close(b, x * (1 + t[:, None]) + t[:, None])
