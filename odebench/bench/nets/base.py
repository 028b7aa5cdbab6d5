"""The network registry and ``build_net``, the factory the harness hands to ``Method.networks``.

A network maps (x [B, *shape], t [B]) -> [B, out_mult * C, ...]. The built-in networks (``mlp``, ``unet``) live
in this package's other modules and are found by discovery; third-party ones join through the
``odebench.nets`` entry-point group.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from odebench.bench.core.registry import Registry

NETS: Registry[type[nn.Module]] = Registry("network", "odebench.nets", builtin="odebench.bench.nets")


def build_net(config: dict[str, Any], shape: tuple[int, ...], out_mult: int = 1, width: float = 1.0,
              depth: float = 1.0) -> nn.Module:
    """Instantiate ``config['name']`` (default "mlp") with the remaining keys as keyword arguments.

    ``width`` and ``depth`` (fractions, default 1) ask for a smaller network of the same kind, e.g. an encoder a
    quarter as wide and half as deep as the velocity net; the network class says what that means for its own
    settings (``scaled_config``).
    """
    cfg = dict(config)
    cls = NETS.get(cfg.pop("name", "mlp"))
    if (width, depth) != (1.0, 1.0):
        cfg = cls.scaled_config(cfg, width, depth)
    return cls(shape, out_mult=out_mult, **cfg)
