"""Where and in what precision a sweep runs: device selection, bf16 autocast and optional torch.compile.

``Runtime`` travels from the CLI / spec to training and sampling. Precision "bf16" runs the network's matrix
work under ``torch.autocast(dtype=torch.bfloat16)`` while parameters, optimiser state, the solver's state and
the loss reduction stay float32 (autocast keeps reductions and normalisations in float32 itself).
"""

from __future__ import annotations

import contextlib
from dataclasses import asdict, dataclass

import torch
from torch import nn

PRECISIONS = ("fp32", "bf16")


@dataclass(frozen=True)
class Runtime:
    """device: "cpu", "cuda" or "cuda:N"; precision: "fp32" | "bf16"; compile: torch.compile the networks."""

    device: str = "cpu"
    precision: str = "fp32"
    compile: bool = False

    def __post_init__(self):
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}; got {self.precision!r}")

    def record(self) -> dict:
        return asdict(self)

    def autocast(self):
        """Context for network calls: bf16 autocast on the runtime's device, or nothing for fp32."""
        return autocast(self.device, self.precision)


def resolve_device(name: str | None) -> str:
    """Check that ``name`` is usable here and return it; a clear error when CUDA is asked for and absent."""
    name = name or "cpu"
    try:
        dev = torch.device(name)
    except RuntimeError as exc:
        raise ValueError(f"unknown device {name!r}: use cpu, cuda or cuda:N") from exc
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError(f"device {name!r} was asked for but CUDA is not available here (torch "
                               f"{torch.__version__}, built with CUDA {torch.version.cuda}); install a CUDA "
                               f"build of torch on a machine with an NVIDIA GPU, or run with --device cpu")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise RuntimeError(f"device {name!r}: only {torch.cuda.device_count()} CUDA device(s) are "
                               f"visible")
    elif dev.type != "cpu":
        raise ValueError(f"unsupported device {name!r}: use cpu, cuda or cuda:N")
    return name


def autocast(device: str, precision: str):
    """``torch.autocast`` in bfloat16 for precision "bf16" (CPU or CUDA); a null context for "fp32"."""
    if precision == "fp32":
        return contextlib.nullcontext()
    if precision != "bf16":
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}; got {precision!r}")
    return torch.autocast(device_type=torch.device(device).type, dtype=torch.bfloat16)


def compile_modules(model: nn.ModuleDict) -> nn.ModuleDict:
    """Compile each network of ``model`` in place (``nn.Module.compile``): parameter names, and so the saved
    state dicts and EMA, stay exactly those of the eager modules. Returns ``model``."""
    for module in model.values():
        if not getattr(module, "_odebench_compiled", False):
            module.compile(dynamic=False)
            module._odebench_compiled = True
    return model
