"""The type and range of every value a spec can hold, and the bounds a run is held to.

Two kinds of bound:

- *hard* limits hold for any run (a seed must fit a generator, a float must be finite, a sweep name must be a
  safe folder name, strings are shorter than ``MAX_TEXT``); messages state them plainly.
- *policy* bounds keep a typo (``steps = 10**18``, ``n_samples = 10**12``, ``k = 10**9``) from running
  forever or exhausting memory; each is far above what a real run needs, has a name in ``POLICY``, and a
  spec that does need more raises it with a ``[limits]`` table (``[limits] steps = 50000000``), as the
  message says.

:func:`shape_problems` walks the whole parsed TOML first (nesting depth, string and list lengths, 64-bit
integers, finite floats, no dates, no NUL characters), so the per-key checks after it only ever meet plain
values. ``RULES_*`` give each known key its :class:`Rule`; keys of plugin methods, networks, datasets and
metrics that no rule names get :func:`generic_rule` from their default's type.
"""

from __future__ import annotations

import contextvars
import datetime
import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

MAX_DEPTH = 8  # the deepest a spec needs: [[datasets]] -> net -> ch_mult -> value is 4
MAX_TEXT = 10_000
MAX_KEY = 200
MAX_LIST = 10_000
INT64 = 2**63
SEED_MAX = 2**32 - 1

#: policy bounds, by the name a ``[limits]`` table uses to raise them
POLICY: dict[str, int] = {
    "steps": 10_000_000,  # training steps (DDPM trains 800k)
    "batch_size": 1_000_000,  # training and evaluation batch sizes
    "n_samples": 1_000_000,  # samples per cell (FID uses 50k)
    "nfe": 100_000,  # fixed-step NFE budgets (sampling and metric solves)
    "max_nfe": 10_000_000,  # budgets.max_nfe
    "k": 20,  # reflow rounds (each is a full training)
    "n_pairs": 10_000_000,  # reflow pairs
    "n_points": 10_000_000,  # dataset sizes (n_train, n_test)
    "max_points": 100_000,  # points a metric compares (exact OT is n x n)
    "width": 65_536,  # network widths (mlp hidden, unet ch, time_dim)
    "depth": 256,  # network depths and block counts
    "grid_values": 1_000,  # values in one list of a spec (a grid over an hparam, budgets, seeds)
    "cells": 100_000,  # cells of a whole sweep
    "seconds": 30 * 24 * 3600,  # wall-clock budgets
    "parameters": 2_000_000_000,  # parameters of a method's networks, counted before training (model_size)
}

_LIMITS: contextvars.ContextVar[dict[str, int] | None] = contextvars.ContextVar("odebench_spec_limits",
                                                                                default=None)


@contextmanager
def policy(limits: dict[str, int]) -> Iterator[None]:
    """Apply a spec's ``[limits]`` (already checked) to the rules while it is validated."""
    token = _LIMITS.set(dict(limits))
    try:
        yield
    finally:
        _LIMITS.reset(token)


def bound(name: str) -> int:
    """The policy bound ``name`` in force (the spec's ``[limits]`` entry, else the default)."""
    return (_LIMITS.get() or {}).get(name, POLICY[name])


def raise_hint(name: str) -> str:
    return f"{bound(name)} is a policy bound against runaway runs: add [limits] {name} = N to the spec to raise it"


def show(value: Any, width: int = 60) -> str:
    """``repr(value)``, shortened for messages (a 10**400 integer or a long string stays one line)."""
    text = repr(value)
    return text if len(text) <= width else f"{text[:width - 20]}...{text[-12:]} ({len(text)} characters)"


def _num(x: float) -> str:
    """10000000 rather than 1e+07 for whole numbers; 1e-05 style otherwise."""
    return str(int(x)) if float(x).is_integer() and abs(x) < 1e16 else f"{x:g}"


def kind_of(v: Any) -> str:
    return {bool: "boolean", int: "integer", float: "float", str: "string", list: "list",
            dict: "table"}.get(type(v), type(v).__name__)


