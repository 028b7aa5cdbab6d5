"""The image U-Net: shapes, time conditioning, per-sample independence, sizing, and bad configs."""

import pytest
import torch

from odebench.bench.nets import NETS, build_net

TINY_8 = {"name": "unet", "ch": 8, "ch_mult": [1, 2], "num_res_blocks": 1, "attn_resolutions": [4],
          "groups": 4}
# the DDPM-CIFAR layout (4 levels, attention at 16x16) at a width a CPU test can afford
NARROW_32 = {"name": "unet", "ch": 8, "ch_mult": [1, 2, 2, 2], "num_res_blocks": 2, "attn_resolutions": [16],
             "groups": 4, "dropout": 0.1}
CASES = [(TINY_8, (1, 8, 8)), (NARROW_32, (3, 32, 32))]


@pytest.mark.parametrize("cfg,shape", CASES)
@pytest.mark.parametrize("out_mult", [1, 2])
def test_output_shape(cfg, shape, out_mult):
    net = build_net(cfg, shape, out_mult).eval()
    x, t = torch.randn(3, *shape), torch.rand(3)
    out = net(x, t)
    assert out.shape == (3, out_mult * shape[0], *shape[1:])
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("cfg,shape", CASES)
def test_output_depends_on_time(cfg, shape):
    torch.manual_seed(0)
    net = build_net(cfg, shape).eval()
    x = torch.randn(2, *shape)
    early, late = net(x, torch.full((2,), 0.1)), net(x, torch.full((2,), 0.9))
    assert (early - late).abs().max() > 1e-4
    # and a sample's output depends only on its own (x, t): GroupNorm never mixes the batch
    t = torch.tensor([0.1, 0.9])
    both = net(x, t)
    torch.testing.assert_close(both[1:], net(x[1:], t[1:]), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("cfg,shape", CASES)
def test_every_parameter_gets_a_gradient(cfg, shape):
    net = build_net(cfg, shape, out_mult=2)
    net(torch.randn(2, *shape), torch.rand(2)).pow(2).mean().backward()
    missing = [n for n, p in net.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert missing == []


def test_ddpm_cifar_size():
    """ch 128, mults (1, 2, 2, 2), 2 blocks, attention at 16: DDPM's CIFAR-10 model has 35.7M parameters."""
    net = NETS.get("unet")((3, 32, 32), ch=128, ch_mult=(1, 2, 2, 2), num_res_blocks=2,
                           attn_resolutions=(16,))
    n = sum(p.numel() for p in net.parameters())
    assert 35.6e6 < n < 35.8e6


def test_bad_configs_fail_with_the_fix():
    with pytest.raises(ValueError, match="not divisible"):
        build_net({"name": "unet", "ch_mult": [1, 2, 2, 2, 2]}, (1, 8, 8))
    with pytest.raises(ValueError, match="mlp"):
        build_net({"name": "unet"}, (2,))
    with pytest.raises(ValueError, match="attn_heads"):
        build_net({**TINY_8, "attn_heads": 3}, (1, 8, 8))
