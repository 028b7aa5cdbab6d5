"""Training: the EMA moves toward the trained weights and lowers the loss, and every setting a model depends on
keys the model cache (a changed setting retrains). An EMA no-op and a key without ``train.steps`` once passed every
test."""

from __future__ import annotations

import copy
from dataclasses import asdict, fields

import pytest
import torch
from threads import torch_threads

from odebench.bench.data import load_dataset
from odebench.bench.harness.artifacts import ArtifactStore
from odebench.bench.harness.train import Problem, TrainConfig, build_model, fit, model_key, train_model
from odebench.methods import get_method
from odebench.methods.couplings import IndependentCoupling


@pytest.fixture(autouse=True)
def one_thread():
    with torch_threads(1):
        yield


def _moons_problem(net=None) -> Problem:
    return Problem(target=load_dataset("moons", n_train=2000, n_test=256), source=None,
                   net=net or {"name": "mlp", "hidden": 32, "depth": 2})


def _held_out_loss(method, model, problem, seed=123) -> float:
    gen = torch.Generator().manual_seed(seed)
    x1 = problem.target.test
    x0 = torch.randn(x1.shape, generator=gen)
    with torch.no_grad():
        return float(sum(method.loss(model, x0, x1, gen) for _ in range(8)) / 8)


def _flat(model) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def test_ema_weights_move_toward_the_trained_weights_and_lower_the_loss():
    method, problem = get_method("fm_ot"), _moons_problem()
    torch.manual_seed(0)
    model = build_model(method, problem)
    initial = copy.deepcopy(model)
    coupling = IndependentCoupling(lambda n, g: torch.randn(n, 2, generator=g),
                                   lambda n, g: problem.target.sample(n, g))
    cfg = TrainConfig(steps=300, batch_size=128, lr=3e-3, ema_decay=0.99)
    ema, _ = fit(method, model, coupling, cfg, torch.Generator().manual_seed(1))
    w0, w_ema, w_raw = _flat(initial), _flat(ema), _flat(model)
    assert not torch.equal(w_ema, w0)  # the EMA moved
    assert (w_ema - w_raw).norm() < 0.5 * (w0 - w_raw).norm()  # toward the trained weights
    assert not torch.equal(w_ema, w_raw)  # but it is an average, not a copy of the last step
    assert _held_out_loss(method, ema, problem) < 0.8 * _held_out_loss(method, initial, problem)


# ------------------------------------------------------------------------------------------ model cache key
def _key(method=None, problem=None, cfg=None, seed=0, parent=None, precision="fp32"):
    return model_key(method or get_method("fm_ot"), problem or _moons_problem(), cfg or TrainConfig(), seed,
                     parent, precision)


def _changed(value):
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 1
    if isinstance(value, float):
        return value * 0.5 + 0.125
    if isinstance(value, str):
        return value + "_other"
    raise TypeError(value)


@pytest.mark.parametrize("name", [f.name for f in fields(TrainConfig)])
def test_every_training_setting_changes_the_model_key(name):
    base = TrainConfig()
    changed = TrainConfig(**{**asdict(base), name: _changed(getattr(base, name))})
    assert _key(cfg=changed) != _key(cfg=base)


@pytest.mark.parametrize("name", ["hidden", "depth", "time_dim", "name"])
def test_every_net_setting_changes_the_model_key(name):
    net = {"name": "mlp", "hidden": 32, "depth": 2, "time_dim": 32}
    other = {**net, name: "unet" if name == "name" else _changed(net[name])}
    assert _key(problem=_moons_problem(other)) != _key(problem=_moons_problem(net))


#: a base config per method where the default hides hparams by design (round 1 of rf ignores its pair
#: settings, an interpolant without latent noise its t_eps)
BASE_HPARAMS = {"rf": {"k": 2}, "interpolant": {"gamma": 1.0}}  # gamma = 0 drops t_eps
#: a valid other value for string hparams
OTHER_STRING = {"path": "trig", "pair_solver": "heun"}


def test_every_training_hparam_of_every_method_changes_the_model_key():
    from odebench.methods import METHODS

    checked = 0
    for name in METHODS.names():
        base = get_method(name, **BASE_HPARAMS.get(name, {}))
        for hp, value in base.hparams.items():
            if hp in METHODS.get(name).sampling_hparams:
                continue
            other = get_method(name, **{**base.hparams, hp: OTHER_STRING.get(hp) or _changed(value)})
            assert _key(method=other) != _key(method=base), f"{name}.{hp} does not change the model key"
            checked += 1
    assert checked >= 14


def test_sampling_only_hparams_leave_the_model_key_alone():
    from odebench.methods import METHODS

    for name in METHODS.names():
        cls = METHODS.get(name)
        for hp in cls.sampling_hparams:
            value = get_method(name).hparams[hp]
            assert _key(method=get_method(name, **{hp: _changed(value)})) == _key(method=get_method(name))


def test_data_seed_target_source_parent_and_precision_change_the_model_key():
    base = _key()
    assert _key(seed=1) != base
    assert _key(parent="abc") != base
    assert _key(precision="bf16") != base
    p = _moons_problem()
    assert _key(problem=Problem(p.target, p.source, p.net, data_seed=1)) != base
    other = Problem(load_dataset("circles", n_train=200, n_test=50), None, p.net)
    assert _key(problem=other) != base
    transfer = Problem(p.target, load_dataset("8gaussians", n_train=200, n_test=50), p.net)
    assert _key(problem=transfer) != base


def test_a_run_with_more_steps_retrains(tmp_path, monkeypatch):
    import odebench.bench.harness.train

    calls = []
    real_fit = odebench.bench.harness.train.fit
    monkeypatch.setattr(odebench.bench.harness.train, "fit",
                        lambda *a, **k: calls.append(a[3].steps) or real_fit(*a, **k))
    store, method, problem = ArtifactStore(tmp_path), get_method("fm_ot"), _moons_problem()
    first = train_model(method, problem, TrainConfig(steps=20, batch_size=32), 0, store)
    again = train_model(method, problem, TrainConfig(steps=20, batch_size=32), 0, store)
    longer = train_model(method, problem, TrainConfig(steps=30, batch_size=32), 0, store)
    assert calls == [20, 30]
    assert again.cached and again.key == first.key
    assert not longer.cached and longer.key != first.key


