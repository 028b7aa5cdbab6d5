"""The contract every registered method keeps (plugins included: the list is METHODS.names() at run time).

On tiny data with a tiny net: a short training lowers the loss; the dynamics have the right shapes; a fixed
seed gives identical samples; a trained model round-trips through the artifact store bit for bit.
"""

from __future__ import annotations

import pytest
import torch

from odebench.bench.core import seeding
from odebench.bench.core.solvers import SOLVERS, sample
from odebench.bench.data import load_dataset
from odebench.bench.harness.store.artifacts import ArtifactStore
from odebench.bench.harness.training.train import Problem, TrainConfig, source_sampler, train_model
from odebench.methods import METHODS, get_method

CFG = TrainConfig(steps=240, batch_size=128, lr=3e-3)
NET = {"name": "mlp", "hidden": 32, "depth": 2}
#: every registered method with its defaults, plus variants whose defaults leave a code path unexercised
VARIANTS = {"interpolant": [{"path": "trig", "gamma": 1.0}]}
#: methods whose regression target moves with the network: MeanFlow's carries the network's own derivative along
#: the flow, whose spread grows as the network learns it, so its loss need not fall over a short run (on moons it
#: stays flat for the first thousand steps). The falling-loss check trains them again with these hparams, where
#: the target is fixed (MeanFlow with r = t throughout and no adaptive weight: plain flow matching)
FIXED_TARGET = {"meanflow": {"ratio": 0.0, "norm_p": 0.0}}
CASES = [(name, {}) for name in METHODS.names()] + [
    (name, hp) for name, hps in VARIANTS.items() if name in METHODS for hp in hps]


@pytest.fixture(scope="module")
def problem() -> Problem:
    return Problem(target=load_dataset("moons", n_train=2000, n_test=200), source=None, net=NET)


def draw_samples(method, trained, problem, solver: str, nfe: int) -> torch.Tensor:
    x0 = source_sampler(method, problem, "cpu")(64, seeding.derive(0, "contract-x0"))
    with torch.no_grad():
        return sample(method.dynamics(trained.model), x0, solver, nfe=nfe,
                      gen=seeding.derive(0, "contract-noise")).x


def solvers_for(dyn) -> list[tuple[str, int]]:
    """Every solver whose requirements the dynamics meet: Euler (always), and the fixed-step solvers that need
    more than the velocity (SDE solvers, samplers on a data prediction) which they allow."""
    fixed = [n for n in SOLVERS.names() if not SOLVERS.get(n).adaptive and SOLVERS.get(n).requires != {"velocity"}]
    euler = [("euler", 8)] if "velocity" in dyn.offers() else []  # a flow-map-only model has no ODE
    # flow_map at one jump, source to data: the jump every flow map serves (a consistency model's maps only there)
    return euler + [(n, 1 if n == "flow_map" else 8) for n in fixed if SOLVERS.get(n).unmet(dyn.offers()) is None]


@pytest.mark.parametrize("name,hp", CASES, ids=[n + "".join(f"-{v}" for v in h.values()) for n, h in CASES])
def test_method_contract(name, hp, problem, tmp_path):
    # hparams a method computes from the data (score_ve's sigma_max = "data") are resolved as the harness does
    cls = METHODS.get(name)
    hp = {**hp, **{k: cls.resolve_data_hparam(k, problem.target.train) for k in cls.data_hparams
                   if get_method(name, **hp).hparams.get(k) == "data"}}
    method = get_method(name, **hp)
    store = ArtifactStore(tmp_path / "a")
    trained = train_model(method, problem, CFG, seed=3, store=store)

    # a short training lowers the loss (mean of the first vs the last tenth of the loss curve)
    losses = torch.tensor(trained.losses)
    if name in FIXED_TARGET:
        assert torch.isfinite(losses).all()
        fixed = get_method(name, **{**hp, **FIXED_TARGET[name]})
        losses = torch.tensor(train_model(fixed, problem, CFG, seed=3, store=ArtifactStore(tmp_path / "f")).losses)
    k = max(1, len(losses) // 10)
    assert torch.isfinite(losses).all()
    assert losses[-k:].mean() < losses[:k].mean(), f"{name}: loss did not fall: {losses.tolist()}"

    # dynamics: what the method declares it offers is what its dynamics fill in (the plan trusts the declaration)
    dyn = method.dynamics(trained.model)
    assert dyn.offers() == method.offers(), f"{name}: declares {method.offers()}, dynamics give {dyn.offers()}"
    # dynamics: shapes and interval
    assert 0.0 <= dyn.t0 < dyn.t1 <= 1.0
    x = torch.randn(5, *problem.target.shape)
    t = torch.full((5,), 0.5 * (dyn.t0 + dyn.t1))
    with torch.no_grad():
        if dyn.velocity is not None:
            assert dyn.velocity(x, t).shape == x.shape
        if dyn.drift is not None:
            assert dyn.drift(x, t).shape == x.shape
            assert dyn.diffusion(t).shape == t.shape

    # fixed seed -> identical samples (a second training from scratch in a fresh store), and the cached
    # model loads back to the same numbers
    again = train_model(get_method(name, **hp), problem, CFG, seed=3, store=ArtifactStore(tmp_path / "b"))
    loaded = train_model(get_method(name, **hp), problem, CFG, seed=3, store=store)
    assert not again.cached and loaded.cached and loaded.key == trained.key == again.key
    for solver, nfe in solvers_for(dyn):
        ref = draw_samples(method, trained, problem, solver, nfe)
        assert ref.shape == (64, *problem.target.shape) and torch.isfinite(ref).all()
        assert torch.equal(ref, draw_samples(method, again, problem, solver, nfe)), f"{name}/{solver}: seed"
        assert torch.equal(ref, draw_samples(method, loaded, problem, solver, nfe)), f"{name}/{solver}: load"


def test_methods_declare_metadata():
    for name in METHODS.names():
        cls = METHODS.get(name)
        assert cls.name == name and cls.reference and cls.citation, f"{name} lacks name/reference/citation"
