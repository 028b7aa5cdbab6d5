"""Networks with a time input: the registry, ``build_net``, the MLP and the U-Net."""

from odebench.bench.nets.base import NETS, build_net

__all__ = ["NETS", "build_net"]
