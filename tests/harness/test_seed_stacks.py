"""Seeds trained as one stack give every member exactly the model, curves and records of a training of its own."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from harness_tiny import tiny_spec, to_toml
from safetensors.torch import load_file
from threads import torch_threads

from odebench.bench.core import seeding
from odebench.bench.data import load_dataset
from odebench.bench.harness.execution.plan import STACK_MAX_FLOPS, make_plan, method_at, step_flops
from odebench.bench.harness.execution.run import run_sweep
from odebench.bench.harness.spec.sweep import parse_spec
from odebench.bench.harness.store.artifacts import ArtifactStore
from odebench.bench.harness.training import evidence as ev
from odebench.bench.harness.training import seed_stack
from odebench.bench.harness.training.stacked_fit import fit_stacked
from odebench.bench.harness.training.train import (
    DivergenceError,
    Problem,
    TrainConfig,
    build_model,
    fit,
    source_sampler,
)
from odebench.methods import get_method
from odebench.methods.couplings import IndependentCoupling

ROOT = Path(__file__).resolve().parents[2]
# every size a multiple of the vector step and every product above torch's small-matrix loop: the stack is exact
NET = {"name": "mlp", "hidden": 32, "depth": 2}
TRAIN = {"steps": 40, "batch_size": 64, "lr": 2e-3}
# what a record may differ in between two runs: wall times, when it was written, and which commit wrote it
VOLATILE = ("time", "seconds", "created", "environment")


@pytest.fixture(autouse=True)
def one_thread():  # seed stacks are exact on one torch thread
    with torch_threads(1):
        yield


def stack_spec(name: str = "stacks", seeds=(0, 1, 2)) -> dict:
    return tiny_spec(name=name, methods=[{"name": "fm_ot"}, {"name": "rf", "k": 2}], seeds=list(seeds),
                     net=dict(NET), train=dict(TRAIN), solvers=[{"name": "euler", "nfe": [2]}])


def records(folder: Path) -> dict[str, dict]:
    def strip(x):
        if isinstance(x, dict):
            return {k: strip(v) for k, v in x.items() if not any(w in k for w in VOLATILE)}
        return [strip(v) for v in x] if isinstance(x, list) else x

    return {p.name: strip(json.loads(p.read_text())) for p in sorted(folder.glob("*.json"))}


def spy_stacks(monkeypatch) -> list[int]:
    sizes = []
    real = seed_stack.fit_stacked

    def spy(method, models, *args, **kwargs):
        sizes.append(len(models))
        return real(method, models, *args, **kwargs)

    monkeypatch.setattr(seed_stack, "fit_stacked", spy)
    return sizes


def test_a_stacked_sweep_writes_the_records_of_one_seed_at_a_time(tmp_path, monkeypatch):
    """fm_ot and rf k = 2 (its parent rounds stacked too) over three seeds: every record equal but the clock."""
    spec = parse_spec(stack_spec())
    sizes = spy_stacks(monkeypatch)
    run_sweep(spec, tmp_path / "stacked", progress=False)
    assert sorted(sizes) == [3, 3, 3]  # fm_ot, rf k = 1 (the parents), rf k = 2: one stack each
    sizes.clear()
    run_sweep(spec, tmp_path / "alone", progress=False, seed_stacks=False)
    assert sizes == []
    stacked = records(tmp_path / "stacked" / "stacks" / "cells")
    alone = records(tmp_path / "alone" / "stacks" / "cells")
    assert len(stacked) == 6 and stacked == alone
    # the cached models hold the same weights, bit for bit (their files differ in the training's wall time)
    def weights(run: str) -> dict[str, dict]:
        files = (tmp_path / run / ".cache" / "models").glob("*.safetensors")
        return {p.name.split(".")[0]: load_file(p) for p in files}

    stacked_models, alone_models = weights("stacked"), weights("alone")
    assert len(alone_models) == 9 and stacked_models.keys() == alone_models.keys()
    for key, tensors in alone_models.items():
        assert all(torch.equal(t, stacked_models[key][name]) for name, t in tensors.items())


def test_a_pool_of_workers_stacks_the_same(tmp_path):
    spec = parse_spec(stack_spec(seeds=(0, 1)))
    run_sweep(spec, tmp_path / "pool", progress=False, jobs=2)
    run_sweep(spec, tmp_path / "alone", progress=False, seed_stacks=False)
    assert records(tmp_path / "pool" / "stacks" / "cells") == records(tmp_path / "alone" / "stacks" / "cells")


def test_the_plan_makes_one_stack_per_configuration_with_parents_first(tmp_path):
    spec = parse_spec(stack_spec())
    plan = make_plan(spec.cells, lambda _: False, ArtifactStore(tmp_path / "models"), stack_seeds=True)
    leaders = [j for j in plan.trainings if j.stack]
    assert len(leaders) == 3 and all(len(j.stack) == 2 for j in leaders)
    seen = set()
    for job in plan.trainings:  # every job after the job it waits for
        assert job.parent is None or job.parent in seen
        seen.add(job.key)
    members = {m.key: j.key for j in leaders for m in j.stack}
    assert all(j.led_by == members[j.key] for j in plan.trainings if j.key in members)
    # the rf k = 2 stack waits for the leader of the k = 1 stack, which is done only when all its members are
    by_key = {j.key: j for j in plan.trainings}
    k2 = [j for j in leaders if j.depth == 0 and j.cell.method["name"] == "rf"][0]
    assert by_key[k2.parent].stack
    unstacked = make_plan(spec.cells, lambda _: False, ArtifactStore(tmp_path / "models"))
    assert [j.key for j in unstacked.trainings if j.stack] == []
    assert {j.key for j in unstacked.trainings} == set(by_key)


def member(seed: int, poison: bool = False):
    method = get_method("fm_ot")
    target = load_dataset("moons", 0)
    problem = Problem(target, None, dict(NET))
    sample_source = source_sampler(method, problem, "cpu")

    def sample_target(n, gen):
        x = target.sample(n, gen, "cpu")
        return x * float("nan") if poison else x

    key = f"member-{seed}"
    torch.manual_seed(seeding.seed_of(seed, key, "init"))
    x1 = target.test[:256]
    heldout = ev.heldout_evaluator(method, sample_source(256, seeding.derive(seed, key, "h")), x1, seed, key)
    return (method, build_model(method, problem), IndependentCoupling(sample_source, sample_target),
            seeding.derive(seed, key, "batches"), heldout)


def test_a_diverging_member_fails_alone_and_the_others_train_as_alone():
    cfg = TrainConfig(**TRAIN)
    members = [member(0), member(1, poison=True), member(2)]
    curves = [[], [], []]
    out = fit_stacked(members[0][0], [m[1] for m in members], [m[2] for m in members], cfg, [m[3] for m in members],
                      [m[4] for m in members], curves)
    assert isinstance(out[1], DivergenceError) and "training loss became nan" in str(out[1])
    for i in (0, 2):
        method, model, coupling, gen, heldout = member(i)
        curve = []
        ema, losses = fit(method, model, coupling, cfg, gen, heldout=heldout, heldout_curve=curve)
        assert out[i][1] == losses and curves[i] == curve
        assert all(torch.equal(a, b) for a, b in zip(out[i][0].state_dict().values(), ema.state_dict().values(),
                                                    strict=True))


def start(spec_path: Path, out: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    argv = [sys.executable, "-m", "odebench.bench.cli", "run", "--spec", str(spec_path), "--out", str(out),
            "--no-progress", "--jobs", "1", "--threads", "1"]
    return subprocess.Popen(argv, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.slow
def test_a_stacked_run_killed_and_resumed_writes_the_same_records(tmp_path):
    spec = stack_spec(name="killed")
    spec["train"]["steps"] = 400  # long enough to be killed while a stack trains
    spec_path = tmp_path / "killed.toml"
    spec_path.write_text(to_toml(spec))
    out = tmp_path / "out"
    cells = out / "killed" / "cells"
    proc = start(spec_path, out)
    deadline = time.monotonic() + 300
    while not list(cells.glob("*.json")) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)  # mid-sweep: fm_ot's cells are being written, the rf stacks are still to train
    proc.communicate()
    assert 0 < len(list(cells.glob("*.json"))) < 6, "the run should have been killed mid-way"
    rerun = start(spec_path, out)
    _, stderr = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, stderr
    whole = start(spec_path, tmp_path / "whole")
    _, stderr = whole.communicate(timeout=300)
    assert whole.returncode == 0, stderr
    assert records(cells) == records(tmp_path / "whole" / "killed" / "cells")


def test_networks_whose_products_are_compute_bound_do_not_stack(tmp_path):
    """2-D, hidden 256, batch 256: 0.22 GFLOP a step, where five stacked seeds cost what five alone cost."""
    big = stack_spec()
    big["net"] = {"name": "mlp", "hidden": 256, "depth": 3}
    big["train"] = {**TRAIN, "batch_size": 256}
    spec = parse_spec(big)
    plan = make_plan(spec.cells, lambda _: False, ArtifactStore(tmp_path / "models"), stack_seeds=True)
    assert not any(j.stack or j.led_by for j in plan.trainings)
    cell = plan.trainings[0].cell
    assert step_flops("fm_ot, hidden 256", method_at(cell, 0), cell) == 6.0 * 256 * (34 * 256 + 2 * 256 * 256 + 256 * 2)
    assert step_flops("fm_ot, hidden 256", method_at(cell, 0), cell) > STACK_MAX_FLOPS


def test_seeds_with_their_own_data_draws_stack_and_each_trains_on_its_own_draw(tmp_path, monkeypatch):
    """data_seed = "per_seed": the three seeds of a configuration, each with its own data draw, still train as one
    stack, and every member's records and weights are those of its own training on its own draw."""
    spec = parse_spec({**stack_spec(), "data_seed": "per_seed"})
    assert {(c.seed, c.data_seed) for c in spec.cells} == {(0, 0), (1, 1), (2, 2)}
    sizes = spy_stacks(monkeypatch)
    run_sweep(spec, tmp_path / "stacked", progress=False)
    assert sorted(sizes) == [3, 3, 3]
    run_sweep(spec, tmp_path / "alone", progress=False, seed_stacks=False)
    stacked = records(tmp_path / "stacked" / "stacks" / "cells")
    assert stacked == records(tmp_path / "alone" / "stacks" / "cells")
    assert sorted((r["config"]["seed"], r["config"]["data_seed"]) for r in stacked.values()) == \
        [(0, 0), (0, 0), (1, 1), (1, 1), (2, 2), (2, 2)]
    files = {run: {p.name.split(".")[0]: load_file(p) for p in (tmp_path / run / ".cache" / "models").glob(
        "*.safetensors")} for run in ("stacked", "alone")}
    assert len(files["alone"]) == 9 and files["stacked"].keys() == files["alone"].keys()
    for key, tensors in files["alone"].items():
        assert all(torch.equal(t, files["stacked"][key][name]) for name, t in tensors.items())

