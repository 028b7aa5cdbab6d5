"""TensorBoard: event files under ``<sweep>/tracking/tensorboard`` (``tensorboard --logdir`` on that folder).

Runs (TensorBoard's folders, one line colour each):

- ``models/<method> on <data> seed <s>``: scalars ``loss/train`` (mean training loss per chunk of steps) and
  ``loss/heldout`` (the held-out loss of the model's training evidence), by training step;
- ``curves/<data>/<method>/<solver>/seed<s>``: every metric, ``nfe`` and the timings of the cells of that line,
  by NFE (a metric-vs-NFE curve per solver);
- ``cells/<cell id>``: the HParams dashboard's row of each cell: its resolved config and its values;
- ``images``: sample sheets (``samples/...``) and the report's figures (``figures/<name>``).

Every run folder is created through the write guard (``SinkFolder.make``): a symlink at ``tracking/tensorboard``
or below that leads out of ``--out`` is refused. Written with ``torch.utils.tensorboard`` (which needs the
``tensorboard`` package: ``odebench[tensorboard]``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from odebench.bench.harness.tracking.base import CellEvent, ModelEvent, SinkFolder, safe_part


def _image(path: Path):
    import numpy as np
    from PIL import Image

    with Image.open(path) as img:
        return np.asarray(img.convert("RGB"))  # [H, W, 3] uint8


class TensorBoardSink:
    name = "tensorboard"

    def __init__(self, folder: SinkFolder):
        from torch.utils.tensorboard import SummaryWriter

        self._writer_cls = SummaryWriter
        self.folder = folder
        self.logdir = folder.make("tensorboard")  # refused if it, or tracking/, leads out of --out
        self.writers: dict[str, Any] = {}

    def _writer(self, run: str):
        if run not in self.writers:  # each run's folder checked level by level as it is made
            log_dir = self.folder.make("tensorboard", *run.split("/"))
            self.writers[run] = self._writer_cls(log_dir=str(log_dir), flush_secs=30)
        return self.writers[run]

    def model(self, event: ModelEvent) -> None:
        w = self._writer(f"models/{safe_part(event.label)}")
        for step, loss in event.train:
            w.add_scalar("loss/train", loss, step)
        for step, loss in event.heldout:
            w.add_scalar("loss/heldout", loss, step)
        w.add_text("model", f"key {event.key}; converged: {event.converged} (rule v{event.rule_version}); "
                            f"{'loaded from the cache' if event.cached else 'trained in this run'}")
        w.flush()

    def cell(self, event: CellEvent) -> None:
        data, method, solver, seed = event.group
        if event.values:
            w = self._writer(f"curves/{safe_part(data)}/{safe_part(method)}/{safe_part(solver)}/seed{seed}")
            for k, v in event.values.items():
                w.add_scalar(k, v, event.step)
            w.flush()
        from torch.utils.tensorboard.summary import hparams

        w = self._writer(f"cells/{event.cell_id}")
        metrics = {f"cell/{k}": v for k, v in event.values.items()}
        for summary in hparams(event.params, metrics):
            w._get_file_writer().add_summary(summary)
        for k, v in metrics.items():
            w.add_scalar(k, v, event.step)
        if event.reason:
            w.add_text("reason", f"{event.status}: {event.reason}")
        w.flush()
        for path in event.images:
            self._writer("images").add_image(f"samples/{data}/{method}/{solver}@{event.step}/seed{seed}",
                                             _image(path), event.step, dataformats="HWC")

    def files(self, kind: str, paths: list[Path]) -> None:
        w = self._writer("images")
        for path in paths:
            if path.suffix.lower() == ".png":
                w.add_image(f"{kind}/{path.stem}", _image(path), 0, dataformats="HWC")
        w.flush()

    def close(self) -> None:
        for w in self.writers.values():
            w.close()


def open_sink(where: SinkFolder, name: str, settings: dict[str, Any], spec_raw: dict[str, Any]) -> TensorBoardSink:
    return TensorBoardSink(where)
