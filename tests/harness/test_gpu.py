"""The GPU path (skipped without CUDA): data on the device, no host sync while sampling or training,
bf16 autocast and torch.compile, and an image sweep end to end with --device cuda."""

import json

import pytest
import torch

from odebench.bench.cli import main as cli_main
from odebench.bench.core.solvers import sample
from odebench.bench.data import load_dataset
from odebench.bench.harness.process.runtime import Runtime
from odebench.bench.harness.training.train import TrainConfig, fit
from odebench.bench.nets import build_net
from odebench.methods import get_method
from odebench.methods.couplings import IndependentCoupling

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

TINY_UNET = {"name": "unet", "ch": 16, "ch_mult": [1, 2], "num_res_blocks": 1, "attn_resolutions": [4],
             "groups": 8}


def test_training_draws_stay_on_the_device():
    ds = load_dataset("digits")
    ds.hflip = True
    gen = torch.Generator(device="cuda").manual_seed(0)
    x = ds.sample(32, gen)
    assert x.device.type == "cuda"
    assert ds._resident and all(v.device.type == "cuda" for v in ds._resident.values())  # copied once
    torch.cuda.set_sync_debug_mode("error")  # any device -> host synchronisation raises from here on
    try:
        ds.sample(32, gen)
    finally:
        torch.cuda.set_sync_debug_mode(0)


@pytest.mark.parametrize("solver,grid", [("heun", "uniform"), ("heun", "edm"), ("dpmpp_2m", "logsnr"),
                                         ("unipc", "logsnr"), ("dpmpp_2m_sde", "logsnr"), ("edm_heun", "edm")])
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_sampling_loop_has_no_host_sync(precision, solver, grid):
    """Noise-level grids and the data-prediction samplers compute their times and coefficients on the host and
    copy the times over without waiting."""
    net = build_net(TINY_UNET, (1, 8, 8)).cuda().eval()
    dyn = get_method("fm_ot").dynamics(torch.nn.ModuleDict({"v": net}))
    x0 = torch.randn(64, 1, 8, 8, device="cuda")
    gen = torch.Generator(device="cuda").manual_seed(0)
    with torch.inference_mode(), Runtime("cuda", precision).autocast():
        sample(dyn, x0, solver, nfe=8, grid=grid, gen=gen)  # warm-up: kernels, cuBLAS/cuDNN handles
        torch.cuda.synchronize()
        torch.cuda.set_sync_debug_mode("error")
        try:
            res = sample(dyn, x0, solver, nfe=8, grid=grid, gen=gen)
        finally:
            torch.cuda.set_sync_debug_mode(0)
    assert res.nfe == 8 and res.x.dtype == torch.float32 and torch.isfinite(res.x).all()


@pytest.mark.parametrize("runtime", [Runtime("cuda", "bf16"), Runtime("cuda", "bf16", compile=True)],
                         ids=["bf16", "bf16+compile"])
def test_fit_on_the_device(runtime):
    ds = load_dataset("digits")
    method = get_method("fm_ot")
    model = method.networks(lambda out_mult=1: build_net(TINY_UNET, ds.shape, out_mult), ds.shape).cuda()
    coupling = IndependentCoupling(lambda n, g: torch.randn(n, *ds.shape, generator=g, device=g.device),
                                   ds.sample)
    ema, losses = fit(method, model, coupling, TrainConfig(steps=30, batch_size=64),
                      torch.Generator(device="cuda").manual_seed(0), runtime=runtime)
    assert len(losses) > 0 and all(map(torch.isfinite, torch.tensor(losses)))
    assert losses[-1] < losses[0]
    assert set(ema.state_dict()) == set(method.networks(
        lambda out_mult=1: build_net(TINY_UNET, ds.shape, out_mult), ds.shape).state_dict())


def test_image_sweep_on_cuda(tmp_path):
    spec = tmp_path / "g.toml"
    spec.write_text('name = "g"\n[train]\nsteps = 20\nbatch_size = 32\n[net]\nname = "unet"\nch = 16\n'
                    'ch_mult = [1, 2]\nnum_res_blocks = 1\nattn_resolutions = [4]\ngroups = 8\n'
                    '[eval]\nn_samples = 64\nmetrics = ["fd"]\n[[methods]]\nname = "fm_ot"\n'
                    '[[methods]]\nname = "rf"\n[[datasets]]\ntarget = "digits"\n'
                    '[[solvers]]\nname = "euler"\nnfe = [4]\n[[solvers]]\nname = "dopri5"\n'
                    'tolerances = [1e-3]\n')
    rc = cli_main(["run", "--spec", str(spec), "--out", str(tmp_path), "--device", "cuda", "--precision",
                   "bf16", "--no-progress"])
    assert rc == 0
    recs = [json.loads(p.read_text()) for p in (tmp_path / "g" / "cells").glob("*.json")]
    assert len(recs) == 4 and all(r["status"] == "ok" for r in recs)
    assert all(r["runtime"]["precision"] == "bf16" and r["environment"]["device"].startswith("cuda")
               for r in recs)
    assert len(list((tmp_path / "g" / "samples").glob("*.png"))) == 4
