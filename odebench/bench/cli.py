"""``odebench`` command line: thin parsing on top of odebench.bench.harness.spec.sweep,
odebench.bench.harness.execution.run and odebench.bench.report.build.

    odebench run [--spec NAME|PATH] [--set KEY=VALUE ...] [--track tensorboard|mlflow|wandb ...] [--out DIR]
                 [--device cpu|cuda] [--precision fp32|bf16] [--compile] [--data-dir DIR]
                 [--inception-weights PATH] [--dry-run] [--executor local|ray] [--address ADDR] [--jobs N]
                 [--threads N]
    odebench eval --model PKG.MODULE:FACTORY [--checkpoint FILE] [--kind velocity|eps|x1|score|v] --dataset NAME
                  [--source NAME] [--spec NAME|PATH] [--out DIR] [--name NAME] [--path NAME]
                  [--adapter auto|plain|torchcfm|flow_matching|diffusers] [--coupling independent|ot]
                  [--state-key KEY] [--device cpu|cuda]
                  [--data-dir DIR] [--threads N] [--no-figures]
    odebench report RESULTS_DIR [--cache DIR] [--no-figures]
    odebench claims RESULTS_DIR [--no-write]
    odebench pack SWEEP_DIR DEST
    odebench list [KIND] [-v]
    odebench show NAME
    odebench schema
    odebench --version

Every folder the user names is resolved to an absolute path once, as it is parsed (``_absolute``). Every mistake
in what the user asked for ends with one ``error:`` line naming the fix and exit code 2; so does an I/O error the
user can fix (a full disk, a read-only or immutable folder: one line naming the path and the cause; others exit
1), and a path that leads out of the folder named (a symlinked ``index.html`` or ``figures/``). Ctrl-C ends with exit
code 130 and the advice to re-run the same command (finished cells are kept), at any moment: the import-safe SIGINT
handler (odebench.bench.harness.process.interrupts) is installed before this module imports anything else, so an
interrupt that lands inside an import is taken once the import is done.
"""

from __future__ import annotations

from odebench.bench.harness.process import interrupts

interrupts.install()  # first: a Ctrl-C inside the imports below (or torch's, later) must not break them

import argparse  # noqa: E402
import errno  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402


def _cmd_list(args: argparse.Namespace) -> int:
    from odebench.bench.harness.spec import catalog

    categories = [args.category] if args.category else list(catalog.CATEGORIES)
    print(catalog.listing(categories, verbose=args.verbose))
    if not args.verbose:
        print(f"\nodebench list {args.category or 'KIND'} -v: hparams and options with their defaults, and which "
              f"solvers and metrics apply; odebench show NAME: one entry")
    for warning in catalog.plugin_errors():
        print(f"warning: {warning}", file=sys.stderr)
    return 0


def _cmd_show(args: argparse.Namespace) -> int:
    import difflib

    from odebench.bench.harness.spec import catalog

    found = catalog.find(args.name)
    if not found:
        known = sorted({n for c in catalog.CATEGORIES for n in catalog.names(c)})
        close = difflib.get_close_matches(args.name, known, n=3)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise UsageError(f"nothing is registered as {args.name!r}{hint}; `odebench list` shows every name")
    for category in found:
        print(f"{args.name} ({category[:-1]}): {catalog.describe(category, args.name)}")
        for line in catalog.details(category, args.name):
            print(line)
    return 0


def _cmd_schema(args: argparse.Namespace) -> int:
    import json

    from odebench.bench.harness.spec.schema import spec_schema

    print(json.dumps(spec_schema(), indent=1))
    return 0


def _print_plan(spec, out: Path) -> None:
    from odebench.bench.harness.execution.data_shapes import check_data_shapes
    from odebench.bench.harness.execution.model_size import check_model_sizes
    from odebench.bench.harness.execution.plan import make_plan
    from odebench.bench.harness.spec.limits import limits_of
    from odebench.bench.harness.store.artifacts import ArtifactStore
    from odebench.bench.harness.store.records import RecordStore
    from odebench.bench.report.summary import plan_text

    check_data_shapes(spec.cells)  # the checks a run makes before any work: a dry run refuses what it refuses
    store = RecordStore(out / spec.name)  # read only: a dry run writes nothing, not even a moved corrupt record
    plan = make_plan(spec.cells, store.finished, ArtifactStore(out / ".cache" / "models", read_only=True),
                     spec.precision)
    check_model_sizes(plan, limits_of(spec.raw))
    print(plan_text(spec, plan, _earlier(spec, out)))


def _earlier(spec, out: Path) -> str | None:
    """The note on records of the sweep folder that this spec no longer produces (None: there are none)."""
    from odebench.bench.harness.store.versions import earlier_configs, earlier_note

    sweep_dir = out / spec.name
    old = earlier_configs(sweep_dir, {c.id for c in spec.cells})
    return earlier_note(sweep_dir, old, [c.config() for c in spec.cells])


