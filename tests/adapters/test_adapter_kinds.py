"""The adapters' conversions and contracts, without peers: a network predicting velocity, x1, eps or score on a
path gives the same velocity and data prediction; the declared capabilities are the offered ones; a missing peer
names the extra; ``adapt`` picks the right adapter and refuses what it cannot read; ``odebench.evaluate``
resumes."""

from __future__ import annotations

import sys

import pytest
import torch
from torch import nn

import odebench
from odebench.adapters import ADAPTERS_EXTRA, DynamicsAdapter, PeerMissing, Plain, adapt
from odebench.adapters.base import require_peer
from odebench.bench.core.fields import Dynamics
from odebench.methods import exact
from odebench.methods.probability_paths import PATHS

MEAN, STD = torch.tensor([0.5, -1.0], dtype=torch.float64), 0.6
PI = exact.independent(exact.gaussian(torch.zeros(2, dtype=torch.float64), torch.eye(2, dtype=torch.float64)),
                       exact.gaussian(MEAN, STD**2 * torch.eye(2, dtype=torch.float64)))


class Exact(nn.Module):
    """The exact prediction of ``kind`` for N(0, I) -> N(MEAN, STD^2 I) on ``path`` (x: [B, 2], t: [B])."""

    def __init__(self, kind: str, path):
        super().__init__()
        self.kind, self.path = kind, path

    def forward(self, x, t):
        if self.kind == "velocity":
            return exact.marginal_velocity(PI, self.path, x, t)
        score = exact.marginal_score(PI, self.path, x, t)
        c = self.path.coefficients(t)
        a, s = c.alpha_t[:, None], c.sigma_t[:, None]
        return {"score": score, "eps": -s * score, "x1": (x + s**2 * score) / a}[self.kind]  # Tweedie


@pytest.mark.parametrize("path_name", ["linear", "trig", "vp"])
@pytest.mark.parametrize("kind", ["x1", "eps", "score"])
def test_every_kind_gives_the_exact_velocity_and_data_prediction(path_name, kind):
    path = PATHS.get(path_name)()
    x = torch.randn(64, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    t = torch.linspace(0.05, 0.95, 64, dtype=torch.float64)
    truth = Plain(Exact("velocity", path), "velocity", path).dynamics(nn.ModuleDict({"net": Exact("velocity", path)}))
    adapter = Plain(Exact(kind, path), kind, path)
    dyn = adapter.dynamics(adapter.model())
    assert dyn.offers() == adapter.offers() == {"velocity", "noise_schedule", "x1_hat"}
    assert torch.allclose(dyn.velocity(x, t), truth.velocity(x, t), atol=1e-8)
    assert torch.allclose(dyn.x1_hat(x, t), truth.x1_hat(x, t), atol=1e-8)


def test_the_interval_stops_short_where_a_conversion_divides_by_zero():
    net = nn.Linear(2, 2)
    assert (Plain(net, "velocity", "linear").t0, Plain(net, "velocity", "linear").t1) == (0.0, 1.0)
    assert Plain(net, "x1", "linear").t1 == pytest.approx(0.999)  # sigma = 0 at t = 1
    assert Plain(net, "eps", "linear").t0 == pytest.approx(0.001)  # alpha = 0 at t = 0
    assert Plain(net, "eps", "vp").t0 == 0.0  # alpha(0) > 0 on the VP path
    without = Plain(net)
    assert without.offers() == {"velocity"} and without.dynamics(without.model()).offers() == {"velocity"}
    with pytest.raises(ValueError, match="needs the path it was trained on"):
        Plain(net, "eps")
    with pytest.raises(ValueError, match="kind 'noise'"):
        Plain(net, "noise", "linear")


def test_a_missing_peer_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "torchcfm", None)  # an import of it now fails, as if not installed
    with pytest.raises(PeerMissing, match="pip install 'odebench\\[adapters\\]'") as info:
        require_peer("torchcfm", "torchcfm")
    assert ADAPTERS_EXTRA in str(info.value) and isinstance(info.value, ImportError)
    from odebench.adapters.torchcfm import TorchCFM

    with pytest.raises(PeerMissing, match="the torchcfm adapter needs the 'torchcfm' package"):
        TorchCFM(nn.Linear(3, 2))
    # TorchCFM is installed without its declared dependencies (torchdyn -> torchvision would replace the torch build)
    assert "pip install --no-deps 'torchcfm>=1.0.7'" in str(info.value)
    monkeypatch.setitem(sys.modules, "flow_matching", None)
    with pytest.raises(PeerMissing) as info:
        require_peer("flow_matching", "flow_matching")
    assert str(info.value).endswith(ADAPTERS_EXTRA) and "--no-deps" not in str(info.value)


def test_adapt_picks_and_refuses():
    net = nn.Linear(2, 2)
    assert type(adapt(net)) is Plain
    ready = Plain(net, "x1", "linear")
    assert adapt(ready) is ready
    with pytest.raises(ValueError, match="ready plain adapter; kind 'eps'"):
        adapt(ready, kind="eps")
    with pytest.raises(TypeError, match="expected a torch.nn.Module"):
        adapt("not a model")
    dyn = Dynamics(velocity=lambda x, t: -x)
    with pytest.raises(ValueError, match="give model_id"):
        adapt(dyn)
    wrapped = adapt(dyn, model_id="decay-v1")
    assert isinstance(wrapped, DynamicsAdapter) and wrapped.identity()["model_id"] == "decay-v1"
    assert wrapped.dynamics(wrapped.model()) is dyn


def test_evaluate_returns_the_records_and_resumes(tmp_path):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(2, 2))

    class Field(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = net

        def forward(self, x, t):
            return self.net(x) * t[:, None]

    model = Field()
    options = dict(solvers=[{"name": "euler", "nfe": [1, 2]}, {"name": "heun", "nfe": [1]}], metrics=["w2"],
                   n_samples=32, out=tmp_path, report=False)
    frame = odebench.evaluate(model, "moons", **options)
    assert sorted(zip(frame["solver"], frame["status"], strict=True)) == [("euler", "ok"), ("euler", "ok"),
                                                                          ("heun", "skipped")]
    assert set(frame["method"]) == {f"Field@{frame['method'].iloc[0].split('@')[1]}"}
    created = sorted((tmp_path / "eval_Field_moons" / "cells").glob("*.json"))
    stamps = [p.stat().st_mtime_ns for p in created]
    again = odebench.evaluate(model, "moons", **options)  # same weights: the same records, no work
    assert [p.stat().st_mtime_ns for p in created] == stamps
    assert again.sort_values("cell_id").equals(frame.sort_values("cell_id"))
    with torch.no_grad():
        net[0].weight.add_(0.1)  # new weights: new cells
    assert set(odebench.evaluate(model, "moons", **options)["cell_id"]).isdisjoint(frame["cell_id"])
