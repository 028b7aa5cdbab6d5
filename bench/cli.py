"""``odebench`` command line: thin parsing on top of bench.spec, bench.run and bench.report.

    odebench run [--spec NAME|PATH] [--out DIR] [--device cpu|cuda] [--dry-run] [--executor local|ray]
                 [--address ADDR]
    odebench list
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _cmd_list(args: argparse.Namespace) -> int:
    from bench.data import DATASETS
    from bench.solvers import SOLVERS
    from bench.spec import builtin_spec_names
    from methods import METHODS
    from metrics import METRICS

    print("methods:  " + ", ".join(METHODS.names()))
    kinds = {n: SOLVERS.get(n).kind + (", adaptive" if SOLVERS.get(n).adaptive else "")
             for n in SOLVERS.names()}
    print("solvers:  " + ", ".join(f"{n} ({k})" for n, k in kinds.items()))
    print("datasets: " + ", ".join(DATASETS.names()))
    print("metrics:  " + ", ".join(METRICS.names()))
    print("specs:    " + ", ".join(builtin_spec_names()))
    for reg in (METHODS, SOLVERS, DATASETS, METRICS):
        for name, err in reg.plugin_errors.items():
            print(f"warning: {reg.kind} plugin {name!r} failed to load: {err}", file=sys.stderr)
    return 0


def _print_plan(spec, out: Path) -> None:
    from bench.artifacts import ArtifactStore
    from bench.jobs import make_plan
    from bench.store import RecordStore
    from bench.summary import plan_text

    store = RecordStore(out / spec.name)
    plan = make_plan(spec.cells, store.finished, ArtifactStore(out / ".cache" / "models"))
    print(plan_text(spec, plan))


def _cmd_run(args: argparse.Namespace) -> int:
    from bench.executors import ExecutorUnavailable, get_executor
    from bench.report import write_leaderboard_md
    from bench.run import run_sweep
    from bench.spec import SpecError, load_spec
    from bench.store import RecordStore
    from bench.summary import summary_text

    try:
        spec = load_spec(args.spec)
    except (SpecError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.dry_run:
        _print_plan(spec, args.out)
        return 0
    try:
        get_executor(args.executor, args.address)  # a missing Ray fails here, before any work
    except ExecutorUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    summary = run_sweep(spec, args.out, device=args.device, progress=not args.no_progress,
                        executor=args.executor, address=args.address)
    board = write_leaderboard_md(summary.out_dir)
    print(summary_text(spec, summary, RecordStore(summary.out_dir)))
    if board:
        print(f"leaderboard: {board}")
    for f in summary.failures:
        print(f"failed: {f}", file=sys.stderr)
    return 1 if summary.failures else 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="odebench", description="Benchmark ODE/SDE generative models.")
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="run a sweep (default: the built-in CPU sweep 'quick')")
    r.add_argument("--spec", default="quick", help="built-in spec name or path to a TOML spec")
    r.add_argument("--out", default="results", type=Path, help="results root (default: results)")
    r.add_argument("--device", default=None, help="cpu or cuda (default: the spec's, else cpu)")
    r.add_argument("--dry-run", action="store_true",
                   help="print the plan (cells done / skipped and why / to run, trainings) and exit")
    r.add_argument("--executor", choices=["local", "ray"], default="local",
                   help="where jobs run: this process (default) or Ray tasks (needs the 'ray' extra)")
    r.add_argument("--address", default=None,
                   help="Ray cluster address for --executor ray (default: start a local Ray)")
    r.add_argument("--no-progress", action="store_true", help="no progress bars")
    r.set_defaults(func=_cmd_run)
    ls = sub.add_parser("list", help="list registered methods, solvers, datasets, metrics and specs")
    ls.set_defaults(func=_cmd_list)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
