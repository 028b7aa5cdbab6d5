"""A model given to ``odebench eval``: built by the user's factory, filled from a checkpoint that never runs code,
and identified by its weights.

Loading. ``--model pkg.module:factory`` names a callable in the user's code; importing that module and calling
it is what the user asks for (the current folder is searched after the installed packages). The factory
builds the architecture (and may return an adapter, or ``(unet, scheduler)``: ``odebench.adapters.adapt``).
The checkpoint only fills it: ``torch.load(weights_only=True)`` (or ``safetensors`` for a ``.safetensors``
file) reads tensors and plain containers and refuses anything else, so a pickle that would run code on
loading is an error, not an execution. The state dict must fit the network exactly (every key, every shape,
every dtype; a floating-point entry of another precision is cast, and the cells' ``method`` config says so in
``cast``; a sparse or complex entry, or an integer one for a float, is refused).

Identity. The model's identity is the SHA-256 of the checkpoint file (with the key the state dict was taken
from, if any), or, without a checkpoint, of the network's state dict (:func:`state_dict_sha256`), together with
the factory path and the adapter's settings (kind, path, time input, interval, an OT coupling). It is the
cells' ``method`` config, so it is in every cell id and record: a second run with the same model skips its
finished cells, a changed checkpoint gives new cells.

Every problem here is a :class:`GivenModelError`, which the command line prints as one ``error:`` line naming
the fix (exit code 2) before anything is written.
"""

from __future__ import annotations

import hashlib
import importlib
import os
import pickle
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from odebench.adapters import Adapter, PeerMissing, adapt
from odebench.bench.core.hashing import config_hash, sha256_file
from odebench.bench.harness.execution.plan import GivenModel
from odebench.bench.harness.guards.errors import RunRefused

__all__ = ["GivenModelError", "given_model", "import_factory", "load_given", "read_checkpoint",
           "state_dict_sha256"]

SAVE_HINT = "save the weights alone: torch.save(model.state_dict(), PATH), or a .safetensors file"


class GivenModelError(RunRefused):
    """The given model cannot be built or filled as asked; the message names the fix."""


def _first_line(exc: BaseException, limit: int = 240) -> str:
    text = str(exc).strip().splitlines()
    line = text[0] if text else type(exc).__name__
    return line if len(line) <= limit else line[: limit - 3] + "..."


# ------------------------------------------------------------------------------------------------ the factory
def import_factory(text: str):
    """The callable ``pkg.module:factory`` names (its module imported, the current folder searched last)."""
    module_name, sep, attr = str(text).partition(":")
    parts = module_name.split(".") + attr.split(".")
    if not sep or not all(p.isidentifier() for p in parts):
        raise GivenModelError(f"--model {text!r}: give the factory as pkg.module:function, a function (or class) "
                              f"returning the network, e.g. --model mymodels:make_net")
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.append(cwd)  # after the installed packages: a user's folder never shadows a library
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and (module_name == exc.name or module_name.startswith(exc.name + ".")):
            raise GivenModelError(f"--model {text}: no module named {exc.name!r} among the installed packages or "
                                  f"in the current folder {cwd}; check the spelling, run from the folder that "
                                  f"holds {module_name.split('.')[0]}, or pip install its package") from None
        raise GivenModelError(f"--model {text}: importing {module_name} failed: {_first_line(exc)}; install what "
                              f"it imports") from None
    except Exception as exc:  # the user's module raised while importing: their code, their message
        raise GivenModelError(f"--model {text}: importing {module_name} raised {type(exc).__name__}: "
                              f"{_first_line(exc)}") from None
    obj: Any = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            known = sorted(n for n in dir(module) if not n.startswith("_") and callable(getattr(module, n, None)))
            raise GivenModelError(f"--model {text}: module {module_name} ({getattr(module, '__file__', '?')}) has "
                                  f"no {attr!r}; its callables: {', '.join(known[:12]) or 'none'}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise GivenModelError(f"--model {text}: {attr} is a {type(obj).__name__}, not callable; name a function "
                              f"(or class) that returns the network")
    return obj


# ---------------------------------------------------------------------------------------------- checkpoints
def _is_state_dict(obj: Any) -> bool:
    return isinstance(obj, Mapping) and bool(obj) and all(isinstance(k, str) and isinstance(v, Tensor)
                                                          for k, v in obj.items())