def _stop_by_initial_loss(curve) -> bool:
    """A stand-in convergence rule that stops each member at its own evaluation: the 9th to the 13th, and never
    for one in five, by the member's held-out loss at step 0 (the same for its stacked and its own training)."""
    n = 9 + int(curve[0][1] * 1e6) % 5
    return n < 13 and len(curve) >= n


def test_members_that_converge_at_different_steps_end_as_each_would_alone(monkeypatch):
    """train.until_converged in a stack: each member stops at its own evaluation with the weights, loss curve
    and held-out curve of its own training stopped there; 210 steps put evaluations off the loss chunks (the
    chunk it stops in is a partial one)."""
    monkeypatch.setattr(ev, "settled", _stop_by_initial_loss)
    cfg = TrainConfig(**{**TRAIN, "steps": 210}, until_converged=True)
    members = [member(seed) for seed in range(4)]
    curves = [[] for _ in members]
    out = fit_stacked(members[0][0], [m[1] for m in members], [m[2] for m in members], cfg, [m[3] for m in members],
                      [m[4] for m in members], curves)
    ends = [c[-1][0] for c in curves]
    assert len(set(ends)) >= 3 and min(ends) < 210, ends  # members stop at different steps
    assert any(end % 2 for end in ends)  # at least one stops inside a loss chunk (chunk = 2 steps here)
    for i in range(len(members)):
        method, model, coupling, gen, heldout = member(i)
        curve = []
        ema, losses = fit(method, model, coupling, cfg, gen, heldout=heldout, heldout_curve=curve)
        assert curves[i] == curve and out[i][1] == losses
        assert all(torch.equal(a, b) for a, b in zip(out[i][0].state_dict().values(), ema.state_dict().values(),
                                                    strict=True))


