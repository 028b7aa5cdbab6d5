"""A registry finds the built-in entries of its package by discovery: a new module with a decorated object is
registered without an edit to any import list."""

from __future__ import annotations

import sys
import textwrap

from odebench.bench.core.registry import Registry


def test_a_new_module_in_the_package_is_found_without_an_import_list(tmp_path, monkeypatch):
    pkg = tmp_path / "probe_pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text(textwrap.dedent('''
        from odebench.bench.core.registry import Registry
        THINGS = Registry("thing", builtin="probe_pkg")
    '''))
    (pkg / "first.py").write_text("from probe_pkg import THINGS\nTHINGS.add('one', 1)\n")
    (pkg / "second.py").write_text("from probe_pkg import THINGS\nTHINGS.add('two', 2)\n")
    (pkg / "_private.py").write_text("raise RuntimeError('private helpers are not imported by discovery')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        import probe_pkg

        assert probe_pkg.THINGS.names() == ["one", "two"]
        assert probe_pkg.THINGS.get("two") == 2
    finally:
        for name in [n for n in sys.modules if n == "probe_pkg" or n.startswith("probe_pkg.")]:
            del sys.modules[name]


def test_every_builtin_registry_lists_the_entries_of_its_modules():
    from odebench.bench.core.solvers import SOLVERS
    from odebench.bench.data import DATASETS
    from odebench.bench.nets import NETS
    from odebench.methods import METHODS
    from odebench.metrics import METRICS

    assert {"euler", "dopri5", "euler_maruyama"} <= set(SOLVERS.names())
    assert {"moons", "digits", "cifar10"} <= set(DATASETS.names())
    assert {"mlp", "unet"} <= set(NETS.names())
    assert {"fm_ot", "rf", "ddpm", "interpolant"} <= set(METHODS.names())
    assert {"w2", "nll", "straightness", "fd_digits"} <= set(METRICS.names())
    assert isinstance(Registry("x").names(), list)
