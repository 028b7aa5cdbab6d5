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
from odebench.bench.harness.process.runtime import Runtime
from odebench.bench.harness.store.artifacts import ArtifactStore
from odebench.bench.harness.training.train import (
    Problem,
    TrainConfig,
    TrainedModel,
    build_model,
    fit,
    model_key,
    source_sampler,
    train_model,
)
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
        other = value * 0.5 + 0.125
        return other if other != value else value * 0.5  # 0.25 is this map's fixed point
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
BASE_HPARAMS = {"rf": {"k": 2}, "interpolant": {"gamma": 1.0},  # gamma = 0 drops t_eps
                "score_ve": {"sigma_max": 12.0}}  # a number, as the harness resolves "data" to
#: a valid other value for string hparams
OTHER_STRING = {"path": "trig", "pair_solver": "heun", "pairing": "permutation", "init": "scratch",
                "predictor": "euler_maruyama", "sigma_max": 20.0, "teacher": "fm_ot", "distance": "pseudo_huber",
                "tr_sampler": "v0", "denoise_timesteps": 64}  # a power of two


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
            other = OTHER_STRING.get(hp) or _changed(value)
            assert _key(method=get_method(name, **{hp: other})) == _key(method=get_method(name))


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
    import odebench.bench.harness.training.train

    calls = []
    real_fit = odebench.bench.harness.training.train.fit
    monkeypatch.setattr(odebench.bench.harness.training.train, "fit",
                        lambda *a, **k: calls.append(a[3].steps) or real_fit(*a, **k))
    store, method, problem = ArtifactStore(tmp_path), get_method("fm_ot"), _moons_problem()
    first = train_model(method, problem, TrainConfig(steps=20, batch_size=32), 0, store)
    again = train_model(method, problem, TrainConfig(steps=20, batch_size=32), 0, store)
    longer = train_model(method, problem, TrainConfig(steps=30, batch_size=32), 0, store)
    assert calls == [20, 30]
    assert again.cached and again.key == first.key
    assert not longer.cached and longer.key != first.key




# ------------------------------------------------------------------------------------------ the train-once cache
TINY = TrainConfig(steps=12, batch_size=32, lr=1e-3)


def _tiny_problem(source=None) -> Problem:
    return Problem(target=load_dataset("moons", n_train=256, n_test=32), source=source,
                   net={"name": "mlp", "hidden": 8, "depth": 1})


def test_a_cached_model_returns_its_saved_weights_timing_and_loss_curve(tmp_path):
    """The second call loads the first call's EMA weights, training seconds and loss curve from the store."""
    store, method, problem = ArtifactStore(tmp_path), get_method("fm_ot"), _tiny_problem()
    first = train_model(method, problem, TINY, 0, store)
    again = train_model(method, problem, TINY, 0, store)
    assert again.cached and not first.cached
    assert again.losses == first.losses and len(first.losses) > 1
    assert again.seconds == first.seconds > 0
    assert torch.equal(_flat(again.model), _flat(first.model))


def test_total_train_seconds_adds_the_parent_chain():
    """A reflow round's cost includes its parents' training time, and a root model's is its own."""
    root = TrainedModel(model=None, key="a", seconds=3.0, cached=False)
    child = TrainedModel(model=None, key="b", seconds=2.0, cached=False, parent=root)
    assert root.total_train_seconds() == 3.0
    assert TrainedModel(model=None, key="c", seconds=0.5, cached=True, parent=child).total_train_seconds() == 5.5


def test_source_sampler_draws_from_the_source_dataset_or_the_prior_reproducibly():
    """With a source dataset, x0 are n of its points drawn by ``gen``; without, n prior draws (gen optional)."""
    method = get_method("fm_ot")
    source = load_dataset("8gaussians", n_train=256, n_test=32)
    draw = source_sampler(method, _tiny_problem(source), "cpu")
    a, b = draw(7, torch.Generator().manual_seed(4)), draw(7, torch.Generator().manual_seed(4))
    assert a.shape == (7, 2) and torch.equal(a, b)
    assert torch.equal(a, source.sample(7, torch.Generator().manual_seed(4)))
    assert not torch.equal(a, draw(7, torch.Generator().manual_seed(5)))
    prior = source_sampler(method, _tiny_problem(), "cpu")
    assert torch.equal(prior(5, torch.Generator().manual_seed(2)), prior(5, torch.Generator().manual_seed(2)))
    assert prior(5, None).shape == (5, 2)  # no generator: the global RNG, on the requested device


def test_training_shows_no_progress_bar_unless_asked(tmp_path, capsys):
    """progress=False (the default) writes nothing to the terminal, for a reflow chain's parent too."""
    method = get_method("rf", k=2, n_pairs=64, pair_solver="euler", pair_nfe=2)
    train_model(method, _tiny_problem(), TINY, 0, ArtifactStore(tmp_path))
    captured = capsys.readouterr()
    assert captured.err == "" and captured.out == ""


