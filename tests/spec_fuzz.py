"""The spec fuzzer's parts: hypothesis strategies for specs (tiny valid ones and mutations of them), a TOML
writer that can express whatever they hold, and ``run_one``, which runs ``odebench run`` on one spec inside a
sandbox folder and reports what happened. ``tests/harness/test_spec_fuzz.py`` (CI, a few dozen examples) and
``scripts/fuzz_specs.py`` (1,000+ examples, for the figures in the notes) share them.

A spec that is not mutated is run for real, with a tiny training and wall-clock budgets; a mutated one with
``--dry-run`` (validation, dataset loading and planning, no training), so a mutation that happens to stay valid
(``steps = 9000000``) cannot make the fuzzer slow.
"""

from __future__ import annotations

import contextlib
import datetime
import io
import json
import math
import os
import signal
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

SANDBOX = "@SANDBOX@"  # replaced by the sandbox folder: an absolute name that points inside it
#: names a spec must not be able to turn into a path outside --out (or into the model cache)
NASTY_NAMES = ["../../escape", "../../../../../../escape", "..", ".", ".cache", "a/b", "a\\b", f"{SANDBOX}/abs",
               "x" * 300, "nul\0byte", "CON", "nul.txt", "name.", "", " ", "-dash", "a" * 64, "a" * 65,
               "ünïcode", "tab\tname", "line\nbreak", "cells", "ok_name"]
NASTY_STRINGS = NASTY_NAMES + ["many", "cpu", "cuda:999999", "dopri5", "euler", "w2", "fm_ot", "moons", "nan"]
NASTY_INTS = [0, -1, -5, 1, 2, 3, 10**9, 2**31, 2**53 + 1, 2**63 - 1, 2**63, 2**64, 10**15, 10**18, 10**100]
NASTY_FLOATS = [0.0, -0.0, -1.0, 1e-300, 1e-12, 0.5, 1.0, 1.5, 1e308, math.inf, -math.inf, math.nan]
#: keys whose values the mutations aim at (besides random paths), as paths into the spec
AIMED = [("train", "steps"), ("train", "lr"), ("train", "batch_size"), ("train", "ema_decay"),
         ("net", "depth"), ("net", "hidden"), ("net", "name"), ("eval", "n_samples"), ("eval", "batch_size"),
         ("eval", "metrics"), ("eval", "metric_options"), ("methods", 0, "k"), ("methods", 0, "name"),
         ("methods", 0, "sigma_min"), ("methods", 0, "n_pairs"), ("datasets", 0, "target"),
         ("datasets", 0, "options"), ("datasets", 0, "options", "n_train"), ("datasets", 0, "options", "n_test"),
         ("solvers", 0, "nfe"), ("solvers", 0, "tolerances"), ("solvers", 0, "name"), ("seeds",), ("data_seed",),
         ("description",), ("device",), ("precision",), ("budgets",), ("budgets", "max_nfe"), ("limits",),
         ("name",)]
DEEP = "@DEEP@"  # a value nested 2000 lists deep (written as text: building it would recurse)


# ---------------------------------------------------------------------------------------------- strategies
common = st.one_of(
    st.sampled_from(NASTY_INTS), st.integers(-(2**70), 2**70), st.sampled_from(NASTY_FLOATS),
    st.floats(allow_nan=True, allow_infinity=True), st.sampled_from(NASTY_STRINGS), st.text(max_size=20),
    st.booleans(),
)
rare = st.sampled_from([datetime.datetime(1979, 5, 27, 7, 32), datetime.date(2024, 1, 1), DEEP])
scalars = st.integers(0, 24).flatmap(lambda i: rare if i == 0 else common)  # dates and deep nesting: 1 in 25
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                      | st.dictionaries(st.text(max_size=8), inner, max_size=3), max_leaves=6)


