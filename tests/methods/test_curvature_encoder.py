"""curvature_min's encoder is its own, smaller network (a quarter of the width and half of the depth of the
velocity net by default, the fractions of the authors' CIFAR-10 configs), and its size keys the model cache."""

from __future__ import annotations

import pytest

from odebench.bench.data import load_dataset
from odebench.bench.harness.training.train import Problem, TrainConfig, build_model, model_key
from odebench.bench.nets.mlp import MLP
from odebench.bench.nets.unet import UNet
from odebench.methods import get_method


def _params(module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize("net,dataset", [({"name": "mlp", "hidden": 128, "depth": 4}, "moons"),
                                         ({"name": "unet", "ch": 32, "ch_mult": [1, 2], "num_res_blocks": 2,
                                           "attn_resolutions": [], "groups": 8}, "digits")])
def test_the_encoder_is_a_smaller_network_of_the_same_kind(net, dataset):
    problem = Problem(load_dataset(dataset), None, net)
    model = build_model(get_method("curvature_min"), problem)
    assert type(model["enc"]) is type(model["v"])
    assert _params(model["enc"]) < 0.2 * _params(model["v"])
    same_size = build_model(get_method("curvature_min", encoder_width=1.0, encoder_depth=1.0), problem)
    assert _params(same_size["enc"]) > _params(same_size["v"])  # twice the output channels, same body


def test_scaled_configs_keep_valid_networks():
    assert MLP.scaled_config({"hidden": 128, "depth": 4}, 0.25, 0.5) == {"hidden": 32, "depth": 2}
    assert MLP.scaled_config({"hidden": 16, "depth": 1}, 0.25, 0.5) == {"hidden": 8, "depth": 1}
    cfg = UNet.scaled_config({"ch": 128, "num_res_blocks": 4, "groups": 32}, 0.25, 0.5)
    assert cfg == {"ch": 32, "num_res_blocks": 2, "groups": 32}
    assert UNet.scaled_config({"ch": 64, "groups": 32}, 0.1, 0.1)["ch"] == 32  # at least one group's worth


def test_encoder_size_keys_the_model_cache():
    problem = Problem(load_dataset("moons"), None, {"name": "mlp"})
    keys = {model_key(get_method("curvature_min", encoder_width=w), problem, TrainConfig(), 0, None)
            for w in (0.25, 0.5)}
    assert len(keys) == 2
    with pytest.raises(ValueError, match="encoder_width"):
        get_method("curvature_min", encoder_width=0.0)