def test_reflow_training_is_reproducible_and_bf16_gets_its_own_keys(tmp_path):
    """A reflow round trained over a cached parent equals one trained with its parent (pair sources come from
    the seed, not from whatever the global RNG holds); a bf16 run keys the model and its parent apart."""
    method = get_method("rf", k=2, n_pairs=64, pair_solver="euler", pair_nfe=2)
    problem = _tiny_problem()
    a = train_model(method, problem, TINY, 0, ArtifactStore(tmp_path / "a"))
    train_model(method.parent(), problem, TINY, 0, ArtifactStore(tmp_path / "b"))
    torch.manual_seed(12345)
    b = train_model(method, problem, TINY, 0, ArtifactStore(tmp_path / "b"))
    assert b.parent.cached and not b.cached and torch.equal(_flat(a.model), _flat(b.model))
    bf = train_model(method, problem, TINY, 0, ArtifactStore(tmp_path / "a"), runtime=Runtime("cpu", "bf16"))
    assert not bf.cached and not bf.parent.cached
    assert bf.key != a.key and bf.parent.key != a.parent.key
    assert bf.parent.key == model_key(method.parent(), problem, TINY, 0, None, "bf16")


def test_model_keys_are_pinned():
    """A model's key names its file in the cache: the same configuration keeps the same key across releases
    (and an fp32 key, given or defaulted, is the key from before bf16 existed)."""
    problem = _tiny_problem()
    key = model_key(get_method("fm_ot"), problem, TrainConfig(), 0, None)
    assert key == "4690e638e0d0b430"
    assert model_key(get_method("fm_ot"), problem, TrainConfig(), 0, None, "fp32") == key


# ------------------------------------------------------------------------- what train_model hands on and stores
def _fake_fit(seen):
    """A stand-in for ``fit`` that records its arguments and returns the initial weights with a fixed curve."""

    def fake(method, model, coupling, cfg, gen, progress=False, **kw):
        seen.update(gen_state=gen.get_state(), progress=progress, **kw)
        return copy.deepcopy(model).eval(), [0.5, 0.25]

    return fake


def _initial_weights(method, problem, seed, key):
    from odebench.bench.core import seeding
    from odebench.bench.harness.training.train import build_model

    torch.manual_seed(seeding.seed_of(seed, key, "init"))
    return _flat(build_model(method, problem))


def test_train_model_hands_fit_its_settings_and_stores_the_run(tmp_path, monkeypatch):
    """fit gets the batch stream derive(seed, key, "batches"), the progress flag, a label naming the method
    and the runtime; the net starts from the init seed seed_of(seed, key, "init"); the store's meta holds the
    target, source, settings, seed, seconds (within the call's wall time), losses and runtime; the result is
    marked as freshly trained."""
    import time

    import odebench.bench.harness.training.train as train
    from odebench.bench.core import seeding

    seen = {}
    monkeypatch.setattr(train, "fit", _fake_fit(seen))
    store, method, problem = ArtifactStore(tmp_path), get_method("fm_ot"), _tiny_problem()
    start = time.perf_counter()
    tm = train_model(method, problem, TINY, 3, store, progress=True)
    elapsed = time.perf_counter() - start
    assert torch.equal(seen["gen_state"], seeding.derive(3, tm.key, "batches").get_state())
    assert seen["progress"] is True and seen["label"] == "train fm_ot" and seen["runtime"] == Runtime("cpu")
    assert torch.equal(_flat(tm.model), _initial_weights(method, problem, 3, tm.key))
    assert tm.cached is False and tm.losses == [0.5, 0.25] and 0 < tm.seconds <= elapsed
    meta = store.load(tm.key, train.build_model(method, problem), "cpu")
    assert meta["target"] == "moons" and meta["source"] == problem.source_name() and meta["seed"] == 3
    assert meta["train"] == asdict(TINY) and meta["losses"] == [0.5, 0.25]
    assert meta["train_seconds"] == tm.seconds and meta["runtime"] == Runtime("cpu").record()


