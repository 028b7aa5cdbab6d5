"""rf's settings: k counts rectifications (>= 1), the default reflow pairs are an accurate solve of the parent
ODE (dopri5 at tight tolerances, so Z1 is the parent flow's image of Z0, not a rough Euler guess), and a
distilled model refuses any time but t = 0 with a message that says how to sample it."""

from __future__ import annotations

import math

import pytest
import torch

from odebench.bench.core.solvers import Unsupported
from odebench.methods import get_method

THETA = 3.0  # the parent field rotates the plane at angular speed THETA: its time-1 map is a rotation by THETA


def rotation(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    return THETA * torch.stack([-x[:, 1], x[:, 0]], dim=1)


def test_k_counts_rectifications_from_one():
    assert get_method("rf", k=1).hparams["k"] == 1
    with pytest.raises(ValueError, match=r"k must be >= 1 \(number of rectifications\), got 0"):
        get_method("rf", k=0)


@pytest.mark.parametrize("settings", [{"k": 2}, {"k": 1, "distill": True}])
def test_default_pairs_solve_the_parent_ode_accurately(settings):
    """Z1 = ODE(Z0) with the default pair settings lands within 1e-3 of the exact rotation of Z0 (a loose
    tolerance would leave errors of tenths here; the default solve is ~4e-5 off)."""
    method = get_method("rf", **settings)
    z0 = torch.randn(64, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    c, s = math.cos(THETA), math.sin(THETA)
    exact = torch.stack([c * z0[:, 0] - s * z0[:, 1], s * z0[:, 0] + c * z0[:, 1]], dim=1)
    z1 = method.make_pairs({"v": rotation}, z0, torch.Generator().manual_seed(1))
    assert z1.shape == z0.shape
    assert (z1 - exact).abs().max().item() < 1e-3


def test_a_distilled_model_refuses_other_times_and_names_the_way_to_sample_it():
    field = get_method("rf", distill=True).dynamics({"v": rotation}).velocity
    x = torch.ones(4, 2)
    assert torch.equal(field(x, torch.zeros(4)), rotation(x, torch.zeros(4)))  # t = 0: the one-step map
    with pytest.raises(Unsupported, match=r"one-step map .* sample it with solver 'euler' at nfe = 1"):
        field(x, torch.full((4,), 0.5))


def test_pair_defaults_are_the_documented_ones():
    """The module docstring states the reflow pair defaults; records and cache keys carry them, so a change of
    default must be deliberate (it re-keys every reflowed model)."""
    h = get_method("rf", k=2).hparams
    assert (h["n_pairs"], h["pair_solver"], h["pair_rtol"], h["pair_atol"], h["pair_nfe"]) == (
        10000, "dopri5", 1e-5, 1e-5, 100)