class UsageError(Exception):
    """A mistake in what the user asked for: ``main`` prints it as one ``error:`` line and exits with 2."""


def _absolute(text: str) -> Path:
    """A folder the user names (``--out``, a sweep or report folder, DEST, a cache), resolved to one absolute
    path once, as it is parsed (``..`` and symlinks on the way followed, as the system does): every check, join
    and message after this uses it (``results/quick`` taken under itself once wrote ``results/quick/results/
    quick``)."""
    return Path(text).resolve()


def _load_spec(name_or_path: str, sets: list[str] | None = None):
    from odebench.bench.harness.spec.sweep import SpecError, load_spec

    try:
        return load_spec(name_or_path, sets=tuple(sets or ()))
    except (SpecError, FileNotFoundError) as exc:
        raise UsageError(str(exc)) from exc


def _check_out(out: Path, create: bool) -> None:
    """``--out`` must be a folder this process can write (created if missing, when ``create``)."""
    probe = out
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent  # the nearest existing ancestor decides whether the folder can be made
    if probe.exists() and not probe.is_dir():
        where = "is a file" if probe == out else f"cannot be created: {probe} is a file"
        raise UsageError(f"--out {out} {where}; give a folder (it is created if missing), e.g. --out results")
    if probe.exists() and not os.access(probe, os.W_OK | os.X_OK):
        raise UsageError(f"--out {out}: cannot write in {probe} (permission denied); give a folder you can "
                         f"write, e.g. --out ~/odebench-results")
    if create:
        try:
            out.mkdir(parents=True, exist_ok=True)
            probe_file = out / f".odebench-write-test-{os.getpid()}"
            probe_file.touch()
            probe_file.unlink()
        except OSError as exc:
            raise UsageError(f"--out {out}: cannot write there ({exc.strerror or exc}); give a folder you can "
                             f"write, e.g. --out ~/odebench-results") from exc


def _check_count(option: str, value: int | None) -> None:
    """``--jobs`` and ``--threads``: at least 1, at most this machine's CPU count (more only makes the processes
    or threads take turns on the cores, and torch's thread pool crashes long before ``--threads 100000``)."""
    if value is None:
        return
    shown = value if abs(value) < 10**12 else f"{str(value)[:12]}... ({len(str(abs(value)))} digits)"
    if value < 1:
        raise UsageError(f"{option} must be at least 1, got {shown}")
    cores = os.cpu_count() or 1
    if value > cores:
        raise UsageError(f"{option} {shown}: at most {cores}, the CPU cores of this machine (os.cpu_count()); "
                         f"give {option} {cores} or fewer")


def _check_option_values(args: argparse.Namespace) -> None:
    """Values a dry run and a run both refuse: the same command line gets the same answer either way."""
    for option, value in (("--threads", args.threads), ("--jobs", args.jobs)):
        _check_count(option, value)
    if args.jobs is not None and args.jobs > 1 and args.executor != "local":
        raise UsageError(f"--jobs applies to the local executor; Ray schedules its own tasks: drop --jobs or "
                         f"--executor {args.executor}")


def _resolve_parallelism(args: argparse.Namespace, spec) -> tuple[int, int | None]:
    """(worker processes, torch threads per process) of a run.

    On a CPU the default is every core, as one single-threaded worker process each: independent trainings
    and cells fill the cores, and one thread per process never spin-waits on a busy machine. On a GPU, under
    torchrun and with Ray the default is this process (None threads: torch's own choice on a GPU).
    """
    from odebench.bench.harness.execution.pool_executor import available_cores
    from odebench.bench.harness.process import distributed

    cpu = (args.device or spec.device) == "cpu"
    if args.jobs is not None and args.jobs > 1 and distributed.is_distributed():
        raise UsageError("--jobs does not combine with torchrun (each rank is already one process per GPU); "
                         "drop --jobs")
    jobs = args.jobs
    if jobs is None:
        jobs = available_cores() if cpu and args.executor == "local" and not distributed.is_distributed() else 1
    threads = args.threads if args.threads is not None else (1 if cpu else None)
    return jobs, threads


def _apply_process_options(args: argparse.Namespace, spec) -> None:
    """Settings of this process, checked before any work: threads, data and weights locations, device, executor."""
    from odebench.bench.harness.execution.executors import ExecutorUnavailable, get_executor
    from odebench.bench.harness.process.runtime import resolve_device

    _apply_locations(args)
    args.jobs, threads = _resolve_parallelism(args, spec)
    if threads is not None:
        import torch

        # small models on a shared machine run many times slower when every process takes all cores; the
        # job context carries this count to every worker (odebench.bench.harness.execution.plan.JobContext.threads),
        # the pool's and Ray's included
        torch.set_num_threads(threads)
    try:
        resolve_device(args.device or spec.device)  # fail before any work when cuda is asked for and absent
        get_executor(args.executor, args.address, args.jobs)  # a missing Ray fails here, before any work
    except (RuntimeError, ValueError, ExecutorUnavailable) as exc:
        raise UsageError(str(exc)) from exc