def test_under_torchrun_the_rank_has_its_own_batch_stream_and_keeps_the_runtime(tmp_path, monkeypatch):
    """With several processes, train_model asks the process group for this rank's device, keeps precision and
    compile, and draws batches from derive(seed, key, "batches", rank)."""
    import odebench.bench.harness.training.train as train
    from odebench.bench.core import seeding
    from odebench.bench.harness.process import distributed

    inits, seen = [], {}
    monkeypatch.setattr(distributed, "is_distributed", lambda: True)
    monkeypatch.setattr(distributed, "rank", lambda: 1)
    monkeypatch.setattr(distributed, "is_main", lambda: True)
    monkeypatch.setattr(distributed, "init", lambda device: inits.append(device) or device)
    monkeypatch.setattr(train, "fit", _fake_fit(seen))
    runtime = Runtime("cpu", "bf16", compile=True)
    store = ArtifactStore(tmp_path)
    tm = train_model(get_method("fm_ot"), _tiny_problem(), TINY, 0, store, runtime=runtime)
    assert inits == ["cpu"] and seen["runtime"] == runtime
    assert torch.equal(seen["gen_state"], seeding.derive(0, tm.key, "batches", 1).get_state())
    meta = store.load(tm.key, train.build_model(get_method("fm_ot"), _tiny_problem()), "cpu")
    assert meta["runtime"] == runtime.record()


def test_reflow_pairs_and_held_out_pairs_get_generators_from_the_seed(tmp_path, monkeypatch):
    """make_pairs receives derive(seed, key, "pairs") for the training pairs and derive(seed, key,
    "heldout-pairs") for the held-out ones, so a method whose pairing draws stays reproducible."""
    import odebench.bench.harness.training.train as train
    from odebench.bench.core import seeding

    monkeypatch.setattr(train, "fit", _fake_fit({}))
    method = get_method("rf", k=2, n_pairs=16, pair_solver="euler", pair_nfe=1)
    states, real = [], method.make_pairs
    monkeypatch.setattr(method, "make_pairs",
                        lambda parent, x0, gen: states.append(gen.get_state()) or real(parent, x0, gen))
    tm = train_model(method, _tiny_problem(), TINY, 2, ArtifactStore(tmp_path))
    assert len(states) == 2
    assert torch.equal(states[0], seeding.derive(2, tm.key, "pairs").get_state())
    assert torch.equal(states[1], seeding.derive(2, tm.key, "heldout-pairs").get_state())


def test_every_target_draw_of_a_training_run_comes_from_a_generator(tmp_path, monkeypatch):
    """Training batches (and the cost-measuring batch) are drawn from the target with a seeded generator, never
    from the global RNG."""
    problem = _tiny_problem()
    gens, real = [], problem.target.sample
    monkeypatch.setattr(problem.target, "sample", lambda n, gen=None, device="cpu": gens.append(gen)
                        or real(n, gen, device))
    train_model(get_method("fm_ot"), problem, TrainConfig(steps=3, batch_size=16), 0, ArtifactStore(tmp_path))
    assert len(gens) >= 4 and all(isinstance(g, torch.Generator) for g in gens)


# ------------------------------------------------------------------------------------------------ one step of fit
def _step_setup(seed=0):
    method, problem = get_method("fm_ot"), _tiny_problem()
    torch.manual_seed(seed)
    model = build_model(method, problem)
    coupling = IndependentCoupling(source_sampler(method, problem, "cpu"), lambda n, g: problem.target.sample(n, g))
    return method, model, coupling


