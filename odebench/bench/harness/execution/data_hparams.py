"""Method hparams computed from the training data, resolved before anything is trained.

A method declares such hparams in ``data_hparams`` (e.g. ``score_ve``'s ``sigma_max``, Song & Ermon's largest
pairwise distance of the training split); a spec that leaves one at ``"data"`` gets the number here, once per
(method config, dataset). The resolved number replaces ``"data"`` in the cell's method config, so it keys the
model cache and the cell id, is written into every record, and is what ``--dry-run`` prints. Resolving twice
changes nothing (a number is never recomputed).
"""

from __future__ import annotations

from dataclasses import replace

from odebench.bench.harness.spec.sweep import Cell, Spec

#: the spec value that asks for the data rule
FROM_DATA = "data"


def resolve_spec(spec: Spec) -> tuple[Spec, list[str]]:
    """(``spec`` with every data hparam of its cells resolved, one note per resolved value)."""
    from odebench.bench.harness.execution.plan import training_split
    from odebench.methods import METHODS

    resolved: dict[tuple, object] = {}
    notes: list[str] = []
    cells: list[Cell] = []
    for cell in spec.cells:
        if cell.method.get("name") not in METHODS:  # a given model (odebench eval) names no registered method
            cells.append(cell)
            continue
        cls = METHODS.get(cell.method["name"])
        wanted = [k for k in cls.data_hparams if cell.method.get(k) == FROM_DATA]
        if not wanted:
            cells.append(cell)
            continue
        method = dict(cell.method)
        options = tuple(sorted(cell.data_options.items()))
        for k in wanted:
            key = (cls.name, k, cell.target, cell.data_seed, options)
            if key not in resolved:
                train = training_split(cell.target, cell.data_seed, options)
                resolved[key] = cls.resolve_data_hparam(k, train)
                notes.append(f"{cls.name} {k} on {cell.target}: {resolved[key]} ({cls.data_hparams[k]}, "
                             f"{len(train)} points)")
            method[k] = resolved[key]
        cells.append(replace(cell, method=method))
    return replace(spec, cells=cells), notes
