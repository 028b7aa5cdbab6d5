"""Content-addressed store of trained models: a state dict plus a JSON meta holding its SHA-256.

A model's key is the hash of everything that determines it (method config, dataset, source, net, training
config, seed, parent key). Weights are written as safetensors (tensors and a string header, no code at all);
caches written before hold torch pickles (``.pt``), which still load, through ``torch.load(weights_only=True)``.
Before a byte of a weights file is hashed, its type and size are checked (:func:`weights_problem`): a FIFO, a
device such as ``/dev/zero``, a folder, an empty or oversized file, or a safetensors file whose header does not
describe exactly its size is refused with the reason, so nothing hangs or reads without end. Loading then checks
the file's hash, so a truncated or tampered file is reported, never parsed; a file that still fails to load or to
fit the network is reported the same way (CorruptArtifact), never as a traceback. A run moves such files aside
(``ArtifactStore.quarantine``: renamed to ``<name>.corrupt`` inside the cache, never deleted) and trains the
model again, whatever the hash says. Weights are published before the meta that points to them, so a kill
between the two never forces a retrain (see ArtifactStore).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from odebench.bench.core.hashing import sha256_file
from odebench.bench.harness.guards.safe_paths import inside
from odebench.bench.harness.store.stale_files import temp_affixes


class CorruptArtifact(RuntimeError):
    """A cached model file cannot be used: unreadable meta, not a regular file, a hash that differs from the
    recorded one, content that does not load or fit the network. ``cause`` says what is wrong in a few words
    (the message adds the way out); ``path`` is the file at fault, when one is, and ``stamp`` that file's
    identity when it failed (so that a file replaced since is not taken for it)."""

    def __init__(self, message: str, cause: str | None = None, path: Path | None = None):
        super().__init__(message)
        self.cause = cause or message
        self.path = path
        self.stamp = _identity(path) if path is not None else None


def _identity(path: Path) -> tuple[int, ...] | None:
    """(device, inode, size, mtime) of ``path`` itself (a link, not what it points to); None if it is gone."""
    try:
        st = os.lstat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns


def current_umask() -> int:
    """The process's umask, read without changing it where the system allows (Linux: /proc/self/status)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)  # elsewhere: set and restore at once
    os.umask(mask)
    return mask


def atomic_write_bytes(path: Path, data: bytes, *, root: str | Path) -> Path:
    """Write via a temp file in the same folder, fsync, then os.replace: readers never see half a file.

    ``root`` is the folder the write must stay in (safe_paths.inside; a relative ``path`` is relative to the
    current folder, as for ``open()``); returns the resolved path written. The temp file is
    ``.<name>.odebench-<random>.tmp`` (stale_files.temp_affixes: the one name the cleanup removes). The file gets
    the mode an ordinary ``open(path, "w")`` would give (0o666 less the umask, 0o644 typically), not the 0o600 of
    a temp file, so a results folder can be shared. An OSError (a full disk, a read-only folder) names ``path``:
    the temp file is gone and the old file, if any, is unchanged.
    """
    path = inside(root, path)
    prefix, suffix = temp_affixes(path.name)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=prefix, suffix=suffix)
    except OSError as exc:
        raise _naming(exc, path) from exc
    try:
        with os.fdopen(fd, "wb") as fh:
            os.fchmod(fh.fileno(), 0o666 & ~current_umask())
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise _naming(exc, path) from exc
        raise
    return path


def _naming(exc: OSError, path: Path) -> OSError:
    """``exc`` as the same kind of OSError (errno kept: ENOSPC, EACCES -> PermissionError, ...) naming ``path``."""
    if exc.errno is None or exc.filename == str(path):
        return exc
    return OSError(exc.errno, exc.strerror or os.strerror(exc.errno), str(path))