def test_a_stacked_sweep_until_converged_writes_the_records_of_one_seed_at_a_time(tmp_path, monkeypatch):
    monkeypatch.setattr(ev, "settled", _stop_by_initial_loss)
    raw = stack_spec(name="until")
    raw["train"] = {**TRAIN, "steps": 210, "until_converged": True}
    spec = parse_spec(raw)
    sizes = spy_stacks(monkeypatch)
    run_sweep(spec, tmp_path / "stacked", progress=False)
    assert sizes
    run_sweep(spec, tmp_path / "alone", progress=False, seed_stacks=False)
    stacked = records(tmp_path / "stacked" / "until" / "cells")
    assert len(stacked) == 6 and stacked == records(tmp_path / "alone" / "until" / "cells")
    steps = [r["training"]["cost"]["steps"] for r in stacked.values()]
    assert min(steps) < 210 and len(set(steps)) > 1, steps
    assert all(r["training"]["cost"]["budget"]["max_steps"] == 210 for r in stacked.values())


def stack_sizes(plan) -> list[int]:
    """The size of every stack the plan trains (a training that stacks with no other counts 1)."""
    return sorted(1 + len(j.stack) for j in plan.trainings if j.led_by is None)


def test_one_configurations_seeds_are_cut_to_keep_every_worker_busy(tmp_path):
    """Five seeds of one configuration: one stack on one worker; on two workers stacks of 3 and 2, which end the
    training at about 1.9 single trainings instead of 2.9 (docs/performance.md)."""
    spec = parse_spec(tiny_spec(name="one", methods=[{"name": "fm_ot"}], seeds=[0, 1, 2, 3, 4], net=dict(NET),
                                train=dict(TRAIN), solvers=[{"name": "euler", "nfe": [2]}]))
    store = ArtifactStore(tmp_path / "models")
    assert stack_sizes(make_plan(spec.cells, lambda _: False, store, stack_seeds=True)) == [5]
    assert stack_sizes(make_plan(spec.cells, lambda _: False, store, stack_seeds=True, workers=2)) == [2, 3]
    assert stack_sizes(make_plan(spec.cells, lambda _: False, store, stack_seeds=True, workers=3)) == [1, 2, 2]
    # more workers than seeds: every seed alone, none lost
    assert stack_sizes(make_plan(spec.cells, lambda _: False, store, stack_seeds=True, workers=8)) == [1] * 5


