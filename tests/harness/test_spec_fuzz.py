"""The spec fuzzer in CI: generated specs (tiny valid ones, run for real; mutated ones, dry run) never end
in a traceback, exit with 0, 1 or 2, write nothing outside --out and finish in time.

Derandomized with a fixed seed and ``ODEBENCH_FUZZ_EXAMPLES`` examples (default 30: about 25 s on two
busy cores). Locally, ``ODEBENCH_FUZZ_EXAMPLES=1000 python3 -m pytest tests/harness/test_spec_fuzz.py`` or
``scripts/fuzz_specs.py`` (which prints the figures) run more.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, seed, settings
from load import scaled
from spec_fuzz import cases, run_one

EXAMPLES = int(os.environ.get("ODEBENCH_FUZZ_EXAMPLES", "30"))


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
    assert outcome.traceback is None, outcome.traceback
    assert not outcome.hang, spec
    assert outcome.code in (0, 1, 2), (outcome.code, outcome.stderr[-2000:])
    assert not outcome.outside, outcome.outside
    if outcome.code == 2:  # a refusal is one clear line, not a dump
        assert outcome.stderr.lstrip().startswith("error:"), outcome.stderr[-2000:]
