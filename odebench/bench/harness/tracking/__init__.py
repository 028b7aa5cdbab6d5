"""Optional tracking sinks: TensorBoard, MLflow, Weights & Biases (``--track NAME`` or a spec's ``[track]``).

The records stay the source of truth; a sink only mirrors, as a run goes, what the driver writes: per trained
model its training-loss and held-out-loss curves, per cell its metrics, NFE and timings with the cell's resolved
config as parameters, and the sample sheets and report figures as images or artifacts. Each sink's library is
an optional extra, imported only when asked for (a missing one is a usage error naming ``pip install
'odebench[NAME]'``), and every sink is offline by default, its files under the sweep folder
(``<sweep>/tracking/``). A sink that fails is dropped with a note; the run and its records go on unchanged.
It may import training, the store, the spec, ``process`` and ``guards``; nothing in the harness imports it: the
command line opens a tracker and hands it to the run.
"""

from odebench.bench.harness.tracking.base import (
    CellEvent,
    ModelEvent,
    Tracker,
    TrackingUnavailable,
    check_available,
    open_tracker,
)

__all__ = ["CellEvent", "ModelEvent", "Tracker", "TrackingUnavailable", "check_available", "open_tracker"]
