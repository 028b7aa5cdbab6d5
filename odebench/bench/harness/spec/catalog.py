"""What can go into a spec, in words: every registered method, solver, time grid, dataset, metric, network and
probability path, and the built-in specs, each with a one-line description (``odebench list``) and, on
request, its options with their defaults and what it combines with (``odebench list KIND -v``,
``odebench show NAME``).

Everything here is read from the registries and the declarations of the registered objects (docstrings,
signatures, ``offers()`` / ``requires``, metric ``kinds``), so a new method or metric is described without an
edit to this module.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from typing import Any

CATEGORIES = ("methods", "solvers", "grids", "datasets", "metrics", "networks", "paths", "specs")


def first_line(obj: Any) -> str:
    """The summary of an object's docstring (its first paragraph, on one line, as plain text), '' without one."""
    doc = (inspect.getdoc(obj) or "").strip()
    return plain(" ".join(doc.split("\n\n")[0].split())) if doc else ""


def plain(text: str) -> str:
    """reStructuredText markup of a docstring as a terminal shows it: ``x`` and `x` -> x, :func:`x` -> x."""
    text = re.sub(r":[a-z]+:`~?([^`]+)`", r"\1", text)
    return re.sub(r"``([^`]+)``|`([^`]+)`", lambda m: m.group(1) or m.group(2), text)


def paper_title(citation: str) -> str:
    """'Flow Matching for Generative Modeling' from 'Lipman, Chen, ... . Flow Matching for Generative Modeling.
    ICLR 2023. arXiv:...' ('' when the citation does not have that shape)."""
    parts = [p.strip() for p in citation.split(". ")]
    return parts[1] if len(parts) > 2 else ""


def defaults_of(fn: Callable, skip: tuple[str, ...] = ()) -> list[tuple[str, Any]]:
    """(keyword, default) of a callable's keyword parameters, in order ('required' where there is none)."""
    out = []
    for name, p in inspect.signature(fn).parameters.items():
        if name in ("self", *skip) or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        out.append((name, "required" if p.default is inspect.Parameter.empty else p.default))
    return out


def _options(pairs: list[tuple[str, Any]]) -> str:
    return ", ".join(f"{k} = {v!r}" if v != "required" else f"{k} (required)" for k, v in pairs) or "none"


def _registry(category: str):
    from odebench.bench.core.solvers import SOLVERS
    from odebench.bench.core.time_grids import GRIDS
    from odebench.bench.data import DATASETS
    from odebench.bench.nets import NETS
    from odebench.methods import METHODS
    from odebench.methods.probability_paths import PATHS
    from odebench.metrics import METRICS

    return {"methods": METHODS, "solvers": SOLVERS, "grids": GRIDS, "datasets": DATASETS, "metrics": METRICS,
            "networks": NETS, "paths": PATHS}[category]


def names(category: str) -> list[str]:
    if category == "specs":
        from odebench.bench.harness.spec.sweep import builtin_spec_names

        return builtin_spec_names()
    return _registry(category).names()


def plugin_errors() -> list[str]:
    """Warnings about plugins that failed to load, one per plugin."""
    out = []
    for category in CATEGORIES[:-1]:
        reg = _registry(category)
        out += [f"{reg.kind} plugin {n!r} failed to load: {err}" for n, err in reg.plugin_errors.items()]
    return out


def describe(category: str, name: str) -> str:
    """The one line ``odebench list`` prints for an entry."""
    if category == "specs":
        from odebench.bench.harness.spec.sweep import read_spec

        return str(read_spec(name)[0].get("description", ""))
    obj = _registry(category).get(name)
    if category == "solvers":
        kind = obj.kind + (", adaptive" if obj.adaptive else "")
        return f"[{kind}] {plain(obj.description) or first_line(type(obj))}"
    if category == "metrics":
        direction = "higher" if obj.higher_is_better else "lower"
        # the docstring's whole first paragraph: the registry keeps its first line only, which can stop mid-sentence
        return f"[{'/'.join(obj.kinds)}, {direction} is better] {first_line(obj.fn) or plain(obj.description)}"
    if category == "datasets":
        kind = getattr(obj, "kind", None)
        return (f"[{kind}] " if kind else "") + first_line(obj)
    if category == "methods":
        title = paper_title(obj.citation)
        return f"{title}: {first_line(obj)}" if title else first_line(obj)
    return first_line(obj)