@st.composite
def tiny_specs(draw) -> dict[str, Any]:
    """A valid spec that trains and samples in about a second: one method, one toy set, a few cells."""
    method = draw(st.sampled_from([{"name": "fm_ot"}, {"name": "rf", "k": 1}, {"name": "otcfm"},
                                   {"name": "rf", "k": 2, "n_pairs": 32, "pair_solver": "euler", "pair_nfe": 4},
                                   {"name": "interpolant", "gamma": 0.5}]))
    solvers = draw(st.sampled_from([[{"name": "euler", "nfe": [1, 2]}], [{"name": "heun", "nfe": [1, 2]}],
                                    [{"name": "dopri5", "tolerances": [1e-3]}],
                                    [{"name": "euler", "nfe": [2], "grid": ["cosine"]}],
                                    [{"name": "euler_maruyama", "nfe": [2]}]]))
    metrics = draw(st.lists(st.sampled_from(["w2", "sliced_w", "mmd", "energy", "fd"]), min_size=1, max_size=3,
                            unique=True))
    return {
        "name": draw(st.sampled_from(["fz", "fuzz_a", "f.b-c"])), "seeds": [0],
        "train": {"steps": draw(st.integers(1, 6)), "batch_size": 16, "lr": 1e-3},
        "net": {"name": "mlp", "hidden": 8, "depth": 1},
        "eval": {"n_samples": draw(st.integers(1, 24)), "metrics": metrics,
                 "metric_options": {"sliced_w": {"n_projections": 8}}},
        "methods": [method],
        "datasets": [{"target": draw(st.sampled_from(["moons", "8gaussians", "checkerboard"])),
                      "options": {"n_train": 256, "n_test": 64}}],
        "solvers": solvers,
        "budgets": {"max_nfe": 200, "train_seconds": 30.0, "cell_seconds": 30.0},
    }


def _set(spec: Any, path: tuple, value: Any) -> None:
    """Set ``spec[path]`` (creating tables on the way where possible); a path through a non-container is a
    no-op."""
    node = spec
    for key in path[:-1]:
        if isinstance(node, dict):
            node = node.setdefault(key, {})
        elif isinstance(node, list) and isinstance(key, int) and key < len(node):
            node = node[key]
        else:
            return
    if isinstance(node, dict):
        node[path[-1]] = value
    elif isinstance(node, list) and isinstance(path[-1], int) and path[-1] < len(node):
        node[path[-1]] = value


def _paths(spec: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix] if prefix else []
    if isinstance(spec, dict):
        for k, v in spec.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(spec, list):
        for i, v in enumerate(spec):
            out += _paths(v, (*prefix, i))
    return out


@st.composite
def mutated_specs(draw) -> dict[str, Any]:
    """A tiny spec with one to three mutations: a value replaced (aimed or anywhere), a key dropped or added."""
    spec = draw(tiny_specs())
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["aimed", "aimed", "anywhere", "drop", "add", "name"]))
        if kind == "aimed":
            _set(spec, draw(st.sampled_from(AIMED)), draw(values))
        elif kind == "anywhere":
            _set(spec, draw(st.sampled_from(_paths(spec))), draw(values))
        elif kind == "drop":
            path = draw(st.sampled_from(_paths(spec)))
            parent = spec
            for key in path[:-1]:
                parent = parent[key]
            if isinstance(parent, dict):
                parent.pop(path[-1], None)
        elif kind == "add":
            _set(spec, (*draw(st.sampled_from([(), ("train",), ("eval",), ("net",)])), draw(st.text(max_size=6))),
                 draw(values))
        else:
            spec["name"] = draw(st.sampled_from(NASTY_NAMES))
    return spec


@st.composite
def cases(draw) -> tuple[dict[str, Any], bool]:
    """(spec, mutated): about one spec in five unmutated (run for real), the others mutated (dry run)."""
    mutated = draw(st.integers(0, 4)) > 0
    return (draw(mutated_specs()) if mutated else draw(tiny_specs())), mutated


# ------------------------------------------------------------------------------------------------ writer
def _string(s: str) -> str:
    body = "".join(c if c >= " " and c not in '"\\\x7f' else
                   {'"': '\\"', "\\": "\\\\"}.get(c, f"\\u{ord(c):04x}") for c in s)
    return f'"{body}"'


def _value(v: Any) -> str:
    if v == DEEP:
        return "[" * 2000 + "]" * 2000
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf") if math.isinf(v) else repr(v)
    if isinstance(v, (datetime.datetime, datetime.date)):
        return v.isoformat()
    if isinstance(v, str):
        return _string(v)
    if isinstance(v, list):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{_string(k)} = {_value(x)}" for k, x in v.items()) + " }"
    raise TypeError(type(v))


