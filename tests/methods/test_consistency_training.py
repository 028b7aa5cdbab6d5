"""Consistency models through the harness: a short training lowers the loss, CD's teacher is the trained parent
and its calls are in the measured cost, and the sampler draws from a trained model."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from odebench.bench.core import seeding
from odebench.bench.core.solvers import sample
from odebench.bench.data import load_dataset
from odebench.bench.harness.store.artifacts import ArtifactStore
from odebench.bench.harness.training.train import Problem, TrainConfig, source_sampler, train_model
from odebench.methods import get_method
from odebench.metrics.quality import wasserstein2

CFG = TrainConfig(steps=300, batch_size=128, lr=3e-3)
NET = {"name": "mlp", "hidden": 32, "depth": 2}


@pytest.fixture(scope="module")
def problem() -> Problem:
    return Problem(target=load_dataset("moons", n_train=2000, n_test=1024), source=None, net=NET)


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> ArtifactStore:
    return ArtifactStore(tmp_path_factory.mktemp("cm"))


def test_a_short_distillation_lowers_the_held_out_loss(problem, store):
    """The held-out loss (fixed pairs, the final discretisation) falls from the start of training to its end."""
    trained = train_model(get_method("consistency_distillation"), problem, CFG, seed=0, store=store)
    curve = trained.evidence["heldout"]["loss"]
    assert curve[-1] < 0.5 * curve[0], curve
    assert int(trained.model["clock"].step) == CFG.steps and int(trained.model["clock"].total) == CFG.steps


def test_a_short_consistency_training_brings_its_samples_towards_the_data(problem, store):
    """CT's loss measures self-consistency, which a near-constant random network already has (its curve rises
    from the start); what training buys is samples on the data: the W2 of two-jump samples at the end against
    that after one step."""
    method = get_method("consistency_training", s1=20)
    x0 = source_sampler(method, problem, "cpu")(512, seeding.derive(0, "x0"))
    w2 = []
    for steps in (1, CFG.steps):
        trained = train_model(method, problem, replace(CFG, steps=steps), seed=0, store=store)
        with torch.no_grad():
            x = sample(method.dynamics(trained.model), x0, "consistency", nfe=2, grid="edm",
                       gen=seeding.derive(0, "noise")).x
        w2.append(wasserstein2(x, problem.target.test[:512]))
    assert w2[1] < 0.7 * w2[0], w2
    assert int(trained.model["clock"].step) == CFG.steps and int(trained.model["clock"].total) == CFG.steps


def test_distillation_calls_its_trained_teacher_and_pays_for_it(problem, store):
    cd = get_method("consistency_distillation", teacher="fm_ot")
    trained = train_model(cd, problem, CFG, seed=0, store=store)
    teacher = trained.parent
    assert teacher is not None and teacher.model.keys() == {"v"}
    for (name, p), q in zip(trained.model["teacher"].nets.named_parameters(), teacher.model.parameters(),
                            strict=True):
        assert torch.equal(p, q), f"teacher weight {name} is not the trained parent's"
    ct = train_model(get_method("consistency_training"), problem, CFG, seed=0, store=store)
    own, base = trained.evidence["cost"], ct.evidence["cost"]
    # the same student and target network, plus one Heun step of the teacher: two forward passes of its network
    assert own["flops_per_step"] == base["flops_per_step"] + 2 * own["reference_forward_flops"]
    assert own["pair_flops"] == 0  # it trains on the data, not on pairs of the teacher
    assert trained.total_flops() == own["flops"] + teacher.total_flops()
    assert trained.evidence_record()["cost"]["total_flops"] > own["flops"]


def test_a_trained_model_samples_with_the_consistency_sampler(problem, store):
    method = get_method("consistency_distillation")  # edm teacher, the student starts from its weights
    trained = train_model(method, problem, CFG, seed=0, store=store)
    x0 = source_sampler(method, problem, "cpu")(256, seeding.derive(0, "x0"))
    with torch.no_grad():
        res = sample(method.dynamics(trained.model), x0, "consistency", nfe=2, grid="edm",
                     gen=seeding.derive(0, "noise"))
    assert res.nfe == 2 and torch.isfinite(res.x).all()
    assert res.x.std() < 5 * problem.target.test.std()  # on the data's scale, not the source's (sigma_max = 80)


def test_a_compute_budget_sets_the_curriculums_length(problem, store):
    """Under train.forward_equivalents the training runs budget / cost-per-step steps: the curriculum spans those."""
    trained = train_model(get_method("consistency_training", s1=20), problem, replace(CFG, forward_equivalents=400),
                          seed=0, store=store)
    steps = trained.evidence["cost"]["steps"]
    assert steps != CFG.steps and steps == round(400 / trained.evidence["cost"]["forward_equivalents_per_step"])
    assert int(trained.model["clock"].total) == steps == int(trained.model["clock"].step)

