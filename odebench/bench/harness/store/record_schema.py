"""The shape a record file must have before anything trusts it.

A record is read back by every later run (to skip finished cells) and by the report, so a file that is not
a record -- ``null``, a list, a newer schema, a forged ``{"status": "ok", "cell_id": ...}`` without its
config, a config that does not hash to the file's cell id -- must be recognised as such, never half-used.
:func:`record_problem` names what is wrong (None: the record is sound). Records whose problem is not None
are *corrupt*: a run moves them aside (``cells/<id>.json.corrupt``) with a note and evaluates the cell
again; the report lists them. Only the keys the harness and the report read are checked; others pass.
"""

from __future__ import annotations

import math
import sys
from dataclasses import fields
from typing import Any

from odebench.bench.harness.spec.sweep import Cell

#: the record format this odebench writes; older versions are migrated on read (records.migrate)
SCHEMA_VERSION = 1
STATUSES = ("ok", "failed", "skipped")
#: columns of records.records_frame a metric value must not overwrite
FRAME_COLUMNS = frozenset({"cell_id", "sweep", "method", "method_name", "target", "source", "dataset", "solver",
                           "nfe_requested", "tol", "seed", "status", "reason", "nfe", "budget", "budget_rank",
                           "is_adaptive", "model_key", "metric_failures", "config_key", "variant"})


def _is_int(v: Any) -> bool:
    """An int of at most 63 bits (JSON allows any number of digits; tables and hashes need a machine integer)."""
    return isinstance(v, int) and not isinstance(v, bool) and -(2**63) <= v < 2**63


def _is_num(v: Any) -> bool:
    """A number a float can hold: a JSON integer such as 10**400 is refused, where ``float()`` would overflow.
    NaN and inf pass (older records hold them; the report notes them)."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return False
    return isinstance(v, float) or abs(v) <= _MAX_FLOAT_INT


#: the largest integer a float can hold without overflow
_MAX_FLOAT_INT = int(sys.float_info.max)


def _config_problem(config: Any, cell_id: str) -> str | None:
    """Why ``config`` is not the resolved config of cell ``cell_id`` (its content hash must be the id)."""
    if not isinstance(config, dict):
        return f"config is {type(config).__name__}, not an object"
    names = {f.name for f in fields(Cell)}
    required = {f.name for f in fields(Cell) if f.name not in ("data_options", "grid")}
    if missing := sorted(required - set(config)):
        return f"config lacks {', '.join(missing)}"
    if unknown := sorted(set(config) - names):
        return f"config has unknown keys {', '.join(unknown)}"
    checks = [("method", isinstance(config["method"], dict) and isinstance(config["method"].get("name"), str)),
              *((k, isinstance(config[k], str)) for k in ("sweep", "target", "source", "solver")),
              *((k, isinstance(config[k], dict)) for k in ("train", "net", "eval")),
              ("seed", _is_int(config["seed"])), ("data_seed", _is_int(config["data_seed"])),
              ("nfe", config["nfe"] is None or (_is_int(config["nfe"]) and config["nfe"] >= 1)),
              ("tol", config["tol"] is None or (_is_num(config["tol"]) and math.isfinite(config["tol"])
                                                and config["tol"] > 0)),
              ("budget", config["nfe"] is not None or config["tol"] is not None),
              ("grid", isinstance(config.get("grid", "uniform"), str)),
              ("data_options", isinstance(config.get("data_options", {}), dict))]
    bad = [k for k, ok in checks if not ok]
    if bad:
        return f"config has malformed {', '.join(bad)}"
    n, options = config["eval"].get("n_samples"), config["eval"].get("metric_options", {})
    if not (_is_int(n) and n >= 1):  # the report's floors are drawn at this size
        return "config has malformed eval.n_samples"
    if not (isinstance(options, dict) and all(isinstance(v, dict) for v in options.values())):
        return "config has malformed eval.metric_options"
    try:
        actual = Cell(**config).id
    except Exception as exc:  # a value json cannot hash
        return f"config cannot be hashed ({type(exc).__name__})"
    if actual != cell_id:
        return f"config hashes to cell {actual}, not to {cell_id}"
    return None


def _info_problem(info: dict) -> str | None:
    """What is wrong with the keys of one metric's ``metric_info`` entry that the report reads (None: nothing)."""
    for key in ("higher_is_better", "per_model"):
        if not isinstance(info.get(key, False), bool):
            return f"{key} is not true or false"
    if not isinstance(info.get("status", "ok"), str):
        return "status is not a string"
    settings = info.get("settings") or {}
    if not isinstance(settings, dict):
        return "settings is not an object"
    if bad := [k for k in ("nfe", "rtol", "n_probes") if not (settings.get(k) is None or _is_num(settings[k]))]:
        return f"settings.{bad[0]} is not a number"
    if bad := [k for k in ("solver", "divergence") if not (settings.get(k) is None or isinstance(settings[k], str))]:
        return f"settings.{bad[0]} is not a string"
    return None


