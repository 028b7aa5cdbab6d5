"""The spec fuzzer's parts: hypothesis strategies for specs (tiny valid ones and mutations of them) and for
``--set`` overrides, a TOML writer that can express whatever they hold, and ``run_one`` / ``run_set``, which run
``odebench run`` on one spec (or one spec with overrides) inside a sandbox folder and report what happened.
``tests/harness/test_spec_fuzz.py`` (CI: a few dozen examples; the slow lane: 2,000 specs and 500 overrides) and
``scripts/fuzz_specs.py`` (1,000+ examples, for the figures in the notes) share them.

A spec that is not mutated is run for real, with a tiny training and wall-clock budgets; a mutated one with
``--dry-run`` (validation, dataset loading and planning, no training), so a mutation that happens to stay valid
(``steps = 9000000``) cannot make the fuzzer slow.

Besides values anywhere, the mutations aim at the classes an adversarial pass found holes in: an image folder
named ``/``, ``/proc`` or ``../`` x 20 (a walk of the whole file system), a 5,000-digit integer, a dotted key of
20,000 parts (quadratic in the TOML parser), ``eval.metrics = {}``, a source of another shape than the target,
``features = "digits"`` on points, tolerances such as 1e-300, every hparam of every method, and ``--set`` keys with
non-ASCII digits. The sandbox holds a sentinel folder (images, temp-like files) that the specs point at, and the
process's temp folder is moved into the sandbox while a spec runs, so a write or delete there is seen too.
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
SENTINEL = "sentinel"  # a folder of the sandbox, outside --out, whose files no run may touch
#: names a spec must not be able to turn into a path outside --out (or into the model cache)
NASTY_NAMES = ["../../escape", "../../../../../../escape", "..", ".", ".cache", "a/b", "a\\b", f"{SANDBOX}/abs",
               "x" * 300, "nul\0byte", "CON", "nul.txt", "name.", "", " ", "-dash", "a" * 64, "a" * 65,
               "ünïcode", "tab\tname", "line\nbreak", "cells", "ok_name"]
NASTY_STRINGS = NASTY_NAMES + ["many", "cpu", "cuda:999999", "dopri5", "euler", "w2", "fm_ot", "moons", "nan",
                                "digits", "raw", "gaussian", "imagefolder"]
#: image folders a spec may name: the file system's root from above and below, special folders and files, the
#: sentinel (whose images are too few), names no folder can have
NASTY_DIRS = ["/", "/proc", "../" * 20, "/dev", "/dev/zero", f"{SANDBOX}/{SENTINEL}", f"{SANDBOX}", "", ".",
              "~no_such_user_odebench/x", "x" * 300, "/nonexistent/images", f"{SANDBOX}/{SENTINEL}/fifo.png"]
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
         ("name",), ("solvers", 0, "tolerances", 0), ("eval", "metric_options", "precision", "features"),
         ("datasets", 0, "source"), ("datasets", 0, "options", "data_dir")]
DEEP = "@DEEP@"  # a value nested 2000 lists deep (written as text: building it would recurse)
HUGE_INT = "@HUGE_INT@"  # an integer of 5,000 digits (past Python's 4,300-digit conversion limit)
DOTTED = "@DOTTED@"  # an inline table with one dotted key of 20,000 parts (tomllib's time grows with their square)


# ---------------------------------------------------------------------------------------------- strategies
common = st.one_of(
    st.sampled_from(NASTY_INTS), st.integers(-(2**70), 2**70), st.sampled_from(NASTY_FLOATS),
    st.floats(allow_nan=True, allow_infinity=True), st.sampled_from(NASTY_STRINGS), st.text(max_size=20),
    st.booleans(),
)
rare = st.sampled_from([datetime.datetime(1979, 5, 27, 7, 32), datetime.date(2024, 1, 1), DEEP, HUGE_INT, DOTTED])
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
        if isinstance(node, dict) and isinstance(key, str):
            node = node.setdefault(key, {})
        elif isinstance(node, list) and isinstance(key, int) and key < len(node):
            node = node[key]
        else:  # a position into a table (a mutation replaced the list), or through a plain value
            return
    if isinstance(node, dict) and isinstance(path[-1], str):
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


def _method_hparams() -> dict[str, list[str]]:
    from odebench.bench.harness.spec.checks import method_hparams
    from odebench.methods import METHODS

    return {name: list(method_hparams(name)) for name in METHODS.names()}


METHOD_HPARAMS = _method_hparams()


@st.composite
def mutated_specs(draw) -> dict[str, Any]:
    """A tiny spec with one to three mutations: a value replaced (aimed or anywhere), a key dropped or added, an
    image folder, a source dataset, a method's hparam, a metric list or option (see the module docstring)."""
    spec = draw(tiny_specs())
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["aimed", "aimed", "anywhere", "drop", "add", "name", "image", "source",
                                     "hparam", "metrics"]))
        if kind == "image":  # an image folder, from anywhere (the data_dir rarely holds images)
            spec["datasets"] = [{"target": "imagefolder", "options": {
                "data_dir": draw(st.sampled_from(NASTY_DIRS)), "resolution": 8, "channels": 1}}]
            _set(spec, ("eval", "metrics"), draw(st.sampled_from([["sliced_w"], {"image": ["fd"]}, {}, ["w2"]])))
        elif kind == "source":  # another dataset as the source: of the target's shape or not
            spec["datasets"] = [{"target": draw(st.sampled_from(["moons", "digits", "8gaussians"])),
                                 "source": draw(st.sampled_from(["moons", "digits", "checkerboard", "gaussian"]))}]
            spec["methods"] = [draw(st.sampled_from([{"name": "rf", "k": 1}, {"name": "fm_ot"}, {"name": "otcfm"}]))]
        elif kind == "hparam":  # any method, one of its hparams set to anything
            name = draw(st.sampled_from(sorted(METHOD_HPARAMS)))
            entry: dict[str, Any] = {"name": name}
            if METHOD_HPARAMS[name]:
                entry[draw(st.sampled_from(METHOD_HPARAMS[name]))] = draw(values)
            spec["methods"] = [entry]
        elif kind == "metrics":  # metric lists and the options that fit one kind of data only
            _set(spec, ("eval", "metrics"), draw(st.sampled_from([{}, {"image": ["fd"]}, {"points": []}, ["precision"],
                                                                  {"points": ["recall"]}, ["fd_digits"]])))
            _set(spec, ("eval", "metric_options"), {m: {"features": draw(st.sampled_from(["digits", "raw", 3]))}
                                                    for m in ("precision", "recall")})
        elif kind == "aimed":
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
    if v == HUGE_INT:
        return "1" * 5000
    if v == DOTTED:
        return "{ " + ".".join(["k"] * 20_000) + " = 1 }"
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


