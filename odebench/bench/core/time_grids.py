"""Time grids of the fixed-step solvers: ``grid(n_steps, t0, t1) -> [n_steps + 1]`` times from t0 to t1.

Two kinds. A *time* grid (``uniform``, ``cosine``) spaces points in the method's own time t. A *noise-level*
grid (``edm``: Karras et al.'s rho = 7 spacing of the noise-to-signal ratio sigma_t / alpha_t; ``logsnr``:
uniform in log(alpha_t / sigma_t)) spaces them in the path's noise level and maps them to t through the
method's :class:`~odebench.bench.core.schedules.NoiseSchedule`, so it needs the ``noise_schedule`` capability:
a grid declares what it needs in ``requires`` (empty for time grids), and :func:`grid_unmet` gives the reason
a method cannot use it, known from declarations alone. A *timestep* grid (``leading``, ``trailing``,
``linspace``: diffusers' ``timestep_spacing``) picks integer training timesteps of a diffusers-style scheduler as
diffusers' schedulers do, so an odebench solve can repeat a diffusers loop step for step; it needs the
``train_timesteps`` capability. Always call a grid through :func:`make_grid`.

Built-in grids register here; third-party ones join through the ``odebench.time_grids`` entry-point group.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from odebench.bench.core.fields import CAPABILITIES, Dynamics, TrainTimesteps, Unsupported
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


def timestep_grid(spacing: Callable[[int, int, int], list[int]], doc: str) -> Callable[..., Tensor]:
    """A grid function from a diffusers spacing ``spacing(n_steps, T, steps_offset)`` -> the n_steps timesteps of
    the network calls (decreasing). The grid is their times followed by t1: the last step goes from the last
    timestep to t1 (for the data-prediction samplers of a diffusers model, the clean end, as diffusers' final
    step). A spacing whose last timestep is not before t1 (``leading`` ends on timestep 0, where the diffusers
    adapter's ODE interval ends) raises Unsupported."""

    def grid(n_steps: int, t0: float = 0.0, t1: float = 1.0, device=None, dtype=None,
             timesteps: TrainTimesteps | None = None) -> Tensor:
        if timesteps is None:
            raise Unsupported("a timestep grid needs the method's training timesteps")
        if n_steps > timesteps.count:
            raise Unsupported(f"a timestep grid spaces {timesteps.count} training timesteps: at most "
                              f"{timesteps.count} steps, got {n_steps}")
        ks = torch.tensor(spacing(n_steps, timesteps.count, timesteps.steps_offset), dtype=torch.float64)
        ts = torch.cat([timesteps.time_of(ks).clamp(t0, t1), torch.tensor([t1], dtype=torch.float64)])
        if not bool((ts[1:] > ts[:-1]).all()):
            raise Unsupported(f"this timestep spacing calls the network at timestep {int(ks[-1])}, where the "
                              f"solver's interval already ends (t1 = {t1:g}); the data-prediction samplers (ddim, "
                              f"dpmpp_*, unipc) step on to the clean end, or use the 'trailing' spacing")
        return to_device(ts, device, dtype or torch.get_default_dtype())

    grid.__doc__ = doc
    grid.requires = frozenset({"train_timesteps"})
    return grid


def leading_timesteps(n: int, count: int, offset: int) -> list[int]:
    """diffusers' DDIM/DDPM ``leading``: k_i = (n - 1 - i) (T // n) + steps_offset (900, 800, ..., 0 for 10 of
    1000)."""
    return [(n - 1 - i) * (count // n) + offset for i in range(n)]


def trailing_timesteps(n: int, count: int, offset: int) -> list[int]:
    """diffusers' ``trailing`` (DDIM and DPM-Solver alike): round(T - i T / n) - 1 (999, 899, ..., 99)."""
    return [round(count - i * count / n) - 1 for i in range(n)]


def linspace_timesteps(n: int, count: int, offset: int) -> list[int]:
    """DPM-Solver's (and UniPC's, Euler's) ``linspace``: n + 1 points evenly from T - 1 to 0, rounded, the last
    (timestep 0) left out: the final step goes to the clean end instead (999, 899, ..., 100 for 10 of 1000)."""
    return [round((count - 1) * (n - i) / n) for i in range(n)]


GRIDS.add("leading", timestep_grid(
    leading_timesteps, "diffusers' 'leading' timestep spacing (DDIM's and DDPM's default), then the clean end."))
GRIDS.add("trailing", timestep_grid(
    trailing_timesteps, "diffusers' 'trailing' timestep spacing, then the clean end."))
GRIDS.add("linspace", timestep_grid(
    linspace_timesteps, "diffusers' 'linspace' timestep spacing of DPM-Solver (its default), then the clean end."))


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
    given = {"noise_schedule": ("schedule", dyn.schedule), "train_timesteps": ("timesteps", dyn.timesteps)}
    return fn(n_steps, dyn.t0, dyn.t1, device=device, dtype=dtype,
              **dict(given[need] for need in grid_requires(name)))
