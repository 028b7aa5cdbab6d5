"""ddpm's hyperparameters: Song et al.'s VP recipe as defaults, the schedule built from the betas given, and
refusals at the exact edges of what the maths allows, each message naming the hparam and what it must be."""

from __future__ import annotations

import math
import re

import pytest
import torch
from torch import nn

from odebench.bench.core.solvers import sample
from odebench.methods import get_method


def test_defaults_are_song_et_al_vp_recipe():
    # beta_min 0.1, beta_max 20 (Song et al.'s VP-SDE), sampling to s = 1e-3, final noise removal on; all of
    # them are in the hparams, which key the model cache and go into every record
    method = get_method("ddpm")
    assert method.hparams == {"beta_min": 0.1, "beta_max": 20.0, "sampling_eps": 1e-3, "denoise": True}
    assert method.dynamics(nn.ModuleDict()).t0 == 0.0


@pytest.mark.parametrize("beta_min, beta_max", [(0.1, 20.0), (0.5, 7.0), (2.0, 3.0)])
def test_schedule_uses_the_betas_given(beta_min, beta_max):
    """g^2(s) = beta(s) = beta_min + (beta_max - beta_min) s and log a(s) = -(beta_min s + (beta_max - beta_min)
    s^2 / 2) / 2 (docs/maths.md), at both ends and in between."""
    method = get_method("ddpm", beta_min=beta_min, beta_max=beta_max)
    assert method.hparams["beta_min"] == beta_min and method.hparams["beta_max"] == beta_max
    s = torch.tensor([0.0, 0.3, 1.0], dtype=torch.float64)
    sch = method.schedule(s)
    beta = beta_min + (beta_max - beta_min) * s
    torch.testing.assert_close(sch.g2, beta)
    torch.testing.assert_close(sch.f, -beta / 2)
    torch.testing.assert_close(sch.log_alpha, -(beta_min * s + (beta_max - beta_min) * s**2 / 2) / 2)
    torch.testing.assert_close(sch.sigma, (1 - torch.exp(2 * sch.log_alpha)).sqrt())


@pytest.mark.parametrize("beta_min, beta_max", [(0.0, 20.0), (5.0, 5.0), (-0.1, 20.0), (20.0, 0.1)])
def test_betas_outside_zero_below_min_below_max_are_refused(beta_min, beta_max):
    # beta_min = 0 leaves sigma(s) ~ 0 near the data; beta_min = beta_max has no linear ramp to invert
    with pytest.raises(ValueError, match=r"ddpm needs 0 < beta_min < beta_max"):
        get_method("ddpm", beta_min=beta_min, beta_max=beta_max)


def test_the_nearest_valid_betas_are_accepted():
    method = get_method("ddpm", beta_min=1e-6, beta_max=1e-6 + 1e-9)
    assert method.hparams["beta_min"] == 1e-6


@pytest.mark.parametrize("value", [1.0, 1.5, 1e-6, 0.0])
def test_sampling_eps_outside_its_trained_range_is_refused(value):
    # the network is trained on s in [1e-5, 1]; sampling_eps = 1 would leave nothing to integrate
    with pytest.raises(ValueError, match=r"sampling_eps must lie in \[1e-05, 1\)"):
        get_method("ddpm", sampling_eps=value)


@pytest.mark.parametrize("value", [1e-5, 0.5, 1 - 1e-9])
def test_sampling_eps_at_the_edges_of_its_range_is_accepted(value):
    method = get_method("ddpm", sampling_eps=value)
    assert method.hparams["sampling_eps"] == value
    assert method.dynamics(nn.ModuleDict()).t1 == 1 - value


@pytest.mark.parametrize("value", ["yes", 1, 0, None])
def test_denoise_must_be_a_bool_and_the_message_names_it(value):
    with pytest.raises(ValueError, match=rf"^ddpm denoise must be true or false, got {re.escape(repr(value))}$"):
        get_method("ddpm", denoise=value)


class _Recording(nn.Module):
    """edm's F: a fixed linear map that records the noise level sigma = exp(4 c_noise) of every call."""

    def __init__(self):
        super().__init__()
        self.sigmas = []

    def forward(self, x, c_noise):
        self.sigmas.append(math.exp(4 * float(c_noise[0])))
        return 0.1 * x


def test_edm_sde_samplers_take_no_final_denoising_call():
    """The final noise removal is ddpm's and score_ve's ``denoise`` hparam; edm has none (its own samplers end at
    sigma = 0): its reverse SDE spends every NFE on grid steps and ends at t1 with the last step's mean."""
    method = get_method("edm")
    assert "denoise" not in method.hparams
    net = _Recording()
    dyn = method.dynamics(nn.ModuleDict({"F": net}))
    assert dyn.denoise is None
    res = sample(dyn, method.prior((2,)).sample(4, torch.Generator().manual_seed(0)), "euler_maruyama", nfe=4,
                 gen=torch.Generator().manual_seed(1))
    assert res.nfe == 4 == len(net.sigmas) and len(res.t) == 5 and math.isclose(float(res.t[-1]), dyn.t1)
    assert net.sigmas[-1] > 2 * method.sigma_min  # the last call starts the last step; nothing is called at t1
