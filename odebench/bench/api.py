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


def check_fits(given: GivenModel, spec: Spec) -> None:
    """Call the model's velocity once on two points of every dataset of ``spec``: a network whose input or output
    shape does not fit the data (a 2-D model on the 8x8 digits) is refused now, with RunRefused, instead of
    failing every cell on the same shape error."""
    import torch

    from odebench.bench.data import load_dataset
    from odebench.bench.harness.guards.errors import RunRefused

    dynamics = given.method.dynamics(given.model)
    seen = set()
    for cell in spec.cells:
        key = (cell.target, cell.data_seed, repr(sorted(cell.data_options.items())))
        if key in seen:
            continue
        seen.add(key)
        x = load_dataset(cell.target, cell.data_seed, **cell.data_options).train[:2]
        shape = tuple(x.shape[1:])
        t = torch.full((x.shape[0],), 0.5, dtype=x.dtype)
        try:
            with torch.no_grad():
                v = dynamics.velocity(x.to(next(given.model.parameters(), x).device), t)
        except Exception as exc:  # the network's own error on an input of the wrong shape
            raise RunRefused(f"the model does not take {cell.target}'s data (points of shape {shape}): "
                             f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}; evaluate it on a dataset "
                             f"of the shape it was trained on (odebench list datasets)") from exc
        if tuple(v.shape) != tuple(x.shape):
            raise RunRefused(f"the model maps {cell.target}'s points of shape {shape} to shape "
                             f"{tuple(v.shape[1:])}: a velocity must keep the shape; evaluate it on a dataset of "
                             f"the shape it was trained on (odebench list datasets)")


def evaluate_given(given: GivenModel, spec: Spec, out: str | Path = "results", device: str | None = None,
                   progress: bool = False, report: bool = True, figures: bool = True) -> EvalResult:
    """Run ``spec``'s cells on ``given`` and write the report; returns the :class:`EvalResult`."""
    from odebench.bench.report.build import write_report

    if given.method.needs_gaussian_source and any(c.source != GAUSSIAN_SOURCE for c in spec.cells):
        raise SpecError("source", [f"source: the {given.method.adapter} adapter samples from N(0, I) (its "
                                   f"noise levels assume it); drop the source dataset"])
    out = Path(out).absolute()  # once, here: the records, the report and its checks all use this folder
    check_fits(given, spec)
    summary = run_sweep(spec, out, device=device, progress=progress, given=given)
    written = None
    if report:
        written = write_report(summary.out_dir, figures=figures, given={given.key: (given.method, given.model)})
    store = RecordStore(summary.out_dir)
    records = [r for c in spec.cells if (r := store.read(c.id)) is not None]
    return EvalResult(spec, summary, written, records_frame(records))


def evaluate(model_or_dynamics: Any, dataset: str = "moons", *, solvers: list[dict[str, Any]] | None = None,
             metrics: list[str] | dict[str, list[str]] | None = None, out: str | Path = "results",
             kind: str | None = None, path: Any = None, adapter: str = "auto", source: str = GAUSSIAN_SOURCE,
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
        spec: a spec name, TOML path or dict whose [[solvers]], seeds and [eval] are used (default ``quick``);
            ``seeds`` and ``n_samples`` override it.
        name: the results folder (default ``eval_<label>_<dataset>``); ``label`` the model's row name in the
            tables (default the network's class name).
        report: write the leaderboard and index.html (with figures).
    """
    if isinstance(model_or_dynamics, Adapter):
        wrapped = adapt(model_or_dynamics)
    else:
        wrapped = adapt(model_or_dynamics, kind=kind, path=path, adapter=adapter, model_id=model_id)
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
