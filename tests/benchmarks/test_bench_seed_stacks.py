"""Five seeds trained as one stack against one seed trained alone (odebench.bench.harness.training.seed_stack).

The target of the speed work: a 5-seed configuration trains in at most twice the wall time of one seed, on the
toy MLP (2-D, hidden 128, depth 3) and the digits MLP (64-D, hidden 256, depth 3), fm_ot, batch 256, with the
held-out curve evaluated as every training evaluates it. Ours is ``fit_stacked`` over five members; the
baseline ``fit`` of member 0 alone; the ratio is ours / baseline of the time (target <= 2; five trainings one
after the other would read about 5).

The second comparison is the five seeds as a run on this machine trains them when they are the only trainings
(``plan.stack_parts``): two worker processes of one thread each, stacks of seeds 0-2 and 3-4, against one seed
alone on one thread; the workers are started and warmed up before the rounds, as a run's pool is.
"""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor

import pytest
import torch

from odebench.bench.core import seeding
from odebench.bench.data import load_dataset
from odebench.bench.harness.training import evidence as ev
from odebench.bench.harness.training.stacked_fit import fit_stacked
from odebench.bench.harness.training.train import Problem, TrainConfig, build_model, fit, source_sampler
from odebench.methods import get_method
from odebench.methods.couplings import IndependentCoupling

STEPS = 1000
ROUNDS = 3
CASES = {"toy": ("moons", {"name": "mlp", "hidden": 128, "depth": 3}),
         "digits": ("digits", {"name": "mlp", "hidden": 256, "depth": 3})}


def _members(target: str, net: dict, seeds: range):
    method = get_method("fm_ot")
    data = load_dataset(target, 0)
    problem = Problem(data, None, net)
    out = []
    for seed in seeds:
        key = f"bench-{seed}"
        sample_source = source_sampler(method, problem, "cpu")
        coupling = IndependentCoupling(sample_source, lambda n, gen: data.sample(n, gen, "cpu"))
        x1 = data.test[:ev.N_HELDOUT]
        heldout = ev.heldout_evaluator(method, sample_source(len(x1), seeding.derive(seed, key, "h")), x1, seed, key)
        torch.manual_seed(seeding.seed_of(seed, key, "init"))
        out.append((build_model(method, problem), coupling, seeding.derive(seed, key, "batches"), heldout))
    return method, out


@pytest.mark.parametrize("case", sorted(CASES))
def test_five_seeds_stacked_against_one_alone(compare, case):
    # the sweep's workers train on one thread each (ODEBENCH_BENCH_THREADS=1); with 2 the stack and the lone seed
    # both get the whole 2-core machine, which is the comparison "five seeds against one on this machine"
    threads = torch.get_num_threads()
    target, net = CASES[case]
    cfg = TrainConfig(steps=STEPS, batch_size=256)

    def ours():
        method, members = _members(target, net, range(5))
        models, couplings, gens, heldouts = (list(x) for x in zip(*members, strict=True))
        fit_stacked(method, models, couplings, cfg, gens, heldouts, [[] for _ in members])

    def baseline():
        method, ((model, coupling, gen, heldout),) = _members(target, net, range(1))
        fit(method, model, coupling, cfg, gen, heldout=heldout, heldout_curve=[])

    compare("seed-stacks", f"fm_ot {case}, MLP {net['hidden']} x {net['depth']}, {STEPS} steps, {threads} "
            f"thread(s): 5 seeds stacked", ours, baseline, f"1 seed alone, {threads} thread(s)", ROUNDS, "<= 2.0")


def _train_stack(case: str, seeds: range) -> None:
    """One worker's share: the members ``seeds`` trained as one stack, on one thread (as a run's worker)."""
    torch.set_num_threads(1)
    target, net = CASES[case]
    method, members = _members(target, net, seeds)
    models, couplings, gens, heldouts = (list(x) for x in zip(*members, strict=True))
    fit_stacked(method, models, couplings, TrainConfig(steps=STEPS, batch_size=256), gens, heldouts,
                [[] for _ in members])


@pytest.mark.parametrize("case", sorted(CASES))
def test_five_seeds_on_two_workers_against_one_alone(compare, case):
    target, net = CASES[case]
    cfg = TrainConfig(steps=STEPS, batch_size=256)
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as pool:
        list(pool.map(_train_stack, [case, case], [range(0, 2), range(2, 4)]))  # start and warm both workers

        def ours():
            list(pool.map(_train_stack, [case, case], [range(0, 3), range(3, 5)]))

        def baseline():
            before = torch.get_num_threads()
            torch.set_num_threads(1)
            method, ((model, coupling, gen, heldout),) = _members(target, net, range(1))
            fit(method, model, coupling, cfg, gen, heldout=heldout, heldout_curve=[])
            torch.set_num_threads(before)

        compare("seed-stacks", f"fm_ot {case}, MLP {net['hidden']} x {net['depth']}, {STEPS} steps: 5 seeds as "
                f"stacks of 3 and 2 on two 1-thread workers", ours, baseline, "1 seed alone, 1 thread", ROUNDS,
                "<= 2.0")