class ArtifactStore:
    """Models under ``root``: ``<key>.<sha16>.safetensors`` (weights, named by the first 16 hex digits of their
    SHA-256) and ``<key>.json`` (meta: the weights' file name and full SHA-256, training losses and seconds).

    Publishing order: the weights first, then the meta that points to them. A kill between the two renames
    leaves weights without meta; since the weights file also embeds the meta, an orphan whose content matches
    the hash in its name is the finished model (``has`` says so, ``load`` restores the meta file), so it is
    never trained again. Caches written before safetensors hold ``<key>.<sha16>.pt`` or, older still, ``<key>.pt``
    (torch pickles); they load unchanged, and orphans among them are recovered the same way.

    ``out_root`` is the folder every write must stay in (default ``root``); ``read_only`` stores (the
    report's) never write, not even to restore a meta.
    """

    def __init__(self, root: str | Path, *, out_root: str | Path | None = None, read_only: bool = False):
        # absolute from the start: ``inside(out_root, path)`` takes a relative path under out_root, so a
        # relative root ("results") would put every file one level too deep ("results/results/...")
        self.root = Path(root).absolute()
        self.out_root = Path(out_root).absolute() if out_root is not None else self.root
        self.read_only = read_only

    def meta_path(self, key: str) -> Path:
        return self.root / f"{key}.json"

    def read_meta(self, key: str) -> dict[str, Any] | None:
        """The meta of ``key`` if its file holds a JSON object, else None (missing, unreadable, not a dict, not a
        regular file, above MAX_META_BYTES: a FIFO would hang the read, ``/dev/zero`` never end it)."""
        path = self.meta_path(key)
        try:
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
            with os.fdopen(fd, "rb") as fh:
                st = os.fstat(fh.fileno())
                if not stat.S_ISREG(st.st_mode) or st.st_size > MAX_META_BYTES:
                    return None
                meta = json.loads(fh.read(MAX_META_BYTES + 1))
        except (OSError, ValueError, RecursionError):
            return None
        return meta if isinstance(meta, dict) else None

    def weights_path(self, key: str, meta: dict[str, Any] | None = None) -> Path:
        """The weights file ``meta`` names (a plain file name in ``root``), else the legacy ``<key>.pt``."""
        name = (meta or {}).get("weights")
        if isinstance(name, str) and _WEIGHTS_RE.fullmatch(name) and name.startswith(f"{key}."):
            return self.root / name
        return self.root / f"{key}.pt"

    def paths(self, key: str) -> tuple[Path, Path]:
        """(weights, meta) paths of ``key`` as its meta names them."""
        return self.weights_path(key, self.read_meta(key)), self.meta_path(key)

    def orphan(self, key: str) -> Path | None:
        """A hash-named weights file of ``key`` whose content matches its name, published without its meta."""
        for path in sorted(p for p in self.root.glob(f"{key}.*") if p.suffix in WEIGHTS_SUFFIXES):
            m = _WEIGHTS_RE.fullmatch(path.name)
            # the type and size first: a FIFO or a device named like weights would hang the hashing
            if m and m.group(1) == key and weights_problem(path) is None and sha256_file(path)[:16] == m.group(2):
                return path
        return None

    def cache_problem(self, key: str) -> str | None:
        """Why the weights ``key``'s meta names cannot be the model, judged without hashing them (type, size,
        safetensors layout: :func:`weights_problem`); None when they may be (or when there is no meta or no
        weights file: a cache miss, or an orphan that ``load`` checks)."""
        meta = self.read_meta(key)
        if meta is None:
            return None
        weights = self.weights_path(key, meta)
        if not os.path.lexists(weights):
            return None
        problem = weights_problem(weights)
        return None if problem is None else f"{weights.name} {problem}"

    def has(self, key: str) -> bool:
        """Whether ``key`` is in the cache: a meta whose weights exist and pass :meth:`cache_problem` (their hash
        is checked on load), or weights published without their meta whose content matches their name."""
        meta = self.read_meta(key)
        if meta is not None and self.weights_path(key, meta).exists():
            return self.cache_problem(key) is None
        return self.meta_path(key).exists() is False and self.orphan(key) is not None

    def save(self, key: str, model: nn.Module, meta: dict[str, Any]) -> None:
        from safetensors.torch import save

        if self.read_only:
            raise RuntimeError(f"model store {self.root} is read-only")
        embedded = json.dumps({**meta, "key": key}, sort_keys=True, default=str)
        # a copy of each tensor: safetensors refuses tensors that share memory, and the values are what count
        state = {k: v.detach().to("cpu", copy=True).contiguous() for k, v in model.state_dict().items()}
        data = save(state, metadata={META_FIELD: embedded})
        sha = hashlib.sha256(data).hexdigest()
        weights = self.root / f"{key}.{sha[:16]}{WEIGHTS_SUFFIX}"
        atomic_write_bytes(weights, data, root=self.out_root)  # first the weights, under their hash name
        full = {**meta, "key": key, "sha256": sha, "weights": weights.name}
        atomic_write_bytes(self.meta_path(key), json.dumps(full, indent=2, sort_keys=True, default=str).encode(),
                           root=self.out_root)  # then the meta that points to them

    def _payload(self, weights: Path, device) -> Any:
        """A safetensors file as {"state_dict", "meta"} (the layout of the pickles before it); a ``.pt`` as
        ``torch.load(weights_only=True)`` gives it."""
        try:
            if weights.suffix == WEIGHTS_SUFFIX:
                return read_safetensors(weights, device)
            return torch.load(weights, map_location=device, weights_only=True)
        except Exception as exc:  # a refused pickle, a truncated zip, a bad header, ...: never a traceback
            cause = f"{type(exc).__name__}: {str(exc)[:300]}"
            raise CorruptArtifact(f"cannot load model file {weights}: {cause}. Delete it and re-run to retrain.",
                                  f"does not load ({cause})", weights) from exc

    def _restore_meta(self, key: str, device) -> dict[str, Any]:
        """The meta of an orphaned weights file (embedded in it); written back unless read-only."""
        weights = self.orphan(key)
        if weights is None:
            raise CorruptArtifact(f"model {key} is not in the cache {self.root}")
        payload = self._payload(weights, device)
        try:
            meta = json.loads(payload["meta"])
            assert isinstance(meta, dict)
        except Exception as exc:
            raise CorruptArtifact(f"model file {weights} holds no readable meta; delete it and re-run",
                                  "holds no readable meta", weights) from exc
        meta.update(key=key, sha256=sha256_file(weights), weights=weights.name, recovered=True)
        if not self.read_only:
            atomic_write_bytes(self.meta_path(key), json.dumps(meta, indent=2, sort_keys=True,
                                                               default=str).encode(), root=self.out_root)
        return meta

    def load(self, key: str, model: nn.Module, device: str | torch.device = "cpu") -> dict[str, Any]:
        """Fill ``model`` with the stored weights; returns the meta. Raises CorruptArtifact when the meta is
        unreadable, the file does not match its recorded hash, or its content does not fit ``model``."""
        meta_path = self.meta_path(key)
        meta = self.read_meta(key)
        if meta is None and not meta_path.exists():
            meta = self._restore_meta(key, device)
        if meta is None:
            raise CorruptArtifact(f"cannot read model meta {meta_path} (not a JSON object). Delete it and "
                                  f"re-run to retrain.", "has a meta that is not a JSON object", meta_path)
        weights = self.weights_path(key, meta)
        problem = weights_problem(weights) if os.path.lexists(weights) else None
        if problem is not None:  # before hashing: a FIFO would hang it, /dev/zero never end it
            raise CorruptArtifact(f"cannot load model file {weights}: it {problem}. Delete it and {meta_path} "
                                  f"and re-run to retrain.", problem, weights)
        try:
            actual = sha256_file(weights)
        except OSError as exc:
            raise CorruptArtifact(f"cannot read model file {weights}: {exc}. Delete {meta_path} and re-run "
                                  f"to retrain.", f"cannot be read ({exc})", weights) from exc
        if actual != meta.get("sha256"):
            raise CorruptArtifact(f"model file {weights} has sha256 {actual[:12]}..., its meta says "
                                  f"{str(meta.get('sha256'))[:12]}...: the file is corrupt. Delete {weights} "
                                  f"and {meta_path} and re-run to retrain.", "failed its SHA-256 check", weights)
        payload = self._payload(weights, device)
        state = payload["state_dict"] if isinstance(payload, dict) and set(payload) == {"state_dict", "meta"} \
            else payload
        try:
            model.load_state_dict(state)
        except Exception as exc:
            cause = f"{type(exc).__name__}: {str(exc)[:200]}"
            raise CorruptArtifact(f"model file {weights} does not fit the network ({cause}). Delete it and "
                                  f"{meta_path} and re-run to retrain.", f"does not fit the network ({cause})",
                                  weights) from exc
        return meta

    def quarantine(self, key: str, failure: CorruptArtifact | None = None) -> str | None:
        """Move cached model ``key``'s files aside if they cannot be the model, and say so (None: nothing moved).

        Without ``failure``: weights that fail :func:`weights_problem` (checked before hashing) or their SHA-256
        check, and a meta that cannot be read. With ``failure`` (what :meth:`load` raised): the file it names,
        whatever its hash says (a pickle, a wrong shape, a hostile header), with the meta that names it. A meta
        whose weights are simply gone is a cache miss, left alone. Files are renamed to ``<name>.corrupt``
        (``.corrupt.2``, ... if taken) in the cache folder, never deleted; the note names the model, the
        reason and where they went. Safe beside another process doing the same: a meta is moved only while it
        still names the weights that failed, so a model trained again meanwhile is never taken for the corrupt
        one, and a file already moved is not moved twice.
        """
        if self.read_only:
            return None
        meta_path = self.meta_path(key)
        meta = self.read_meta(key)
        if failure is not None and failure.path is not None and failure.path != meta_path:
            weights, reason = failure.path, failure.cause
            subject = weights
            if _identity(weights) != failure.stamp:
                return None  # moved or replaced since it failed (another process healed it): not ours to move
            if meta is not None and self.weights_path(key, meta) != weights:
                meta_path = None  # the meta names other weights now (trained again meanwhile): keep it
        else:
            if not meta_path.exists():
                return None  # absent, or an orphan that ``load`` checks and restores
            weights = subject = self.weights_path(key, meta)
            if meta is None:
                subject, reason = meta_path, _file_problem(meta_path, MAX_META_BYTES) or "is not a JSON object"
            elif not os.path.lexists(weights):
                return None  # the weights are simply missing: a cache miss, trained again
            elif (problem := weights_problem(weights)) is not None:
                reason = problem
            elif sha256_file(weights) != meta.get("sha256"):
                reason = "failed its SHA-256 check"
            elif failure is not None:
                reason = failure.cause
            else:
                return None
        moved = [f"{p.name} -> {dest}" for p in (weights, meta_path) if p is not None
                 if (dest := self._move_aside(p)) is not None]
        if not moved:
            return None  # another process moved them first
        return f"cached model {key}: {subject.name} {reason}; moved aside ({', '.join(moved)}), training again"

    def _move_aside(self, path: Path) -> str | None:
        """Rename ``path`` to a free ``<name>.corrupt[.n]`` beside it (the link itself if it is one, never what
        it points to); the new name, or None if ``path`` is gone."""
        for n in range(1, 1000):
            dest = path.with_name(f"{path.name}.corrupt" + (f".{n}" if n > 1 else ""))
            if not os.path.lexists(dest):
                break
        else:
            raise CorruptArtifact(f"cannot move {path} aside: {path.name}.corrupt .. .999 are all taken; move "
                                  f"them out of {path.parent}", "cannot be moved aside", path)
        try:
            os.replace(path, inside(self.out_root, dest))
        except FileNotFoundError:
            return None
        return dest.name


