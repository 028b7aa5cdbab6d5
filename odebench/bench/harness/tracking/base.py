"""What every sink receives (ModelEvent, CellEvent, files), the fan-out that keeps a failing sink from touching
the run (Tracker), and the import check that names the extra to install."""

from __future__ import annotations

import importlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from odebench.bench.harness.guards.safe_paths import folder_inside, inside, make_dirs
from odebench.bench.harness.spec.limits import TRACK_SINKS

#: sink name -> (module of its sink class here, the module its library must provide, the extra that installs it)
SINK_MODULES = {
    "tensorboard": ("odebench.bench.harness.tracking.tensorboard_sink", "tensorboard", "tensorboard"),
    "mlflow": ("odebench.bench.harness.tracking.mlflow_sink", "mlflow", "mlflow"),
    "wandb": ("odebench.bench.harness.tracking.wandb_sink", "wandb", "wandb"),
}
assert tuple(SINK_MODULES) == TRACK_SINKS  # the spec's rules and the sinks name the same three


class TrackingUnavailable(RuntimeError):
    """A sink was asked for but its library is not installed."""


def check_available(names: list[str]) -> None:
    """Import each asked-for sink's library now, before any work; a missing one names its extra."""
    for name in names:
        _, library, extra = SINK_MODULES[name]
        try:
            importlib.import_module(library)
        except ImportError as exc:
            raise TrackingUnavailable(
                f"--track {name} needs the {library} package, which is not installed ({exc}); install it with "
                f"pip install 'odebench[{extra}]', or drop --track {name} (and [track] sinks in the spec)") from exc


@dataclass
class ModelEvent:
    """One trained (or cached) model: ``train`` is the training loss [(step, mean loss of the chunk ending
    there)], ``heldout`` the held-out loss [(step, loss)] of its training evidence."""

    key: str
    label: str
    params: dict[str, Any]
    train: list[tuple[int, float]]
    heldout: list[tuple[int, float]]
    converged: bool | None = None
    cached: bool = False
    #: the version of the convergence rule that judged ``converged`` (odebench.bench.harness.training.evidence;
    #: 1 for a verdict stored without one)
    rule_version: int | None = None


@dataclass
class CellEvent:
    """One cell's record as sinks want it: ``params`` the resolved config (dotted keys -> scalars), ``values``
    its metrics plus ``nfe`` and the timings, ``group`` (dataset, method label, solver label, seed) and ``step``
    (the NFE used) to draw metric-vs-NFE curves, ``images`` its sample sheet if any."""

    cell_id: str
    status: str
    reason: str | None
    params: dict[str, Any]
    values: dict[str, float]
    group: tuple[str, str, str, int]
    step: int
    images: list[Path] = field(default_factory=list)


def scalar_params(config: dict[str, Any]) -> dict[str, Any]:
    """A nested config as dotted keys -> bool/int/float/str (lists and None as their JSON text)."""
    out: dict[str, Any] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict) and value:
            for k in sorted(value):
                walk(f"{prefix}.{k}" if prefix else str(k), value[k])
        elif isinstance(value, (bool, int, float, str)):
            out[prefix] = value
        else:
            out[prefix] = json.dumps(value, sort_keys=True, default=str)

    walk("", config)
    return out


@dataclass(frozen=True)
class SinkFolder:
    """Where a sink writes: ``path`` (``<sweep>/tracking``) inside ``root`` (``--out``). ``make(*parts)``
    creates ``path/<parts>`` through ``safe_paths.make_dirs`` (each level checked: no symlink out of ``root``)
    and returns it; ``check(folder, depth)`` refuses a folder a library created whose entries, ``depth`` levels
    down, lead out of ``root``."""

    root: Path
    path: Path

    def make(self, *parts: str) -> Path:
        return make_dirs(self.root, self.path.joinpath(*parts))

    def check(self, folder: Path, depth: int = 2) -> None:
        if depth < 0 or not folder.is_dir():
            return
        folder_inside(self.root, folder)
        for entry in sorted(folder.iterdir()):
            if entry.is_symlink():
                folder_inside(self.root, entry)
            elif entry.is_dir():
                self.check(entry, depth - 1)


def safe_part(text: str) -> str:
    """A label as one file-name-safe path component (run folders of TensorBoard)."""
    return re.sub(r"[^A-Za-z0-9_.,=@-]+", "_", text).strip("._")[:120] or "_"


def model_event(job, outcome) -> ModelEvent:
    """The ModelEvent of a finished training job (odebench.bench.harness.execution.plan.TrainingJob / TrainOutcome)."""
    from odebench.bench.harness.training.train import loss_steps

    evidence = outcome.evidence or {}
    steps = (evidence.get("cost") or {}).get("steps") or job.cell.train.get("steps", len(outcome.losses))
    held = evidence.get("heldout") or {}
    cfg = job.cell.config()
    params = scalar_params({k: cfg[k] for k in ("method", "target", "source", "seed", "data_seed", "train", "net")})
    params["model_key"] = job.key
    return ModelEvent(job.key, job.label, params,
                      list(zip(loss_steps(steps, len(outcome.losses),
                                          ((evidence.get("cost") or {}).get("budget") or {}).get("max_steps")),
                               outcome.losses, strict=True)),
                      list(zip(held.get("steps", []), held.get("loss", []), strict=True)),
                      (evidence.get("convergence") or {}).get("converged"), job.key not in outcome.trained,
                      (evidence.get("convergence") or {}).get("rule_version", 1) if evidence.get("convergence")
                      else None)


