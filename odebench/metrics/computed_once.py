"""What a metric computes from one sample set (features, Gaussian statistics), computed once and shared.

Two scopes, both keyed by what is computed and by the SHA-256 of the set itself (its dtype, shape and bytes), so a
different set, or the same set cut at another size, never reads another's entry:

- :func:`per_cell`: the cell's own samples, kept in ``EvalContext.cache`` (which lives as long as the cell), so
  that fd_digits and the precision / recall pair read one set of digits features per cell;
- :func:`per_process`: a reference set (the held-out or training split, the same in every cell of a dataset),
  kept for the process in a memo bounded by :data:`MEMO_BYTES` (least recently used first out), so that a sweep
  computes the reference side of fd, fd_digits, precision and recall once per dataset instead of once per cell.

Nothing here is written to disk: a resumed run computes the same values again, from the same inputs.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np
import torch
from torch import Tensor

T = TypeVar("T")

#: the per-process memo keeps at most this many bytes of values (a 3072-d covariance in float64 is 75 MB)
MEMO_BYTES = 512 * 2**20
_MEMO: OrderedDict[tuple[str, str], tuple[Any, int]] = OrderedDict()


def fingerprint(x: Tensor) -> str:
    """SHA-256 of a tensor's dtype, shape and bytes (CPU copy): equal only for equal sets."""
    t = x.detach().to("cpu").contiguous()
    digest = hashlib.sha256(f"{t.dtype}{tuple(t.shape)}".encode())
    digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def _nbytes(value: Any) -> int:
    if isinstance(value, Tensor):
        return value.element_size() * value.nelement()
    if isinstance(value, np.ndarray):
        return value.nbytes
    if isinstance(value, (tuple, list)):
        return sum(_nbytes(v) for v in value)
    return 64


def per_cell(cache: dict[Any, Any], what: str, x: Tensor, compute: Callable[[Tensor], T]) -> T:
    """``compute(x)``, kept in a cell's scratch space ``cache`` (EvalContext.cache) under (what, fingerprint)."""
    key = ("computed_once", what, fingerprint(x))
    if key not in cache:
        cache[key] = compute(x)
    return cache[key]


def per_process(what: str, x: Tensor, compute: Callable[[Tensor], T]) -> T:
    """``compute(x)``, remembered for this process under (what, fingerprint of x); ``what`` must name everything
    else the value depends on (the extractor, its options). The value is shared: callers read it, never modify
    it."""
    key = (what, fingerprint(x))
    if key in _MEMO:
        _MEMO.move_to_end(key)
        return _MEMO[key][0]
    value = compute(x)
    _MEMO[key] = (value, _nbytes(value))
    while len(_MEMO) > 1 and sum(size for _, size in _MEMO.values()) > MEMO_BYTES:
        _MEMO.popitem(last=False)
    return value


def forget() -> None:
    """Empty the per-process memo (tests)."""
    _MEMO.clear()
