"""Source and target data of one shape, checked once the datasets are loaded and before anything is trained.

Every method moves a source point x0 to a data point x1 along a path between them, so both have one shape:
``source = "digits"`` ([1, 8, 8]) with ``target = "moons"`` ([2]) would fail every training of the sweep. A
metric option that reads a fixed input shape is checked here too: precision and recall with ``features =
"digits"`` run the 8x8 digits classifier, so they need [1, 8, 8] images. The spec's own checks cannot see
shapes (an image folder's depends on its files and options), so the dry run and the run both call
:func:`check_data_shapes` after loading the data (which the plan loads anyway), and refuse before any work.
"""

from __future__ import annotations

from odebench.bench.data import GAUSSIAN_SOURCE
from odebench.bench.harness.execution.plan import problem_of
from odebench.bench.harness.guards.errors import RunRefused
from odebench.bench.harness.spec.sweep import Cell

#: (metric, option, value) -> the sample shape it needs
SHAPED_OPTIONS = {("precision", "features", "digits"): (1, 8, 8), ("recall", "features", "digits"): (1, 8, 8)}


class DataShapeMismatch(RunRefused):
    """A source and a target of different shapes, or a metric option that does not fit the data's shape."""


def _shape(shape: tuple[int, ...]) -> str:
    return "[" + ", ".join(map(str, shape)) + "]"


def shape_problems(cells: list[Cell]) -> list[str]:
    """One line per (target, source) pair of ``cells`` whose shapes differ, and per metric option that does not
    fit its target's shape; loads each dataset once."""
    problems: dict[tuple, str] = {}
    for cell in cells:
        key = (cell.target, cell.source, cell.data_seed, tuple(sorted(cell.data_options.items())))
        if key in problems:
            continue
        problems[key] = ""
        problem = problem_of(cell)
        target = problem.target.shape
        if cell.source != GAUSSIAN_SOURCE and problem.source is not None and problem.source.shape != target:
            problems[key] = (f"dataset {cell.target!r} with source {cell.source!r}: the source's points have shape "
                             f"{_shape(problem.source.shape)} and the target's {_shape(target)}; every method moves "
                             f"a source point to a data point, so both need one shape: give a source of the "
                             f"target's shape, or source = \"gaussian\"")
            continue
        names = set(cell.eval.get("metrics", {}).get(problem.target.kind, []))
        for (metric, option, value), needs in SHAPED_OPTIONS.items():
            opts = cell.eval.get("metric_options", {}).get(metric, {})
            if metric in names and isinstance(opts, dict) and opts.get(option) == value and target != needs:
                problems[key] = (f"eval.metric_options.{metric}.{option} = {value!r} needs samples of shape "
                                 f"{_shape(needs)}, but dataset {cell.target!r} has shape {_shape(target)}; use "
                                 f"{option} = \"raw\" for it")
                break
    return [p for p in problems.values() if p]


def check_data_shapes(cells: list[Cell]) -> None:
    """Raise DataShapeMismatch listing every mismatch of :func:`shape_problems`."""
    problems = shape_problems(cells)
    if problems:
        raise DataShapeMismatch("; ".join(problems) if len(problems) == 1 else
                                f"{len(problems)} datasets do not fit: " + "; ".join(problems))
