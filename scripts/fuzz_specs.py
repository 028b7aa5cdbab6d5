"""Fuzz `odebench run` with generated specs and print the figures: inputs tried, exit codes (0 ok, 1 some
cell failed, 2 clean refusal), tracebacks, writes or deletes outside --out, hangs, specs accepted but wrong.

    OMP_NUM_THREADS=1 python3 scripts/fuzz_specs.py --examples 1000 [--seed 1] [--timeout 60] [--show 5]

The specs come from tests/spec_fuzz.py (the CI fuzzer's strategies): about one in five is a tiny valid spec
run for real (training, sampling, metrics, report), the others are mutations run with --dry-run. Every spec
runs in its own sandbox folder; the script exits with 1 if any traceback, outside write or hang was seen.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from hypothesis import HealthCheck, given, seed, settings  # noqa: E402
from spec_fuzz import cases, run_one, summary_line  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--examples", type=int, default=1000)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--timeout", type=float, default=60.0, help="seconds before a spec counts as a hang")
    p.add_argument("--show", type=int, default=5, help="print this many problems in full")
    args = p.parse_args()

    import torch

    torch.set_num_threads(1)
    outcomes, problems, real = [], [], []
    start = time.perf_counter()

    @seed(args.seed)
    @settings(max_examples=args.examples, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(cases())
    def fuzz(case):  # never fails: it records, so that hypothesis draws every example and does not shrink
        spec, mutated = case
        sandbox = Path(tempfile.mkdtemp(prefix="odebench-fuzz-"))
        try:
            o = run_one(spec, mutated, sandbox, args.timeout)
        finally:
            shutil.rmtree(sandbox, ignore_errors=True)
        outcomes.append(o)
        if not mutated:
            real.append(o)
        if o.traceback or o.outside or o.hang or o.wrong:
            problems.append((spec, o))
        if len(outcomes) % 100 == 0:
            print(f"{len(outcomes)} specs, {time.perf_counter() - start:.0f} s: {summary_line(outcomes)}", flush=True)

    fuzz()
    print(summary_line(outcomes))
    print(f"run for real: {len(real)} (exit 0: {sum(o.code == 0 for o in real)}, 1: "
          f"{sum(o.code == 1 for o in real)}, 2: {sum(o.code == 2 for o in real)}); dry runs: "
          f"{len(outcomes) - len(real)}; wall time {time.perf_counter() - start:.0f} s")
    for spec, o in problems[:args.show]:
        print("---", spec, o.outside, o.wrong, "hang" if o.hang else "", o.traceback, sep="\n")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