# ---------------------------------------------------------------------------------------------- the walk
def shape_problems(raw: Any) -> list[str]:
    """Problems of the parsed TOML as a tree, before any key is interpreted (iterative: no recursion)."""
    problems: list[str] = []
    stack: list[tuple[str, Any, int]] = [("", raw, 0)]
    while stack and len(problems) < 50:
        path, value, depth = stack.pop()
        where = path or "spec"
        if depth > MAX_DEPTH:
            problems.append(f"{where}: nested {depth} levels deep; a spec needs at most {MAX_DEPTH}")
            continue
        if isinstance(value, dict):
            if len(value) > MAX_LIST:
                problems.append(f"{where}: {len(value)} keys; at most {MAX_LIST}")
                continue
            for k, v in value.items():
                if len(k) > MAX_KEY or "\0" in k:
                    problems.append(f"{where}: key {show(k)} is not a usable key (at most {MAX_KEY} characters, "
                                    f"no NUL)")
                    continue
                stack.append((f"{path}.{k}" if path else k, v, depth + 1))
        elif isinstance(value, list):
            if len(value) > MAX_LIST:
                problems.append(f"{where}: a list of {len(value)} values; at most {MAX_LIST}")
                continue
            stack += [(f"{where}[{i}]", v, depth + 1) for i, v in enumerate(value)]
        elif isinstance(value, str):
            if len(value) > MAX_TEXT:
                problems.append(f"{where}: a string of {len(value)} characters; at most {MAX_TEXT}")
            elif "\0" in value:
                problems.append(f"{where}: contains a NUL character, which no name, path or option can hold")
        elif isinstance(value, bool):
            pass
        elif isinstance(value, int):
            if not -INT64 <= value < INT64:
                problems.append(f"{where}: integer {show(value)} does not fit in 64 bits")
        elif isinstance(value, float):
            if not math.isfinite(value):
                problems.append(f"{where}: {value} is not a finite number; a spec has no use for nan or inf")
        elif isinstance(value, (datetime.date, datetime.time)):
            problems.append(f"{where}: a date or time ({value}); no spec key takes one")
        else:  # only reachable from Python callers of parse_spec
            problems.append(f"{where}: a {type(value).__name__}, which TOML cannot hold")
    return problems


# --------------------------------------------------------------------------------------------- the rules
@dataclass(frozen=True)
class Rule:
    """The type and range of one value.

    ``kind``: "int", "float" (ints accepted), "bool", "str" or "choice"; ``lo``/``hi`` (``*_open`` for strict
    bounds); ``limit`` names the POLICY bound that replaces ``hi``; ``choices`` for "choice" (and "str"
    that must be one of them); ``items`` makes it a list of such values with ``min_len`` to ``max_len`` entries;
    ``also``: literal values accepted besides the typed range (e.g. "data" for a value the harness computes).
    """

    kind: str
    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    hi_open: bool = False
    limit: str | None = None
    choices: tuple = ()
    items: bool = False
    min_len: int = 0
    max_len: int = 16
    what: str = ""
    also: tuple = ()

    def top(self) -> float | None:
        return bound(self.limit) if self.limit else self.hi

    def describe(self) -> str:
        """'an integer >= 1 and <= 10000000', 'a number in (0, 1)', 'one of "a", "b"'."""
        if self.kind == "bool":
            text = "true or false"
        elif self.kind in ("choice",) or (self.kind == "str" and self.choices):
            text = "one of " + ", ".join(f'"{c}"' if isinstance(c, str) else str(c) for c in self.choices)
        elif self.kind == "str":
            text = "a string"
        else:
            noun = "an integer" if self.kind == "int" else "a number"
            lo, hi = self.lo, self.top()
            if lo == 0 and self.lo_open and not self.hi_open:  # "a positive number <= 10"
                noun, lo = f"a positive {noun.split()[-1]}", None
            if lo is not None and hi is not None and (self.lo_open or self.hi_open):
                text = f"{noun} in {'(' if self.lo_open else '['}{_num(lo)}, {_num(hi)}{')' if self.hi_open else ']'}"
            else:
                parts = ([f"{'>' if self.lo_open else '>='} {_num(lo)}"] if lo is not None else []) + \
                        ([f"{'<' if self.hi_open else '<='} {_num(hi)}"] if hi is not None else [])
                text = f"{noun} {' and '.join(parts)}".strip()
        if self.what:
            text = f"{text} ({self.what})"
        if self.also:
            text = " or ".join([text] + [f'"{a}"' if isinstance(a, str) else str(a) for a in self.also])
        return f"a list of {self.min_len} to {self.max_len} values, each {text}" if self.items else text

    def _value_problem(self, v: Any) -> str | None:
        """None if ``v`` fits, else 'wrong type' or 'out of range' as a short reason."""
        if isinstance(v, str) and v in self.also:
            return None
        if self.kind == "bool":
            return None if isinstance(v, bool) else "type"
        if self.kind in ("str", "choice"):
            if self.kind == "str" and not isinstance(v, str):
                return "type"
            if self.choices and not any(v == c and isinstance(v, bool) == isinstance(c, bool) for c in self.choices):
                return "range"  # true is not the choice 1
            return None
        if isinstance(v, bool) or not isinstance(v, int if self.kind == "int" else (int, float)):
            return "type"
        if isinstance(v, float) and not math.isfinite(v):
            return "range"
        lo, hi = self.lo, self.top()
        if lo is not None and (v <= lo if self.lo_open else v < lo):
            return "range"
        if hi is not None and (v >= hi if self.hi_open else v > hi):
            return "policy" if self.limit and not (self.hi_open and v == hi) else "range"
        return None

    def problem(self, value: Any) -> str | None:
        """What is wrong with ``value`` (the text after 'key.path: '), or None."""
        values = value if self.items else [value]
        if self.items and (not isinstance(value, list) or not self.min_len <= len(value) <= self.max_len):
            return f"must be {self.describe()}; got {kind_of(value)} {show(value)}"
        reasons = [r for v in values if (r := self._value_problem(v))]
        if not reasons:
            return None
        text = f"must be {self.describe()}; got {kind_of(value) if not self.items else 'list'} {show(value)}"
        return f"{text}. {raise_hint(self.limit)}" if "policy" in reasons else text


