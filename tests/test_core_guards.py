"""Behaviour of the core that every number depends on, stated so that a broken implementation fails.

Each test here kills a mutation that once passed the whole suite: per-sample seeding that ignores the index
or the seed, an "atomic" write that writes in place, an EMA that never moves, a model cache key that forgets a
training setting, and reflow pairs that lose their coupling.
"""

from __future__ import annotations

import copy
import os
from dataclasses import asdict, fields
from pathlib import Path

import pytest
import torch

from bench import artifacts, seeding
from bench.artifacts import ArtifactStore, atomic_write_bytes
from bench.data import load_dataset
from bench.solvers import sample
from bench.train import Problem, TrainConfig, build_model, fit, model_key, train_model
from methods import get_method
from methods.couplings import IndependentCoupling
from metrics.paths import reference_trajectory, straightness_from_velocities


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# ------------------------------------------------------------------------------------------------ seeding
def _normal3(gen: torch.Generator) -> torch.Tensor:
    return torch.randn(1, 3, generator=gen)


def test_per_sample_draws_differ_between_indices():
    x = seeding.per_sample(_normal3, 0, "x0", 0, 16)
    assert x.shape == (16, 3)
    assert torch.unique(x, dim=0).shape[0] == 16  # no two indices share a stream


def test_per_sample_draws_differ_between_seeds_and_tags():
    a = seeding.per_sample(_normal3, 0, "x0", 0, 8)
    assert not torch.equal(a, seeding.per_sample(_normal3, 1, "x0", 0, 8))
    assert not torch.equal(a, seeding.per_sample(_normal3, 0, "x1", 0, 8))
    # every row differs, not just one: a seed that only shifts the index would share rows
    b = seeding.per_sample(_normal3, 1, "x0", 0, 8)
    assert not any(torch.equal(r, s) for r in a for s in b)


def test_per_sample_draw_depends_only_on_seed_and_index():
    whole = seeding.per_sample(_normal3, 7, "x0", 0, 10)
    parts = torch.cat([seeding.per_sample(_normal3, 7, "x0", 0, 3), seeding.per_sample(_normal3, 7, "x0", 3, 7)])
    assert torch.equal(whole, parts)
    assert torch.equal(whole[5:6], seeding.per_sample(_normal3, 7, "x0", 5, 1))


def test_derived_streams_are_distinct_and_reproducible():
    draw = [torch.rand(4, generator=seeding.derive(0, *tags)) for tags in (("a",), ("b",), ("a", 1))]
    assert not torch.equal(draw[0], draw[1]) and not torch.equal(draw[0], draw[2])
    assert torch.equal(draw[0], torch.rand(4, generator=seeding.derive(0, "a")))
    assert not torch.equal(draw[0], torch.rand(4, generator=seeding.derive(1, "a")))


# ------------------------------------------------------------------------------------------ atomic writes
def test_a_failed_replace_leaves_the_old_file_and_no_partial_file(tmp_path, monkeypatch):
    target = tmp_path / "record.json"
    target.write_bytes(b"old")

    def broken_replace(src, dst):
        raise OSError("disk pulled out between write and rename")

    monkeypatch.setattr(artifacts.os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk pulled"):
        atomic_write_bytes(target, b"new content")
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["record.json"]  # no temp file left behind


def test_the_final_path_shows_only_whole_contents(tmp_path, monkeypatch):
    """Observed from outside at the moment the data is flushed: the final path still holds the old bytes,
    and the new bytes reach it only by one rename of a synced file."""
    target = tmp_path / "model.pt"
    target.write_bytes(b"old")
    seen_at_fsync, renames = [], []
    real_fsync, real_replace = os.fsync, os.replace

    def spying_fsync(fd):
        seen_at_fsync.append(target.read_bytes())
        return real_fsync(fd)

    def spying_replace(src, dst):
        renames.append((Path(src).read_bytes(), Path(dst)))
        return real_replace(src, dst)

    monkeypatch.setattr(artifacts.os, "fsync", spying_fsync)
    monkeypatch.setattr(artifacts.os, "replace", spying_replace)
    atomic_write_bytes(target, b"new content")
    assert seen_at_fsync == [b"old"]
    assert renames == [(b"new content", target)]
    assert target.read_bytes() == b"new content"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pt"]


# ------------------------------------------------------------------------------------------------- EMA
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
    from methods import METHODS

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
    from methods import METHODS

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
    import bench.train

    calls = []
    real_fit = bench.train.fit
    monkeypatch.setattr(bench.train, "fit", lambda *a, **k: calls.append(a[3].steps) or real_fit(*a, **k))
    store, method, problem = ArtifactStore(tmp_path), get_method("fm_ot"), _moons_problem()
    first = train_model(method, problem, TrainConfig(steps=20, batch_size=32), 0, store)
    again = train_model(method, problem, TrainConfig(steps=20, batch_size=32), 0, store)
    longer = train_model(method, problem, TrainConfig(steps=30, batch_size=32), 0, store)
    assert calls == [20, 30]
    assert again.cached and again.key == first.key
    assert not longer.cached and longer.key != first.key


# ------------------------------------------------------------------------------------------- reflow pairs
PAIRS = {"n_pairs": 512, "pair_solver": "euler", "pair_nfe": 16}


@pytest.fixture(scope="module")
def reflow_models(tmp_path_factory):
    torch.set_num_threads(1)
    problem = _moons_problem({"name": "mlp", "hidden": 64, "depth": 2})
    store = ArtifactStore(tmp_path_factory.mktemp("reflow"))
    cfg = TrainConfig(steps=600, batch_size=256, lr=3e-3, ema_decay=0.99)
    rf2 = train_model(get_method("rf", k=2, **PAIRS), problem, cfg, 0, store)
    return problem, rf2.parent, rf2


def test_reflow_pairs_are_the_parent_flow_of_each_source_point(reflow_models):
    _, rf1, _ = reflow_models
    method = get_method("rf", k=2, **PAIRS)
    x0 = torch.randn(64, 2, generator=torch.Generator().manual_seed(3))
    x1 = method.make_pairs(rf1.model, x0, torch.Generator().manual_seed(4))
    assert x1.shape == x0.shape
    with torch.no_grad():  # each pair solved alone: x1[i] = ODE(x0[i]) of the parent's field
        alone = torch.cat([sample(method.dynamics_of(rf1.model), x0[i:i + 1], "euler", nfe=16).x
                           for i in range(len(x0))])
    torch.testing.assert_close(x1, alone, rtol=1e-5, atol=1e-5)


def _straightness(model, method) -> float:
    x0 = torch.randn(256, 2, generator=torch.Generator().manual_seed(9))
    field = method.dynamics(model).velocity
    traj, t, vel = reference_trajectory(field, x0, n_steps=50)
    return float(straightness_from_velocities(traj, t, vel).mean())


def test_a_reflowed_flow_is_straighter_than_its_parent(reflow_models):
    _, rf1, rf2 = reflow_models
    s1 = _straightness(rf1.model, get_method("rf", k=1))
    s2 = _straightness(rf2.model, get_method("rf", k=2, **PAIRS))
    assert s2 < 0.3 * s1, (s1, s2)
