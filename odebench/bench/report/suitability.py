"""Which cells run a method on a time grid its own docs call unsuitable, as the report's picks must know.

A method declares the grids its fixed-step samplers are meant for (``Method.suitable_grids``, with the reason in
``Method.grid_note``; EDM: its rho = 7 noise levels or the log-SNR grid, not the grid uniform in sigma). Such cells
are run and shown in the per-solver tables like every other, but the best-solver table and claim 11's ranking
pick a method's best sampler among its suitable cells only; where a method has none at a budget, its pick
comes from the others and carries :data:`OFF_GRID`. Adaptive solvers choose their own steps and are always
suitable, as is every method the registry does not know (an adapter's model).
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

#: appended to a solver picked off its method's suitable grids, for want of a suitable one at that budget
OFF_GRID = "†"
LEGEND = (f"{OFF_GRID} marks a sampler off the method's own time grids (docs/methods.md), picked only where the "
          f"method has no cell on them at that budget.")


def grid_of(solver_label: str) -> str:
    """The time grid of a frame's solver label: 'heun/edm' -> 'edm', 'heun' -> 'uniform'."""
    return solver_label.split("/", 1)[1] if "/" in solver_label else "uniform"


def unsuitable_reason(method_name: str, solver_label: str, nfe_requested: Any) -> str | None:
    """Why a cell's sampler is off its method's suitable grids, or None when it is on them (or adaptive)."""
    from odebench.methods import METHODS

    if nfe_requested is None or (isinstance(nfe_requested, float) and math.isnan(nfe_requested)):
        return None  # an adaptive solver: no grid
    if method_name not in METHODS:
        return None
    cls = METHODS.get(method_name)
    if not cls.suitable_grids or grid_of(solver_label) in cls.suitable_grids:
        return None
    return cls.grid_note or f"{method_name} samples on the grids {', '.join(cls.suitable_grids)}"


def suitable(frame: pd.DataFrame) -> pd.Series:
    """Per row of a sweep frame (``method_name``, ``solver``, ``nfe_requested``): whether its sampler is on its
    method's suitable grids."""
    if frame.empty or "method_name" not in frame:
        return pd.Series(True, index=frame.index, dtype=bool)
    return pd.Series([unsuitable_reason(m, s, n) is None for m, s, n in
                      zip(frame["method_name"], frame["solver"], frame["nfe_requested"], strict=True)],
                     index=frame.index, dtype=bool)


def prefer_suitable(rows: pd.DataFrame) -> tuple[pd.DataFrame, bool]:
    """The suitable rows of ``rows`` (one method at one budget), or all of them when none is suitable; and
    whether the rows returned are off the method's grids."""
    ok = suitable(rows)
    if ok.any() or rows.empty:
        return rows[ok], False
    return rows, True