def test_a_chain_is_cut_where_its_parents_were(tmp_path):
    """rf k = 2 over four seeds on two workers: both rounds cut into the same two pairs of seeds, so every second
    round member waits on a stack that holds its own parent, and none trains alone."""
    spec = parse_spec(tiny_spec(name="chain", methods=[{"name": "rf", "k": 2}], seeds=[0, 1, 2, 3], net=dict(NET),
                                train=dict(TRAIN), solvers=[{"name": "euler", "nfe": [2]}]))
    plan = make_plan(spec.cells, lambda _: False, ArtifactStore(tmp_path / "models"), stack_seeds=True, workers=2)
    assert stack_sizes(plan) == [2, 2, 2, 2]
    by_key = {j.key: j for j in plan.trainings}
    for leader in (j for j in plan.trainings if j.stack and j.depth == 0):  # the second round's stacks
        parents = {by_key[leader.parent].key, *(m.key for m in by_key[leader.parent].stack)}
        own = {by_key[m.key].cell.seed for m in leader.stack} | {leader.cell.seed}
        assert {by_key[p].cell.seed for p in parents} == own


def test_a_sweep_with_enough_trainings_keeps_whole_stacks(tmp_path):
    spec = parse_spec(stack_spec())  # fm_ot and rf k = 1 start at once: two trainings for two workers
    plan = make_plan(spec.cells, lambda _: False, ArtifactStore(tmp_path / "models"), stack_seeds=True, workers=2)
    assert stack_sizes(plan) == [3, 3, 3]


def test_cut_stacks_on_two_workers_write_the_records_of_one_seed_at_a_time(tmp_path):
    spec = parse_spec(tiny_spec(name="cut", methods=[{"name": "fm_ot"}], seeds=[0, 1, 2], net=dict(NET),
                                train=dict(TRAIN), solvers=[{"name": "euler", "nfe": [2]}]))
    run_sweep(spec, tmp_path / "pool", progress=False, jobs=2)
    run_sweep(spec, tmp_path / "alone", progress=False, seed_stacks=False)
    assert records(tmp_path / "pool" / "cut" / "cells") == records(tmp_path / "alone" / "cut" / "cells")