# ------------------------------------------------------------------------------------------------ --set
#: keys of ``--set``: real ones, positions in non-ASCII or very many digits, paths too deep, broken syntax
SET_KEYS = ["train.steps", "train.lr", "methods[0].k", "methods[rf].k", "methods[1].k", "methods[\u00b2].k",
            "methods[\u0663].k", "methods[\uff11].k", "methods[" + "9" * 30 + "].k", "methods[-1].k",
            "solvers[euler].nfe", "solvers[dopri5].tolerances", "solvers[0].tolerances", "datasets[moons].source",
            "datasets[0].options.n_train", "datasets[0].options.data_dir", "datasets[0].target", "eval.metrics",
            "eval.metric_options.precision.features", "eval.n_samples", "net.hidden", "seeds", "name",
            "a." * 60 + "b", "methods[].k", "methods[0]", "[0]", "methods[0][1].k", "methods.k", "eval..metrics", ""]
#: value texts the dict -> TOML writer cannot produce
SET_TEXTS = ["1" * 5000, "-" + "9" * 4400, "{ " + ".".join(["k"] * 20_000) + " = 1 }", "[" * 2000, "{}", "[]",
             "1e-300", "1e999", "nan", "-inf", '"digits"', "digits", '"/"', '"' + "../" * 20 + '"', '"/proc"',
             "0x" + "f" * 3000, "1_" * 3000 + "1", '"\\ud800"', "'''x", '"x' * 3, "\u00b2"]
COUNTS = ["0", "-1", "1", "2", "100000", "1" * 30, "1" * 5000, "x", "\u00b2", "1.5", ""]