def _check_run_options(args: argparse.Namespace, spec) -> str | None:
    """What a dry run checks as the run does, so that both give the same answer: --address comes with --executor
    ray, and a ``--device`` given on the command line exists here. A spec's own device that is missing here
    (planning a GPU sweep on a laptop) is refused by the run; the dry run still prints the plan, then this note
    (returned)."""
    from odebench.bench.harness.process.runtime import resolve_device

    if args.address is not None and args.executor != "ray":
        raise UsageError(f"--address {args.address} only applies to --executor ray; add --executor ray or drop "
                         f"--address")
    try:
        resolve_device(args.device or spec.device)
    except (RuntimeError, ValueError) as exc:
        if args.device is not None or not args.dry_run:
            raise UsageError(str(exc)) from exc
        return f"the spec's device: {exc}; a run here would stop before any work (--device cpu runs it on the CPU)"
    return None


def _apply_locations(args: argparse.Namespace) -> None:
    """Where datasets and weights are read from; a dry run needs them too (planning loads every dataset). A
    weights file that is not there is refused now, not when the first FID cell fails on it."""
    from odebench.bench.harness.guards.bounded_read import not_a_file

    weights = args.inception_weights
    problem = not_a_file(weights) if weights is not None else None
    if problem:
        raise UsageError(f"--inception-weights {weights}: {problem}; give the Inception weights file for FID "
                         f"(odebench never downloads it), or drop the option")
    if args.data_dir is not None:
        os.environ["ODEBENCH_DATA"] = str(args.data_dir)  # read by the image loaders (odebench.bench.data.images)
    if args.inception_weights is not None:
        os.environ["ODEBENCH_INCEPTION"] = str(args.inception_weights)  # read by odebench.metrics.fid


def _resolve_data_hparams(spec):
    """The spec with its data hparams (e.g. score_ve's sigma_max = "data") computed; each value is printed."""
    from odebench.bench.harness.execution.data_hparams import resolve_spec

    spec, notes = resolve_spec(spec)
    for note in notes:
        print(f"from the data: {note}")
    return spec


def _track_sinks(args: argparse.Namespace, spec) -> list[str]:
    """The tracking sinks of a run: ``--track`` (``none``: no tracking) if given, else the spec's ``[track]``;
    each sink's library is imported now, so a missing one stops the run before any work, naming its extra."""
    from odebench.bench.harness.tracking import TrackingUnavailable, check_available

    sinks = list(dict.fromkeys(args.track)) if args.track else list(spec.track.get("sinks", []))
    if "none" in sinks:
        if len(sinks) > 1:
            raise UsageError(f"--track none turns tracking off; it does not combine with --track "
                             f"{' --track '.join(s for s in sinks if s != 'none')}: drop one")
        return []
    try:
        check_available(sinks)
    except TrackingUnavailable as exc:
        raise UsageError(str(exc)) from exc
    return sinks


def _open_tracker(sinks: list[str], spec, out: Path):
    """The run's Tracker (None without sinks); says where each sink writes."""
    if not sinks:
        return None
    from odebench.bench.harness.tracking import open_tracker

    where = out / spec.name / "tracking"
    for sink in sinks:
        tb, mlruns = where / "tensorboard", where / "mlruns"
        place = {"tensorboard": f"event files in {tb} (tensorboard --logdir {tb})",
                 "mlflow": spec.track.get("mlflow_uri") or f"a local MLflow store in {mlruns} (MLFLOW_ALLOW_FILE_"
                                                            f"STORE=true mlflow ui --backend-store-uri {mlruns})",
                 "wandb": f"W&B {spec.track.get('wandb_mode', 'offline')} files in {where / 'wandb'}"}[sink]
        print(f"tracking: {sink} -> {place}")
    try:
        return open_tracker(sinks, out / spec.name, out, spec.track, spec.raw, spec.name)
    except Exception as exc:  # an unsafe folder (a symlink out of --out), a library that fails to import
        raise UsageError(f"tracking: {exc}") from exc


def _waits_for_rank_zero(spec) -> bool:
    """Under torchrun rank 0 alone evaluates and writes; the other ranks wait here until its last record is
    written, then leave without touching the folder (no report or summary from a rank that has no records)."""
    from odebench.bench.harness.process import distributed

    if not distributed.is_distributed():
        return False
    distributed.barrier()
    if distributed.is_main():
        return False
    print(f"rank {distributed.rank()}: trained its share of the sweep '{spec.name}'; rank 0 wrote the records "
          f"and the report")
    return True