# ------------------------------------------------------------------------------------------------ details
def _methods_detail(name: str) -> list[str]:
    from odebench.bench.core.fields import CAPABILITIES
    from odebench.bench.core.solvers import SOLVERS
    from odebench.methods import METHODS, get_method
    from odebench.metrics import METRICS

    cls = METHODS.get(name)
    method = get_method(name)
    hparams = defaults_of(cls.__init__)
    fits, not_fits = [], []
    for s in SOLVERS.names():
        why = SOLVERS.get(s).unmet(method.offers(), f"method {name!r}")
        (fits if why is None else not_fits).append(s)
    missing = {s: sorted(SOLVERS.get(s).requires - method.offers()) for s in not_fits}
    lines = [f"  paper: {cls.citation or cls.reference or 'n/a'}",
             f"  hparams (defaults): {_options(hparams)}"]
    if cls.sampling_hparams:
        lines.append(f"  sampling-only hparams (one trained model serves every value): "
                     f"{', '.join(cls.sampling_hparams)}")
    lines += [f"  source: {'N(0, I) only' if cls.needs_gaussian_source else 'N(0, I) or any dataset'}",
              f"  offers (at default hparams): {', '.join(sorted(method.offers()))} "
              f"({'; '.join(CAPABILITIES[c] for c in sorted(method.offers()) if c in CAPABILITIES)})",
              f"  solvers: {', '.join(fits)}"]
    if not_fits:
        lines.append("  skipped solvers: " + ", ".join(f"{s} (needs {' and '.join(m)})" for s, m in missing.items()))
    for kind in ("points", "image"):
        lines.append(f"  metrics on {kind} data: "
                     f"{', '.join(m for m in METRICS.names() if kind in METRICS.get(m).kinds)}")
    return lines


def _solvers_detail(name: str) -> list[str]:
    from odebench.methods import METHODS, get_method

    s = _registry("solvers").get(name)
    fits = [m for m in METHODS.names() if s.unmet(get_method(m).offers()) is None]
    budget = "a tolerance (rtol = atol); reports the NFE it used" if s.adaptive else (
        f"an NFE budget; {s.evals_per_step} evaluation(s) per step, so at least {s.evals_per_step} NFE")
    return [f"  kind: {s.kind}{', adaptive' if s.adaptive else ''}; swept by {budget}",
            f"  requires: {', '.join(sorted(s.requires))}",
            f"  methods (at default hparams): {', '.join(fits) or 'none'}"]


def _metrics_detail(name: str) -> list[str]:
    m = _registry("metrics").get(name)
    lines = [f"  data: {', '.join(m.kinds)}; {'higher' if m.higher_is_better else 'lower'} is better; "
             f"report table: {m.family}" + (f"; headline rank {m.headline_rank}" if m.headline_rank is not None
                                            else ""),
             f"  variant: {m.variant or 'n/a'}; reference: {m.reference or 'n/a'}"]
    if m.per_model:
        lines.append("  computed once per trained model (its own solve), not per sampler budget")
    if m.needs_trajectory:
        lines.append("  reads the solver's trajectory")
    if m.reading:
        lines.append(f"  reading: {m.reading}")
    lines.append(f"  options: [eval.metric_options.{name}] in a spec (see the metric's docstring)")
    return lines


def _datasets_detail(name: str) -> list[str]:
    loader = _registry("datasets").get(name)
    kind = getattr(loader, "kind", None)
    return [f"  kind: {kind or 'not declared (known once loaded)'}",
            f"  options (defaults): {_options(defaults_of(loader, skip=('data_seed',)))}"]


def _networks_detail(name: str) -> list[str]:
    net = _registry("networks").get(name)
    return [f"  options (defaults): {_options(defaults_of(net.__init__, skip=('shape', 'out_mult')))}"]


def _specs_detail(name: str) -> list[str]:
    from odebench.bench.harness.spec.sweep import load_spec

    spec = load_spec(name)
    models = len({c.training_key() for c in spec.cells})
    methods = sorted({c.method["name"] for c in spec.cells})
    data = sorted({c.target for c in spec.cells})
    return [f"  {len(spec.cells)} cells over {models} trained models; device {spec.device}, precision "
            f"{spec.precision}",
            f"  methods: {', '.join(methods)}; datasets: {', '.join(data)}",
            f"  odebench run --spec {name} --dry-run   shows the plan"]


def details(category: str, name: str) -> list[str]:
    """The lines ``odebench list KIND -v`` and ``odebench show NAME`` print under an entry's line."""
    fn = {"methods": _methods_detail, "solvers": _solvers_detail, "metrics": _metrics_detail,
          "datasets": _datasets_detail, "networks": _networks_detail, "specs": _specs_detail}.get(category)
    return [plain(line) for line in fn(name)] if fn else []


def find(name: str) -> list[str]:
    """The categories that hold an entry called ``name``."""
    return [c for c in CATEGORIES if name in names(c)]


def listing(categories: list[str], verbose: bool = False) -> str:
    """``odebench list``'s text: per category a heading, then one line per entry (more with ``verbose``)."""
    out = []
    for category in categories:
        entries = names(category)
        width = max((len(n) for n in entries), default=0) + 2
        out.append(f"{category} ({len(entries)}):")
        for n in entries:
            out.append(f"  {n.ljust(width)}{describe(category, n)}".rstrip())
            if verbose:
                out += ["  " + line for line in details(category, n)]
        out.append("")
    return "\n".join(out).rstrip()
