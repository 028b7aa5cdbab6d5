"""Checks at load time, before any cell: a probe call of the given network (a wrong adapter ends with exit 2 and the
adapter to use, nothing sampled or written) and a plausibility solve (samples far outside the data's range warn
that --kind / --path do not fit the network; the sweep goes on)."""

from __future__ import annotations

import pytest
from adapter_helpers import tiny_spec_toml
from torch import nn

from odebench.adapters import Plain, adapt
from odebench.adapters.probe import ProbeFailed, implausible, probe
from odebench.bench.cli import main
from odebench.bench.data import load_dataset
from odebench.bench.harness.store.records import RecordStore

#: the exact probability-flow velocity of the linear path (x_t = t x1 + (1 - t) x0) to a Gaussian with the mean
#: and variance of moons, per coordinate: x_t = t m + r_t z, r_t = sqrt(t^2 s^2 + (1 - t)^2), so
#: v = m + r_t' / r_t (x - t m); a velocity network that needs no training
GAUSSIAN_VELOCITY = '''
import torch
from odebench.bench.data import load_dataset


class GaussianVelocity(torch.nn.Module):
    def __init__(self):
        super().__init__()
        data = load_dataset("moons").train
        self.register_buffer("m", data.mean(0))
        self.register_buffer("s2", data.var(0))

    def forward(self, x, t):
        t = t[:, None]
        return self.m + (t * self.s2 - (1 - t)) / (t * t * self.s2 + (1 - t) ** 2) * (x - t * self.m)


def make():
    return GaussianVelocity()
'''

#: a flow_matching model: a ModelWrapper called with keywords, net(x=x, t=t)
FLOW_MATCHING_MODEL = '''
import torch
from flow_matching.utils import ModelWrapper


class Velocity(ModelWrapper):
    def __init__(self):
        super().__init__(torch.nn.Linear(3, 2))

    def forward(self, x, t, **extras):
        return self.model(torch.cat([x, t.reshape(-1, 1).expand(len(x), 1)], dim=-1))


def make():
    torch.manual_seed(0)
    return Velocity()
'''

TORCHCFM_MLP = "import torch\nfrom torchcfm.models import MLP\n\n\ndef make():\n    torch.manual_seed(0)\n" \
               "    return MLP(dim=2, w=16, time_varying=True)\n"


def gaussian_velocity() -> nn.Module:
    """The network of GAUSSIAN_VELOCITY, built here (the command line imports its own copy)."""
    namespace: dict = {}
    exec(GAUSSIAN_VELOCITY, namespace)
    return namespace["make"]()


def run_eval(module: str, *extra: str) -> int:
    return main(["eval", "--model", f"{module}:make", "--dataset", "moons", "--spec", "spec.toml", "--out", "out",
                 "--no-progress", "--no-figures", *extra])


@pytest.mark.parametrize("peer, body, given, fix", [
    ("torchcfm", TORCHCFM_MLP, "plain", "--adapter torchcfm"),
    ("torchcfm", TORCHCFM_MLP, "flow_matching", "--adapter torchcfm"),
    ("flow_matching", FLOW_MATCHING_MODEL, "torchcfm", "--adapter flow_matching"),
])
def test_a_wrong_adapter_ends_before_any_sampling_with_the_fix(peer, body, given, fix, factory_module, tmp_path,
                                                                capsys):
    """These used to fail every cell with the network's raw TypeError (exit 1), or be refused for the dataset's
    shape, which was not the problem."""
    pytest.importorskip(peer)
    name = factory_module(body)
    (tmp_path / "spec.toml").write_text(tiny_spec_toml('[[solvers]]\nname = "euler"\nnfe = [4]\n', n_samples=64))
    assert run_eval(name, "--adapter", given) == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    assert f"use {fix} " in lines[0] and f"other adapter than {given!r}" in lines[0]
    assert not list(tmp_path.glob("out/**/*.json"))  # no record, no manifest: nothing ran


def test_the_probe_checks_dtype_and_finiteness():
    data = load_dataset("moons").train

    class Doubles(nn.Module):
        def forward(self, x, t):
            return x.double()

    class BlowsUpAtTheEnd(nn.Module):
        def forward(self, x, t):
            return x / (1 - t[:, None])  # inf at t = 1, the end of the interval

    for net, message in ((Doubles(), "returns float64 for float32 input"), (BlowsUpAtTheEnd(), "is not finite")):
        adapter = Plain(net)
        with pytest.raises(ProbeFailed, match=message):
            probe(adapter, adapter.model(), data, "moons")


def test_a_network_that_fits_passes_the_probe():
    for kind, path in (("velocity", None), ("velocity", "linear"), ("eps", "linear")):
        adapter = adapt(gaussian_velocity(), kind=kind, path=path)
        probe(adapter, adapter.model(), load_dataset("moons").train, "moons")  # raises on a failure


def test_a_velocity_network_declared_eps_on_linear_warns_before_the_sweep_and_a_correct_one_does_not(
        factory_module, tmp_path, capsys):
    """The issue's case: the same network declared --kind eps --path linear gave W2 = 20,906 without a word. The
    warning comes before the sweep and the run goes on; declared as what it is, the network draws no warning."""
    name = factory_module(GAUSSIAN_VELOCITY)
    (tmp_path / "spec.toml").write_text(tiny_spec_toml('[[solvers]]\nname = "euler"\nnfe = [8]\n', n_samples=256))
    assert run_eval(name, "--kind", "eps", "--path", "linear", "--name", "wrong") == 0
    captured = capsys.readouterr()
    warnings = [line for line in captured.err.splitlines() if line.startswith("warning: ")]
    assert len(warnings) == 1, captured.err
    assert "far outside the range of moons" in warnings[0] and "--kind or --path" in warnings[0]
    assert "kind 'eps', path 'linear'" in warnings[0]
    assert "this run: ok 1" in captured.out  # the sweep went on
    records = RecordStore(tmp_path / "out" / "wrong").records()
    assert [r["status"] for r in records] == ["ok"] and records[0]["metrics"]["w2"] > 100  # measured, as declared

    assert run_eval(name, "--path", "linear", "--name", "right") == 0
    assert "warning" not in capsys.readouterr().err
    assert RecordStore(tmp_path / "out" / "right").records()[0]["metrics"]["w2"] < 2


@pytest.mark.parametrize("kind, path, warns", [("velocity", None, False), ("velocity", "trig", False),
                                               ("eps", "linear", True), ("eps", "trig", True),
                                               ("score", "vp", True)])
def test_the_plausibility_check_on_the_exact_field(kind, path, warns):
    adapter = adapt(gaussian_velocity(), kind=kind, path=path)
    warning = implausible(adapter, adapter.model(), load_dataset("moons").train, "moons")
    assert (warning is not None) == warns, warning
