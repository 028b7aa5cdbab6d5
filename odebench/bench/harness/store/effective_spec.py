"""The spec a run leaves in its sweep folder, ``<sweep>/effective_spec.toml``: the spec it ran, ``--set``
overrides applied, as TOML text (odebench.bench.harness.spec.toml) written atomically inside the results folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from odebench.bench.harness.spec.toml import dumps
from odebench.bench.harness.store.artifacts import atomic_write_bytes

#: the file a run leaves in its sweep folder: the spec it ran, ``--set`` overrides applied
EFFECTIVE_SPEC = "effective_spec.toml"


def write_effective_spec(sweep_dir: Path, raw: dict[str, Any], origin: str, *, root: str | Path) -> Path:
    """Write ``raw`` (the validated spec, overrides applied) to ``<sweep_dir>/effective_spec.toml``, atomically
    and inside ``root``; ``origin`` says where it came from."""
    path = Path(sweep_dir) / EFFECTIVE_SPEC
    header = (f"The spec of the latest `odebench run` into this folder: {origin or 'a spec from Python'}.\n"
              f"Run it again: odebench run --spec {path} --out {Path(sweep_dir).parent}")
    return atomic_write_bytes(path, dumps(raw, header).encode(), root=root)