def _pick_state(obj: Any, state_key: str | None, path: Path) -> tuple[dict[str, Tensor], str | None]:
    """The state dict inside a loaded checkpoint: ``state_key`` (dotted) if given, the object itself if it is
    one, else the only entry that is one; (state dict, the key it was found under)."""
    if state_key is not None:
        node = obj
        for part in state_key.split("."):
            if not isinstance(node, Mapping) or part not in node:
                keys = ", ".join(map(str, list(node)[:12])) if isinstance(node, Mapping) else type(node).__name__
                raise GivenModelError(f"--state-key {state_key}: checkpoint {path} has no {part!r} there (keys: "
                                      f"{keys})")
            node = node[part]
        if not _is_state_dict(node):
            raise GivenModelError(f"--state-key {state_key}: the entry in {path} is not a state dict (names -> "
                                  f"tensors); name the entry that holds the network's weights")
        return dict(node), state_key
    if _is_state_dict(obj):
        return dict(obj), None
    if isinstance(obj, Mapping):
        found = [k for k, v in obj.items() if isinstance(k, str) and _is_state_dict(v)]
        if len(found) == 1:
            return dict(obj[found[0]]), found[0]
        keys = ", ".join(map(str, list(obj)[:12]))
        which = f"name one of {', '.join(found)}" if found else "name the entry that holds the weights"
        raise GivenModelError(f"checkpoint {path} holds {keys}, not one state dict: {which} with --state-key "
                              f"(e.g. --state-key {found[-1] if found else 'model'})")
    raise GivenModelError(f"checkpoint {path} holds a {type(obj).__name__}, not a state dict; {SAVE_HINT}")


def read_checkpoint(path: str | Path, state_key: str | None = None) -> tuple[dict[str, Tensor], str | None]:
    """The state dict in ``path`` (and the key it sat under), read without running any code from the file.

    ``.safetensors`` files are read by safetensors; anything else by ``torch.load(weights_only=True)``, which
    unpickles only tensors and plain containers.
    """
    from odebench.bench.harness.guards.bounded_read import not_a_file

    path = Path(path)
    problem = not_a_file(path)
    if problem:
        raise GivenModelError(f"--checkpoint {path}: {problem}; give the file your training saved "
                              f"(torch.save(model.state_dict(), PATH) or a .safetensors file)")
    if path.suffix == ".safetensors":
        try:
            from safetensors.torch import load_file
        except ImportError:
            raise GivenModelError(f"--checkpoint {path}: reading .safetensors needs the safetensors package: "
                                  f"pip install safetensors") from None
        try:
            obj = load_file(str(path), device="cpu")
        except Exception as exc:
            raise GivenModelError(f"--checkpoint {path}: not a readable safetensors file ({_first_line(exc)})") \
                from None
    else:
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as exc:
            found = re.search(r"Unsupported global: GLOBAL (\S+)", str(exc))
            if found is None:  # not a pickle torch wrote (a stray byte, a cut file): the unpickler stops on it
                raise GivenModelError(_unreadable(path, exc)) from None
            raise GivenModelError(f"--checkpoint {path} holds more than tensors (it would call {found.group(1)} on "
                                  f"loading); odebench loads checkpoints with torch.load(weights_only=True), which "
                                  f"runs no code from a file, and refused it: {SAVE_HINT}") from None
        except Exception as exc:  # truncated, not a torch file
            raise GivenModelError(_unreadable(path, exc)) from None
    return _pick_state(obj, state_key, path)


def _dtype_problems(state: dict[str, Tensor], own: dict[str, Tensor]) -> tuple[list[str], dict[str, list[str]]]:
    """(entries that cannot fill the network's, {"float64 -> float32": entries} of floating-point casts).

    A sparse or complex entry, or one whose dtype differs from the network's other than between two
    floating-point types, is refused: ``load_state_dict`` would cast it silently (a complex tensor loses its
    imaginary part, an integer one becomes the float it happens to equal) and the model would not be the one
    saved. A floating-point entry of another precision is cast, and said (the record keeps it, in ``cast``)."""
    refused, cast = [], {}
    for k, theirs in state.items():
        mine = own.get(k)
        if mine is None:
            continue
        if theirs.layout != torch.strided:
            refused.append(f"{k} is a {str(theirs.layout).removeprefix('torch.')} tensor (save it dense: "
                           f"tensor.to_dense())")
        elif theirs.dtype != mine.dtype:
            if theirs.dtype.is_floating_point and mine.dtype.is_floating_point:
                cast.setdefault(f"{str(theirs.dtype).removeprefix('torch.')} -> "
                                f"{str(mine.dtype).removeprefix('torch.')}", []).append(k)
            else:
                refused.append(f"{k} is {str(theirs.dtype).removeprefix('torch.')} where the network holds "
                               f"{str(mine.dtype).removeprefix('torch.')}")
    return refused, cast


def _unreadable(path: Path, exc: Exception) -> str:
    """The message for a file torch.load cannot read: its size, and what that suggests."""
    size = path.stat().st_size
    why = "empty" if size == 0 else "truncated, or not a file torch.save wrote"
    inner = exc.__context__ if isinstance(exc, pickle.UnpicklingError) and exc.__context__ else exc
    return (f"--checkpoint {path}: not a readable torch checkpoint ({size} byte{'s' * (size != 1)}: {why}; "
            f"{type(inner).__name__}: {_first_line(inner, 120)}); {SAVE_HINT}")