def integer(lo: int | None = None, hi: int | None = None, limit: str | None = None, what: str = "") -> Rule:
    return Rule("int", lo, hi, limit=limit, what=what)


def number(lo: float | None = None, hi: float | None = None, lo_open: bool = False, hi_open: bool = False,
           what: str = "") -> Rule:
    return Rule("float", lo, hi, lo_open, hi_open, what=what)


def choice(*values: Any) -> Rule:
    return Rule("choice", choices=tuple(values))


FLAG = Rule("bool")
TEXT = Rule("str")
COUNT = integer(1, limit="n_points")
SEED = integer(0, SEED_MAX)
FRACTION = number(0, 1, lo_open=True, hi_open=True)
#: rtol = atol of an adaptive solve: below 1e-12 no float32 (or float64) solve can reach it, and the step size
#: shrinks until the NFE budget runs out (dopri5 at rtol 1e-12 already took 172k NFE on moons)
TOLERANCE = number(1e-12, 1, hi_open=True, what="rtol = atol")
POSITIVE = number(0, 1e6, lo_open=True)
NONNEG = number(0, 1e6)


def generic_rule(default: Any) -> Rule | None:
    """For a key no rule names: its default's type with a range that keeps it representable, or None."""
    if isinstance(default, bool):
        return FLAG
    if isinstance(default, int):
        return integer(-(2**31), 2**31 - 1)
    if isinstance(default, float):
        return number(-1e12, 1e12)
    if isinstance(default, str):
        return TEXT
    return None  # None or a tuple default: any value the shape walk let through


RULES_TRAIN: dict[str, Rule] = {
    "steps": integer(1, limit="steps"),
    "batch_size": integer(1, limit="batch_size"),
    "lr": number(0, 10, lo_open=True),
    "ema_decay": number(0, 1, hi_open=True),
    "grad_clip": number(0, 1e6, what="0 disables clipping"),
    "weight_decay": number(0, 10),
    "forward_equivalents": integer(0, 10**15, what="a compute budget in network forward passes; 0: by steps"),
    "until_converged": Rule("bool", what="stop at the first held-out evaluation that reads converged"),
    "dequantize": FLAG,
}

RULES_EVAL: dict[str, Rule] = {
    "n_samples": integer(1, limit="n_samples"),
    "batch_size": integer(1, limit="batch_size"),
}

RULES_BUDGETS: dict[str, Rule] = {
    "max_nfe": integer(1, limit="max_nfe", what="field evaluations one adaptive solve may make"),
    "train_seconds": Rule("float", 0, None, lo_open=True, limit="seconds", what="wall-clock seconds per training"),
    "cell_seconds": Rule("float", 0, None, lo_open=True, limit="seconds", what="wall-clock seconds per cell"),
}
#: budgets a spec gets without a [budgets] table: no adaptive solve past 100k NFE (dopri5 at rtol 1e-12 took
#: 172k on moons), no wall-clock limit
DEFAULT_BUDGETS: dict[str, Any] = {"max_nfe": 100_000, "train_seconds": None, "cell_seconds": None}

