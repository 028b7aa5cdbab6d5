"""A TorchCFM model trained with TorchCFM's own ConditionalFlowMatcher, evaluated by ``odebench eval``, gives the
samples of TorchCFM's own Euler loop (the torchdyn-free one of its notebooks) from the same source draws."""

from __future__ import annotations

import pytest
import torch

torchcfm = pytest.importorskip("torchcfm", reason="the TorchCFM peer is not installed (pip install --no-deps "
                                                  "'torchcfm>=1.0.7', as .ci/run does)")
from adapter_helpers import cell_draws, tiny_spec_toml  # noqa: E402
from torchcfm.conditional_flow_matching import ConditionalFlowMatcher  # noqa: E402
from torchcfm.models import MLP  # noqa: E402

from odebench.adapters import TorchCFM, adapt  # noqa: E402
from odebench.bench.cli import main  # noqa: E402
from odebench.bench.data import load_dataset  # noqa: E402
from odebench.bench.harness.store.records import RecordStore  # noqa: E402
from odebench.metrics.quality import wasserstein2  # noqa: E402

WIDTH = 64


def train_torchcfm(steps: int = 300) -> MLP:
    """TorchCFM's MLP trained on moons with its ConditionalFlowMatcher (sigma = 0), as in its 2-D notebooks."""
    torch.manual_seed(0)
    model = MLP(dim=2, w=WIDTH, time_varying=True)
    cfm = ConditionalFlowMatcher(sigma=0.0)
    data = load_dataset("moons").train
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    gen = torch.Generator().manual_seed(1)
    for _ in range(steps):
        x1 = data[torch.randint(len(data), (256,), generator=gen)]
        x0 = torch.randn(256, 2, generator=gen)
        t, xt, ut = cfm.sample_location_and_conditional_flow(x0, x1)
        loss = (model(torch.cat([xt, t[:, None]], dim=-1)) - ut).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


@torch.no_grad()
def torchcfm_euler(model: MLP, x0: torch.Tensor, n_steps: int) -> torch.Tensor:
    """TorchCFM's plain Euler loop from t = 0 to 1 on x and t concatenated."""
    x, ts = x0.clone(), torch.linspace(0, 1, n_steps + 1)
    for i in range(n_steps):
        t = ts[i].expand(len(x), 1)
        x = x + (ts[i + 1] - ts[i]) * model(torch.cat([x, t], dim=-1))
    return x


def test_odebench_eval_of_a_torchcfm_model_matches_its_own_euler_loop(factory_module, tmp_path, capsys):
    model = train_torchcfm()
    torch.save(model.state_dict(), tmp_path / "cfm.pt")
    name = factory_module(f"from torchcfm.models import MLP\n\n\ndef make():\n    return MLP(dim=2, w={WIDTH}, "
                          f"time_varying=True)\n")
    (tmp_path / "spec.toml").write_text(tiny_spec_toml('[[solvers]]\nname = "euler"\nnfe = [8, 32]\n'))
    code = main(["eval", "--model", f"{name}:make", "--checkpoint", "cfm.pt", "--dataset", "moons", "--spec",
                 "spec.toml", "--out", "out", "--no-progress", "--no-figures"])
    assert code == 0, capsys.readouterr().err
    records = RecordStore(tmp_path / "out" / f"eval_{name}.make_moons").records()
    assert sorted(r["config"]["nfe"] for r in records) == [8, 32]
    adapter = adapt(model)
    assert isinstance(adapter, TorchCFM) and adapter.time_input == "concat"
    reference = load_dataset("moons").test
    for record in records:
        assert record["status"] == "ok" and record["nfe"] == record["config"]["nfe"]
        cell, x0, ours = cell_draws(record, adapter)
        theirs = torchcfm_euler(model, x0, cell.nfe)
        assert (ours - theirs).abs().max() < 1e-5
        # the record's W2 is the W2 of TorchCFM's own samples
        assert wasserstein2(theirs, reference[: len(theirs)]) == pytest.approx(record["metrics"]["w2"], rel=1e-4)
    # a briefly trained model, but a trained one: closer to moons than its source N(0, I) is (W2 about 1.2)
    assert min(r["metrics"]["w2"] for r in records) < 0.8


def test_the_unet_convention_takes_time_first():
    calls = []

    class TimeFirst(torch.nn.Module):
        def forward(self, t, x):
            calls.append((t.shape, x.shape))
            return x * t[:, None]

    adapter = TorchCFM(TimeFirst())
    assert adapter.time_input == "first"
    v = adapter.dynamics(adapter.model()).velocity(torch.ones(3, 2), torch.full((3,), 0.5))
    assert torch.equal(v, torch.full((3, 2), 0.5)) and calls == [(torch.Size([3]), torch.Size([3, 2]))]
