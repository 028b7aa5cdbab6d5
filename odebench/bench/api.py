"""Benchmark a model trained elsewhere: :func:`evaluate` (``odebench.evaluate``), the engine of ``odebench eval``.

A given model is sampled and measured by the machinery of ``odebench run``, not a copy of it: its identity
(odebench.bench.harness.execution.given) is the ``method`` of every cell, the spec's ``[[solvers]]`` (with their time
grids) and seeds make the cells, the plan skips finished cells and solvers the adapter cannot serve, one job
puts the model on the device in place of a training, and each cell writes its record; the same report follows.
So a second call with the same model, spec and ``out`` does no work, and everything is written under
``<out>/<name>/`` (records, leaderboard, index.html) while the run holds the folder's lock.

The sweep folder ``name`` defaults to ``eval_<label>_<dataset>`` (``label``: the network's class name;
``odebench eval``: ``eval_<pkg.module.factory>_<dataset>``; ``<source>-<dataset>`` with a source dataset), so the
same model evaluated on two datasets keeps both in folders of their own, each current (docs/decisions.md, 52). A
new checkpoint of the same factory evaluated on the same dataset makes the old one's records "an earlier
version", left out of the report as for an edited spec; give ``name`` to keep both side by side.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from odebench.adapters import Adapter, DynamicsAdapter, adapt
from odebench.bench.data import GAUSSIAN_SOURCE
from odebench.bench.harness.execution.given import given_model, state_dict_sha256
from odebench.bench.harness.execution.plan import GivenModel
from odebench.bench.harness.execution.run import SweepSummary, run_sweep
from odebench.bench.harness.guards.safe_paths import suggest_name
from odebench.bench.harness.spec.sweep import Spec, SpecError, parse_eval_spec, read_spec
from odebench.bench.harness.store.records import RecordStore, records_frame

__all__ = ["EvalResult", "default_name", "evaluate", "evaluate_given", "read_eval_spec"]

#: the spec whose [[solvers]] and [eval] an evaluation uses when none is named: the default sweep's
DEFAULT_SPEC = "quick"


@dataclass
class EvalResult:
    """What one evaluation did: its spec (cells), the run's summary, the report (None if not written) and the
    records of the spec's cells as a DataFrame (``odebench.bench.harness.store.records.records_frame``)."""

    spec: Spec
    summary: SweepSummary
    report: Any
    frame: pd.DataFrame


def default_name(label: str, dataset: str, source: str = GAUSSIAN_SOURCE) -> str:
    """The results folder of an evaluation: ``eval_<label>_<dataset>`` (``eval_<label>_<source>-<dataset>`` from
    a source dataset), made a safe folder name. The dataset is in the name because a folder's report shows the
    cells of its latest run only: one folder for two datasets would make the first one's cells "earlier"."""
    data = dataset if source == GAUSSIAN_SOURCE else f"{source}-{dataset}"
    return suggest_name(f"eval_{label}_{data}")


def read_eval_spec(spec: str | dict[str, Any] | None) -> tuple[dict[str, Any], str]:
    """(the spec's table, where it came from) for a spec name, TOML path or dict; default ``quick``, whose
    [[solvers]], seeds and [eval] an evaluation uses. Raises SpecError (or FileNotFoundError)."""
    if isinstance(spec, dict):
        return dict(spec), "spec"
    return read_spec(spec or DEFAULT_SPEC)


def check_fits(given: GivenModel, spec: Spec) -> list[str]:
    """Probe the model on a few points of every dataset of ``spec`` (odebench.adapters.probe): a network that
    raises, changes the shape or dtype, or returns non-finite values there is refused now with RunRefused,
    naming the adapter it runs under when another one does (a TorchCFM MLP given ``--adapter plain``), instead
    of failing every cell on the same error. Returns the plausibility warnings: a short Euler solve from N(0, I)
    that lands far outside a dataset's range (a velocity network declared ``--kind eps --path linear``)."""
    from odebench.adapters.probe import ProbeFailed, implausible, probe
    from odebench.bench.data import load_dataset
    from odebench.bench.harness.guards.errors import RunRefused

    seen, warnings = set(), []
    for cell in spec.cells:
        key = (cell.target, cell.data_seed, repr(sorted(cell.data_options.items())))
        if key in seen:
            continue
        seen.add(key)
        train = load_dataset(cell.target, cell.data_seed, **cell.data_options).train
        try:
            probe(given.method, given.model, train, cell.target)
        except ProbeFailed as exc:
            raise RunRefused(str(exc)) from exc
        if cell.source == GAUSSIAN_SOURCE:  # the short solve starts from N(0, I)
            warning = implausible(given.method, given.model, train, cell.target)
            if warning is not None:
                warnings.append(warning)
    return warnings