#: the tracking sinks a spec's ``[track]`` table or ``--track`` can name (odebench.bench.harness.tracking)
TRACK_SINKS = ("tensorboard", "mlflow", "wandb")
RULES_TRACK: dict[str, Rule] = {
    "sinks": Rule("str", choices=TRACK_SINKS, items=True, min_len=1, max_len=len(TRACK_SINKS),
                  what="where to log curves, metrics and images besides the records"),
    "experiment": Rule("str", what="MLflow experiment and W&B project; default: the spec's name"),
    "mlflow_uri": Rule("str", what="an MLflow tracking URI; default: a local file store in the sweep folder"),
    "wandb_mode": choice("offline", "online"),
}

WIDTH, DEPTH = integer(1, limit="width"), integer(1, limit="depth")
RULES_NETS: dict[str, dict[str, Rule]] = {
    "mlp": {"hidden": WIDTH, "depth": DEPTH, "time_dim": WIDTH},
    "unet": {"ch": WIDTH, "ch_mult": Rule("int", 1, 64, items=True, min_len=1, max_len=8),
             "num_res_blocks": DEPTH, "attn_resolutions": Rule("int", 1, 4096, items=True, max_len=8),
             "mid_attn": FLAG, "attn_heads": integer(1, 1024), "dropout": number(0, 1, hi_open=True),
             "groups": integer(1, 1024)},
}

_TOY = {"n_train": COUNT, "n_test": COUNT}
RULES_DATASETS: dict[str, dict[str, Rule]] = {
    **{name: _TOY for name in ("8gaussians", "moons", "checkerboard", "spirals", "circles", "swissroll")},
    # 1797 images: a fraction outside [0.001, 0.999] leaves a split empty
    "digits": {"test_fraction": number(0.001, 0.999)},
    "imagefolder": {"data_dir": TEXT, "resolution": integer(4, 4096), "channels": choice(1, 3),
                    "test_fraction": FRACTION, "hflip": FLAG},
    "cifar10": {"data_dir": TEXT, "hflip": FLAG, "n_train": integer(1, 50_000), "n_test": integer(1, 10_000)},
}


def _ode_solvers() -> tuple[str, ...]:
    from odebench.bench.core.solvers import SOLVERS

    return tuple(n for n in SOLVERS.names() if SOLVERS.get(n).kind == "ode")


def method_rules(name: str) -> dict[str, Rule]:
    """Rules of the built-in methods' hparams (others: generic_rule); the methods check the relations."""
    vp = {"beta_min": number(0, 1000, lo_open=True), "beta_max": number(0, 1000, lo_open=True)}
    eps = number(0, 1, lo_open=True, hi_open=True)
    table = {
        "fm_ot": {"sigma_min": number(0, 1, hi_open=True)},
        "fm_diffusion": vp,
        "ddpm": {**vp, "sampling_eps": eps, "denoise": FLAG},
        "score_ve": {"sigma_min": POSITIVE, "sigma_max": Rule("float", 0, 1e6, lo_open=True, also=("data",)),
                     "corrector_steps": integer(0, limit="depth"), "snr": number(0, 100, lo_open=True),
                     "sampling_eps": eps, "predictor": choice("reverse_diffusion", "euler_maruyama"),
                     "denoise": FLAG},
        "rf": {"k": integer(1, limit="k"), "distill": FLAG, "n_pairs": integer(1, limit="n_pairs"),
               "pair_solver": Rule("str", choices=_ode_solvers()), "pair_rtol": TOLERANCE,
               "pair_atol": TOLERANCE, "pair_nfe": integer(1, limit="nfe"), "init": choice("parent", "scratch")},
        "curvature_min": {"beta": NONNEG, "encoder_width": number(0, 1, lo_open=True, what="of the net's width"),
                          "encoder_depth": number(0, 1, lo_open=True, what="of the net's depth")},
        "otcfm": {"pairing": choice("sample", "permutation")},
        # EDM (Karras et al. 2022): sigmas of data in [-1, 1] and their log-normal training law; the churn settings
        # of its stochastic sampler (which caps each step's gamma = S_churn / N at sqrt(2) - 1)
        "edm": {"sigma_data": POSITIVE, "p_mean": number(-20, 20), "p_std": number(0, 20, lo_open=True),
                "sigma_min": POSITIVE, "sigma_max": POSITIVE, "s_churn": number(0, 1000), "s_tmin": NONNEG,
                "s_tmax": NONNEG, "s_noise": number(0, 10, lo_open=True)},
        "interpolant": {"path": Rule("str", choices=("linear", "trig", "vp_trig", "encdec")), "gamma": number(0, 100),
                        "eps": number(0, 100), "t_eps": number(0, 0.5, lo_open=True, hi_open=True)},
        # consistency models (Song et al. 2023): EDM's sigmas, the curriculum of CT, CD's teacher and fixed schedule
        **{name: {"sigma_data": POSITIVE, "sigma_min": POSITIVE, "sigma_max": POSITIVE,
                  "rho": number(0, 100, lo_open=True), "distance": choice("l2", "pseudo_huber"), **extra}
           for name, extra in (("consistency_training", {"s0": integer(2, 100_000), "s1": integer(2, 100_000),
                                                         "mu0": number(0, 1, hi_open=True)}),
                               ("consistency_distillation", {"teacher": TEXT, "n_levels": integer(2, 100_000),
                                                             "mu": number(0, 1, hi_open=True)}))},
        # MeanFlow's logit-normal (t, r) laws, the share of pairs with r != t and the adaptive weight's power
        "meanflow": {"tr_sampler": choice("v1", "v0"), "p_mean_t": number(-20, 20), "p_std_t": number(0, 20, True),
                     "p_mean_r": number(-20, 20), "p_std_r": number(0, 20, True), "ratio": number(0, 1),
                     "norm_p": number(0, 10), "norm_eps": number(0, 1, lo_open=True)},
        # shortcut models: the finest step 1 / denoise_timesteps (a power of two, which the method checks)
        "shortcut": {"denoise_timesteps": integer(2, 2**16), "bootstrap_every": integer(1, 2**16),
                     "target_ema": number(0, 1, hi_open=True), "clip": POSITIVE},
    }
    return table.get(name, {})


