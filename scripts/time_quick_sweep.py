"""Wall time of a sweep with the default parallelism against ``--jobs 1``, back to back, with the machine's load.

    python3 scripts/time_quick_sweep.py                      # quick: the default, then --jobs 1
    python3 scripts/time_quick_sweep.py --competing          # the same beside one busy-looping process
    python3 scripts/time_quick_sweep.py --runs default "--jobs 1 --threads 2"

Each run is a fresh ``odebench run --spec SPEC`` into its own empty results folder (so every model is trained
again), from this checkout, with the environment's OMP_NUM_THREADS removed (the CLI sets the thread count).
Before and after each run the script prints the load averages of ``uptime``: a timing taken while other work
kept the load above the core count says so. ``--competing`` starts ``python3 -c "while True: pass"`` before the
runs and stops it after them. The records of the runs are compared at the end: at the same thread count they
must match bit for bit.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def load() -> str:
    """The 1, 5 and 15 minute load averages."""
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


def run(spec: str, extra: list[str], out: Path) -> float:
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    argv = [sys.executable, "-m", "odebench", "run", "--spec", spec, "--out", str(out), "--no-progress", *extra]
    start = time.perf_counter()
    proc = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{shlex.join(argv)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return seconds


def metrics(folder: Path) -> dict[str, tuple]:
    out = {}
    for p in folder.glob("*.json"):
        r = json.loads(p.read_text())
        out[p.stem] = (r["status"], r.get("metrics"), r["environment"].get("threads"))
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--spec", default="quick")
    p.add_argument("--runs", nargs="+", default=["default", "--jobs 1"],
                   help='command-line options of each run, in order; "default" is none')
    p.add_argument("--competing", action="store_true", help="one busy-looping process beside the runs")
    args = p.parse_args()
    busy = None
    if args.competing:
        busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
        time.sleep(2)
    rows, folders = [], {}
    try:
        with tempfile.TemporaryDirectory(prefix="odebench-timing-") as tmp:
            for i, options in enumerate(args.runs):
                extra = [] if options == "default" else shlex.split(options)
                out = Path(tmp) / f"run{i}"
                before = load()
                seconds = run(args.spec, extra, out)
                rows.append((options, seconds, before, load()))
                folders[options] = metrics(out / args.spec / "cells")
                print(f"{options:>24}: {seconds // 60:.0f} min {seconds % 60:04.1f} s  "
                      f"(load before {before}, after {rows[-1][3]})", flush=True)
    finally:
        if busy is not None:
            busy.kill()
    print(f"\n{os.cpu_count()} cores; competing busy loop: {'yes' if args.competing else 'no'}")
    print("| run | wall time | load before (1/5/15 min) | load after |\n|---|---|---|---|")
    for options, seconds, before, after in rows:
        print(f"| `{options}` | {seconds // 60:.0f} min {seconds % 60:.0f} s | {before} | {after} |")
    base = rows[0][1]
    for options, seconds, _, _ in rows[1:]:
        print(f"{options}: {seconds / base:.2f}x the time of {rows[0][0]}")
    first, *others = folders.items()
    for options, recs in others:
        same_threads = {k for k, v in recs.items() if first[1].get(k, (None, None, None))[2] == v[2]}
        equal = all(first[1][k][:2] == recs[k][:2] for k in same_threads)
        print(f"records of {options!r} vs {first[0]!r}: {len(same_threads)} at the same thread count, "
              f"{'bit-identical' if equal else 'DIFFERENT'}")


if __name__ == "__main__":
    main()
