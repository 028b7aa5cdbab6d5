"""Every trained model records its cost (FLOPs per step, forward-equivalents, parameters, pair generation, the
parents' cost) and a held-out loss curve with a converged / still-improving verdict; measuring them leaves the
training itself unchanged."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from threads import torch_threads

from odebench.bench.data import load_dataset
from odebench.bench.harness.store.artifacts import ArtifactStore
from odebench.bench.harness.training import evidence as ev
from odebench.bench.harness.training.train import Problem, TrainConfig, build_model, fit, train_model
from odebench.methods import get_method
from odebench.methods.couplings import IndependentCoupling

NET = {"name": "mlp", "hidden": 32, "depth": 2}


@pytest.fixture(scope="module")
def problem() -> Problem:
    return Problem(load_dataset("moons", n_train=2000, n_test=512), None, NET)


def _curve(values):
    return [(i * 10, v) for i, v in enumerate(values)]


def test_the_convergence_rule():
    plateau = [2 + math.exp(-i / 2) for i in range(21)]
    assert ev.judge_convergence(_curve(plateau))["converged"] is True
    falling = [3 - 0.05 * i for i in range(21)]  # a straight fall: the last quarter carries 0.25 of the 0.95 it
    verdict = ev.judge_convergence(_curve(falling))  # fell after the first evaluation
    assert verdict["converged"] is False and verdict["relative_drop"] == pytest.approx(0.25 / 0.95)
    # a steep first drop does not hide a later fall: 1.0 -> 0.14 in the first twentieth, then a third more
    steep = [1.0, 0.14] + [0.14 - 0.04 * (1 - math.exp(-i / 8)) / (1 - math.exp(-19 / 8)) for i in range(1, 20)]
    assert ev.judge_convergence(_curve(steep))["converged"] is False
    negative = [-0.8 + 0.8 * math.exp(-i) for i in range(21)]  # the interpolant's loss goes below zero
    assert ev.judge_convergence(_curve(negative))["converged"] is True
    to_zero = [0.5 * math.exp(-i) for i in range(21)]  # relative to itself it keeps halving; to its fall, not
    assert ev.judge_convergence(_curve(to_zero))["converged"] is True
    assert ev.judge_convergence(_curve([1.0] * 21))["converged"] is True  # nothing left to fall
    assert ev.judge_convergence(_curve([1.0, float("nan")] * 10 + [1.0]))["converged"] is None
    short = ev.judge_convergence(_curve([3 - 0.05 * i for i in range(ev.MIN_EVALS - 1)]))
    assert short["converged"] is None and "fewer than" in short["reason"]
    assert verdict["rule_version"] == ev.CONVERGENCE_RULE_VERSION and "rule v" in verdict["rule"]


def _noise(n: int, scale: float, seed: int = 0) -> list[float]:
    gen = torch.Generator().manual_seed(seed)
    return (scale * torch.randn(n, generator=gen, dtype=torch.float64)).tolist()


def test_a_noisy_flat_curve_is_converged():
    """After the first drop the loss only scatters around 1.0: its last quarter may sit a little below the
    quarter before, but not by more than the scatter explains."""
    for seed in range(20):
        values = [3.0] + [1.0 + e for e in _noise(20, 0.01, seed)]
        verdict = ev.judge_convergence(_curve(values))
        assert verdict["converged"] is True, (seed, verdict)
        assert verdict["fall"] <= ev.Z_SCORE * verdict["fall_se"]


def test_a_slow_steady_fall_is_still_improving():
    """A fall of 0.002 per evaluation under noise of 0.001: small against the loss (2.0), real against the
    noise and 25 % of what the loss fell since the first evaluation."""
    for seed in range(20):
        values = [3.0] + [2.0 - 0.002 * i + e for i, e in enumerate(_noise(20, 0.001, seed))]
        verdict = ev.judge_convergence(_curve(values))
        assert verdict["converged"] is False, (seed, verdict)
        assert verdict["fall"] > ev.Z_SCORE * verdict["fall_se"] and verdict["fall"] == pytest.approx(0.01, rel=0.5)


#: a reflowed flow (rf k = 3 on 8gaussians, study-toy) on its own pairs: the held-out loss wanders around 5e-5;
#: rule version 1 read its last quarter as a fall of 75 % of its whole fall and called it still improving
NOISE_LEVEL = [7.56e-05, 8.23e-05, 7.24e-05, 6.92e-05, 6.4e-05, 8.63e-05, 7.37e-05, 6.27e-05, 6.07e-05, 5.42e-05,
               5.44e-05, 5.09e-05, 4.74e-05, 9.13e-05, 8.87e-05, 6.89e-05, 5.95e-05, 5.25e-05, 4.79e-05, 4.54e-05,
               4.82e-05]


def test_a_noise_level_loss_near_zero_is_converged():
    assert ev.judge_convergence(_curve(NOISE_LEVEL))["converged"] is True
    for seed in range(20):  # and a loss of 1e-5 scattering by a fifth of itself, wherever it lies
        values = [1e-3] + [1e-5 * (1 + e) for e in _noise(20, 0.2, seed)]
        assert ev.judge_convergence(_curve(values))["converged"] is True, seed


def _cost(method, problem):
    with torch_threads(1):
        model = build_model(method, problem)
        from odebench.bench.nets import build_net

        x1 = problem.target.train[:64]
        return ev.step_cost(method, model, build_net(problem.net, problem.target.shape), torch.randn_like(x1), x1,
                            torch.Generator().manual_seed(0))


def test_cost_counts_the_encoder_and_the_antithetic_pass(problem):
    base = _cost(get_method("fm_ot"), problem)
    enc = _cost(get_method("curvature_min"), problem)
    full_enc = _cost(get_method("curvature_min", encoder_width=1.0, encoder_depth=1.0), problem)
    antithetic = _cost(get_method("interpolant", gamma=1.0), problem)
    assert 2.0 <= base["forward_equivalents_per_step"] <= 3.0  # forward + backward of one network
    assert base["forward_equivalents_per_step"] < enc["forward_equivalents_per_step"]
    assert enc["forward_equivalents_per_step"] < full_enc["forward_equivalents_per_step"]
    assert full_enc["forward_equivalents_per_step"] > 1.8 * base["forward_equivalents_per_step"]
    assert antithetic["forward_equivalents_per_step"] > 1.8 * base["forward_equivalents_per_step"]
    assert set(enc["params"]) == {"v", "enc"} and enc["params_total"] == sum(enc["params"].values())
    assert base["reference_forward_flops"] == enc["reference_forward_flops"]  # one unit for every method


def test_measuring_leaves_the_training_unchanged(problem):
    method = get_method("fm_ot")
    coupling = IndependentCoupling(lambda n, g: torch.randn(n, 2, generator=g),
                                   lambda n, g: problem.target.sample(n, g))
    cfg = TrainConfig(steps=60, batch_size=64)
    torch.manual_seed(0)
    model = build_model(method, problem)
    twin = copy.deepcopy(model)
    with torch_threads(1):
        plain, _ = fit(method, model, coupling, cfg, torch.Generator().manual_seed(1))
        curve = []
        x1 = problem.target.test[:256]
        evaluator = ev.heldout_evaluator(method, torch.randn_like(x1), x1, 0, "k")
        watched, _ = fit(method, twin, coupling, cfg, torch.Generator().manual_seed(1), heldout=evaluator,
                         heldout_curve=curve)
    assert all(torch.equal(a, b) for a, b in zip(plain.parameters(), watched.parameters(), strict=True))
    assert [s for s, _ in curve] == ev.eval_steps(60) and curve[0][0] == 0 and curve[-1][0] == 60
    assert evaluator(watched) == evaluator(watched)  # the same draws every call


def test_a_model_still_improving_is_flagged_and_records_its_cost(problem, tmp_path):
    store = ArtifactStore(tmp_path)
    with torch_threads(1):
        short = train_model(get_method("fm_ot"), problem, TrainConfig(steps=40, batch_size=64, lr=3e-4), 0, store)
        rf2 = train_model(get_method("rf", k=2, n_pairs=256, pair_solver="euler", pair_nfe=4), problem,
                          TrainConfig(steps=40, batch_size=64, lr=3e-4), 0, store)
    record = short.evidence_record()
    assert record["convergence"]["converged"] is False  # 40 small steps: the held-out loss is still falling
    assert record["cost"]["flops"] == record["cost"]["flops_per_step"] * 40
    cost2 = rf2.evidence_record()["cost"]
    assert cost2["pair_flops"] > 0
    assert cost2["total_flops"] == cost2["flops"] + rf2.parent.evidence_record()["cost"]["total_flops"]
    reloaded = train_model(get_method("fm_ot"), problem, TrainConfig(steps=40, batch_size=64, lr=3e-4), 0, store)
    assert reloaded.cached and reloaded.evidence_record() == record  # kept with the model


def test_converged_at_is_the_first_step_from_which_the_rule_stays_satisfied():
    """An exponential fall with time constant 1000 steps, evaluated every 500 steps to 10000: the curve is
    smooth, so the fall is real as long as the fitted last quarter still drops by more than 2 % of the whole fall
    since the first evaluation; ``converged_at_step`` is the end of the first prefix from which on every longer
    prefix reads converged."""
    curve = [(s, math.exp(-s / 1000)) for s in range(0, 10001, 500)]
    verdict = ev.judge_convergence(curve)
    assert verdict["converged"] is True
    at = verdict["converged_at_step"]
    settled = {curve[n - 1][0]: ev.settled(curve[:n]) for n in range(ev.MIN_EVALS, len(curve) + 1)}
    assert all(ok for step, ok in settled.items() if step >= at) and not settled[at - 500]
    assert 4000 <= at <= 9000
    still = [(s, 1.0 - s / 10000) for s in range(0, 10001, 500)]  # a straight fall never settles
    verdict = ev.judge_convergence(still)
    assert verdict["converged"] is False and verdict["converged_at_step"] is None
