"""Ctrl-C at random moments of `odebench run`: how often does an interrupt end in anything but one clean line?

    python3 scripts/interrupt_trial.py [--tries 50] [--max-delay 5] [--spec smoke] [--jobs 2] [--seed 0]

Each try starts `odebench run --spec SPEC --out <new temporary folder> --jobs N` in a session of its own,
waits a random 0 to --max-delay seconds (start-up, imports, the worker server, worker start-up, training and
cells), then sends SIGINT to the whole process group, as a terminal's Ctrl-C does. It counts exit codes (130:
interrupted; 0: finished first), tries whose stderr holds a traceback, and tries that left a process of their
group alive 5 s after the driver exited (each is then killed), and prints the stderr of every bad try. Exit 1 if
any try printed a traceback, ended with another code or left a process behind. It competes for the CPU with
whatever runs: run it under `nice`, once, on a quiet machine if possible.
"""

from __future__ import annotations

import argparse
import collections
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _default_sigint() -> None:
    """In the child: SIGINT's default action, as in a terminal. A command started in the background (`&` in a
    script) inherits SIGINT ignored, and odebench, as any Unix program, keeps an inherited ignore."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def one_try(delay: float, spec: str, jobs: int, command: list[str]) -> tuple[int, str, bool]:
    """(exit code, stderr, whether a process of the run's group outlived the driver by 5 s)."""
    out = tempfile.mkdtemp(prefix="odebench-interrupt-")
    try:
        proc = subprocess.Popen([*command, "run", "--spec", spec, "--out", out, "--jobs", str(jobs), "--no-progress"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True,
                                env={**os.environ, "OMP_NUM_THREADS": "1"}, preexec_fn=_default_sigint)
        time.sleep(delay)
        try:
            os.killpg(proc.pid, signal.SIGINT)
        except ProcessLookupError:  # it finished before the interrupt
            pass
        _, err = proc.communicate(timeout=600)
        deadline = time.monotonic() + 5
        while _group_alive(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        left = _group_alive(proc.pid)
        if left:
            os.killpg(proc.pid, signal.SIGKILL)
        return proc.returncode, err, left
    finally:
        shutil.rmtree(out, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tries", type=int, default=50)
    ap.add_argument("--max-delay", type=float, default=5.0, help="seconds; each delay is uniform in [0, this]")
    ap.add_argument("--spec", default="smoke")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--command", default=None,
                    help="the odebench command (default: this Python's `-m odebench`)")
    args = ap.parse_args(argv)
    command = args.command.split() if args.command else [sys.executable, "-m", "odebench"]
    rng = random.Random(args.seed)
    codes: collections.Counter = collections.Counter()
    tracebacks = left_behind = 0
    bad = []
    for i in range(args.tries):
        delay = rng.uniform(0, args.max_delay)
        code, err, left = one_try(delay, args.spec, args.jobs, command)
        codes[code] += 1
        traceback = "Traceback" in err
        tracebacks += traceback
        left_behind += left
        ok = code in (0, 130) and not traceback and not left
        print(f"try {i + 1:3d}: SIGINT after {delay:5.2f} s -> exit {code}"
              f"{', traceback' if traceback else ''}{', processes left' if left else ''}", flush=True)
        if not ok:
            bad.append((i + 1, delay, err))
    print(f"\n{args.tries} tries: exit codes {dict(sorted(codes.items()))}; {tracebacks} with a traceback; "
          f"{left_behind} left a process behind")
    for i, delay, err in bad:
        print(f"\n--- try {i} (SIGINT after {delay:.2f} s): stderr ---\n{err}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
