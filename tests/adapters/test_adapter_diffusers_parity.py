"""``odebench`` sampling a diffusers model repeats diffusers' own loops: DDIM (its ``leading`` spacing, its final
step onto alpha_bar = 1) and DPM-Solver++(2M) (its ``linspace`` spacing, its final step onto sigma = 0) give the
same final samples from the same noise, at 10 and 20 steps, to 1e-5; the timestep grids are diffusers' spacings;
a zero-terminal-SNR schedule is refused when the model is loaded (exit 2 through ``odebench eval``).

The network is the exact noise prediction of Gaussian data plus a randomly initialised tiny UNet2DModel (so the
samples are of order 1 and the network is a real nonlinear one), in float32 as diffusers runs it.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

pytest.importorskip("diffusers", reason="the diffusers peer is not installed (pip install 'odebench[peers]')")
from diffusers import DDIMScheduler, DDPMScheduler, DPMSolverMultistepScheduler, UNet2DModel  # noqa: E402
from diffusers.models.unets.unet_2d import UNet2DOutput  # noqa: E402
from test_adapter_diffusers import ExactUNet  # noqa: E402

from odebench.adapters import Diffusers  # noqa: E402
from odebench.bench.cli import main  # noqa: E402
from odebench.bench.core.solvers import sample  # noqa: E402
from odebench.bench.core.time_grids import make_grid  # noqa: E402


class PerturbedUNet(ExactUNet):
    """The exact prediction plus 0.1 times the (random) UNet2DModel's own output."""

    def forward(self, sample, timestep, class_labels=None, return_dict=True):
        exact = super().forward(sample, timestep).sample
        k = timestep if timestep.dim() else timestep.expand(sample.shape[0])
        return UNet2DOutput(sample=exact + 0.1 * UNet2DModel.forward(self, sample, k).sample)


def diffusers_loop(net, scheduler, x: torch.Tensor, n: int) -> torch.Tensor:
    """diffusers' own sampling loop, as its pipelines run it."""
    scheduler.set_timesteps(n)
    for k in scheduler.timesteps:
        x = scheduler.step(net(x, k).sample, k, x).prev_sample
    return x


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    ddpm = DDPMScheduler(num_train_timesteps=1000)
    net = PerturbedUNet(ddpm).eval()
    adapter = Diffusers(net, ddpm)
    return ddpm, net, adapter.dynamics(adapter.model())


@pytest.mark.parametrize("n", [10, 20])
@pytest.mark.parametrize("which", ["ddim", "dpmpp_2m"])
def test_final_samples_equal_diffusers_own_loop(model, which, n):
    ddpm, net, dyn = model
    if which == "ddim":  # DDIM built from a DDPM config inherits clip_sample=True; odebench never clips
        scheduler, grid = DDIMScheduler.from_config(ddpm.config, clip_sample=False), "leading"
    else:  # final_sigmas_type="zero" and lower_order_final are its defaults
        scheduler, grid = DPMSolverMultistepScheduler.from_config(ddpm.config), "linspace"
    assert scheduler.config.timestep_spacing == grid  # each scheduler's own default spacing
    x0 = torch.randn(64, 1, 4, 4, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        theirs = diffusers_loop(net, scheduler, x0.clone(), n)
        ours = sample(dyn, x0, which, nfe=n, grid=grid)
    assert ours.nfe == n  # the final step onto the clean end is one of the n network calls
    assert float(theirs.abs().max()) > 1.0  # samples of order 1, so the tolerance means something
    assert float((ours.x - theirs).abs().max()) < 1e-5


@pytest.mark.parametrize("spacing", ["leading", "trailing", "linspace"])
@pytest.mark.parametrize("n", [7, 10, 20])
def test_timestep_grids_are_diffusers_spacings(model, spacing, n):
    ddpm, net, dyn = model
    # leading: DDIM's (DPM-Solver's differs); linspace: DPM-Solver's (DDIM's differs); trailing: both
    peer = DPMSolverMultistepScheduler if spacing == "linspace" else DDIMScheduler
    scheduler = peer.from_config(ddpm.config, timestep_spacing=spacing)
    scheduler.set_timesteps(n)
    ts = make_grid(spacing, n, replace(dyn, t1=dyn.data_t1), dtype=torch.float64)
    assert ts[-1] == 1.0  # the clean end
    assert torch.allclose(Diffusers(net, ddpm).timestep(ts[:-1]), scheduler.timesteps.double(), rtol=0, atol=1e-9)


def test_the_uniform_grid_is_trailing_and_ode_solvers_stop_at_timestep_0(model):
    _, _, dyn = model
    clean = replace(dyn, t1=dyn.data_t1)
    ts = make_grid("uniform", 10, clean, dtype=torch.float64)
    assert torch.allclose(ts, make_grid("trailing", 10, clean, dtype=torch.float64), rtol=0, atol=1e-12)
    assert dyn.t1 == pytest.approx(1 - 1 / 1000) and dyn.data_t1 == 1.0 and dyn.denoise is not None


def test_ancestral_sampling_ends_with_the_data_prediction_at_timestep_0(model):
    """DDPM's last step returns its posterior mean at timestep 0, which is the data prediction there: odebench's
    ancestral sampler ends with that call, counted in the budget."""
    _, net, dyn = model
    x0 = torch.randn(8, 1, 4, 4, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        out = sample(dyn, x0, "ancestral", nfe=10, gen=torch.Generator().manual_seed(3), trajectory=True)
        before = out.trajectory[-2]
        eps = net(before, torch.zeros(8)).sample.double()
    abar0 = float(net.scheduler_.alphas_cumprod[0])
    x1_hat = (before.double() - (1 - abar0) ** 0.5 * eps) / abar0**0.5
    assert out.nfe == 10 and torch.allclose(out.x.double(), x1_hat, rtol=0, atol=1e-5)


ZERO_SNR_FACTORY = '''
from diffusers import DDPMScheduler, UNet2DModel


def make():
    net = UNet2DModel(sample_size=4, in_channels=1, out_channels=1, block_out_channels=(8,), layers_per_block=1,
                      down_block_types=("DownBlock2D",), up_block_types=("UpBlock2D",), norm_num_groups=4)
    return net, DDPMScheduler(num_train_timesteps=1000, rescale_betas_zero_snr=True, prediction_type="v_prediction")
'''


def test_a_zero_terminal_snr_schedule_is_refused_when_loaded(factory_module, capsys):
    scheduler = DDPMScheduler(num_train_timesteps=1000, rescale_betas_zero_snr=True, prediction_type="v_prediction")
    assert float(scheduler.alphas_cumprod[-1]) == 0.0
    with pytest.raises(ValueError, match="zero-terminal-SNR"):
        Diffusers(ExactUNet(scheduler), scheduler)
    module = factory_module(ZERO_SNR_FACTORY)
    with open("spec.toml", "w") as fh:
        fh.write('name = "ignored"\nseeds = [0]\n[eval]\nn_samples = 16\nmetrics = ["w2"]\n'
                 '[[solvers]]\nname = "ddim"\nnfe = [4]\n')
    code = main(["eval", "--model", f"{module}:make", "--dataset", "digits", "--spec", "spec.toml", "--out", "out",
                 "--no-progress", "--no-figures"])
    err = capsys.readouterr().err
    assert code == 2 and "zero-terminal-SNR" in err and "Traceback" not in err