def cell_event(record: dict[str, Any]) -> CellEvent:
    """The CellEvent of a record as the driver writes it."""
    from odebench.bench.harness.store.records import method_label

    cfg = record.get("config", {})
    values = {k: float(v) for k, v in (record.get("metrics") or {}).items()}
    if record.get("nfe") is not None:
        values["nfe"] = float(record["nfe"])
    values.update({k: float(v) for k, v in (record.get("timings") or {}).items() if v is not None})
    solver = cfg.get("solver", "?") + ("" if cfg.get("grid", "uniform") == "uniform" else f"/{cfg['grid']}")
    data = cfg.get("target", "?")
    if cfg.get("source", "gaussian") != "gaussian":
        data = f"{cfg['source']}->{data}"
    params = scalar_params(cfg)
    params.update(cell_id=record.get("cell_id"), model_key=record.get("model_key") or "", status=record["status"])
    step = record.get("nfe") if record.get("nfe") is not None else (cfg.get("nfe") or 0)
    images = [Path(record["sample_sheet"])] if record.get("sample_sheet") else []
    return CellEvent(record.get("cell_id", "?"), record["status"], record.get("reason"), params, values,
                     (data, method_label(cfg.get("method", {"name": "?"})), solver, int(cfg.get("seed", 0))),
                     int(step), images)


class Tracker:
    """Every asked-for sink, behind one object the driver calls. A sink that raises is closed and dropped with
    a note (``notes``); nothing a sink does reaches the run, whose records are written before any sink sees
    them."""

    def __init__(self, sinks: list | None = None, notes: list[str] | None = None, openers: dict | None = None):
        self.sinks = list(sinks or [])
        self.notes = notes if notes is not None else []
        #: sink name -> a function that opens it: called at the first event, so that a run refused before any
        #: work (its folder locked by another run) creates no tracking files
        self.openers = dict(openers or {})

    def _open(self) -> None:
        for name, opener in list(self.openers.items()):
            del self.openers[name]
            try:
                self.sinks.append(opener())
            except Exception as exc:
                self.notes.append(f"tracking to {name} could not start ({type(exc).__name__}: {str(exc)[:300]}); "
                                  f"the run goes on without it")

    def _each(self, method: str, *args) -> None:
        if self.openers:
            self._open()
        for sink in list(self.sinks):
            try:
                getattr(sink, method)(*args)
            except Exception as exc:  # a sink's failure never reaches the run
                self.sinks.remove(sink)
                self.notes.append(f"tracking to {sink.name} stopped ({method}: {type(exc).__name__}: "
                                  f"{str(exc)[:300]}); the records are complete and unaffected")
                try:
                    sink.close()
                except Exception:
                    pass

    def model(self, job, outcome) -> None:
        """A training job finished (trained or loaded from the cache)."""
        if (self.sinks or self.openers) and outcome.ok:
            try:
                event = model_event(job, outcome)
            except Exception as exc:
                self.notes.append(f"tracking: could not read the curves of {job.label}: {exc}")
                return
            self._each("model", event)

    def cell(self, record: dict[str, Any]) -> None:
        """A cell's record was written."""
        if self.sinks or self.openers:
            try:
                event = cell_event(record)
            except Exception as exc:
                self.notes.append(f"tracking: could not read record {record.get('cell_id')}: {exc}")
                return
            self._each("cell", event)

    def files(self, kind: str, paths: list[Path]) -> None:
        """Files of the sweep (the report's figures) as images or artifacts."""
        if (self.sinks or self.openers) and paths:
            self._each("files", kind, [Path(p) for p in paths])

    def close(self) -> None:
        self.openers.clear()  # a sink that never got an event is never opened
        self._each("close")
        self.sinks = []


def open_tracker(names: list[str], sweep_dir: Path, root: Path, settings: dict[str, Any],
                 spec_raw: dict[str, Any], name: str) -> Tracker:
    """A Tracker over the named sinks, each writing under ``<sweep_dir>/tracking`` (checked to lie in ``root``)
    unless its settings name another place (an MLflow URI, W&B online). The libraries are imported now (a
    missing one raises TrackingUnavailable); the sinks open at the first event.

    Both folders are made absolute here, once: ``<sweep_dir>/tracking`` is built from them and checked where the
    operating system puts it (a relative ``--out`` of ``results`` gives ``results/<sweep>/tracking``). Every
    folder a sink creates goes through ``safe_paths.make_dirs`` (:func:`sink_folder`), so a symlink at
    ``tracking``, ``tracking/tensorboard`` or deeper that leads out of ``root`` is refused."""
    check_available(names)
    root = Path(root).absolute()
    where = inside(root, Path(sweep_dir).absolute() / "tracking")

    def opener(sink_name: str):
        module = importlib.import_module(SINK_MODULES[sink_name][0])
        return lambda: module.open_sink(SinkFolder(root, where), name, settings, spec_raw)

    return Tracker(openers={n: opener(n) for n in names})