def evaluate_given(given: GivenModel, spec: Spec, out: str | Path = "results", device: str | None = None,
                   progress: bool = False, report: bool = True, figures: bool = True) -> EvalResult:
    """Run ``spec``'s cells on ``given`` and write the report; returns the :class:`EvalResult`."""
    from odebench.bench.report.build import write_report

    if given.method.needs_gaussian_source and any(c.source != GAUSSIAN_SOURCE for c in spec.cells):
        raise SpecError("source", [f"source: the {given.method.adapter} adapter samples from N(0, I) (its "
                                   f"noise levels assume it); drop the source dataset"])
    out = Path(out).absolute()  # once, here: the records, the report and its checks all use this folder
    for warning in check_fits(given, spec):  # before the sweep: the run goes on
        print(f"warning: {warning}", file=sys.stderr)
    summary = run_sweep(spec, out, device=device, progress=progress, given=given)
    written = None
    if report:
        written = write_report(summary.out_dir, figures=figures, given={given.key: (given.method, given.model)})
    store = RecordStore(summary.out_dir)
    records = [r for c in spec.cells if (r := store.read(c.id)) is not None]
    return EvalResult(spec, summary, written, records_frame(records))


def evaluate(model_or_dynamics: Any, dataset: str = "moons", *, solvers: list[dict[str, Any]] | None = None,
             metrics: list[str] | dict[str, list[str]] | None = None, out: str | Path = "results",
             kind: str | None = None, path: Any = None, adapter: str = "auto", coupling: str | None = None,
             source: str = GAUSSIAN_SOURCE,
             spec: str | dict[str, Any] | None = None, name: str | None = None, seeds: list[int] | None = None,
             n_samples: int | None = None, device: str | None = None, model_id: str | None = None,
             label: str | None = None, progress: bool = False, report: bool = True) -> pd.DataFrame:
    """Sample and measure a model you trained elsewhere exactly as the leaderboard measures every method; returns
    the records of its cells as a DataFrame (one row per solver x budget x seed; metric columns).

    Args:
        model_or_dynamics: a network (``nn.Module``: a TorchCFM or flow_matching model, or one in odebench's
            convention ``net(x, t)``), an adapter (``odebench.adapters.Diffusers(unet, scheduler)``, ...),
            ``(unet, scheduler)``, or ready-made ``Dynamics`` (then ``model_id`` is required).
        dataset: the target data (``odebench list datasets``); ``source`` another dataset as the source.
        solvers: ``[[solvers]]`` entries, e.g. ``[{"name": "euler", "nfe": [4, 8]}, {"name": "dopri5",
            "tolerances": [1e-5]}]``; default: the spec's.
        metrics: metric names (or {data kind: names}); default: the spec's.
        out: results root; records and report go to ``<out>/<name>/`` (default
            ``results/eval_<label>_<dataset>``, relative to the current folder): the call prints that folder, and
            the frame's ``attrs["out_dir"]`` holds it.
        kind, path, adapter: what the network predicts, on which path, and which adapter reads it
            (``odebench.adapters.adapt``); ignored for an adapter or Dynamics, which carry their own.
        coupling: how the training paired source and data draws: ``independent`` (the default, or what the
            TorchCFM matcher of ``(network, matcher)`` says) or ``ot`` (minibatch optimal transport: the
            data-prediction samplers are skipped with the reason, as for ``otcfm``).
        spec: a spec name, TOML path or dict whose [[solvers]], seeds and [eval] are used (default ``quick``);
            ``seeds`` and ``n_samples`` override it.
        name: the results folder (default ``eval_<label>_<dataset>``); ``label`` the model's row name in the
            tables (default the network's class name).
        report: write the leaderboard and index.html (with figures).
    """
    if isinstance(model_or_dynamics, Adapter):
        wrapped = adapt(model_or_dynamics, coupling=coupling)  # a coupling given must be the adapter's
    else:
        wrapped = adapt(model_or_dynamics, kind=kind, path=path, adapter=adapter, model_id=model_id,
                        coupling=coupling)
    net = wrapped.module()
    label = label or (model_id if isinstance(wrapped, DynamicsAdapter) else type(net).__name__)
    factory = f"{type(net).__module__}:{type(net).__qualname__}"
    given, method = given_model(wrapped, state_dict_sha256(net), factory, label)
    raw, where = read_eval_spec(spec)
    if solvers is not None:
        raw["solvers"] = list(solvers)
    if seeds is not None:
        raw["seeds"] = list(seeds)
    if metrics is not None or n_samples is not None:
        ev = dict(raw.get("eval", {})) if isinstance(raw.get("eval", {}), dict) else {}
        if metrics is not None:
            ev["metrics"] = metrics
        if n_samples is not None:
            ev["n_samples"] = n_samples
        raw["eval"] = ev
    cells = parse_eval_spec(raw, where, method, dataset, source, name or default_name(label, dataset, source))
    result = evaluate_given(given, cells, out, device=device, progress=progress, report=report)
    frame = result.frame
    frame.attrs["out_dir"] = str(result.summary.out_dir)
    what = "records and report" if report else "records"
    print(f"odebench.evaluate: {len(frame)} cell(s) of {label}; {what} in {result.summary.out_dir}")
    return frame
