"""Estimate the wall time of a sweep tier from a down-scaled run of it: a few of its models, timed for real.

    python3 scripts/estimate_tier.py --spec study-toy --methods fm_ot "rf(k=2, n_pairs=10000)" ddpm ...
    python3 scripts/estimate_tier.py --spec study-digits --cores 2

The down-scaled run is the tier's own spec restricted to seed 0, its first dataset (``--dataset``) and the
method configurations named with ``--methods`` (labels as ``odebench run --dry-run`` prints them; a reflow round
brings its parents along), run with ``--executor ray --threads 1`` into a temporary folder (``--out``, deleted
unless ``--keep``). Every model then has a measured training time of its own (its total less its parents') and
every cell its sampling and metric seconds. The full plan (``odebench run --spec X --dry-run``) is priced with
them: each trained model of the plan at the seconds of the same method configuration, or of the stand-in named
in ``STAND_INS`` when that configuration was not timed (rf's k = 3 round at k = 2's, the distilled model at
k = 2's, ...); each cell at the mean of the timed cells with the same solver and budget on that method (or its
stand-in). Skipped cells cost nothing. The wall time is the sum over all of it divided by ``--cores``: it assumes
the cores stay busy, which the dependency order of reflow chains and the end of the run do not quite allow, so
read it as a lower bound to within those tails. The machine's load averages are printed before and after: a
timing taken beside other work is slower than on an idle machine.

``--timed-steps N`` trains the down-scaled models for N steps instead of the spec's ``train.steps`` and scales
their training seconds by (spec steps / N): training time is linear in the steps but for fixed parts (reflow's
pair generation, the 21 held-out evaluations), which this overstates, so the estimate errs long.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import tempfile
import time
from collections import defaultdict
from pathlib import Path

#: method label pattern -> the timed label pattern whose seconds price it (first match wins)
STAND_INS = [
    (r"^rf\(k=3", r"^rf\(k=2(, n_pairs=\d+)?\)$"),
    (r"^rf\(k=2, distill=True", r"^rf\(k=2(, n_pairs=\d+)?\)$"),
    (r"^curvature_min", r"^curvature_min"),
    (r"^interpolant", r"^interpolant"),
    (r"^edm", r"^ddpm"),
    (r"^score_ve", r"^ddpm"),
    (r"^fm_diffusion", r"^fm_ot"),
    (r"^otcfm", r"^otcfm"),
    (r"^rf", r"^rf(\(n_pairs=\d+\))?$"),
]


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


def stand_in(label: str, timed: set[str]) -> str | None:
    """The timed method label whose seconds price ``label``: itself if timed, else the first stand-in."""
    if label in timed:
        return label
    for pattern, target in STAND_INS:
        if re.search(pattern, label):
            hits = sorted(t for t in timed if re.search(target, t))
            if hits:
                return hits[0]
    return None


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--spec", required=True)
    p.add_argument("--methods", nargs="+", required=True, help="method labels to time (dry-run spelling)")
    p.add_argument("--dataset", default=None, help="dataset label to time on (default: the spec's first)")
    p.add_argument("--cores", type=int, default=2)
    p.add_argument("--out", type=Path, default=None)
    p.add_argument("--keep", action="store_true")
    p.add_argument("--timed-steps", type=int, default=None,
                   help="train the timed models for this many steps and scale their seconds to the spec's")
    args = p.parse_args()

    import torch

    torch.set_num_threads(1)
    from odebench.bench.harness.execution.run import run_sweep
    from odebench.bench.harness.spec.sweep import load_spec
    from odebench.bench.harness.store.records import RecordStore, method_label

    full = load_spec(args.spec)
    label_of = {c.id: method_label(c.method) for c in full.cells}
    dataset_of = {c.id: c.target if c.source == "gaussian" else f"{c.source}->{c.target}" for c in full.cells}
    dataset = args.dataset or dataset_of[full.cells[0].id]
    wanted = set(args.methods)
    keep_ids = {c.id for c in full.cells if c.seed == full.cells[0].seed and dataset_of[c.id] == dataset
                and label_of[c.id] in wanted}
    if not keep_ids:
        raise SystemExit(f"no cell of {args.spec} matches dataset {dataset!r} and methods {sorted(wanted)}; "
                         f"labels: {sorted(set(label_of.values()))}")
    small = load_spec(args.spec)
    small.cells = [c for c in small.cells if c.id in keep_ids]
    scale = 1.0
    if args.timed_steps:
        import dataclasses

        scale = small.cells[0].train["steps"] / args.timed_steps
        small.cells = [dataclasses.replace(c, train={**c.train, "steps": args.timed_steps}) for c in small.cells]
        print(f"training {args.timed_steps} steps instead of the spec's {round(scale * args.timed_steps)}; "
              f"training seconds are scaled by {scale:.3g}")
    out = args.out or Path(tempfile.mkdtemp(prefix="odebench-estimate-"))
    print(f"timing {len(small.cells)} cells of {args.spec} ({dataset}, seed {full.cells[0].seed}, "
          f"{len(wanted)} method configurations) in {out}; load before: {load()}", flush=True)
    start = time.perf_counter()
    summary = run_sweep(small, out, progress=False, executor="ray", jobs=1)
    wall = time.perf_counter() - start
    print(f"down-scaled run: {wall:.0f} s wall, {dict(summary.status_counts)}; load after: {load()}", flush=True)

    records = RecordStore(out / small.name).records()
    total_by_model: dict[str, float] = {}
    label_by_model: dict[str, str] = {}
    cell_seconds: dict[tuple[str, str, str], list[float]] = defaultdict(list)
    for r in records:
        label = method_label(r["config"]["method"])
        cost = (r.get("training") or {}).get("cost") or {}
        if r.get("model_key") and cost.get("total_seconds") is not None:
            total_by_model[r["model_key"]] = cost["total_seconds"]
            label_by_model[r["model_key"]] = label
        if r["status"] == "ok":
            t = r.get("timings") or {}
            budget = str(r["config"]["nfe"] or r["config"]["tol"])
            solver = r["config"]["solver"] + "/" + r["config"].get("grid", "uniform")
            cell_seconds[(label, solver, budget)].append(t.get("sample_seconds", 0) + t.get("metric_seconds", 0))
    # own seconds: a model's total less its parent's (the largest total below it in the same chain)
    totals = sorted(total_by_model.items(), key=lambda kv: kv[1])
    own: dict[str, float] = {}
    for key, total in totals:
        label = label_by_model[key]
        parents = [t for k, t in totals if t < total and _is_parent(label_by_model[k], label)]
        own[label] = (total - (max(parents) if parents else 0.0)) * scale
    print("\nmeasured (seed 0, one dataset): own training seconds, cells and their mean seconds")
    for label in sorted(own):
        cells = [s for (m, _, _), v in cell_seconds.items() if m == label for s in v]
        mean = sum(cells) / len(cells) if cells else 0.0
        print(f"  {label:40s} train {own[label]:7.1f} s   {len(cells):3d} ok cells, mean {mean:5.2f} s")

    timed = set(own)
    train_total = cell_total = 0.0
    unpriced = set()
    models = {c.training_key(): label_of[c.id] for c in full.cells}
    for label in models.values():
        ref = stand_in(label, timed)
        if ref is None:
            unpriced.add(label)
            continue
        train_total += own[ref]
    from odebench.bench.harness.execution.plan import make_plan
    from odebench.bench.harness.store.artifacts import ArtifactStore

    plan = make_plan(full.cells, lambda _id: False, ArtifactStore(out / ".none", read_only=True), "fp32")
    for c in full.cells:
        if c.id in plan.skips:
            continue
        ref = stand_in(label_of[c.id], timed)
        budget = str(c.nfe or c.tol)
        v = cell_seconds.get((ref, f"{c.solver}/{c.grid}", budget)) if ref else None
        if not v and ref:
            v = [s for (m, _, _), vals in cell_seconds.items() if m == ref for s in vals]
        if not v:
            unpriced.add(label_of[c.id])
            continue
        cell_total += sum(v) / len(v)
    n_eval = len(full.cells) - len(plan.skips)
    print(f"\nfull plan of {args.spec}: {len(full.cells)} cells ({n_eval} to evaluate, {len(plan.skips)} skipped), "
          f"{len(models)} trained models")
    print(f"priced: training {train_total / 3600:.2f} core-hours, cells {cell_total / 3600:.2f} core-hours")
    print(f"ESTIMATE (sum / {args.cores} cores): {(train_total + cell_total) / args.cores / 3600:.2f} hours wall")
    if unpriced:
        print(f"not priced (no timed stand-in): {sorted(unpriced)}")
    if args.out is None and not args.keep:
        shutil.rmtree(out, ignore_errors=True)


def _is_parent(parent: str, child: str) -> bool:
    """Whether the model labelled ``parent`` is an earlier stage of ``child``'s reflow chain."""
    def k_of(label: str) -> int:
        m = re.search(r"k=(\d+)", label)
        return int(m.group(1)) if m else 1

    if not (parent.startswith("rf") and child.startswith("rf")):
        return False
    return k_of(parent) < k_of(child) or ("distill=True" in child and "distill" not in parent
                                          and k_of(parent) <= k_of(child))


if __name__ == "__main__":
    main()
