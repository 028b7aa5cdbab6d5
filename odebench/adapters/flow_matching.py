"""Models of facebookresearch's ``flow_matching`` library as odebench methods.

Mapping. ``flow_matching`` trains a velocity model behind ``flow_matching.utils.ModelWrapper``, whose
``forward(x, t, **extras)`` is called with keywords (``model(x=x, t=t, **extras)``) by its ``ODESolver``. Its
affine paths (``AffineProbPath`` with ``CondOTScheduler`` and friends) write x_t = alpha_t x1 + sigma_t x0 with
x0 the source and x1 the data: the same time direction as odebench (t = 0 source, t = 1 data). So the field is
``net(x=x, t=t, **extras)`` unchanged for ``kind = "velocity"``, with t: [B] as in the library's training loop
(its ODESolver passes a 0-d t; a model that accepts both sees no difference). ``extras`` are fixed keyword
arguments passed on every call (a class label, a guidance scale); they join the model's identity.

``path`` is the library's path in odebench's names, needed only for kinds other than velocity and for the
data-prediction samplers: ``CondOTProbPath`` (``CondOTScheduler``: alpha_t = t, sigma_t = 1 - t) is
``"linear"``; ``CosineScheduler`` (alpha_t = sin(pi t / 2), sigma_t = cos(pi t / 2)) is ``"trig"``.
"""

from __future__ import annotations

import json
from typing import Any

from torch import Tensor, nn

from odebench.adapters.base import Adapter, require_peer

__all__ = ["FlowMatching"]


class FlowMatching(Adapter):
    """A ``flow_matching`` model (module docstring), called as ``net(x=x, t=t, **extras)``."""

    adapter = "flow_matching"

    def __init__(self, net: nn.Module, kind: str = "velocity", path=None, extras: dict[str, Any] | None = None,
                 t_eps: float = 1e-3, coupling: str = "independent"):
        require_peer("flow_matching", "flow_matching")
        self.extras = dict(extras or {})
        super().__init__(net, kind, path, t_eps, coupling)

    def settings(self) -> dict[str, Any]:
        return {"extras": json.dumps(self.extras, sort_keys=True, default=repr)} if self.extras else {}

    def call(self, net: nn.Module, x: Tensor, t: Tensor) -> Tensor:
        return net(x=x, t=t.to(x.dtype), **self.extras)
