"""The spec fuzzer in CI: generated specs (tiny valid ones, run for real; mutated ones, dry run) and generated
``--set`` overrides never end in a traceback, exit with 0, 1 or 2, write, change or delete nothing outside --out
(a sentinel folder and the temp folder are watched), finish in time, and a dry run never accepts a spec whose
cells would measure nothing.

Fast lane: derandomized with a fixed seed, ``ODEBENCH_FUZZ_EXAMPLES`` specs (default 30: about 25 s on two busy
cores) and ``ODEBENCH_FUZZ_SETS`` overrides (default 40). Slow lane (``-m slow``): 2,000 mutated specs and 500
``--set`` cases, dry runs only (about a minute on two busy cores). Locally,
``ODEBENCH_FUZZ_EXAMPLES=1000 python3 -m pytest tests/harness/test_spec_fuzz.py`` or ``scripts/fuzz_specs.py``
(which prints the figures) run more.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, seed, settings
from load import scaled
from spec_fuzz import _snapshot, cases, mutated_specs, prepare_sandbox, run_one, run_set, set_cases, summary_line

EXAMPLES = int(os.environ.get("ODEBENCH_FUZZ_EXAMPLES", "30"))
SETS = int(os.environ.get("ODEBENCH_FUZZ_SETS", "40"))
SLOW_SPECS, SLOW_SETS = 2000, 500


def _check(outcome, what) -> None:
    what = repr(what)[:1000]
    assert outcome.traceback is None, outcome.traceback[-3000:]
    assert not outcome.hang, what
    assert outcome.code in (0, 1, 2), (outcome.code, outcome.stderr[-2000:])
    assert not outcome.outside, outcome.outside
    assert not outcome.wrong, (what, outcome.wrong)
    if outcome.code == 2:  # a refusal is one clear line (or argparse's usage and its error line), not a dump
        err = outcome.stderr.lstrip()
        assert err.startswith("error:") or (err.startswith("usage:") and "error:" in err), err[-2000:]


@seed(20240518)
@settings(max_examples=EXAMPLES, deadline=None, derandomize=False, database=None,
          suppress_health_check=list(HealthCheck))
@given(cases())
def test_no_spec_ends_in_a_traceback_a_hang_or_a_write_outside_out(case):
    spec, mutated = case
    sandbox = Path(tempfile.mkdtemp(prefix="odebench-fuzz-"))
    try:
        outcome = run_one(spec, mutated, sandbox, timeout=scaled(60))  # 60 s on an idle machine
    finally:
        shutil.rmtree(sandbox, ignore_errors=True)
    _check(outcome, spec)


@pytest.fixture(scope="module")
def shared_sandbox():
    """One sandbox for many dry runs (they write nothing): its sentinel folder and temp folder are compared
    before and after the whole lane too, besides around each case."""
    sandbox = Path(tempfile.mkdtemp(prefix="odebench-fuzz-"))
    prepare_sandbox(sandbox)
    before = _snapshot(sandbox, sandbox / "d1")
    yield sandbox
    after = _snapshot(sandbox, sandbox / "d1")
    shutil.rmtree(sandbox, ignore_errors=True)
    changed = {p for p in set(before) | set(after) if before.get(p) != after.get(p) and not p.endswith("spec.toml")}
    assert not changed, sorted(changed)


@seed(20240519)
@settings(max_examples=SETS, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(set_cases())
def test_no_set_override_ends_in_a_traceback_a_hang_or_a_write_outside_out(argv):
    sandbox = Path(tempfile.mkdtemp(prefix="odebench-fuzz-"))
    try:
        _check(run_set(argv, sandbox, timeout=60), argv)
    finally:
        shutil.rmtree(sandbox, ignore_errors=True)


@pytest.mark.slow
def test_slow_lane_2000_mutated_specs_dry_run_cleanly(shared_sandbox):
    outcomes = []

    @seed(20240520)
    @settings(max_examples=SLOW_SPECS, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(mutated_specs())
    def fuzz(spec):
        outcome = run_one(spec, True, shared_sandbox, timeout=60)
        outcomes.append(outcome)
        _check(outcome, spec)

    fuzz()
    assert len(outcomes) >= SLOW_SPECS, summary_line(outcomes)


@pytest.mark.slow
def test_slow_lane_500_set_overrides_dry_run_cleanly(shared_sandbox):
    outcomes = []

    @seed(20240521)
    @settings(max_examples=SLOW_SETS, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(set_cases())
    def fuzz(argv):
        outcome = run_set(argv, shared_sandbox, timeout=60)
        outcomes.append(outcome)
        _check(outcome, argv)

    fuzz()
    assert len(outcomes) >= SLOW_SETS, summary_line(outcomes)
