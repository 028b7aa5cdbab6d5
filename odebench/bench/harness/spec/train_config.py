"""The training settings of a spec (``train``, ``[[datasets]].train``): what every model's cache key and every cell's
id are made of, and the rule for which of them count.

They are the spec's, not the training loop's: the spec checks and the JSON schema read the fields and their
defaults here without loading a network or touching the model store; odebench.bench.harness.training.train
trains with them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings (part of every model's cache key).

    ``forward_equivalents`` > 0 budgets a training by compute instead of steps: the model's own optimisation
    runs round(forward_equivalents / forward-equivalents per step) steps (at least 1), the per-step cost
    measured before training (``training.evidence.step_cost``), so a method with an encoder or a second pass
    gets fewer steps for the same compute; ``steps`` then does not act. Parents and reflow pairs are not
    deducted: they are reported in the record's total. 0 (the default) budgets by ``steps``.

    ``until_converged`` = true trains until converged: the step budget (``steps``, or the one
    ``forward_equivalents`` gives) becomes the most steps a training may take, and the training stops at the
    first evaluation of its held-out loss (every twentieth of that budget) where the convergence rule
    (odebench.bench.harness.training.evidence) calls it converged. The stopped model has the weights a full
    training would have at that step; the record gives the steps taken. False (the default) trains the budget.

    ``dequantize`` trains on uniformly dequantized draws of an image dataset with grey levels (each pixel
    2 (k + u) / L - 1, u ~ U[0, 1), fresh at every batch; odebench.bench.data.dequantization), the density that
    the ``nll`` metric scores. A spec that measures ``nll`` on such a dataset turns it on unless it says
    ``dequantize = false`` (docs/decisions.md).
    """

    steps: int = 2000
    batch_size: int = 256
    lr: float = 1e-3
    ema_decay: float = 0.999
    grad_clip: float = 1.0
    weight_decay: float = 0.0
    forward_equivalents: int = 0
    until_converged: bool = False
    dequantize: bool = False


#: settings that key a model and a cell only when on: off, they leave the keys as they were before they existed
KEYED_WHEN_ON = ("forward_equivalents", "until_converged", "dequantize")


def train_key_fields(train: dict[str, Any]) -> dict[str, Any]:
    """The training settings (TrainConfig fields as a dict) that key a model and a cell: all of them, less
    ``forward_equivalents``, ``until_converged`` and ``dequantize`` when off or absent (so models and cells that
    use none of them keep the keys they always had, records written before the options existed included)."""
    return {k: v for k, v in train.items() if k not in KEYED_WHEN_ON or v}