def to_toml(spec: dict[str, Any], sandbox: Path) -> str:
    """The spec as TOML (every table inline); the SANDBOX placeholder becomes the sandbox folder."""
    text = "\n".join(f"{_string(k)} = {_value(v)}" for k, v in spec.items()) + "\n"
    return text.replace(SANDBOX, str(sandbox).replace("\\", "/"))


# ------------------------------------------------------------------------------------------------ runner
class Hang(BaseException):
    """A spec ran past its time limit (a BaseException: the harness's own ``except Exception`` lets it by)."""


@dataclass
class Outcome:
    """What one fuzzed spec did: exit code, whether a traceback escaped, files written outside --out, hang."""

    code: int | None
    traceback: str | None = None
    outside: list[str] = field(default_factory=list)
    hang: bool = False
    stderr: str = ""


def _snapshot(root: Path, skip: Path) -> dict[str, tuple[int, int]]:
    out = {}
    for folder, dirs, files in os.walk(root):
        if Path(folder) == skip:
            dirs.clear()
            continue
        for name in files:
            p = Path(folder) / name
            with contextlib.suppress(OSError):
                st_ = p.lstat()
                out[str(p)] = (st_.st_mtime_ns, st_.st_size)
    return out


def run_one(spec: dict[str, Any], mutated: bool, sandbox: Path, timeout: float = 60.0) -> Outcome:
    """Run ``odebench run`` in this process on ``spec`` (dry run if ``mutated``), with ``--out`` five folders
    deep in ``sandbox``; report the exit code, any traceback (an exception out of ``main`` or a traceback
    printed on stderr), every file created or changed in the sandbox outside ``--out`` and outside the spec
    file, the path the spec's name would escape to if it exists, and whether it ran past ``timeout``."""
    import torch

    from odebench.bench.cli import main

    out = sandbox / "d1" / "d2" / "d3" / "d4" / "d5" / "out"
    out.parent.mkdir(parents=True, exist_ok=True)
    spec_path = sandbox / "spec.toml"
    spec_path.write_text(to_toml(spec, sandbox), encoding="utf-8")
    before = _snapshot(sandbox, out)
    escape = _escape_target(spec.get("name"), out, sandbox)
    escape_existed = escape is not None and escape.exists()
    argv = ["run", "--spec", str(spec_path), "--out", str(out), "--no-progress"] + (["--dry-run"] if mutated else [])
    err, threads = io.StringIO(), torch.get_num_threads()

    def alarm(signum, frame):
        raise Hang()

    old = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, timeout)
    outcome = Outcome(code=None)
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            outcome.code = main(argv)
    except Hang:
        outcome.hang = True
    except SystemExit as exc:  # argparse
        outcome.code = exc.code if isinstance(exc.code, int) else 2
    except BaseException:  # noqa: BLE001 - anything else is what the fuzzer looks for
        outcome.traceback = traceback.format_exc()
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
        torch.set_num_threads(threads)
    outcome.stderr = err.getvalue()
    if outcome.traceback is None and "Traceback (most recent call last)" in outcome.stderr:
        outcome.traceback = outcome.stderr
    after = _snapshot(sandbox, out)
    outcome.outside = sorted(p for p, sig in after.items() if before.get(p) != sig and Path(p) != spec_path)
    if escape is not None and not escape_existed and escape.exists():
        outcome.outside.append(str(escape))
    return outcome


def _escape_target(name: Any, out: Path, sandbox: Path) -> Path | None:
    """Where a run would put the sweep folder of ``name`` if it took the name as a path, when that is outside
    ``out`` (None otherwise)."""
    if not isinstance(name, str) or not name or "\0" in name:
        return None
    try:
        target = (out / name.replace(SANDBOX, str(sandbox))).resolve()
    except (OSError, ValueError):
        return None
    return None if target.is_relative_to(out.resolve()) else target


def summary_line(outcomes: list[Outcome]) -> str:
    codes = {c: sum(o.code == c for o in outcomes) for c in sorted({o.code for o in outcomes}, key=str)}
    return json.dumps({"inputs": len(outcomes), "exit_codes": {str(k): v for k, v in codes.items()},
                       "tracebacks": sum(o.traceback is not None for o in outcomes),
                       "outside_writes": sum(bool(o.outside) for o in outcomes),
                       "hangs": sum(o.hang for o in outcomes)})
