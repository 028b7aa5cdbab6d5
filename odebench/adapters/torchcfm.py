"""TorchCFM models (``torchcfm``, Tong et al.) as odebench methods.

Mapping. TorchCFM's flow matchers (``ConditionalFlowMatcher`` and its OT, Schrödinger-bridge and VP variants)
draw x0 from the source, x1 from the data and t ~ U[0, 1], and regress the network on the velocity dx_t/dt:
the same time direction as odebench (t = 0 source, t = 1 data) and, by default, the same prediction
(``kind = "velocity"``), so the field is the network's output unchanged. Two calling conventions:

- ``torchcfm.models.MLP(dim, time_varying=True)`` takes one tensor, x and t concatenated:
  ``net(torch.cat([x, t[:, None]], dim=-1))`` with x: [B, dim] (x of another shape is flattened first and the
  output reshaped back);
- the U-Nets (``torchcfm.models.unet.UNetModel``, ``UNetModelWrapper``) and the torchdyn-style wrappers take
  ``net(t, x)``, t first, t: [B].

``time_input`` ("concat" or "first") overrides the choice made from the network's class. ``path`` is the
probability path the matcher used, needed only for kinds other than velocity and for the data-prediction
samplers: ``"linear"`` for ``ConditionalFlowMatcher`` with sigma = 0 (with sigma > 0 its path is not the
linear one exactly, so leave ``path`` unset), ``"trig"`` for ``VariancePreservingConditionalFlowMatcher``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from odebench.adapters.base import Adapter, is_instance_of, require_peer

__all__ = ["TorchCFM"]

TIME_INPUTS = ("concat", "first")


class TorchCFM(Adapter):
    """A TorchCFM network (module docstring); ``time_input`` None: "concat" for ``torchcfm.models.MLP``,
    "first" (``net(t, x)``) for anything else."""

    adapter = "torchcfm"

    def __init__(self, net: nn.Module, kind: str = "velocity", path=None, time_input: str | None = None,
                 t_eps: float = 1e-3):
        require_peer("torchcfm", "torchcfm")
        if time_input is None:
            time_input = "concat" if is_instance_of(net, "torchcfm", "MLP") else "first"
        if time_input not in TIME_INPUTS:
            raise ValueError(f"torchcfm adapter: time_input must be one of {', '.join(TIME_INPUTS)}, "
                             f"got {time_input!r}")
        self.time_input = time_input
        super().__init__(net, kind, path, t_eps)

    def settings(self) -> dict[str, Any]:
        return {"time_input": self.time_input}

    def call(self, net: nn.Module, x: Tensor, t: Tensor) -> Tensor:
        if self.time_input == "first":
            return net(t, x)
        flat = x.reshape(x.shape[0], -1)
        return net(torch.cat([flat, t.to(x.dtype)[:, None]], dim=-1)).reshape(x.shape)
