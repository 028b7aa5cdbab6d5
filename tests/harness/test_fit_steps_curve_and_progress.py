"""fit around its steps: the held-out curve is taken at ``eval_steps`` (0 = the initial weights) and labelled
with completed steps; a divergence names the step, the learning rate and the way out; a step leaves alone the
networks its loss did not use; networks are compiled only when asked; the progress bar shows the running loss,
redraws at most about twice a second and is cleared when the training ends."""

from __future__ import annotations

import copy
import re
import time

import pytest
import torch
from torch import nn

import odebench.bench.harness.training.train as train
from odebench.bench.harness.process.runtime import Runtime
from odebench.bench.harness.training import evidence as ev
from odebench.bench.harness.training.train import DivergenceError, TrainConfig, fit, make_train_step

LABEL = "train probe"


class _NoData:
    def draw(self, n, gen):
        return torch.zeros(n, 1), torch.zeros(n, 1)


class _Quadratic:
    """A stand-in method whose loss is w^2 of a one-weight network, optionally slow or failing at one step."""

    def __init__(self, sleep: float = 0.0, fail_at: int | None = None):
        self.sleep, self.fail_at, self.calls = sleep, fail_at, 0

    def loss(self, net, x0, x1, gen):
        self.calls += 1
        time.sleep(self.sleep)
        out = net["v"].weight.pow(2).sum()
        return out * float("nan") if self.calls == self.fail_at else out


def _net() -> nn.ModuleDict:
    torch.manual_seed(0)
    return nn.ModuleDict({"v": nn.Linear(1, 1, bias=False)})


def _weight(model) -> float:
    return float(model["v"].weight.detach())


@pytest.mark.parametrize("steps", [1, 7, 40])
def test_the_held_out_curve_is_taken_at_eval_steps_from_the_initial_weights_to_the_last(steps):
    model = _net()
    start = _weight(model)
    curve: list = []
    ema, _ = fit(
        _Quadratic(),
        model,
        _NoData(),
        TrainConfig(steps=steps, batch_size=1, lr=0.05),
        torch.Generator().manual_seed(0),
        heldout=_weight,
        heldout_curve=curve,
    )
    assert [s for s, _ in curve] == ev.eval_steps(steps)
    assert curve[0] == (0, start) and curve[-1] == (steps, _weight(ema))
    assert len({v for _, v in curve}) == len(curve)  # each evaluation saw the EMA of its own step


def test_without_a_held_out_evaluator_no_curve_is_taken():
    _, losses = fit(
        _Quadratic(), _net(), _NoData(), TrainConfig(steps=5, batch_size=1), torch.Generator().manual_seed(0)
    )
    assert len(losses) == 5


def test_a_diverging_loss_names_the_step_the_learning_rate_and_the_way_out():
    """Chunks are single steps below 200 steps, so a NaN in the third step is reported at step 3."""
    with pytest.raises(
        DivergenceError,
        match=r"^train probe: the training loss became nan by step 3; lower the "
        r"learning rate \(train\.lr = 0\.01\) or set train\.grad_clip$",
    ):
        fit(
            _Quadratic(fail_at=3),
            _net(),
            _NoData(),
            TrainConfig(steps=6, batch_size=1, lr=0.01),
            torch.Generator().manual_seed(0),
            label=LABEL,
        )


class _FirstStepOnly:
    """Uses network "a" in the first step only, network "b" in every step."""

    def __init__(self):
        self.calls = 0

    def loss(self, net, x0, x1, gen):
        self.calls += 1
        out = net["b"].weight.pow(2).sum()
        return out + net["a"].weight.pow(2).sum() if self.calls == 1 else out


def test_a_step_leaves_alone_a_network_its_loss_did_not_use():
    """Adam's momentum from an earlier step does not drift a network that the current loss leaves out."""
    torch.manual_seed(0)
    model = nn.ModuleDict({"a": nn.Linear(1, 1, bias=False), "b": nn.Linear(1, 1, bias=False)})
    step = make_train_step(
        _FirstStepOnly(),
        model,
        copy.deepcopy(model),
        _NoData(),
        TrainConfig(batch_size=1, lr=0.1),
        torch.Generator().manual_seed(0),
        Runtime("cpu"),
    )
    step(0)
    a, b = model["a"].weight.clone(), model["b"].weight.clone()
    step(1)
    assert torch.equal(model["a"].weight, a) and not torch.equal(model["b"].weight, b)


def test_a_train_step_runs_the_eager_networks_unless_compile_is_asked(monkeypatch):
    compiled = []
    monkeypatch.setattr(train, "compile_modules", lambda m: compiled.append(m) or m)
    model = _net()
    step = make_train_step(
        _Quadratic(),
        model,
        copy.deepcopy(model),
        _NoData(),
        TrainConfig(batch_size=1),
        torch.Generator().manual_seed(0),
        Runtime("cpu"),
    )
    step(0)
    assert compiled == []


def _draws(err: str) -> list[str]:
    return [s for s in err.split("\r") if LABEL in s]


def test_a_fast_training_draws_its_bar_a_few_times_and_clears_it_at_the_end(capsys):
    """Twenty quick steps take well under half a second: the bar is drawn at the start and not on every step
    (neither per loss point nor per step), and the training ends with the bar's line blanked, not left."""
    fit(
        _Quadratic(),
        _net(),
        _NoData(),
        TrainConfig(steps=20, batch_size=1),
        torch.Generator().manual_seed(0),
        progress=True,
        label=LABEL,
    )
    err = capsys.readouterr().err
    assert 1 <= len(_draws(err)) <= 3
    assert err.endswith("\r") and err.split("\r")[-2].strip() == ""


def test_a_slow_training_shows_its_running_loss_at_most_twice_a_second(capsys):
    """Six steps of 0.12 s: after half a second the bar is redrawn with the last loss point to four decimals,
    and over the whole run it is drawn no more often than every half second (plus the first draw)."""
    start = time.perf_counter()
    fit(
        _Quadratic(sleep=0.12),
        _net(),
        _NoData(),
        TrainConfig(steps=6, batch_size=1),
        torch.Generator().manual_seed(0),
        progress=True,
        label=LABEL,
    )
    elapsed = time.perf_counter() - start
    draws = _draws(capsys.readouterr().err)
    assert any(re.search(r"loss=\d+\.\d{4}\b", d) for d in draws)
    assert len(draws) <= elapsed / 0.5 + 1.5
