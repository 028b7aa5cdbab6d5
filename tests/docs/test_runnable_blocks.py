"""The copy-paste examples the pages mark ``<!-- runnable -->`` run as written, at the smoke scale, in a fresh
temporary folder, and write nothing into the repository (CONTRIBUTING.md, "The documentation: links and runnable
examples", states the rules this test applies)."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from load import scaled
from markdown_pages import ROOT, RUNNABLE, Block, blocks, name, pages

LANGS = {"bash", "python"}
#: the commands whose lines the test scales down; the words that start them
SCALED = (["odebench", "run"], ["odebench", "eval"], ["python3", "-m", "odebench", "run"],
          ["python3", "-m", "odebench", "eval"])
SHELL_OPERATORS = {"|", "||", "&", "&&", ";", ">", ">>", "<", "2>", "2>&1"}


def runnable(page: Path) -> list[Block]:
    return [b for b in blocks(page.read_text()) if b.runnable]


def marker_problems(page: Path) -> list[str]:
    """A marker before no fenced block, or before a block in a language the test cannot run."""
    text = page.read_text()
    lines = text.splitlines()
    openings = {b.line for b in blocks(text)}
    inside = {k for b in blocks(text) for k in range(b.line, b.line + b.text.count("\n") + 2)}
    problems = []
    for number, line in enumerate(lines, 1):
        if line.strip() == RUNNABLE and number not in inside and number + 1 not in openings:
            problems.append(f"{number}: the marker is not on the line right before a ``` fence")
    problems += [f"{b.line}: a runnable block must be bash or python, not {b.lang or 'untagged'}"
                 for b in runnable(page) if b.lang not in LANGS]
    return problems


def logical_lines(script: str) -> list[str]:
    """The lines of a bash block with backslash continuations joined."""
    return script.replace("\\\n", " ").splitlines()


def at_smoke_scale(line: str, folder: Path) -> str:
    """``line`` as the test runs it: an ``odebench run``/``eval`` line gets ``--spec smoke`` unless it names a spec
    and ``--out <folder>/results`` unless it names an --out (which must then lie inside ``folder``)."""
    words = shlex.split(line, comments=True)
    if not any(words[:len(start)] == start for start in SCALED):
        return line
    assert not SHELL_OPERATORS & set(words), f"keep a runnable odebench line free of shell operators: {line}"
    if not any(w == "--spec" or w.startswith("--spec=") for w in words):
        words += ["--spec", "smoke"]
    outs = [words[i + 1] for i, w in enumerate(words[:-1]) if w == "--out"]
    outs += [w.split("=", 1)[1] for w in words if w.startswith("--out=")]
    for out in outs:
        where = (folder / out).resolve()
        assert where.is_relative_to(folder.resolve()), f"a runnable example writes outside its folder: {line}"
    if not outs:
        words += ["--out", str(folder / "results")]
    return shlex.join(words)


#: folders the tools write while the suite runs, not the examples: git, byte-code, and the caches of pytest,
#: hypothesis, pytest-benchmark and ruff (the suite runs in several worker processes at once, so a hypothesis
#: test in another worker writes its cache while this test watches the repository)
TOOL_FOLDERS = {".git", "__pycache__", ".pytest_cache", ".hypothesis", ".benchmarks", ".ruff_cache"}


def repo_files() -> dict[str, int]:
    """Every file of the repository (less the tools' folders, ``TOOL_FOLDERS``) with its modification time."""
    found = {}
    for dirpath, dirnames, filenames in os.walk(ROOT):
        dirnames[:] = [d for d in dirnames if d not in TOOL_FOLDERS]
        for f in filenames:
            path = Path(dirpath) / f
            found[str(path.relative_to(ROOT))] = path.lstat().st_mtime_ns
    return found


def run_block(block: Block, folder: Path, page: Path) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
           "PYTHONDONTWRITEBYTECODE": "1", "OMP_NUM_THREADS": "1", "PATH": os.environ.get("PATH", "")}
    bindir = folder / ".bin"  # `odebench` is this checkout's, whatever is installed
    bindir.mkdir(exist_ok=True)
    launcher = bindir / "odebench"
    launcher.write_text(f"#!/bin/sh\nexec {shlex.quote(sys.executable)} -m odebench \"$@\"\n")
    launcher.chmod(0o755)
    env["PATH"] = f"{bindir}{os.pathsep}{env['PATH']}"
    if block.lang == "bash":
        script = "\n".join(at_smoke_scale(line, folder) for line in logical_lines(block.text))
        command = ["bash", "-e", "-c", script]
    else:
        command = [sys.executable, "-c", block.text]
    proc = subprocess.run(command, cwd=folder, env=env, capture_output=True, text=True, timeout=scaled(300))
    assert proc.returncode == 0, (f"{name(page)}, the {block.lang} block at line {block.line} failed "
                                  f"(exit {proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")


@pytest.mark.parametrize("page", pages(), ids=name)
def test_runnable_markers_stand_before_a_block_the_test_can_run(page):
    problems = marker_problems(page)
    assert not problems, f"{name(page)}:\n" + "\n".join(problems)


def test_the_readme_marks_its_main_examples():
    langs = [b.lang for b in runnable(ROOT / "README.md")]
    assert "bash" in langs and "python" in langs  # `odebench run` and the evaluation of your own model
    assert any(b.text.strip() == "odebench run" for b in runnable(ROOT / "README.md"))


def test_a_runnable_odebench_line_runs_at_smoke_scale_inside_its_folder(tmp_path):
    assert at_smoke_scale("odebench run", tmp_path) == shlex.join(
        ["odebench", "run", "--spec", "smoke", "--out", str(tmp_path / "results")])
    assert at_smoke_scale("odebench run --spec images --out here  # a comment", tmp_path) == \
        "odebench run --spec images --out here"
    assert at_smoke_scale("odebench list", tmp_path) == "odebench list"
    with pytest.raises(AssertionError, match="outside its folder"):
        at_smoke_scale("odebench run --out ../elsewhere", tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("page", [p for p in pages() if runnable(p)], ids=name)
def test_runnable_blocks_run(page, tmp_path):
    before = repo_files()
    for block in runnable(page):
        run_block(block, tmp_path, page)
    after = repo_files()
    changed = sorted(k for k in after if before.get(k) != after[k])
    assert not changed, f"{name(page)}'s runnable examples wrote into the repository: {changed[:20]}"
