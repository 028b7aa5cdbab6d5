"""Kill `odebench run` at aimed moments (SIGKILL), resume it, and count what the kills cost.

    OMP_NUM_THREADS=1 python3 scripts/kill_test.py [--trials 24] [--seed 0] [--keep DIR]

Each trial runs a tiny sweep (3 models, 9 cells, a report with figures) in a fresh folder and kills it at one
aimed moment -- inside an atomic write (temp file synced, not yet renamed) of a record, a model's weights, a
model's meta or a figure; right after a record or a model's weights are published (before the meta); or at
a random time -- then runs the same command again and checks:

- corrupt files after the kill: record files that fail the schema, models whose files fail their hash,
  figures with a partial body (every one of these would be a bug);
- stale temp files left after the resume (the resume must remove the killed run's);
- needless retrains: models whose weights were published before the kill but were trained again;
- that the resume exits 0 with every cell ok and leaves finished records byte for byte as they were.

The kill is aimed from inside the child: a wrapper replaces ``os.replace`` and SIGKILLs its own process at
the n-th matching rename, before or after it. Nothing in odebench knows about it.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from harness_tiny import tiny_spec, to_toml  # noqa: E402

SPEC = tiny_spec(name="kills", targets=("moons", "8gaussians", "checkerboard"),
                 solvers=[{"name": "euler", "nfe": [1, 2, 4]}], train={"steps": 150, "batch_size": 64, "lr": 2e-3})
AIMS = ["tmp_record", "after_record", "tmp_weights", "between_weights_and_meta", "tmp_meta", "tmp_figure"]

CHILD = r'''
import os, signal, sys
aim, n = sys.argv[1], int(sys.argv[2])
real, seen = os.replace, [0]
KINDS = {"tmp_record": "record", "after_record": "record", "tmp_weights": "weights",
         "between_weights_and_meta": "weights", "tmp_meta": "meta", "tmp_figure": "figure"}

def kind(dst):
    d = str(dst).replace(os.sep, "/")
    if "/cells/" in d and d.endswith(".json"):
        return "record"
    if "/models/" in d:
        return "weights" if d.endswith((".safetensors", ".pt")) else "meta" if d.endswith(".json") else None
    return "figure" if "/figures/" in d else None

def replace(src, dst):
    if kind(dst) == KINDS.get(aim):
        seen[0] += 1
        if seen[0] == n and aim.startswith("tmp_"):
            os.kill(os.getpid(), signal.SIGKILL)  # the temp file is written and synced, not renamed
        real(src, dst)
        if seen[0] == n:
            os.kill(os.getpid(), signal.SIGKILL)  # just published: the next write never happens
        return
    real(src, dst)

os.replace = replace
from odebench.bench.cli import main
sys.exit(main(sys.argv[3:]))
'''


def odebench_argv(spec: Path, out: Path) -> list[str]:
    return ["run", "--spec", str(spec), "--out", str(out), "--no-progress", "--threads", "1"]


def env() -> dict:
    return {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}


def killed_run(aim: str, n: int, spec: Path, out: Path, rng: random.Random) -> str:
    """Run the sweep and kill it at the aim; returns how it ended ('killed', or 'finished' if the aimed event
    never came)."""
    if aim == "random":
        proc = subprocess.Popen([sys.executable, "-m", "odebench", *odebench_argv(spec, out)], env=env(),
                                cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + rng.uniform(4.0, 16.0)
        while proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
    else:
        proc = subprocess.Popen([sys.executable, "-c", CHILD, aim, str(n), *odebench_argv(spec, out)], env=env(),
                                cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    proc.wait()
    return "killed" if proc.returncode == -signal.SIGKILL else f"finished ({proc.returncode})"


def inspect(out: Path) -> dict:
    """Corrupt files, temp files and published models of a results folder."""
    from odebench.bench.harness.store.artifacts import ArtifactStore, sha256_file
    from odebench.bench.harness.store.record_schema import record_problem

    corrupt, published = [], {}
    for p in sorted((out / "kills" / "cells").glob("*.json")):
        try:
            problem = record_problem(json.loads(p.read_bytes()), p.stem)
        except ValueError as exc:
            problem = str(exc)
        if problem:
            corrupt.append(f"{p.name}: {problem}")
    store = ArtifactStore(out / ".cache" / "models", read_only=True)
    for meta in sorted(store.root.glob("*.json")):
        m = store.read_meta(meta.stem)
        w = store.weights_path(meta.stem, m)
        if m is None or not w.exists() or sha256_file(w) != m.get("sha256"):
            corrupt.append(f"model {meta.name}: meta or weights do not match")
        else:
            published[meta.stem] = w.name
    for w in sorted(store.root.glob("*.safetensors")):
        key = w.name.split(".")[0]
        if key in published:
            continue
        if store.orphan(key) is not None:
            published[key] = w.name  # weights published, meta not yet: a finished model all the same
        else:
            corrupt.append(f"weights {w.name}: content does not match its name")
    for fig in sorted((out / "kills" / "figures").glob("*")) if (out / "kills" / "figures").exists() else []:
        head = fig.read_bytes()[:8]
        if not fig.name.startswith(".") and not (head.startswith(b"\x89PNG") or head.startswith(b"%PDF")):
            corrupt.append(f"figure {fig.name}: partial")
        if fig.suffix == ".pdf" and not fig.name.startswith(".") and b"%%EOF" not in fig.read_bytes()[-64:]:
            corrupt.append(f"figure {fig.name}: truncated PDF")
    temps = [str(p.relative_to(out)) for p in out.rglob(".*.tmp")]
    return {"corrupt": corrupt, "published": published, "temps": temps}


def trial(i: int, aim: str, n: int, base: Path, spec: Path, rng: random.Random) -> dict:
    out = base / f"trial{i:02d}"
    ended = killed_run(aim, n, spec, out, rng)
    before = inspect(out)
    records_before = {p.name: p.read_bytes() for p in (out / "kills" / "cells").glob("*.json")} \
        if (out / "kills" / "cells").exists() else {}
    resume = subprocess.run([sys.executable, "-m", "odebench", *odebench_argv(spec, out)], env=env(), cwd=ROOT,
                            capture_output=True, text=True, timeout=600)
    after = inspect(out)
    trained = re.search(r"models: (\d+) needed, (\d+) trained, (\d+) loaded", resume.stdout)
    records = [json.loads(p.read_bytes()) for p in (out / "kills" / "cells").glob("*.json")]
    needless = sorted(k for k, name in before["published"].items() if after["published"].get(k) != name)
    cells = out / "kills" / "cells"
    changed = [name for name, b in records_before.items() if not (cells / name).exists()
               or (cells / name).read_bytes() != b]
    return {"trial": i, "aim": aim, "n": n, "ended": ended, "corrupt_after_kill": before["corrupt"],
            "temps_after_kill": len(before["temps"]), "published_before": len(before["published"]),
            "resume_exit": resume.returncode, "models": trained.groups() if trained else None,
            "all_ok": len(records) == 9 and all(r["status"] == "ok" for r in records),
            "temps_after_resume": after["temps"], "corrupt_after_resume": after["corrupt"],
            "needless_retrains": needless, "finished_records_changed": changed,
            "stderr": resume.stderr[-400:] if resume.returncode else ""}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--trials", type=int, default=24)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--keep", type=Path, default=None, help="keep the trial folders here")
    args = p.parse_args()
    rng = random.Random(args.seed)
    base = args.keep or Path(tempfile.mkdtemp(prefix="odebench-kills-"))
    base.mkdir(parents=True, exist_ok=True)
    spec = base / "kills.toml"
    spec.write_text(to_toml(SPEC))
    plan = [(aim, n) for n in (1, 2, 3) for aim in AIMS]
    plan = (plan + [("random", 0)] * args.trials)[:args.trials]
    start, results = time.perf_counter(), []
    for i, (aim, n) in enumerate(plan):
        r = trial(i, aim, n, base, spec, rng)
        results.append(r)
        print(json.dumps({k: v for k, v in r.items() if k != "stderr" or v}), flush=True)
    kills = sum(r["ended"] == "killed" for r in results)
    figures = {
        "trials": len(results), "kills": kills,
        "corrupt_files_after_kills": sum(len(r["corrupt_after_kill"]) for r in results),
        "temp_files_left_by_kills": sum(r["temps_after_kill"] for r in results),
        "stale_temp_files_after_resume": sum(len(r["temps_after_resume"]) for r in results),
        "needless_retrains": sum(len(r["needless_retrains"]) for r in results),
        "resumes_not_exit_0_or_not_all_ok": sum(r["resume_exit"] != 0 or not r["all_ok"] for r in results),
        "finished_records_changed": sum(len(r["finished_records_changed"]) for r in results),
        "wall_seconds": round(time.perf_counter() - start),
    }
    print(json.dumps(figures))
    if args.keep is None:
        shutil.rmtree(base, ignore_errors=True)
    bad = (figures["corrupt_files_after_kills"] or figures["stale_temp_files_after_resume"]
           or figures["needless_retrains"] or figures["resumes_not_exit_0_or_not_all_ok"]
           or figures["finished_records_changed"])
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