def test_a_train_step_is_the_documented_adam_clip_and_ema_update():
    """Each step draws its batch and loss randomness from the generator, takes one clipped Adam step with the
    configured lr and weight decay, and moves the EMA by w = 1 - min(decay, (1 + i) / (10 + i))."""
    from odebench.bench.harness.training.train import make_train_step

    for cfg in (TrainConfig(batch_size=16, lr=0.05, ema_decay=0.5, grad_clip=0.5, weight_decay=0.1),
                TrainConfig(batch_size=16, lr=0.02, ema_decay=0.999, grad_clip=0.0)):
        method, model, coupling = _step_setup()
        ref, ref_ema = copy.deepcopy(model), copy.deepcopy(model)
        ema = copy.deepcopy(model)
        step = make_train_step(method, model, ema, coupling, cfg, torch.Generator().manual_seed(7), Runtime("cpu"))
        gen = torch.Generator().manual_seed(7)
        opt = torch.optim.Adam(ref.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        for i in range(6):
            x0, x1 = coupling.draw(16, gen)
            loss = method.loss(ref, x0, x1, gen)
            opt.zero_grad()
            loss.backward()
            if cfg.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(list(ref.parameters()), cfg.grad_clip)
            opt.step()
            w = 1 - min(cfg.ema_decay, (1 + i) / (10 + i))
            with torch.no_grad():
                for pe, p in zip(ref_ema.parameters(), ref.parameters(), strict=True):
                    pe += w * (p - pe)
            torch.testing.assert_close(step(i), loss.detach())
            torch.testing.assert_close(_flat(model), _flat(ref))
            torch.testing.assert_close(_flat(ema), _flat(ref_ema))


def test_a_train_step_compiles_and_wraps_the_networks_when_asked(monkeypatch):
    """runtime.compile hands the model to compile_modules, and under torchrun the networks go through
    distributed.wrap; the step then trains through what they return."""
    import odebench.bench.harness.training.train as train
    from odebench.bench.harness.process import distributed

    seen = []
    monkeypatch.setattr(train, "compile_modules", lambda m: seen.append(("compile", m)) or m)
    monkeypatch.setattr(distributed, "is_distributed", lambda: True)
    monkeypatch.setattr(distributed, "wrap", lambda m: seen.append(("wrap", m)) or m)
    method, model, coupling = _step_setup()
    step = train.make_train_step(method, model, copy.deepcopy(model), coupling, TrainConfig(batch_size=8),
                                 torch.Generator().manual_seed(0), Runtime("cpu", compile=True))
    assert [k for k, _ in seen] == ["compile", "wrap"] and all(m is model for _, m in seen)
    assert torch.isfinite(step(0))


class _Quadratic:
    """A stand-in method whose loss is |w|^2 of a one-weight network (fast steps, no data)."""

    def loss(self, net, x0, x1, gen):
        return net["v"].weight.pow(2).sum()


class _NoData:
    def draw(self, n, gen):
        return torch.zeros(n, 1), torch.zeros(n, 1)


def test_the_loss_curve_holds_one_mean_per_chunk_of_min_steps_over_100_and_50():
    """chunk = max(1, min(steps // 100, 50)): 7 steps give 7 points, 200 give 100, 5100 give 102."""
    for steps, points in ((7, 7), (200, 100), (5100, 102)):
        model = torch.nn.ModuleDict({"v": torch.nn.Linear(1, 1, bias=False)})
        _, losses = fit(_Quadratic(), model, _NoData(), TrainConfig(steps=steps, batch_size=1, lr=1e-4),
                        torch.Generator().manual_seed(0))
        assert len(losses) == points


def test_fit_is_quiet_by_default_reproducible_from_its_generator_and_returns_a_frozen_ema(capsys):
    """fit with no progress argument prints nothing; its result depends on the generator, not on the global
    RNG; the EMA comes back in eval mode with no parameter requiring gradients."""
    method, problem = get_method("fm_ot"), _tiny_problem()
    out = []
    for global_seed in (1, 2):
        torch.manual_seed(0)
        model = build_model(method, problem)
        coupling = IndependentCoupling(source_sampler(method, problem, "cpu"),
                                       lambda n, g: problem.target.sample(n, g))
        torch.manual_seed(global_seed)
        ema, _ = fit(method, model, coupling, TrainConfig(steps=4, batch_size=8), torch.Generator().manual_seed(3))
        out.append(_flat(ema))
        assert not ema.training and not any(p.requires_grad for p in ema.parameters())
    assert torch.equal(out[0], out[1])
    captured = capsys.readouterr()
    assert captured.err == "" and captured.out == ""


def test_build_model_hands_the_target_shape_to_the_method():
    """A method's networks() is told the target's sample shape."""
    shapes = []

    class Probe:
        def networks(self, make_net, shape):
            shapes.append(shape)
            return torch.nn.ModuleDict({"v": make_net()})

    problem = _tiny_problem()
    build_model(Probe(), problem)
    assert shapes == [problem.target.shape]


def test_bf16_model_keys_are_pinned():
    """A bf16 model's key (which names the precision) stays the same across releases."""
    key = model_key(get_method("fm_ot"), _tiny_problem(), TrainConfig(), 0, None, "bf16")
    assert key == "cb27c912b57a84ce"


class _Recording(_Quadratic):
    """_Quadratic that remembers the value of every step's loss."""

    def __init__(self):
        self.values = []

    def loss(self, net, x0, x1, gen):
        out = super().loss(net, x0, x1, gen)
        self.values.append(out.item())
        return out


def test_each_loss_curve_point_is_the_mean_of_its_chunk_and_a_last_partial_chunk_counts():
    """With 301 steps (chunk 3) the curve holds the 100 means of steps 3j .. 3j + 2, then the last step's loss
    alone."""
    method = _Recording()
    model = torch.nn.ModuleDict({"v": torch.nn.Linear(1, 1, bias=False)})
    _, losses = fit(method, model, _NoData(), TrainConfig(steps=301, batch_size=1, lr=1e-2),
                    torch.Generator().manual_seed(0))
    v = method.values
    want = [sum(v[3 * j: 3 * j + 3]) / 3 for j in range(100)] + [v[300]]
    assert losses == pytest.approx(want, rel=1e-6)


def test_fit_shows_a_progress_bar_with_its_label_when_asked(capsys):
    """progress=True draws a bar labelled with ``label`` on stderr, also when stderr is not a terminal."""
    model = torch.nn.ModuleDict({"v": torch.nn.Linear(1, 1, bias=False)})
    fit(_Quadratic(), model, _NoData(), TrainConfig(steps=3, batch_size=1), torch.Generator().manual_seed(0),
        progress=True, label="train probe")
    assert "train probe" in capsys.readouterr().err
