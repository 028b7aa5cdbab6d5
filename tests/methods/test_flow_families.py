"""Flow families beyond the shared contract: reflow rounds and distillation through the artifact cache,
minibatch-OT pairing, interpolant and curvature settings, and the spec's Gaussian-source rule."""

from __future__ import annotations

import json

import pytest
import torch

from odebench.bench.core.solvers import Unsupported, sample
from odebench.bench.data import load_dataset
from odebench.bench.harness.execution.run import run_sweep
from odebench.bench.harness.spec.sweep import SpecError, parse_spec
from odebench.bench.harness.store.artifacts import ArtifactStore
from odebench.bench.harness.training.train import Problem, TrainConfig, train_model
from odebench.methods import get_method
from odebench.methods.couplings import minibatch_ot_pairs

CFG = TrainConfig(steps=120, batch_size=128, lr=3e-3)
NET = {"name": "mlp", "hidden": 32, "depth": 2}
PAIRS = {"n_pairs": 256, "pair_solver": "euler", "pair_nfe": 8}


@pytest.fixture(scope="module")
def problem() -> Problem:
    return Problem(target=load_dataset("moons", n_train=2000, n_test=200), source=None, net=NET)


def test_reflow_rounds_reuse_cached_parents(problem, tmp_path):
    store = ArtifactStore(tmp_path)
    rf1 = train_model(get_method("rf", k=1), problem, CFG, seed=0, store=store)
    rf2 = train_model(get_method("rf", k=2, **PAIRS), problem, CFG, seed=0, store=store)
    assert not rf1.cached and not rf2.cached
    assert rf2.parent.cached and rf2.parent.key == rf1.key  # round 1 loaded, not retrained
    distilled = train_model(get_method("rf", k=2, distill=True, **PAIRS), problem, CFG, seed=0, store=store)
    assert not distilled.cached
    assert distilled.parent.cached and distilled.parent.key == rf2.key
    assert distilled.parent.parent.cached and distilled.parent.parent.key == rf1.key
    assert len(list(tmp_path.glob("*.safetensors"))) == 3
    meta = json.loads((tmp_path / f"{rf2.key}.json").read_text())
    assert meta["parent"] == rf1.key and meta["method"]["n_pairs"] == 256
    assert meta["method"]["pair_solver"] == "euler"

    # distillation trains a one-step map: it learns, samples with one Euler step, refuses other times
    losses = torch.tensor(distilled.losses)
    assert losses[-10:].mean() < losses[:10].mean()
    dyn = get_method("rf", k=2, distill=True, **PAIRS).dynamics(distilled.model)
    x0 = torch.randn(32, 2, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert sample(dyn, x0, "euler", nfe=1).x.shape == (32, 2)
        with pytest.raises(Unsupported, match="nfe = 1"):
            sample(dyn, x0, "euler", nfe=4)


def test_round_one_key_ignores_pair_settings():
    assert get_method("rf", k=1, n_pairs=5).config() == get_method("rf", k=1).config()
    assert get_method("rf", k=2, n_pairs=5).config() != get_method("rf", k=2).config()


def tiny_spec(**extra) -> dict:
    spec = {"name": "tiny", "train": {"steps": 20, "batch_size": 64}, "net": {"name": "mlp", "hidden": 16,
            "depth": 1}, "eval": {"n_samples": 64, "metrics": ["w2"]},
            "solvers": [{"name": "euler", "nfe": [2]}], "datasets": [{"target": "moons"}]}
    spec.update(extra)
    return spec


def test_pair_settings_go_into_the_record(tmp_path):
    spec = parse_spec(tiny_spec(methods=[{"name": "rf", "k": 2, "n_pairs": 64, "pair_solver": "rk4",
                                          "pair_nfe": 8}]))
    summary = run_sweep(spec, tmp_path, progress=False)
    assert summary.ok, summary.failures
    (record,) = [json.loads(p.read_text()) for p in (tmp_path / "tiny" / "cells").glob("*.json")]
    assert record["status"] == "ok"
    method = record["config"]["method"]
    assert (method["k"], method["n_pairs"], method["pair_solver"], method["pair_nfe"]) == (2, 64, "rk4", 8)


def test_gaussian_only_method_with_another_source_fails_naming_both():
    raw = tiny_spec(methods=[{"name": "fm_ot"}, {"name": "interpolant"}],
                    datasets=[{"target": "moons", "source": "8gaussians"}])
    with pytest.raises(SpecError) as err:
        parse_spec(raw)
    msg = str(err.value)
    assert "'fm_ot'" in msg and "'8gaussians'" in msg and "needs a Gaussian source" in msg
    assert "'interpolant'" not in msg  # methods that allow any source pass
    cells = parse_spec(tiny_spec(methods=[{"name": "interpolant"}, {"name": "otcfm"}, {"name": "rf"}],
                                 datasets=[{"target": "moons", "source": "8gaussians"}])).cells
    assert {c.source for c in cells} == {"8gaussians"}


def test_minibatch_ot_pairs_is_the_optimal_assignment():
    from itertools import permutations

    g = torch.Generator().manual_seed(0)
    x0, x1 = torch.randn(6, 2, generator=g), torch.randn(6, 2, generator=g) + 1
    _, paired = minibatch_ot_pairs(x0, x1)
    cost = (x0 - paired).pow(2).sum()
    best = min(float((x0 - x1[list(p)]).pow(2).sum()) for p in permutations(range(6)))
    assert abs(float(cost) - best) < 1e-5
    assert sorted(map(tuple, paired.tolist())) == sorted(map(tuple, x1.tolist()))  # a permutation of x1
    with pytest.raises(ValueError, match="equally many"):
        minibatch_ot_pairs(x0, x1[:5])


@pytest.mark.parametrize("hp,match", [({"path": "spiral"}, "unknown path"), ({"path": "encdec"}, "gamma > 0"),
                                      ({"gamma": -1.0}, ">= 0"), ({"t_eps": 0.7}, "t_eps")])
def test_interpolant_rejects_bad_hparams(hp, match):
    with pytest.raises(ValueError, match=match):
        get_method("interpolant", **hp)


def test_interpolant_sde_dynamics_only_with_latent_noise():
    assert get_method("interpolant").dynamics(torch.nn.ModuleDict({"b": torch.nn.Identity()})).drift is None
    m = get_method("interpolant", gamma=1.0, t_eps=0.01)
    nets = m.networks(lambda out_mult=1: torch.nn.Linear(2, 2 * out_mult), (2,))
    assert set(nets) == {"b_eta"}
    dyn = m.dynamics(nets)
    assert (dyn.t0, dyn.t1) == (0.01, 0.99)
    assert torch.allclose(dyn.diffusion(torch.zeros(3)), torch.full((3,), 2**0.5))


def test_curvature_kl_is_a_per_dimension_average():
    m = get_method("curvature_min")
    assert m.hparams["beta"] == 20.0
    mu, logvar = torch.zeros(4, 3), torch.zeros(4, 3)
    assert float(m.kl_per_dim(mu, logvar)) == 0.0
    mu[:, 0] = 2.0  # KL = 0.5 * 4 = 2 per sample, summed over dims, / D = 3
    assert abs(float(m.kl_per_dim(mu, logvar)) - 2 / 3) < 1e-6


def test_undecorated_method_class_takes_its_registry_name():
    from odebench.methods.base import MethodRegistry
    from odebench.methods.flow_matching import FlowMatchingOT

    class Plain(FlowMatchingOT):  # inherits name "fm_ot" from its parent but is not that method
        pass

    reg = MethodRegistry("method")
    reg.add("plain_ot", Plain)
    assert Plain.name == "plain_ot" and FlowMatchingOT.name == "fm_ot"
