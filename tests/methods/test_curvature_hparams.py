"""curvature_min's settings: the KL weight beta is >= 0, the encoder's width and depth are fractions of the
velocity net's in (0, 1] (each refusal names the setting), the encoder really is ``encoder_depth`` times as
deep, and the KL term is the per-dimension average of the closed-form Gaussian KL, for any batch size."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from odebench.bench.data import load_dataset
from odebench.bench.harness.training.train import Problem, build_model
from odebench.methods import get_method
from odebench.methods.curvature import CurvatureMinimizing


def test_beta_zero_is_allowed_and_a_negative_beta_is_refused_by_name():
    assert get_method("curvature_min", beta=0.0).hparams["beta"] == 0.0  # no KL: a valid, if odd, choice
    with pytest.raises(ValueError, match=r"beta \(the KL weight\) must be >= 0"):
        get_method("curvature_min", beta=-1e-12)


@pytest.mark.parametrize("name", ["encoder_width", "encoder_depth"])
def test_encoder_fractions_are_in_the_half_open_unit_interval(name):
    for ok in (1.0, 1e-6):
        assert get_method("curvature_min", **{name: ok}).hparams[name] == ok
    for bad in (0.0, -0.5, math.nextafter(1.0, 2.0), 1.5, 2.0):
        # \b: the message names this setting as a word of its own, not inside a longer name
        with pytest.raises(ValueError, match=rf"\b{name}\b is a fraction of the velocity net's"):
            get_method("curvature_min", **{name: bad})


def _linear_layers(module: nn.Module) -> int:
    return sum(isinstance(m, nn.Linear) for m in module.modules())


def test_the_encoder_is_encoder_depth_times_as_deep_as_the_velocity_net():
    problem = Problem(load_dataset("moons", n_train=64, n_test=16), None, {"name": "mlp", "hidden": 16, "depth": 4})
    for depth, hidden_layers in ((0.5, 2), (0.25, 1), (1.0, 4)):
        model = build_model(get_method("curvature_min", encoder_depth=depth), problem)
        assert _linear_layers(model["v"]) == 4 + 1  # hidden layers plus the output layer
        assert _linear_layers(model["enc"]) == hidden_layers + 1


@pytest.mark.parametrize("batch", [1, 3])
def test_kl_is_the_closed_form_per_dimension_average_for_any_batch_size(batch):
    """KL(N(mu, diag s^2) || N(0, I)) = 1/2 sum_d (mu_d^2 + s_d^2 - 1 - log s_d^2): summed over the D = 2 x 2 x 2
    dimensions, averaged over the batch, divided by D; a batch of one sample is a batch like any other."""
    g = torch.Generator().manual_seed(0)
    mu = torch.randn(batch, 2, 2, 2, generator=g, dtype=torch.float64)
    logvar = torch.randn(batch, 2, 2, 2, generator=g, dtype=torch.float64)
    by_hand = sum(
        0.5 * (m**2 + math.exp(lv) - 1 - lv)
        for m, lv in zip(mu.flatten().tolist(), logvar.flatten().tolist(), strict=True)
    )
    got = CurvatureMinimizing.kl_per_dim(mu, logvar)
    assert got.item() == pytest.approx(by_hand / batch / 8, rel=1e-12)


def test_kl_of_one_sample_by_hand():
    """mu = (1, 0), sigma^2 = (1, 2): KL = 1/2 (1 + 1 - 1 - 0) + 1/2 (0 + 2 - 1 - log 2) = 1 - log(2) / 2,
    divided by D = 2."""
    mu = torch.tensor([[1.0, 0.0]], dtype=torch.float64)
    logvar = torch.tensor([[0.0, math.log(2.0)]], dtype=torch.float64)
    assert CurvatureMinimizing.kl_per_dim(mu, logvar).item() == pytest.approx((1 - math.log(2) / 2) / 2, rel=1e-12)