def _cmd_run(args: argparse.Namespace) -> int:
    from odebench.bench.data.images import DataDirError
    from odebench.bench.harness.execution.executors import ExecutorUnavailable
    from odebench.bench.harness.execution.run import PrecisionMismatch, run_sweep
    from odebench.bench.harness.guards.errors import RunRefused
    from odebench.bench.harness.store.records import RecordStore
    from odebench.bench.report.summary import summary_text

    spec = _load_spec(args.spec, args.set)
    _check_option_values(args)
    _check_out(args.out, create=False)
    device_note = _check_run_options(args, spec)
    sinks = _track_sinks(args, spec)
    if args.dry_run:
        if spec.overrides:
            print(f"spec: {spec.origin} (a run writes it to {args.out / spec.name / 'effective_spec.toml'})")
        if sinks:
            print(f"tracking: {', '.join(sinks)} (under {args.out / spec.name / 'tracking'})")
        _apply_locations(args)
        try:
            spec = _resolve_data_hparams(spec)
            _print_plan(spec, args.out)
        except (DataDirError, RunRefused) as exc:
            raise UsageError(str(exc)) from exc
        if device_note:
            print(f"note: {device_note}", file=sys.stderr)
        return 0
    _apply_process_options(args, spec)
    _check_out(args.out, create=True)
    try:
        spec = _resolve_data_hparams(spec)
    except DataDirError as exc:
        raise UsageError(str(exc)) from exc
    earlier = _earlier(spec, args.out)
    if earlier:  # said before any work, and again in the closing summary
        print(f"note: {earlier}", file=sys.stderr)
    from odebench.bench.harness.process import distributed

    tracker = _open_tracker(sinks, spec, args.out) if distributed.is_main() else None
    try:
        try:
            summary = run_sweep(spec, args.out, device=args.device, progress=not args.no_progress,
                                executor=args.executor, address=args.address, precision=args.precision,
                                compile=args.compile or None, jobs=args.jobs, tracker=tracker,
                                seed_stacks=not args.no_seed_stacks)
        except (DataDirError, PrecisionMismatch, RunRefused, ExecutorUnavailable) as exc:  # before any training
            raise UsageError(str(exc)) from exc
        if _waits_for_rank_zero(spec):
            return 0
        print(summary_text(spec, summary, RecordStore(summary.out_dir)))
        # drawing the figures can take minutes on a large sweep: say so, or the terminal looks hung after the summary
        print(f"writing the report: tables, then drawing figures in {summary.out_dir / 'figures'} ...", flush=True)
        try:  # after the summary: the records are safe whatever happens here
            report = _write_report(summary.out_dir)
        except (RunRefused, OSError) as exc:
            raise UsageError(f"the sweep finished and its records are kept in {summary.out_dir}, but its report "
                             f"was not written: {_describe(exc)}; fix that and run `odebench report "
                             f"{summary.out_dir}`") from exc
        print(f"report: {report.dir / 'index.html'} ({len(report.files)} files)")
        if tracker is not None:
            tracker.files("figures", [f for f in report.files if f.parent.name == "figures"])
    finally:
        if tracker is not None:
            tracker.close()
            for note in tracker.notes:
                print(f"note: {note}", file=sys.stderr)
    for f in summary.failures:
        print(f"failed: {f}", file=sys.stderr)
    return 1 if summary.failures else 0


def _cmd_eval(args: argparse.Namespace) -> int:
    from odebench.bench.api import default_name, evaluate_given, read_eval_spec
    from odebench.bench.data.images import DataDirError
    from odebench.bench.harness.execution.given import load_given
    from odebench.bench.harness.execution.run import PrecisionMismatch
    from odebench.bench.harness.guards.errors import RunRefused
    from odebench.bench.harness.process.runtime import resolve_device
    from odebench.bench.harness.spec.sweep import SpecError, parse_eval_spec
    from odebench.bench.harness.store.records import RecordStore
    from odebench.bench.report.summary import summary_text

    _check_count("--threads", args.threads)
    name = args.name or default_name(args.model.replace(":", "."), args.dataset, args.source)  # eval_pkg.mod.fn_moons
    try:  # the spec's and the options' mistakes come out before the user's code is imported
        raw, where = read_eval_spec(args.spec)
        parse_eval_spec(raw, where, {"name": "given"}, args.dataset, args.source, name)
    except (SpecError, FileNotFoundError) as exc:
        raise UsageError(str(exc)) from exc
    _check_out(args.out, create=False)
    _apply_locations(args)
    import torch

    torch.set_num_threads(args.threads or 1)  # one thread unless asked: a shared machine stays usable
    try:
        resolve_device(args.device or raw.get("device", "cpu"))
    except (RuntimeError, ValueError) as exc:
        raise UsageError(str(exc)) from exc
    try:
        given, method = load_given(args.model, args.checkpoint, args.kind, args.path, args.adapter,
                                   args.state_key, coupling=args.coupling)
        if method.get("cast"):
            print(f"note: --checkpoint {args.checkpoint}: weights cast to the network's dtypes ({method['cast']}); "
                  f"the records say so", file=sys.stderr)
        spec = parse_eval_spec(raw, where, method, args.dataset, args.source, name)
        _check_out(args.out, create=True)
        result = evaluate_given(given, spec, args.out, device=args.device, progress=not args.no_progress,
                                figures=not args.no_figures)
    except (SpecError, DataDirError, PrecisionMismatch, RunRefused) as exc:  # before any cell is written
        raise UsageError(str(exc)) from exc
    summary = result.summary
    what = f"{given.label} ({method['adapter']} adapter, {method['kind']}; weights sha256 {method['given_model'][:12]})"
    print(summary_text(spec, summary, RecordStore(summary.out_dir), given=what))
    for note in result.report.notes:
        print(f"note: {note}", file=sys.stderr)
    print(f"report: {result.report.dir / 'index.html'} ({len(result.report.files)} files)")
    for f in summary.failures:
        print(f"failed: {f}", file=sys.stderr)
    return 1 if summary.failures else 0


