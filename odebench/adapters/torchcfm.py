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

Coupling. ``ExactOptimalTransportConditionalFlowMatcher`` re-pairs each minibatch by exact OT and
``SchrodingerBridgeConditionalFlowMatcher`` by entropic OT: x0 is then not independent of x1, and the adapter
withholds the data prediction (``coupling = "ot"``, odebench.adapters.base). Pass the matcher the model was
trained with (``matcher=``, or return ``(network, matcher)`` from a factory) and the coupling is read from it:
``ot`` for a matcher that pairs by an OT plan (one of those two classes, or any matcher with an
``ot_sampler``), ``independent`` for the others. Without a matcher, ``coupling`` says it (default independent).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from odebench.adapters.base import Adapter, is_instance_of, require_peer

__all__ = ["TorchCFM", "coupling_of_matcher", "is_matcher"]

TIME_INPUTS = ("concat", "first")
#: TorchCFM's matchers that pair x0 with x1 by an OT plan (exact; entropic) rather than independently
OT_MATCHERS = ("ExactOptimalTransportConditionalFlowMatcher", "SchrodingerBridgeConditionalFlowMatcher")


def is_matcher(obj: Any) -> bool:
    """Whether ``obj`` is a TorchCFM flow matcher (a ``ConditionalFlowMatcher`` or a subclass); by class name."""
    return is_instance_of(obj, "torchcfm", "ConditionalFlowMatcher")


def coupling_of_matcher(matcher: Any) -> str:
    """``ot`` for a TorchCFM matcher that re-pairs its minibatches by an OT plan, ``independent`` for the others;
    TypeError for what is not a TorchCFM matcher."""
    if not is_matcher(matcher):
        raise TypeError(f"torchcfm adapter: matcher must be a TorchCFM ConditionalFlowMatcher (or a subclass), got "
                        f"{type(matcher).__name__}")
    paired = any(is_instance_of(matcher, "torchcfm", name) for name in OT_MATCHERS)
    return "ot" if paired or getattr(matcher, "ot_sampler", None) is not None else "independent"


class TorchCFM(Adapter):
    """A TorchCFM network (module docstring); ``time_input`` None: "concat" for ``torchcfm.models.MLP``,
    "first" (``net(t, x)``) for anything else. ``matcher``: the flow matcher it was trained with, whose class
    gives the coupling; ``coupling`` None: the matcher's, else independent (given with a matcher, it must agree).
    """

    adapter = "torchcfm"

    def __init__(self, net: nn.Module, kind: str = "velocity", path=None, time_input: str | None = None,
                 t_eps: float = 1e-3, matcher: Any = None, coupling: str | None = None):
        require_peer("torchcfm", "torchcfm")
        if matcher is not None:
            read = coupling_of_matcher(matcher)
            if coupling is not None and coupling != read:
                how = "by optimal transport" if read == "ot" else "independently"
                raise ValueError(f"torchcfm adapter: coupling {coupling!r} given, but the model's matcher "
                                 f"{type(matcher).__name__} pairs {how} (coupling {read!r}); drop the coupling "
                                 f"option, the matcher says it")
            coupling = read
        if time_input is None:
            time_input = "concat" if is_instance_of(net, "torchcfm", "MLP") else "first"
        if time_input not in TIME_INPUTS:
            raise ValueError(f"torchcfm adapter: time_input must be one of {', '.join(TIME_INPUTS)}, "
                             f"got {time_input!r}")
        self.time_input = time_input
        super().__init__(net, kind, path, t_eps, coupling or "independent")

    def settings(self) -> dict[str, Any]:
        return {"time_input": self.time_input}

    def call(self, net: nn.Module, x: Tensor, t: Tensor) -> Tensor:
        if self.time_input == "first":
            return net(t, x)
        flat = x.reshape(x.shape[0], -1)
        return net(torch.cat([flat, t.to(x.dtype)[:, None]], dim=-1)).reshape(x.shape)
