"""Time grids of the fixed-step solvers: ``grid(n_steps, t0, t1) -> [n_steps + 1]`` times from t0 to t1.

Two kinds. A *time* grid (``uniform``, ``cosine``) spaces points in the method's own time t. A *noise-level*
grid (``edm``: Karras et al.'s rho = 7 spacing of the noise-to-signal ratio sigma_t / alpha_t; ``logsnr``:
uniform in log(alpha_t / sigma_t)) spaces them in the path's noise level and maps them to t through the
method's :class:`~odebench.bench.core.schedules.NoiseSchedule`, so it needs the ``noise_schedule`` capability:
a grid declares what it needs in ``requires`` (empty for time grids), and :func:`grid_unmet` gives the reason
a method cannot use it, known from declarations alone. Always call a grid through :func:`make_grid`.

Built-in grids register here; third-party ones join through the ``odebench.time_grids`` entry-point group.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from odebench.bench.core.fields import CAPABILITIES, Dynamics, Unsupported
from odebench.bench.core.registry import Registry
from odebench.bench.core.schedules import (
    NoiseSchedule,
    karras_levels,
    level_range,
    log_snr_levels,
    noise_level_times,
    to_device,
)

GRIDS: Registry[Callable[..., Tensor]] = Registry("time grid", "odebench.time_grids")


@GRIDS.register("uniform")
def uniform_grid(n_steps: int, t0: float = 0.0, t1: float = 1.0, device=None, dtype=None) -> Tensor:
    """n_steps + 1 equally spaced times from t0 to t1."""
    return torch.linspace(t0, t1, n_steps + 1, device=device, dtype=dtype)


@GRIDS.register("cosine")
def cosine_grid(n_steps: int, t0: float = 0.0, t1: float = 1.0, device=None, dtype=None) -> Tensor:
    """Times denser near both ends: t0 + (t1 - t0) (1 - cos(pi u)) / 2 for uniform u."""
    u = torch.linspace(0.0, 1.0, n_steps + 1, device=device, dtype=dtype)
    return t0 + (t1 - t0) * (1 - torch.cos(math.pi * u)) / 2


def noise_level_grid(levels: Callable[[int, float, float], Tensor], doc: str) -> Callable[..., Tensor]:
    """A grid function from a spacing of noise-to-signal ratios ``levels(n_steps, s_hi, s_lo)`` (decreasing).

    The ratios run from the method's sigma / alpha at t0 to that at t1, clipped into EDM's range
    [``schedules.SIGMA_MIN``, ``SIGMA_MAX``] = [0.002, 80] (so an infinite ratio at a flow's source or a zero one at
    its data end is never spaced), are mapped to the method's t by its schedule, and the first and last points
    are then t0 and t1 exactly.
    """

    def grid(n_steps: int, t0: float = 0.0, t1: float = 1.0, device=None, dtype=None,
             schedule: NoiseSchedule | None = None) -> Tensor:
        if schedule is None:
            raise Unsupported("a noise-level time grid needs the method's noise schedule")
        s_hi, s_lo = level_range(schedule, t0, t1)
        ts = noise_level_times(levels(n_steps, s_hi, s_lo), schedule, t0, t1)
        return to_device(ts, device, dtype or torch.get_default_dtype())

    grid.__doc__ = doc
    grid.requires = frozenset({"noise_schedule"})
    return grid


GRIDS.add("edm", noise_level_grid(
    karras_levels, "Karras et al.'s noise levels: sigma / alpha uniform in its 7th root (rho = 7)."))
GRIDS.add("logsnr", noise_level_grid(
    log_snr_levels, "Uniform in the log-SNR log(alpha / sigma) (DPM-Solver's 'logSNR' spacing)."))


def grid_requires(name: str) -> frozenset[str]:
    """The capabilities grid ``name`` needs from a method (empty for a time grid)."""
    return frozenset(getattr(GRIDS.get(name), "requires", frozenset()))


def grid_unmet(name: str, offered: frozenset[str], who: str = "this method") -> str | None:
    """Why grid ``name`` cannot serve dynamics offering ``offered`` (None: it can)."""
    missing = sorted(grid_requires(name) - offered)
    if not missing:
        return None
    return (f"time grid {name!r} needs {' and '.join(missing)} ({'; '.join(CAPABILITIES[m] for m in missing)}), "
            f"which {who} does not offer; use a time grid such as 'uniform' or 'cosine'")


def make_grid(name: str, n_steps: int, dyn: Dynamics, device=None, dtype=None) -> Tensor:
    """[n_steps + 1] times of grid ``name`` on the interval of ``dyn`` (its schedule for noise-level grids).

    Raises Unsupported when the dynamics lack what the grid needs.
    """
    fn = GRIDS.get(name)
    if not grid_requires(name):
        return fn(n_steps, dyn.t0, dyn.t1, device=device, dtype=dtype)
    reason = grid_unmet(name, dyn.offers())
    if reason is not None:
        raise Unsupported(reason)
    return fn(n_steps, dyn.t0, dyn.t1, device=device, dtype=dtype, schedule=dyn.schedule)