def _write_report(sweep_dir: Path, cache: Path | None = None, figures: bool = True):
    """Write the report of one sweep folder and print its notes; returns the Report."""
    from odebench.bench.report.build import write_report

    report = write_report(sweep_dir, figures=figures, cache_dir=cache)
    for note in report.notes:
        print(f"note: {note}", file=sys.stderr)
    return report


def _cmd_report(args: argparse.Namespace) -> int:
    root = args.results_dir
    if _holds_records(root):
        sweeps = [root]
    else:  # a results root: report every sweep folder (or packed results folder) in it
        sweeps = sorted(p for p in root.glob("*") if _holds_records(p)) if root.is_dir() else []
        for linked in [p for p in sweeps if p.is_symlink()]:  # its report would land outside the folder named
            sweeps.remove(linked)
            print(f"note: skipped {linked}: it is a symlink to {linked.resolve()}, outside {root}; report it there "
                  f"with `odebench report {linked.resolve()}`", file=sys.stderr)
    if not sweeps:
        raise UsageError(f"{root} holds no sweep records (expected {root}/cells/*.json, a packed "
                         f"{root}/records.jsonl.gz, or sweep folders such as {root}/quick/cells); run "
                         f"`odebench run --out DIR` first")
    for sweep_dir in sweeps:
        try:
            report = _write_report(sweep_dir, args.cache, not args.no_figures)
        except OSError as exc:
            raise UsageError(f"cannot write the report in {sweep_dir} ({_describe(exc)}); {_fix(exc)}; the "
                             f"previous report is unchanged") from exc
        print(f"report of {sweep_dir}: {report.dir / 'index.html'}")
        for f in report.files:
            print(f"  {f}")
    return 0


def _cmd_claims(args: argparse.Namespace) -> int:
    from odebench.bench.report.claims import NoSoundRecords, claims_of, display_frame, write_claims

    sweep_dir = args.results_dir
    if not _holds_records(sweep_dir):
        raise UsageError(f"{sweep_dir} holds no sweep records (expected {sweep_dir}/cells/*.json or a packed "
                         f"{sweep_dir}/records.jsonl.gz); give one sweep folder, e.g. results/quick")
    try:
        claims, notes = claims_of(sweep_dir, write_floors=not args.no_write)  # writes floors.json unless --no-write
    except NoSoundRecords as exc:  # a corrupt pack, say: "run the sweep first" would be the wrong advice
        raise UsageError(str(exc)) from exc
    except OSError as exc:
        raise UsageError(f"cannot write in {sweep_dir} ({_describe(exc)}); use --no-write, or copy the folder "
                         f"somewhere you can write") from exc
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    frame = display_frame(claims)
    if frame.empty:
        raise UsageError(f"{sweep_dir}: no finished cell to check a claim on; run the sweep first")
    print(frame.drop(columns=["statement"]).to_string(index=False))
    if not args.no_write:
        try:
            files = write_claims(sweep_dir, claims)
        except OSError as exc:
            raise UsageError(f"cannot write in {sweep_dir} ({_describe(exc)}); use --no-write, or copy the folder "
                             f"somewhere you can write") from exc
        print("\n".join(f"wrote {f}" for f in files))
    return 0


def _cmd_pack(args: argparse.Namespace) -> int:
    from odebench.bench.report.pack import PackRefused, pack_sweep

    if not (args.sweep_dir / "cells").is_dir():
        raise UsageError(f"{args.sweep_dir} is not a sweep folder (no cells/); give the folder a run wrote, e.g. "
                         f"runs/study-toy")
    _check_out(args.dest, create=True)
    try:
        report = pack_sweep(args.sweep_dir, args.dest, args.cache, not args.no_figures)
    except PackRefused as exc:
        raise UsageError(str(exc)) from exc
    for note in report.notes:
        print(f"note: {note}", file=sys.stderr)
    size = sum(f.stat().st_size for f in args.dest.rglob("*") if f.is_file())
    print(f"packed {args.sweep_dir} into {args.dest} ({size / 1e6:.1f} MB): {args.dest / 'index.html'}")
    return 0