@st.composite
def set_cases(draw) -> list[str]:
    """Extra ``odebench run`` arguments: one to three ``--set KEY=VALUE`` (a key of SET_KEYS or any text; a value
    of SET_TEXTS, any value written as TOML, or any text), sometimes a ``--jobs`` or ``--threads``."""
    argv: list[str] = []
    for _ in range(draw(st.integers(1, 3))):
        key = draw(st.one_of(st.sampled_from(SET_KEYS), st.text(max_size=12)))
        value = draw(st.one_of(st.sampled_from(SET_TEXTS), values.map(_value), st.text(max_size=20)))
        argv += ["--set", f"{key}={value}".replace("\0", "")]  # a NUL cannot be in an argument
    if draw(st.integers(0, 3)) == 0:
        argv += [draw(st.sampled_from(["--jobs", "--threads"])), draw(st.sampled_from(COUNTS))]
    return argv


#: the spec the --set cases change: two methods, a fixed-step and an adaptive solver, one toy set
SET_BASE = {"name": "fz", "seeds": [0], "train": {"steps": 2, "batch_size": 16, "lr": 1e-3},
            "net": {"name": "mlp", "hidden": 8, "depth": 1}, "eval": {"n_samples": 16, "metrics": ["w2"]},
            "methods": [{"name": "fm_ot"}, {"name": "rf", "k": 1, "n_pairs": 32}],
            "datasets": [{"target": "moons", "options": {"n_train": 256, "n_test": 64}}],
            "solvers": [{"name": "euler", "nfe": [2]}, {"name": "dopri5", "tolerances": [1e-3]}]}


# ------------------------------------------------------------------------------------------------ runner
#: the image-folder walk's bound while a spec runs: a folder above everything (/) meets it after 20,000 entries,
#: not 300,000 (1.5 s each time); what the fuzzer checks is that the bound ends the walk cleanly
WALK_ENTRIES = 20_000


class Hang(BaseException):
    """A spec ran past its time limit (a BaseException: the harness's own ``except Exception`` lets it by)."""


@dataclass
class Outcome:
    """What one fuzzed spec did: exit code, whether a traceback escaped, files written, changed or deleted
    outside --out, hang, and what a spec accepted by the dry run holds that it should not (``wrong``)."""

    code: int | None
    traceback: str | None = None
    outside: list[str] = field(default_factory=list)
    hang: bool = False
    stderr: str = ""
    wrong: list[str] = field(default_factory=list)


def _snapshot(root: Path, skip: Path) -> dict[str, tuple[int, int]]:
    out = {}
    for folder, dirs, files in os.walk(root):
        if Path(folder) == skip:
            dirs.clear()
            continue
        for name in files + [d for d in dirs if os.path.islink(os.path.join(folder, d))]:
            p = Path(folder) / name
            with contextlib.suppress(OSError):
                st_ = p.lstat()
                out[str(p)] = (st_.st_mtime_ns, st_.st_size)
    return out


def prepare_sandbox(sandbox: Path) -> None:
    """The sentinel folder in ``sandbox`` (idempotent): two 8x8 images, a FIFO and a symlink loop among them,
    files named like odebench's temp files and figures, which no run may write, change or delete."""
    sentinel = sandbox / SENTINEL
    if sentinel.is_dir():
        return
    import numpy as np
    from PIL import Image

    (sentinel / "figures").mkdir(parents=True)
    (sandbox / "tmp").mkdir(exist_ok=True)
    for i in range(2):
        Image.fromarray(np.full((8, 8), 40 * i + 20, dtype=np.uint8)).save(sentinel / f"img{i}.png")
    (sentinel / "figures" / "old.png").write_bytes(b"not a figure of odebench")
    (sentinel / ".thesis.docx.tmp").write_text("a user's file")
    (sentinel / "loop").symlink_to(".", target_is_directory=True)
    if hasattr(os, "mkfifo"):
        os.mkfifo(sentinel / "fifo.png")