def read_safetensors(path: Path, device="cpu") -> dict[str, Any]:
    """{"state_dict": tensors, "meta": the embedded meta (JSON text, or None)} of a safetensors weights file."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt", device=str(device)) as fh:
        meta = (fh.metadata() or {}).get(META_FIELD)
        return {"state_dict": {k: fh.get_tensor(k) for k in fh.keys()}, "meta": meta}


def weights_problem(path: Path) -> str | None:
    """Why ``path`` cannot hold a model's weights, judged before a byte of it is hashed; None when it may.

    Refused: anything but a regular file (a FIFO would hang the hash, a device such as ``/dev/zero`` never end
    it, a folder), an empty file, one above MAX_WEIGHTS_BYTES, and a ``.safetensors`` file whose header is
    not a safetensors header or does not describe exactly the file's size (truncated, padded, hostile). The
    answer is a phrase that follows the file's name: "is a FIFO (named pipe), not a regular file".
    """
    problem = _file_problem(path, MAX_WEIGHTS_BYTES)
    if problem is not None or path.suffix != WEIGHTS_SUFFIX:
        return problem  # a torch pickle (zip) of an older cache: its loader checks the rest, code never runs
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
        with os.fdopen(fd, "rb") as fh:
            st = os.fstat(fh.fileno())
            if not stat.S_ISREG(st.st_mode):  # swapped since the check above
                return "is not a regular file"
            return _safetensors_layout_problem(fh, st.st_size)
    except OSError as exc:
        return f"cannot be read ({exc.strerror or exc})"


def _file_problem(path: Path, limit: int) -> str | None:
    """Why ``path`` is no regular, non-empty file of at most ``limit`` bytes (None: it is one); a phrase that
    follows the file's name."""
    try:
        st = os.stat(path)  # follows a link: what would be read counts
    except OSError as exc:
        return f"cannot be read ({exc.strerror or exc})"
    if not stat.S_ISREG(st.st_mode):
        return f"is {_file_kind(st.st_mode)}, not a regular file"
    if st.st_size == 0:
        return "is empty"
    if st.st_size > limit:
        return f"is {st.st_size:,} bytes, above the {limit:,} this file may take"
    return None