def _holds_records(folder: Path) -> bool:
    """A sweep folder: records in cells/, or packed into records.jsonl.gz (whatever that name is: reading it says
    what is wrong with a pack that is not a regular file)."""
    from odebench.bench.harness.store.packed import PACKED

    return (folder / "cells").is_dir() or os.path.lexists(folder / PACKED)


RUN_DESCRIPTION = """\
Train every model of a sweep spec once, sample it with every solver and budget,
measure, and write the report.

Where results go: OUT/<spec name>/, where OUT is --out (default: results):
  cells/<cell id>.json   one record per cell
  index.html             the report (open it from disk), with leaderboard.md,
                         .csv, .tex, .html and figures/
Trained models are cached in OUT/.cache/models, shared by every sweep under OUT.

Re-running the same command resumes: finished cells are skipped, cached models
reused and failed cells tried again. A run stopped at any moment (Ctrl-C
included) loses only the cells it was working on. --dry-run prints what a run
would do, without training."""


EVAL_DESCRIPTION = """\
Benchmark a model you already trained: sample it with every solver, time grid
and budget of a spec's [[solvers]] and measure it with its [eval] metrics,
exactly as `odebench run` measures the methods it trains.

  odebench eval --model mymodels:make_net --checkpoint ckpt.pt --dataset moons

The factory builds the architecture; the checkpoint only fills it (read with
torch.load(weights_only=True), or safetensors): a checkpoint never runs code.
An adapter states what the network predicts and in which time and converts it
to odebench's velocity (t = 0 source, t = 1 data): TorchCFM and flow_matching
models and diffusers' (UNet2DModel, DDPMScheduler) are recognised; others are
called as net(x, t) in odebench's time (--adapter plain).

Where results go: OUT/<name>/ (default: eval_PKG.MODULE.FACTORY_DATASET, so
each dataset of one model has its own folder): records, leaderboard and
index.html, as for `odebench run`. Records carry the model's identity (SHA-256
of the checkpoint, or of the state dict, with the factory and the adapter), so
re-running the same command skips finished cells."""


