"""The repository's Markdown pages read as GitHub renders them, for the tests of their links and examples: which
pages there are, their fenced code blocks (and the ``<!-- runnable -->`` marker before one), the anchors of their
headings (GitHub's slugs), their links, and the repository paths and ``odebench.`` names their text mentions."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: the marker, alone on the line before a fenced block, of an example the runnable-examples test runs
RUNNABLE = "<!-- runnable -->"

FENCE = re.compile(r"^(?P<indent> {0,3})(?P<fence>```+|~~~+)(?P<info>[^\n`]*)$")
HEADING = re.compile(r"^ {0,3}(#{1,6})[ \t]+(.*?)[ \t]*#*[ \t]*$")
INLINE_CODE = re.compile(r"(`+)(?:(?!\n[ \t]*\n).)+?\1", re.S)  # a code span may wrap lines, not paragraphs
#: ``[text](target)`` and ``![alt](target)``, with an optional title; ``[label]: target`` definitions
INLINE_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*<?([^()\s>]*(?:\([^()\s]*\)[^()\s>]*)*)>?"
                         r"(?:\s+(?:\"[^\"]*\"|'[^']*'))?\s*\)")
LINK_DEFINITION = re.compile(r"^ {0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+.*)?$", re.M)
HTML_ANCHOR = re.compile(r"<a\s[^>]*\b(?:name|id)=\"([^\"]+)\"", re.I)
HTML_LINK = re.compile(r"<(?:a|img)\s[^>]*\b(?:href|src)=\"([^\"]+)\"", re.I)


def pages() -> list[Path]:
    """The hand-written pages: README, CONTRIBUTING, docs/, and the READMEs of results/ and examples/ (the
    reports a sweep writes into results/ are generated, not pages to check)."""
    found = [ROOT / "README.md", ROOT / "CONTRIBUTING.md", *sorted((ROOT / "docs").rglob("*.md")),
             *sorted((ROOT / "results").glob("README.md")), *sorted((ROOT / "results").glob("*/README.md")),
             *sorted((ROOT / "examples").rglob("README.md"))]
    return [p for p in found if p.is_file()]


def name(page: Path) -> str:
    return page.relative_to(ROOT).as_posix()


@dataclass(frozen=True)
class Block:
    """A fenced code block: its info string's first word (``bash``, ``python``, ...; '' for none), its text, the
    line of its opening fence (1-based) and whether the line before that fence is the runnable marker."""

    lang: str
    text: str
    line: int
    runnable: bool


def blocks(text: str) -> list[Block]:
    """Every fenced code block of ``text``, in order. An unclosed fence runs to the end, as on GitHub."""
    lines = text.splitlines()
    found, i = [], 0
    while i < len(lines):
        opening = FENCE.match(lines[i])
        if not opening:
            i += 1
            continue
        fence = opening["fence"]
        body, j = [], i + 1
        while j < len(lines):
            closing = FENCE.match(lines[j])
            if closing and closing["fence"][0] == fence[0] and len(closing["fence"]) >= len(fence) \
                    and not closing["info"].strip():
                break
            body.append(lines[j])
            j += 1
        info = opening["info"].strip().split()
        marked = i > 0 and lines[i - 1].strip() == RUNNABLE
        found.append(Block(info[0] if info else "", "\n".join(body) + "\n", i + 1, marked))
        i = j + 1
    return found


def prose(text: str) -> str:
    """``text`` with every fenced block and every inline code span blanked out (line breaks kept, so line numbers
    still hold): what is left is what GitHub renders as text, links and headings."""
    lines = text.splitlines()
    for block in blocks(text):
        end = min(len(lines), block.line + block.text.count("\n") + 1)
        for k in range(block.line - 1, end):
            lines[k] = ""
    return INLINE_CODE.sub(lambda m: re.sub(r"[^\n]", " ", m.group(0)), "".join(f"{line}\n" for line in lines))


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: its rendered text (code marks, emphasis marks, link targets and HTML tags
    gone), lower-cased, every character that is not a letter, digit, '_', '-' or space removed, spaces -> '-'."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)
    text = re.sub(r"<[^>]+>", "", text).replace("`", "")
    return re.sub(r"[^\w\- ]", "", text.strip().lower()).replace(" ", "-")


def anchors(text: str) -> set[str]:
    """The anchors a page offers: its headings' slugs (a repeated slug gets -1, -2, ... as on GitHub) and the
    names and ids of its HTML anchors."""
    seen: dict[str, int] = {}
    found = set()
    code_free = prose(text).splitlines()
    for line, raw in zip(code_free, text.splitlines(), strict=True):
        heading = HEADING.match(raw) if line.strip() else None
        if heading is None:
            continue
        base = slug(heading[2])
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return found | set(HTML_ANCHOR.findall(prose(text)))


def links(text: str) -> list[tuple[int, str]]:
    """(line, target) of every link and image of the rendered text: inline, reference definitions and HTML."""
    text = prose(text)
    found = []
    for pattern in (INLINE_LINK, LINK_DEFINITION, HTML_LINK):
        for match in pattern.finditer(text):
            found.append((text.count("\n", 0, match.start()) + 1, match.group(1)))
    return sorted(found)


#: a path into the repository as the pages write it in text (from the root: ``odebench/methods/exact.py``)
REPO_PATH = re.compile(r"(?<![\w./<>-])((?:odebench|tests|scripts|examples|docs|results|\.ci)/[\w.\-/]*[\w/])"
                       r"(?![\w<*{-])")
#: a dotted name under odebench (``odebench.bench.harness.store.records.RecordStore``)
DOTTED_NAME = re.compile(r"(?<![\w./-])(odebench(?:\.\w+)+)")


def repo_paths(text: str) -> list[tuple[int, str]]:
    """(line, path) of every repository path the page names anywhere (prose, code spans, code blocks), left out:
    a path into a folder a run writes (``results/quick/...``: only committed results/ folders are checked) and a
    path with a placeholder (``results/<sweep>/``, ``tests/*.py``) -- those the pattern does not take whole."""
    found = []
    for match in REPO_PATH.finditer(text):
        path = match.group(1)
        if path.startswith("results/") and not (ROOT / "results" / path.split("/")[1]).exists():
            continue
        found.append((text.count("\n", 0, match.start()) + 1, path))
    return found


def dotted_names(text: str) -> list[tuple[int, str]]:
    """(line, name) of every ``odebench.x.y`` name the page writes anywhere."""
    return [(text.count("\n", 0, m.start()) + 1, m.group(1)) for m in DOTTED_NAME.finditer(text)]
