"""Adapters: networks trained with other libraries, sampled and measured by odebench as they are.

Each adapter (a never-trained :class:`odebench.methods.Method`) states its network's calling convention, its
time direction and what it predicts, and converts that into odebench's velocity field (t = 0 source, t = 1
data): :class:`Plain` (our own convention), :class:`TorchCFM`, :class:`FlowMatching`, :class:`Diffusers`, and
:class:`DynamicsAdapter` for ready-made Dynamics. :func:`adapt` picks one from what a factory returned. The peer
libraries are imported only by their adapter; a missing one raises :class:`PeerMissing` naming
``pip install 'odebench[adapters]'`` (TorchCFM: ``pip install --no-deps 'torchcfm>=1.0.7'``, which keeps the
installed torch build).
"""

from __future__ import annotations

from typing import Any

from torch import nn

from odebench.adapters.base import (
    ADAPTERS_EXTRA,
    COUPLINGS,
    KINDS,
    Adapter,
    DynamicsAdapter,
    PeerMissing,
    Plain,
    is_instance_of,
)
from odebench.bench.core.fields import Dynamics

__all__ = ["ADAPTERS", "ADAPTERS_EXTRA", "COUPLINGS", "KINDS", "Adapter", "Diffusers", "DynamicsAdapter",
           "FlowMatching", "PeerMissing", "Plain", "TorchCFM", "adapt"]

#: adapter names accepted by ``adapt(..., adapter=...)`` and ``odebench eval --adapter``
ADAPTERS = ("auto", "plain", "torchcfm", "flow_matching", "diffusers")


def __getattr__(name: str):
    """The peer adapters' modules load on first use of their class."""
    if name == "TorchCFM":
        from odebench.adapters.torchcfm import TorchCFM

        return TorchCFM
    if name == "FlowMatching":
        from odebench.adapters.flow_matching import FlowMatching

        return FlowMatching
    if name == "Diffusers":
        from odebench.adapters.diffusers import Diffusers

        return Diffusers
    raise AttributeError(f"module 'odebench.adapters' has no attribute {name!r}")


def detect(obj: Any) -> str:
    """The adapter a network's class calls for, by class name (never imports a peer): a diffusers
    ``UNet2DModel``, a TorchCFM ``MLP`` or ``UNetModel``, a flow_matching ``ModelWrapper``, else ``plain``."""
    if is_instance_of(obj, "diffusers", "ModelMixin"):
        return "diffusers"
    if is_instance_of(obj, "torchcfm", "MLP") or is_instance_of(obj, "torchcfm", "UNetModel"):
        return "torchcfm"
    if is_instance_of(obj, "flow_matching", "ModelWrapper"):
        return "flow_matching"
    return "plain"


def adapt(obj: Any, kind: str | None = None, path: Any = None, adapter: str = "auto",
          model_id: str | None = None, coupling: str | None = None) -> Adapter:
    """An Adapter for what a factory returned (or a notebook holds):

    - an :class:`Adapter`: itself (``kind``, ``path``, ``adapter`` and ``coupling``, if given, must agree with it);
    - ``(network, TorchCFM matcher)``: :class:`TorchCFM`, its coupling read from the matcher's class;
    - ``(network, scheduler)``: :class:`Diffusers`;
    - :class:`Dynamics`: :class:`DynamicsAdapter` (``model_id`` required);
    - an ``nn.Module``: the adapter ``adapter`` names, or (``auto``) the one :func:`detect` picks, with ``kind``
      (default velocity), ``path`` and ``coupling`` (default independent; ``ot`` withholds the data prediction).

    Raises TypeError / ValueError with the fix, PeerMissing when the peer library is not installed.
    """
    if adapter not in ADAPTERS:
        raise ValueError(f"unknown adapter {adapter!r}; choose from {', '.join(ADAPTERS)}")
    if coupling is not None and coupling not in COUPLINGS:
        raise ValueError(f"unknown coupling {coupling!r}; choose from {', '.join(COUPLINGS)} (ot: the training "
                         f"re-paired x0 with x1 by optimal transport)")
    if isinstance(obj, Adapter):
        clash = [f"{k} {v!r} (the adapter says {mine!r})" for k, v, mine in
                 (("kind", kind, obj.kind), ("adapter", None if adapter == "auto" else adapter, obj.adapter),
                  ("coupling", coupling, obj.coupling))
                 if v is not None and v != mine]
        if path is not None or clash:
            raise ValueError(f"the factory returned a ready {obj.adapter} adapter; "
                             f"{'; '.join(clash) or 'path given'}: drop those options, the adapter carries them")
        return obj
    if isinstance(obj, Dynamics):
        return DynamicsAdapter(obj, model_id or "", coupling=coupling or "independent")
    if isinstance(obj, tuple):
        matcher = len(obj) == 2 and is_instance_of(obj[1], "torchcfm", "ConditionalFlowMatcher")
        if matcher and isinstance(obj[0], nn.Module) and adapter in ("auto", "torchcfm"):
            from odebench.adapters.torchcfm import TorchCFM

            return TorchCFM(obj[0], kind or "velocity", path, matcher=obj[1], coupling=coupling)
        if len(obj) == 2 and isinstance(obj[0], nn.Module) and adapter in ("auto", "diffusers"):
            refuse_ot_for_diffusers(coupling)
            from odebench.adapters.diffusers import Diffusers

            return Diffusers(obj[0], obj[1], kind)
        raise TypeError(f"a tuple is read as (network, diffusers scheduler) or (network, TorchCFM matcher); got a "
                        f"tuple of "
                        f"{', '.join(type(o).__name__ for o in obj)}")
    if not isinstance(obj, nn.Module):
        raise TypeError(f"expected a torch.nn.Module, an odebench adapter, (network, scheduler) or Dynamics; got "
                        f"{type(obj).__name__}")
    chosen = detect(obj) if adapter == "auto" else adapter
    if chosen == "diffusers":
        refuse_ot_for_diffusers(coupling)
        raise TypeError(f"a diffusers {type(obj).__name__} needs its scheduler for the noise levels: return "
                        f"(unet, scheduler) or odebench.adapters.Diffusers(unet, scheduler) from the factory")
    if chosen == "torchcfm":
        from odebench.adapters.torchcfm import TorchCFM

        return TorchCFM(obj, kind or "velocity", path, coupling=coupling)
    if chosen == "flow_matching":
        from odebench.adapters.flow_matching import FlowMatching

        return FlowMatching(obj, kind or "velocity", path, coupling=coupling or "independent")
    return Plain(obj, kind or "velocity", path, coupling=coupling or "independent")


def refuse_ot_for_diffusers(coupling: str | None) -> None:
    """diffusers' training adds noise drawn independently of the data: an OT coupling is not one of its models."""
    if coupling == "ot":
        raise ValueError("coupling 'ot' does not apply to a diffusers model: its scheduler's add_noise draws the "
                         "noise independently of the data; drop the coupling option")