def build_parser() -> argparse.ArgumentParser:
    from odebench import __version__

    p = argparse.ArgumentParser(prog="odebench", description="Benchmark ODE/SDE generative models.",
                                epilog="Start with `odebench run` (the built-in CPU sweep 'quick'), then open "
                                       "results/quick/index.html. `odebench COMMAND --help` for more.")
    p.add_argument("--version", action="version", version=f"odebench {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    r = sub.add_parser("run", help="run a sweep (default: the built-in CPU sweep 'quick')",
                       description=RUN_DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    r.add_argument("--spec", default="quick", help="built-in spec name or path to a TOML spec")
    r.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="change one value of the spec (repeatable), validated like the spec: train.steps=500, "
                        "\"methods[rf].k=[1, 2]\" (an entry of [[methods]]/[[solvers]] by name, [[datasets]] by "
                        "target, or by position), eval.metric_options.w2.max_points=500; the value is TOML. "
                        "The run writes the spec it ran to OUT/<name>/effective_spec.toml")
    r.add_argument("--track", action="append", default=[], choices=["tensorboard", "mlflow", "wandb", "none"],
                   help="also log training curves, metrics and images to TensorBoard, MLflow or W&B (repeatable; "
                        "offline, under OUT/<name>/tracking; needs the extra of that name, e.g. pip install "
                        "'odebench[tensorboard]'); default: the spec's [track] sinks; none: no tracking")
    r.add_argument("--out", default="results", type=_absolute,
                   help="results root (default: results): records and report in OUT/<spec name>/, trained "
                        "models in OUT/.cache/models")
    r.add_argument("--device", default=None, help="cpu or cuda (default: the spec's, else cpu)")
    r.add_argument("--dry-run", action="store_true",
                   help="print the plan (cells done / skipped and why / to run, trainings) and exit")
    r.add_argument("--executor", choices=["local", "ray"], default="local",
                   help="where jobs run: this process (default) or Ray tasks (needs the 'ray' extra)")
    r.add_argument("--address", default=None,
                   help="Ray cluster address for --executor ray (default: start a local Ray)")
    r.add_argument("--precision", default=None, choices=["fp32", "bf16"],
                   help="bf16: autocast training and sampling in bfloat16 (default: the spec's, else fp32)")
    r.add_argument("--compile", action="store_true", help="torch.compile the networks (GPU runs)")
    r.add_argument("--data-dir", default=None, type=Path,
                   help="folder of an image dataset (cifar10: the folder holding cifar-10-batches-py; "
                        "imagefolder: PNG/JPEG files); default $ODEBENCH_DATA")
    r.add_argument("--inception-weights", default=None, type=Path,
                   help="Inception weights file for FID (no download); default $ODEBENCH_INCEPTION")
    r.add_argument("--threads", type=int, default=None,
                   help="torch threads per process (default on a CPU: 1; at most the CPU count). Records are "
                        "bit-identical across --jobs at the same --threads; each record stores its thread count")
    r.add_argument("--jobs", type=int, default=None,
                   help="worker processes running trainings and cells side by side (default on a CPU: one per "
                        "core; on a GPU: 1; at most the CPU count). --jobs 1 runs everything in this process")
    r.add_argument("--no-seed-stacks", action="store_true",
                   help="train every seed on its own instead of the seeds of one configuration together (the "
                        "records are the same either way; small MLPs on a CPU train faster in stacks)")
    r.add_argument("--no-progress", action="store_true", help="no progress bars")
    r.set_defaults(func=_cmd_run)
    ev = sub.add_parser("eval", help="benchmark a model you already trained (TorchCFM, flow_matching, diffusers, "
                                     "your own) over solvers and budgets", description=EVAL_DESCRIPTION,
                        formatter_class=argparse.RawDescriptionHelpFormatter)
    ev.add_argument("--model", required=True, metavar="PKG.MODULE:FACTORY",
                    help="a function (or class) returning the network, an odebench adapter or (unet, scheduler); "
                         "its module is imported (the current folder is searched last)")
    ev.add_argument("--checkpoint", type=Path, default=None,
                    help="weights to fill the network with: a torch state dict (read with weights_only=True) or "
                         "a .safetensors file; default: the factory's own weights")
    ev.add_argument("--state-key", default=None,
                    help="the entry of the checkpoint that holds the state dict (e.g. ema_model)")
    ev.add_argument("--kind", default=None, choices=["velocity", "eps", "x1", "score", "v"],
                    help="what the network predicts (default: velocity; diffusers: the scheduler's prediction_type)")
    ev.add_argument("--path", default=None,
                    help="the probability path it was trained on (linear, ot, trig, vp, ...): needed for kinds "
                         "other than velocity; enables the data-prediction samplers and noise-level grids")
    ev.add_argument("--adapter", default="auto",
                    choices=["auto", "plain", "torchcfm", "flow_matching", "diffusers"],
                    help="how the network is called (default: from its class; plain: net(x, t) in odebench's time)")
    ev.add_argument("--coupling", default=None, choices=["independent", "ot"],
                    help="how its training paired source and data draws (default: independent, or what the "
                         "TorchCFM matcher the factory returns says); ot (minibatch optimal transport, as "
                         "TorchCFM's ExactOptimalTransportConditionalFlowMatcher): the data-prediction samplers "
                         "are skipped with the reason, as for otcfm")
    ev.add_argument("--dataset", required=True, help="the target data, e.g. moons (odebench list datasets)")
    ev.add_argument("--source", default="gaussian", help="a source dataset (default: N(0, I))")
    ev.add_argument("--spec", default=None,
                    help="spec whose [[solvers]], seeds and [eval] are used (default: quick); training tables "
                         "are not needed and are ignored")
    ev.add_argument("--out", default="results", type=_absolute, help="results root (default: results)")
    ev.add_argument("--name", default=None,
                    help="results folder under --out (default: eval_PKG.MODULE.FACTORY_DATASET)")
    ev.add_argument("--device", default=None, help="cpu or cuda (default: the spec's, else cpu)")
    ev.add_argument("--data-dir", default=None, type=Path, help="folder of an image dataset (as for run)")
    ev.add_argument("--threads", type=int, default=None, help="torch threads (default 1)")
    ev.add_argument("--no-figures", action="store_true", help="report tables only")
    ev.add_argument("--no-progress", action="store_true", help="no progress bars")
    ev.set_defaults(func=_cmd_eval, inception_weights=None)
    rp = sub.add_parser("report", help="leaderboard tables, figures and index.html of a sweep folder")
    rp.add_argument("results_dir", type=_absolute, help="a sweep folder (e.g. results/quick) or a results root")
    rp.add_argument("--cache", type=_absolute, default=None,
                    help="trained-model cache for the trajectory and sample figures "
                         "(default: <results root>/.cache/models)")
    rp.add_argument("--no-figures", action="store_true", help="tables only")
    rp.set_defaults(func=_cmd_report)
    cl = sub.add_parser("claims", help="check the papers' claims on a sweep's records (claims.md, .csv)",
                        description="Check the reference study's claims (docs/claims.md) on one sweep folder (or a "
                                    "packed results folder): one row per claim, dataset and comparison, with "
                                    "means over seeds, the paired difference's 90 % interval and three verdicts "
                                    "(one-sided 5 % tests with the stated margins, strict without margins, and "
                                    "after Holm's correction within each claim); writes claims.md, claims.csv and "
                                    "the claims section of index.html.")
    cl.add_argument("results_dir", type=_absolute, help="a sweep folder, e.g. results/quick or results/study-toy")
    cl.add_argument("--no-write", action="store_true", help="print only; write nothing (floors not cached)")
    cl.set_defaults(func=_cmd_claims)
    pk = sub.add_parser("pack", help="a sweep's records and report in the compact form committed to results/",
                        description="Pack a sweep folder's current records into DEST/records.jsonl.gz "
                                    "(deterministic bytes) and write there the report from the pack: leaderboard "
                                    "and claims tables, PNG figures and index.html. `odebench report DEST` and "
                                    "`odebench claims DEST` rebuild every table from it.")
    pk.add_argument("sweep_dir", type=_absolute, help="the sweep folder a run wrote, e.g. runs/study-toy")
    pk.add_argument("dest", type=_absolute, help="where the pack goes, e.g. results/study-toy (created)")
    pk.add_argument("--cache", type=_absolute, default=None,
                    help="model cache for trajectory and sample figures (default: <sweep>/../.cache/models)")
    pk.add_argument("--no-figures", action="store_true", help="tables only")
    pk.set_defaults(func=_cmd_pack)
    from odebench.bench.harness.spec.catalog import CATEGORIES

    ls = sub.add_parser("list", help="registered methods, solvers, datasets, metrics and specs, one line each")
    ls.add_argument("category", nargs="?", choices=CATEGORIES, metavar="KIND",
                    help=f"one of {', '.join(CATEGORIES)} (default: all)")
    ls.add_argument("-v", "--verbose", action="store_true",
                    help="hparams and options with their defaults, and which solvers and metrics apply")
    ls.set_defaults(func=_cmd_list)
    sh = sub.add_parser("show", help="one method, solver, dataset, metric, network or spec in full")
    sh.add_argument("name", help="a registered name, e.g. rf, dopri5, moons, w2, quick")
    sh.set_defaults(func=_cmd_show)
    sc = sub.add_parser("schema", help="print the JSON Schema of sweep specs (for an editor's TOML support)",
                        description="Print the JSON Schema (draft 2020-12) of sweep specs, generated from the "
                                    "validator's rules and the registered names: odebench schema > "
                                    "odebench-spec.json, then point your editor's TOML support at it (README).")
    sc.set_defaults(func=_cmd_schema)
    return p


