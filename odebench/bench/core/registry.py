"""One generic name -> object registry, shared by methods, solvers, metrics and datasets.

Built-in entries are found by discovery: a registry given ``builtin="odebench.methods"`` imports every module
of that package the first time it is asked for a name, so a new file with a decorated class is found without
an edit to any import list. Third-party packages join through an entry-point group (e.g.
``odebench.methods``); each entry point is imported once, at the same moment, and is expected to register
itself by importing a module that uses the decorator (or to point straight at the object).
"""

from __future__ import annotations

import difflib
import importlib
import pkgutil
from collections.abc import Callable, Iterator
from importlib.metadata import entry_points
from typing import Generic, TypeVar

T = TypeVar("T")


class UnknownNameError(KeyError):
    """Raised for a name no registry entry has; the message lists close matches and all known names."""

    def __str__(self) -> str:  # KeyError quotes its argument; we want the plain sentence
        return str(self.args[0])


class Registry(Generic[T]):
    """Maps names to objects; duplicate names raise, unknown names raise with suggestions."""

    def __init__(self, kind: str, entry_point_group: str | None = None, builtin: str | None = None):
        self.kind = kind
        self.entry_point_group = entry_point_group
        #: the package whose modules hold the built-in entries (imported on first use)
        self.builtin = builtin
        self._items: dict[str, T] = {}
        self._plugins_loaded = False
        self.plugin_errors: dict[str, str] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator: ``@REGISTRY.register("fm_ot")`` on a class or function."""

        def deco(obj: T) -> T:
            self.add(name, obj)
            return obj

        return deco

    def add(self, name: str, obj: T) -> None:
        if name in self._items and self._items[name] is not obj:
            raise ValueError(f"{self.kind} {name!r} is already registered (by {self._items[name]!r})")
        self._items[name] = obj

    def _load_plugins(self) -> None:
        if self._plugins_loaded:
            return
        self._plugins_loaded = True
        if self.builtin is not None:
            discover(self.builtin)
        if self.entry_point_group is None:
            return
        for ep in entry_points(group=self.entry_point_group):
            try:
                obj = ep.load()
            except Exception as exc:  # a broken plugin must not take the suite down
                self.plugin_errors[ep.name] = f"{type(exc).__name__}: {exc}"
                continue
            if ep.name not in self._items and not isinstance(obj, type(__import__("sys"))):
                self.add(ep.name, obj)

    def get(self, name: str) -> T:
        self._load_plugins()
        if name not in self._items:
            known = sorted(self._items)
            close = difflib.get_close_matches(name, known, n=3)
            hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
            broken = ""
            if name in self.plugin_errors:
                broken = f" (plugin {name!r} failed to load: {self.plugin_errors[name]})"
            raise UnknownNameError(
                f"unknown {self.kind} {name!r}{broken}.{hint} Known {self.kind}s: {', '.join(known)}"
            )
        return self._items[name]

    def names(self) -> list[str]:
        self._load_plugins()
        return sorted(self._items)

    def __contains__(self, name: str) -> bool:
        self._load_plugins()
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())


def discover(package: str) -> list[str]:
    """Import every module of ``package`` (not its sub-packages), so that their decorators register; returns
    the module names. Modules whose name starts with ``_`` are private helpers and are skipped."""
    pkg = importlib.import_module(package)
    names = [m.name for m in pkgutil.iter_modules(pkg.__path__) if not m.name.startswith("_") and not m.ispkg]
    for name in names:
        importlib.import_module(f"{package}.{name}")
    return names
