"""Every link of the hand-written pages resolves as it does on GitHub: a relative link names a file or folder of
the repository, and an #anchor names a heading (GitHub's slug) or HTML anchor of the page it points into. Every
repository path and every ``odebench.`` name the pages write in their text (prose, code spans, examples) exists,
so a moved module shows up here instead of in a reader's failed copy-paste."""

from __future__ import annotations

import importlib
import re
from pathlib import Path
from urllib.parse import unquote

import pytest
from markdown_pages import ROOT, anchors, dotted_names, links, name, pages, repo_paths

#: pages whose text is a log of earlier states of the code: docs/mutation.md names each mutant under the module
#: path of the commit its run was made from (its links are still checked)
HISTORICAL = {"docs/mutation.md"}
EXTERNAL = re.compile(r"^[a-z][a-z0-9+.-]*:", re.I)  # https:, mailto:, ...
SOURCE_LINE = re.compile(r"^L\d+(-L\d+)?$")  # GitHub's line anchors of a source file


def dead_links(page: Path) -> list[str]:
    """'line: target (why)' for every link of ``page`` that does not resolve."""
    text = page.read_text()
    dead = []
    for line, target in links(text):
        if EXTERNAL.match(target):
            continue
        path, _, fragment = target.partition("#")
        where = (page.parent / unquote(path)).resolve() if path else page
        if path and not where.exists():
            dead.append(f"{line}: {target} (no such file or folder)")
        elif path and not where.is_relative_to(ROOT):
            dead.append(f"{line}: {target} (outside the repository)")
        elif fragment and where.suffix == ".md" and where.is_file():
            if unquote(fragment) not in anchors(where.read_text()):
                dead.append(f"{line}: {target} (no heading or anchor '{fragment}' in {name(where)})")
        elif fragment and not SOURCE_LINE.match(fragment):
            dead.append(f"{line}: {target} (an anchor into {where.name}, which has no headings)")
    return dead


@pytest.mark.parametrize("page", pages(), ids=name)
def test_every_link_resolves(page):
    dead = dead_links(page)
    assert not dead, f"{name(page)}: links that lead nowhere:\n" + "\n".join(dead)


def resolves(dotted: str, groups: set[str]) -> bool:
    """A module, or an attribute reached from the longest importable module prefix; or an entry-point group."""
    if dotted in groups:
        return True
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for attr in parts[cut:]:
            if not hasattr(obj, attr):
                return False
            obj = getattr(obj, attr)
        return True
    return False


def entry_point_groups() -> set[str]:
    """The plugin groups the registries read (``odebench.methods``, ``odebench.time_grids``, ...): the pages name
    them like modules."""
    source = "\n".join(p.read_text() for p in (ROOT / "odebench").rglob("*.py"))
    return set(re.findall(r"Registry\(\s*\"[^\"]+\",\s*\"(odebench\.\w+)\"", source))


@pytest.mark.parametrize("page", [p for p in pages() if name(p) not in HISTORICAL], ids=name)
def test_every_path_and_module_the_text_names_exists(page):
    text = page.read_text()
    missing = [f"{line}: {path}" for line, path in repo_paths(text) if not (ROOT / path).exists()]
    groups = entry_point_groups()
    missing += [f"{line}: {dotted} (no such module or attribute)" for line, dotted in dotted_names(text)
                if not resolves(dotted, groups)]
    assert not missing, f"{name(page)} names what is not there:\n" + "\n".join(missing)
