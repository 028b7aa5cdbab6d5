"""edm's hyperparameters: the defaults of Karras et al.'s recipe (NVlabs/edm), the refusal of values outside
their ranges (at the boundary, every problem named in one message), and the churn settings reaching the
stochastic sampler."""

from __future__ import annotations

import pytest
import torch

from odebench.bench.core.fields import Churn
from odebench.methods.edm import EDM

# EDMPrecond / EDMLoss / edm_sampler defaults; S_churn, S_tmin, S_tmax, S_noise are NVlabs/edm's ImageNet-64
# recommendation (the module docstring states each)
PAPER_DEFAULTS = {"sigma_data": 0.5, "p_mean": -1.2, "p_std": 1.2, "sigma_min": 0.002, "sigma_max": 80.0,
                  "s_churn": 40.0, "s_tmin": 0.05, "s_tmax": 50.0, "s_noise": 1.003}


def _model():
    return torch.nn.ModuleDict({"F": torch.nn.Identity()})


def test_defaults_are_the_papers_recipe():
    assert EDM().hparams == PAPER_DEFAULTS


def test_every_setting_given_is_recorded():
    """The hparams key the model cache and go into every record, so each given value must be there."""
    given = {"sigma_data": 0.7, "p_mean": -1.0, "p_std": 0.9, "sigma_min": 0.01, "sigma_max": 60.0,
             "s_churn": 5.0, "s_tmin": 0.1, "s_tmax": 20.0, "s_noise": 1.01}
    assert EDM(**given).hparams == given


@pytest.mark.parametrize("bad,named", [
    ({"sigma_data": 0.0}, "sigma_data must be positive"),
    ({"p_std": 0.0}, "p_std must be positive"),
    ({"sigma_min": 0.0}, "0 < sigma_min < sigma_max"),
    ({"sigma_min": 80.0, "sigma_max": 80.0}, "0 < sigma_min < sigma_max"),
    ({"s_churn": -1e-9}, "s_churn >= 0"),
    ({"s_noise": 0.0}, "s_noise > 0"),
    ({"s_tmin": 2.0, "s_tmax": 1.0}, "s_tmin <= s_tmax"),
])
def test_boundary_values_are_refused(bad, named):
    with pytest.raises(ValueError, match=named):
        EDM(**bad)


@pytest.mark.parametrize("edge", [
    {"sigma_data": 1e-6}, {"p_std": 1e-6}, {"sigma_min": 1e-9}, {"sigma_min": 79.9},
    {"s_churn": 0.0},  # the deterministic sampler, NVlabs/edm's recommendation for CIFAR-10
    {"s_churn": 0.5}, {"s_noise": 1e-6}, {"s_tmin": 1.0, "s_tmax": 1.0},
])
def test_values_just_inside_the_ranges_are_accepted(edge):
    assert EDM(**edge).hparams.items() >= edge.items()


def test_all_problems_are_named_in_one_message():
    with pytest.raises(ValueError) as info:
        EDM(sigma_data=0.0, p_std=-1.0, sigma_min=0.0, s_churn=-1.0)
    message = str(info.value)
    assert message.startswith("edm: ")
    for part in ("sigma_data", "p_std", "sigma_min", "s_churn"):
        assert part in message
    assert message.count(";") == 3


def test_churn_settings_reach_the_stochastic_sampler():
    dyn = EDM(s_churn=7.0, s_tmin=0.2, s_tmax=9.0, s_noise=1.01).dynamics(_model())
    assert dyn.churn == Churn(s_churn=7.0, s_tmin=0.2, s_tmax=9.0, s_noise=1.01)
