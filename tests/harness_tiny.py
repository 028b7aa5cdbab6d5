"""Tiny sweep specs for the harness tests: seconds of training, a few cells."""

from __future__ import annotations

from typing import Any

TRAIN = {"steps": 30, "batch_size": 64, "lr": 2e-3}
NET = {"name": "mlp", "hidden": 16, "depth": 1}
# exact W2 against 96 reference points, not the default 4000: milliseconds instead of a second per cell
EVAL = {"n_samples": 96, "metrics": ["w2", "sliced_w"],
        "metric_options": {"w2": {"max_points": 96}, "sliced_w": {"n_projections": 32}}}


def tiny_spec(name: str = "tiny", methods: list[dict] | None = None, targets=("moons",),
              solvers: list[dict] | None = None, **extra: Any) -> dict[str, Any]:
    """A spec dict (as parsed from TOML) small enough to run in a test."""
    return {
        "name": name, "seeds": [0], "train": dict(TRAIN), "net": dict(NET), "eval": dict(EVAL),
        "methods": methods or [{"name": "fm_ot"}],
        "datasets": [{"target": t} for t in targets],
        "solvers": solvers or [{"name": "euler", "nfe": [1, 4]}],
        **extra,
    }


def to_toml(spec: dict[str, Any]) -> str:
    """Serialise a tiny spec dict (flat tables, arrays of tables) to TOML text."""

    def value(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, str):
            return f'"{v}"'
        if isinstance(v, list):
            return "[" + ", ".join(value(x) for x in v) + "]"
        if isinstance(v, dict):
            return "{ " + ", ".join(f"{k} = {value(x)}" for k, x in v.items()) + " }"  # inline table
        return repr(v)

    lines = [f"{k} = {value(v)}" for k, v in spec.items() if not isinstance(v, (dict, list)) or k == "seeds"]
    for k, v in spec.items():
        if isinstance(v, dict):
            lines += [f"[{k}]", *(f"{a} = {value(b)}" for a, b in v.items())]
    for k, v in spec.items():
        if isinstance(v, list) and k != "seeds":
            for entry in v:
                lines += [f"[[{k}]]", *(f"{a} = {value(b)}" for a, b in entry.items())]
    return "\n".join(lines) + "\n"


def train_or_die(job, ctx, parent=None):
    """A training job for the pool's tests: rf's worker process dies on the spot (as if killed), others train.
    Module-level, so that worker processes can unpickle it."""
    import os

    from odebench.bench.harness.execution.run import train_job

    if job.cell.method["name"] == "rf":
        os._exit(3)
    return train_job(job, ctx, parent)