#: numbers of a record's training cost that the report adds up and compares (None where not measured)
COST_NUMBERS = ("steps", "forward_equivalents_per_step", "params_total", "total_flops", "total_seconds")


def _training_problem(training: dict) -> str | None:
    """What is wrong with the parts of a record's ``training`` block that the report reads (None: nothing)."""
    cost, held = training.get("cost", {}), training.get("heldout", {})
    if not isinstance(cost, dict) or not isinstance(held, dict):
        return "training.cost or training.heldout is not an object"
    if bad := [k for k in COST_NUMBERS if not (cost.get(k) is None or _is_num(cost[k]))]:
        return f"training.cost.{bad[0]} is not a number"
    steps, loss = held.get("steps", []), held.get("loss", [])
    if not all(isinstance(c, list) and all(_is_num(v) for v in c) for c in (steps, loss)):
        return "training.heldout steps or loss is not a list of numbers"
    if len(steps) != len(loss) or not all(math.isfinite(v) for v in steps):
        return "training.heldout steps are not one finite step per loss"
    if not isinstance(training.get("convergence", {}), dict):
        return "training.convergence is not an object"
    return None


def record_problem(record: Any, cell_id: str) -> str | None:
    """What is wrong with ``record`` (parsed JSON) as the record of cell ``cell_id``; None when it is sound."""
    if not isinstance(record, dict):
        return f"holds {type(record).__name__}, not a record object"
    version = record.get("schema_version", 1)
    if not _is_int(version) or version < 1:
        return f"schema_version {str(version)[:40]!r} is not a positive integer"
    if version > SCHEMA_VERSION:
        return f"schema_version {version} is newer than this odebench's ({SCHEMA_VERSION}); upgrade odebench"
    if record.get("cell_id") != cell_id:
        return f"cell_id {str(record.get('cell_id'))[:40]!r} does not match its file name ({cell_id})"
    if record.get("config_hash", cell_id) != cell_id:
        return "config_hash differs from cell_id"
    if record.get("status") not in STATUSES:
        return f"status {str(record.get('status'))[:40]!r} is not one of {', '.join(STATUSES)}"
    if problem := _config_problem(record.get("config"), cell_id):
        return problem
    metrics = record.get("metrics", {})
    if not isinstance(metrics, dict):
        return "metrics is not an object of numbers"
    if bad := [k for k, v in metrics.items() if not (v is None or _is_num(v))]:
        v = metrics[bad[0]]
        big = isinstance(v, int) and not isinstance(v, bool)  # an int _is_num refuses: past a float's range
        what = "too large for a float" if big else f"a {type(v).__name__}, not a number"
        return f"metric {bad[0][:60]!r} is {what}"
    if clash := sorted(k for k in metrics if k in FRAME_COLUMNS or k.startswith(("time_", "hp.")) or not k):
        return f"metrics uses reserved names {', '.join(map(repr, clash))[:100]}"
    for key in ("metric_info", "timings", "environment", "runtime", "budgets", "metric_failures", "training"):
        if not isinstance(record.get(key, {}), dict):
            return f"{key} is not an object"
    if not all(isinstance(v, dict) for v in record.get("metric_info", {}).values()):
        return "metric_info holds a non-object entry"
    for name, info in record.get("metric_info", {}).items():
        if problem := _info_problem(info):
            return f"metric_info of {name[:60]!r}: {problem}"
    if not all(isinstance(v, str) for v in record.get("metric_failures", {}).values()):
        return "metric_failures holds a reason that is not a string"
    if not all(v is None or _is_num(v) for v in record.get("timings", {}).values()):
        return "timings holds a non-number"
    if problem := _training_problem(record.get("training", {})):
        return problem
    for key in ("nfe", "nfe_requested"):
        if not (record.get(key) is None or _is_num(record[key])):
            return f"{key} is not a number"
    for key in ("reason", "model_key", "sample_sheet", "traceback"):
        if not (record.get(key) is None or isinstance(record[key], str)):
            return f"{key} is not a string"
    return None