#: I/O errors the user can fix where the files live (exit code 2); any other ends with 1
USER_FIXABLE = frozenset(e for e in (errno.ENOSPC, getattr(errno, "EDQUOT", None), errno.EACCES, errno.EPERM,
                                     errno.EROFS, errno.ENOTDIR, errno.EISDIR, errno.ELOOP, errno.ENAMETOOLONG,
                                     errno.EEXIST, errno.ENOENT) if e is not None)


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _describe(exc: BaseException) -> str:
    """An I/O error as 'PATH: cause' (the path the operation was on, when the error names one)."""
    if isinstance(exc, OSError) and exc.strerror:
        where = f"{exc.filename}: " if exc.filename else ""
        return _one_line(f"{where}{exc.strerror}")
    return _one_line(str(exc))


def _fix(exc: OSError) -> str:
    """What the user can do about ``exc``."""
    if exc.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", None)):
        return ("free some space, or give a folder on another disk, and run the same command again (every file "
                "is written whole or not at all: finished cells are kept)")
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return ("make the folder writable (it is read-only, immutable or another user's), or copy it somewhere "
                "you can write and use the copy; `odebench claims --no-write` only reads")
    return "nothing was lost: every file is written whole or not at all; fix the cause and run the same command again"


def _quiet_stdout() -> None:
    """The reader of our output went away (``odebench list | head``): send what is left to /dev/null, so
    that the interpreter's last flush does not complain either."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


def main(argv: list[str] | None = None) -> int:
    from odebench.bench.harness.guards.errors import RunRefused

    try:
        interrupts.install()  # again, for a caller that imported this module from another thread
        parser = build_parser()  # imports the registries (and torch): Ctrl-C may land here too
        args = parser.parse_args(argv)
        if args.command is None:  # a bare `odebench`: what it can do, not an error
            parser.print_help()
            return 0
        return args.func(args)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except RunRefused as exc:  # an unsafe path found after the command's own checks (a symlink out of --out)
        print(f"error: {_one_line(str(exc))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; re-run the same command to resume (a run keeps every cell it finished; a report or "
              "pack leaves the previous one whole)",
              file=sys.stderr)
        return 130
    except BrokenPipeError:  # the output was cut short on purpose (a pager, `head`): not an error
        _quiet_stdout()
        return 0
    except OSError as exc:  # a full disk, a read-only or immutable folder: every write is atomic, nothing is lost
        print(f"error: {_describe(exc)}; {_fix(exc)}", file=sys.stderr)
        return 2 if exc.errno in USER_FIXABLE else 1


if __name__ == "__main__":
    sys.exit(main())