def _file_kind(mode: int) -> str:
    kinds = [(stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a character device"),
             (stat.S_ISBLK, "a block device"), (stat.S_ISDIR, "a folder"), (stat.S_ISSOCK, "a socket")]
    return next((name for test, name in kinds if test(mode)), "a special file")


def _safetensors_layout_problem(fh, size: int) -> str | None:
    """What is wrong with the header of a safetensors file of ``size`` bytes open in ``fh`` (None: the header
    parses and its tensors' data offsets end exactly at the end of the file, as safetensors writes them)."""
    if size < 8:
        return f"is {size} bytes, shorter than a safetensors header (truncated)"
    n = int.from_bytes(fh.read(8), "little")
    if n > MAX_HEADER_BYTES or 8 + n > size:
        return f"declares a {n:,}-byte header in a {size:,}-byte file (truncated, or not a safetensors file)"
    try:
        header = json.loads(fh.read(n))
    except (ValueError, RecursionError):
        return "has a header that is not JSON (not a safetensors file)"
    if not isinstance(header, dict):
        return "has a header that is not a JSON object (not a safetensors file)"
    end = 0
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        offsets = entry.get("data_offsets") if isinstance(entry, dict) else None
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(type(o) is int for o in offsets)
                and 0 <= offsets[0] <= offsets[1]):
            return f"has a malformed header entry for tensor {name[:60]!r}"
        end = max(end, offsets[1])
    if 8 + n + end != size:
        return (f"is {size:,} bytes where its header describes {8 + n + end:,} (truncated, or bytes added after "
                f"the data)")
    return None


#: the largest weights file read: 2e9 parameters (the spec's policy bound) in float32, and room to spare
MAX_WEIGHTS_BYTES = 16 * 2**30
#: the largest meta file read (a meta holds the loss curve and the training evidence: kilobytes)
MAX_META_BYTES = 64 * 2**20
#: safetensors' own bound on its JSON header
MAX_HEADER_BYTES = 100_000_000
#: the weights format written now; ``.pt`` (torch pickles, read with weights_only=True) is still read
WEIGHTS_SUFFIX = ".safetensors"
WEIGHTS_SUFFIXES = (WEIGHTS_SUFFIX, ".pt")
#: the safetensors header field holding the model's meta (JSON), from which an orphan's meta is restored
META_FIELD = "odebench_meta"
#: hash-named weights: ``<key>.<first 16 hex digits of the file's SHA-256>.safetensors`` (or ``.pt``)
_WEIGHTS_RE = re.compile(r"([0-9a-f]{16})\.([0-9a-f]{16})\.(?:safetensors|pt)")
