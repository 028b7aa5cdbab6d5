"""MLflow: by default a local file store, ``<sweep>/tracking/mlruns``; browse it with
``MLFLOW_ALLOW_FILE_STORE=true mlflow ui --backend-store-uri <sweep>/tracking/mlruns`` (MLflow 3 keeps the file
store in maintenance mode and wants that variable; this sink sets it for its own process).

One experiment per sweep (``[track] experiment``, default the spec's name) holding one MLflow run per trained
model (``train <method> on <data> seed <s>``: metric histories ``train_loss`` and ``heldout_loss`` by step, its
config as params) and one per cell (its resolved config as params, its metrics, ``nfe`` and timings, tags
``status`` and ``reason``, the sample sheet as an artifact), and a run ``report`` with the report's figures as
artifacts. ``[track] mlflow_uri`` sends them to another tracking URI instead (a server: the user's choice).
Written through ``MlflowClient`` (``odebench[mlflow]``; ``mlflow-skinny`` is enough).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from odebench.bench.harness.tracking.base import CellEvent, ModelEvent, SinkFolder

MAX_PARAM = 6000  # MLflow's longest param value
BATCH = 100  # params per log_batch call


class MlflowSink:
    name = "mlflow"

    def __init__(self, uri: str, experiment: str):
        from mlflow.tracking import MlflowClient

        self.client = MlflowClient(tracking_uri=uri)
        self.uri = uri
        found = self.client.get_experiment_by_name(experiment)
        self.experiment_id = found.experiment_id if found is not None else self.client.create_experiment(experiment)

    def _run(self, run_name: str, params: dict[str, Any], tags: dict[str, str]) -> str:
        from mlflow.entities import Param, RunTag

        run = self.client.create_run(self.experiment_id, run_name=run_name, tags=tags)
        items = [Param(k[:250], str(v)[:MAX_PARAM]) for k, v in params.items()]
        for i in range(0, len(items), BATCH):
            self.client.log_batch(run.info.run_id, params=items[i:i + BATCH])
        self.client.log_batch(run.info.run_id, tags=[RunTag("odebench", "1")])
        return run.info.run_id

    def _metrics(self, run_id: str, series: dict[str, list[tuple[int, float]]]) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        items = [Metric(k, float(v), now, int(step)) for k, points in series.items() for step, v in points]
        for i in range(0, len(items), 1000):
            self.client.log_batch(run_id, metrics=items[i:i + 1000])

    def model(self, event: ModelEvent) -> None:
        run_id = self._run(f"train {event.label}", event.params,
                           {"odebench.kind": "model", "model_key": event.key, "cached": str(event.cached),
                            "converged": str(event.converged), "convergence_rule": str(event.rule_version)})
        self._metrics(run_id, {"train_loss": event.train, "heldout_loss": event.heldout})
        self.client.set_terminated(run_id)

    def cell(self, event: CellEvent) -> None:
        data, method, solver, seed = event.group
        tags = {"odebench.kind": "cell", "cell_id": event.cell_id, "status": event.status}
        if event.reason:
            tags["reason"] = event.reason[:5000]
        run_id = self._run(f"{method} {data} {solver}@{event.step} seed {seed}", event.params, tags)
        self._metrics(run_id, {k: [(event.step, v)] for k, v in event.values.items()})
        for path in event.images:
            self.client.log_artifact(run_id, str(path), "samples")
        self.client.set_terminated(run_id, "FAILED" if event.status == "failed" else "FINISHED")

    def files(self, kind: str, paths: list[Path]) -> None:
        run_id = self._run(kind, {}, {"odebench.kind": kind})
        for path in paths:
            self.client.log_artifact(run_id, str(path), kind)
        self.client.set_terminated(run_id)

    def close(self) -> None:
        pass


def open_sink(where: SinkFolder, name: str, settings: dict[str, Any], spec_raw: dict[str, Any]) -> MlflowSink:
    uri = settings.get("mlflow_uri")
    if uri:
        return MlflowSink(uri, settings.get("experiment") or name)
    # MLflow 3 keeps its file store in maintenance mode and refuses it unless this is set; it needs no
    # database package (mlflow-skinny suffices) and no server. `mlflow_uri = "sqlite:///..."` opts out.
    os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    store = where.make("mlruns")  # refused if it, or tracking/, leads out of --out
    where.check(store)  # an experiment folder left there that links out of --out: refused before MLflow writes
    sink = MlflowSink(store.as_uri(), settings.get("experiment") or name)
    where.check(store)
    return sink