def metric_rules(name: str) -> dict[str, Rule] | None:
    """Rules of a built-in metric's options (every key it accepts); None for a metric this table lacks."""
    pts = integer(2, limit="max_points")
    table = {
        "w2": {"max_points": pts}, "mmd": {"max_points": pts}, "energy": {"max_points": pts}, "fd": {},
        "sliced_w": {"n_projections": integer(1, 100_000)},
        "nll": {"max_points": integer(1, limit="max_points"), "batch_size": integer(1, limit="batch_size"),
                "divergence": choice("auto", "exact", "loop", "hutchinson"), "n_probes": integer(1, 1000),
                "probe": choice("rademacher", "gaussian"), "solver": Rule("str", choices=_ode_solvers()),
                "rtol": TOLERANCE, "atol": TOLERANCE, "nfe": integer(1, limit="nfe"), "levels": integer(2, 65_536)},
        "straightness": {"max_points": integer(1, limit="max_points"), "n_steps": integer(1, limit="nfe")},
        "curvature": {"max_points": integer(1, limit="max_points"), "n_steps": integer(1, limit="nfe")},
        "transport_cost": {"max_points": integer(1, limit="max_points"), "p": number(0, 16, lo_open=True),
                           "reference_points": integer(4, limit="max_points")},
        "fid": {"inception": TEXT, "stats_dir": TEXT, "max_points": pts, "batch_size": integer(1, limit="batch_size"),
                "device": TEXT, "mode": choice("clean", "legacy_tensorflow"), "reference": choice("train", "test")},
        "fd_digits": {"max_points": pts},
        "precision": {"k": integer(1, 100), "max_points": pts, "features": choice("raw", "digits")},
        "recall": {"k": integer(1, 100), "max_points": pts, "features": choice("raw", "digits")},
    }
    return table.get(name)


def limits_of(raw: dict[str, Any]) -> dict[str, int]:
    """A validated spec's ``[limits]`` (empty without one)."""
    return check_limits(raw.get("limits", {}), [])


def check_limits(value: Any, problems: list[str]) -> dict[str, int]:
    """The spec's ``[limits]`` table: policy bound names -> integers (to raise, or lower, a bound)."""
    if not isinstance(value, dict):
        problems.append(f"limits: must be a table of policy bounds, e.g. [limits] steps = 50000000; got "
                        f"{kind_of(value)} {show(value)}")
        return {}
    out = {}
    for k, v in value.items():
        if k not in POLICY:
            problems.append(f"limits.{k}: not a policy bound; the bounds a spec can raise: {', '.join(POLICY)}")
        elif isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= 2**53:
            problems.append(f"limits.{k}: must be an integer >= 1 and <= 2**53 (default {POLICY[k]}); got "
                            f"{show(v)}")
        else:
            out[k] = v
    return out
