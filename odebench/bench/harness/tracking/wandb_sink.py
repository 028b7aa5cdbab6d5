"""Weights & Biases: offline by default, the run's files under ``<sweep>/tracking/wandb`` (``wandb sync`` uploads
them later, if wanted); ``[track] wandb_mode = "online"`` logs to the W&B servers instead (the user's choice).

One W&B run per sweep (project ``[track] experiment``, default the spec's name; the spec as its config): each
model's curves as ``<model>/train_loss`` and ``<model>/heldout_loss`` against its own ``<model>/step`` axis, each
cell's values as ``cells/<data>/<method>/<solver>/<metric>`` against ``nfe``, sample sheets and figures as
images, and at the end a table ``cells`` with one row per cell (its resolved config and values).
Needs ``wandb`` (``odebench[wandb]``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from odebench.bench.harness.tracking.base import CellEvent, ModelEvent, SinkFolder


class WandbSink:
    name = "wandb"

    def __init__(self, where: Path, project: str, run_name: str, mode: str, config: dict[str, Any]):
        import wandb

        self.wandb = wandb
        os.environ.setdefault("WANDB_SILENT", "true")
        self.run = wandb.init(project=project, name=run_name, dir=str(where), mode=mode, config={"spec": config},
                              reinit="create_new")
        self.rows: list[dict[str, Any]] = []

    def model(self, event: ModelEvent) -> None:
        axis = f"{event.label}/step"
        self.run.define_metric(axis, hidden=True)
        self.run.define_metric(f"{event.label}/*", step_metric=axis)
        points: dict[int, dict[str, float]] = {}
        for key, series in (("train_loss", event.train), ("heldout_loss", event.heldout)):
            for step, v in series:
                points.setdefault(int(step), {})[f"{event.label}/{key}"] = v
        for step in sorted(points):
            self.run.log({axis: step, **points[step]})

    def cell(self, event: CellEvent) -> None:
        data, method, solver, seed = event.group
        prefix = f"cells/{data}/{method}/{solver}/seed{seed}"
        self.run.define_metric(f"{prefix}/*", step_metric="nfe")
        self.run.log({"nfe": event.step, **{f"{prefix}/{k}": v for k, v in event.values.items() if k != "nfe"}})
        for path in event.images:
            self.run.log({f"samples/{data}/{method}/{solver}@{event.step}": self.wandb.Image(str(path))})
        # one type per column (W&B checks it): the config as text, the values as numbers
        self.rows.append({**{k: str(v) for k, v in event.params.items()},
                          **{f"value.{k}": v for k, v in event.values.items()}})

    def files(self, kind: str, paths: list[Path]) -> None:
        self.run.log({f"{kind}/{p.stem}": self.wandb.Image(str(p)) for p in paths if p.suffix.lower() == ".png"})

    def close(self) -> None:
        if self.rows:
            columns = sorted({k for r in self.rows for k in r})
            table = self.wandb.Table(columns=columns, data=[[r.get(c) for c in columns] for r in self.rows])
            self.run.log({"cells": table})
        self.run.finish()


def open_sink(where: SinkFolder, name: str, settings: dict[str, Any], spec_raw: dict[str, Any]) -> WandbSink:
    folder = where.make("wandb")  # refused if it, or tracking/, leads out of --out
    where.check(folder)  # run folders left there that link out of --out: refused before W&B writes
    return WandbSink(folder, settings.get("experiment") or name, name, settings.get("wandb_mode", "offline"),
                     spec_raw)