def _call_main(argv: list[str], sandbox: Path, timeout: float, outcome: Outcome) -> None:
    """``main(argv)`` in this process with the temp folder moved into the sandbox; fills ``outcome``."""
    import multiprocessing.util
    import tempfile

    import torch

    from odebench.bench.cli import main
    from odebench.bench.data import images

    err, threads, walk = io.StringIO(), torch.get_num_threads(), images.MAX_WALK_ENTRIES
    images.MAX_WALK_ENTRIES = min(walk, WALK_ENTRIES)
    # multiprocessing keeps one temp folder per process (the forkserver's socket lies there, for later runs
    # too): made now, in the real temp folder, it outlives the sandbox
    multiprocessing.util.get_temp_dir()
    old_tmp, old_env = tempfile.tempdir, os.environ.get("TMPDIR")
    tempfile.tempdir = os.environ["TMPDIR"] = str(sandbox / "tmp")

    def alarm(signum, frame):
        raise Hang()

    old = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, timeout)
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
        images.MAX_WALK_ENTRIES = walk
        tempfile.tempdir = old_tmp
        if old_env is None:
            os.environ.pop("TMPDIR", None)
        else:
            os.environ["TMPDIR"] = old_env
    outcome.stderr = err.getvalue()
    if outcome.traceback is None and "Traceback (most recent call last)" in outcome.stderr:
        outcome.traceback = outcome.stderr


def _accepted_but_wrong(spec_path: Path, sets: list[str]) -> list[str]:
    """What a spec the dry run accepted holds that no run can use: a cell with no metric for its data."""
    from odebench.bench.data import dataset_kind
    from odebench.bench.harness.spec.sweep import load_spec

    spec = load_spec(str(spec_path), sets=tuple(sets))
    return [f"cell {c.id}: no metric for {c.target}" for c in spec.cells
            if dataset_kind(c.target) and not c.eval["metrics"].get(dataset_kind(c.target))]


def _run(spec_text: str, extra: list[str], dry_run: bool, sandbox: Path, timeout: float,
         name: Any = None) -> Outcome:
    prepare_sandbox(sandbox)
    out = sandbox / "d1" / "d2" / "d3" / "d4" / "d5" / "out"
    out.parent.mkdir(parents=True, exist_ok=True)
    spec_path = sandbox / "spec.toml"
    spec_path.write_text(spec_text, encoding="utf-8")
    before = _snapshot(sandbox, out)
    escape = _escape_target(name, out, sandbox)
    escape_existed = escape is not None and escape.exists()
    argv = ["run", "--spec", str(spec_path), *extra, "--out", str(out), "--no-progress"] + (
        ["--dry-run"] if dry_run else [])
    outcome = Outcome(code=None)
    _call_main(argv, sandbox, timeout, outcome)
    after = _snapshot(sandbox, out)
    outcome.outside = sorted(p for p, sig in after.items() if before.get(p) != sig and Path(p) != spec_path)
    outcome.outside += sorted(f"deleted: {p}" for p in before if p not in after)
    if escape is not None and not escape_existed and escape.exists():
        outcome.outside.append(str(escape))
    if dry_run and outcome.code == 0:
        sets = [a for i, a in enumerate(extra) if i and extra[i - 1] == "--set"]
        outcome.wrong = _accepted_but_wrong(spec_path, sets)
    return outcome


def run_one(spec: dict[str, Any], mutated: bool, sandbox: Path, timeout: float = 60.0) -> Outcome:
    """Run ``odebench run`` in this process on ``spec`` (dry run if ``mutated``), with ``--out`` five folders
    deep in ``sandbox``; report the exit code, any traceback (an exception out of ``main`` or a traceback
    printed on stderr), every file created, changed or deleted in the sandbox outside ``--out`` and outside the
    spec file (the sentinel folder and the temp folder included), the path the spec's name would escape to if it
    exists, whether it ran past ``timeout``, and what an accepted spec holds that it should not."""
    return _run(to_toml(spec, sandbox), [], mutated, sandbox, timeout, spec.get("name"))


def run_set(argv: list[str], sandbox: Path, timeout: float = 60.0) -> Outcome:
    """``odebench run --spec SET_BASE ARGV --dry-run`` (``argv``: from :func:`set_cases`), as :func:`run_one`."""
    return _run(to_toml(SET_BASE, sandbox), argv, True, sandbox, timeout)


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
                       "accepted_but_wrong": sum(bool(o.wrong) for o in outcomes),
                       "hangs": sum(o.hang for o in outcomes)})