def fill(net: nn.Module, state: dict[str, Tensor], where: str, factory: str) -> dict[str, list[str]]:
    """Load ``state`` into ``net`` strictly; a key, shape or dtype that does not fit is one GivenModelError.
    Returns the floating-point casts made, {"float64 -> float32": [entries]} (empty when every dtype matches)."""
    own = net.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    mismatched = [f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}" for k in own
                  if k in state and state[k].shape != own[k].shape]
    if missing or unexpected or mismatched:
        parts = [f"{what} {', '.join(keys[:3])}{f' and {len(keys) - 3} more' if len(keys) > 3 else ''}"
                 for what, keys in (("missing", missing), ("unexpected", unexpected),
                                    ("shape (checkpoint vs network)", mismatched)) if keys]
        hint = ""
        if unexpected and all(k.startswith("module.") for k in unexpected):
            hint = " (its keys start with 'module.': it was saved from a DataParallel wrapper; save model.module's)"
        raise GivenModelError(f"checkpoint {where} does not fit the network {factory} builds: {'; '.join(parts)}"
                              f"{hint}; make the factory build the architecture the checkpoint was saved from "
                              f"(same layers and sizes)")
    refused, cast = _dtype_problems(state, own)
    if refused:
        more = f" and {len(refused) - 3} more" if len(refused) > 3 else ""
        raise GivenModelError(f"checkpoint {where} holds entries the network {factory} cannot take as they are: "
                              f"{'; '.join(refused[:3])}{more}; loading would cast them silently (a complex "
                              f"tensor would lose its imaginary part): save the weights in the network's dtypes, "
                              f"or make the factory build the network in the checkpoint's")
    try:
        net.load_state_dict(state, strict=True)
    except (RuntimeError, TypeError, ValueError) as exc:  # what the checks above cannot foresee
        raise GivenModelError(f"checkpoint {where} does not load into the network {factory} builds: "
                              f"{_first_line(exc)}") from None
    return cast


def state_dict_sha256(net: nn.Module) -> str:
    """SHA-256 over the network's state dict: each entry's name, dtype, shape and bytes, names in sorted order."""
    h = hashlib.sha256()
    for name, tensor in sorted(net.state_dict().items()):
        t = tensor.detach().cpu().contiguous().reshape(-1)
        h.update(f"{name}|{t.dtype}|{tuple(tensor.shape)}|".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


# ------------------------------------------------------------------------------------------------ the model
def given_model(adapter: Adapter, weights_sha256: str, factory: str, label: str,
                extra: dict[str, Any] | None = None) -> tuple[GivenModel, dict[str, Any]]:
    """(the GivenModel the harness evaluates, the cells' ``method`` config: its identity).

    The config holds ``name`` (``label``, the leaderboard's row name), ``given_model`` (the weights' SHA-256),
    ``factory`` and the adapter's settings; the model key is the hash of all but the name.
    """
    method = {"name": label, "given_model": weights_sha256, "factory": factory, **(extra or {}),
              **adapter.identity()}
    key = config_hash({k: v for k, v in method.items() if k != "name"})
    return GivenModel(key=key, method=adapter, model=adapter.model(), label=label), method


def load_given(factory: str, checkpoint: str | Path | None = None, kind: str | None = None,
               path: str | None = None, adapter: str = "auto", state_key: str | None = None,
               label: str | None = None, coupling: str | None = None) -> tuple[GivenModel, dict[str, Any]]:
    """Build the model ``factory`` names, fill it from ``checkpoint`` (if given) and identify it; raises
    GivenModelError with the fix for every way this can fail."""
    make = import_factory(factory)
    try:
        built = make()
    except Exception as exc:
        raise GivenModelError(f"--model {factory}: calling it raised {type(exc).__name__}: {_first_line(exc)}") \
            from None
    try:
        wrapped = adapt(built, kind=kind, path=path, adapter=adapter, coupling=coupling)
    except PeerMissing as exc:
        raise GivenModelError(f"--model {factory}: {exc}") from None
    except (TypeError, ValueError) as exc:
        raise GivenModelError(f"--model {factory}: {_first_line(exc)}") from None
    extra: dict[str, Any] = {}
    if checkpoint is not None:
        state, found_at = read_checkpoint(checkpoint, state_key)
        cast = fill(wrapped.module(), state, str(checkpoint), factory)
        sha = sha256_file(checkpoint)
        if found_at is not None:
            extra["state_key"] = found_at
        if cast:  # in the identity, so every record says the weights were cast (and which)
            extra["cast"] = "; ".join(f"{how}: {len(keys)} entries" for how, keys in sorted(cast.items()))
    else:
        sha = state_dict_sha256(wrapped.module())
    return given_model(wrapped, sha, factory, label or factory.rpartition(":")[2].rpartition(".")[2], extra)
