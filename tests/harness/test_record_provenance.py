"""What every record says about where it came from, and the keys a reader of records relies on.

``environment``: the versions of odebench, torch and Python, the device (with the GPU's model for a CUDA
device), torch's thread count in the process that ran the cell (timings compare only at equal counts), the
platform, and the git commit of the checkout odebench runs from, None when there is none or git cannot say
(missing, failing, hung), never a half answer. ``base_record``: the schema version and the config hash every
record starts with. A finished cell is ok or skipped and has no failed metric; a given model's label names
the start of its weights' hash.
"""

from __future__ import annotations

import json
import platform
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import torch
from harness_tiny import tiny_spec
from threads import torch_threads

import odebench
from odebench.bench.harness.spec.sweep import parse_spec
from odebench.bench.harness.store import records
from odebench.bench.harness.store.records import SCHEMA_VERSION, base_record, environment, is_finished, method_label

KEYS = {"odebench", "torch", "python", "device", "threads", "git_commit", "platform"}
COMMIT = "0123456789abcdef0123456789abcdef01234567"
#: fake ``git`` programs, each standing for one situation git can be in (``$@``: the arguments it was given)
GITS = {
    # a checkout: ``git rev-parse HEAD`` prints the commit; any other question fails as outside a repository
    "checkout": (
        f'[ "$#" = 2 ] && [ "$1" = rev-parse ] && [ "$2" = HEAD ] && echo {COMMIT} && exit 0\n'
        "echo 'fatal: not a git repository' >&2; exit 128"
    ),
    # a repository without a commit: git echoes the name it could not resolve, then fails
    "no commit": "echo HEAD; echo \"fatal: ambiguous argument 'HEAD'\" >&2; exit 128",
}


def fake_git(folder: Path, body: str) -> Path:
    folder.mkdir(exist_ok=True)
    git = folder / "git"
    git.write_text(f"#!/bin/sh\n{body}\n")
    git.chmod(0o755)
    return folder


def test_the_environment_names_versions_device_threads_and_platform():
    with torch_threads(3):
        env = environment("cpu")
    assert set(env) == KEYS
    assert env["odebench"] == odebench.__version__ and env["torch"] == torch.__version__
    assert env["python"] == platform.python_version() and env["platform"] == platform.platform()
    assert env["device"] == "cpu" and env["threads"] == 3
    assert env["git_commit"] is None or (isinstance(env["git_commit"], str) and len(env["git_commit"]) == 40)
    assert json.loads(json.dumps(env)) == env  # plain JSON values: a record file holds them as they are


def test_a_cuda_device_is_named_with_its_gpu_model(monkeypatch):
    """The GPU's name is what makes timings on two machines comparable or not; the CPU has none to add, and a
    CUDA device name is kept as given where no GPU is visible."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a, **k: "Tiny GPU")
    assert environment("cuda:1")["device"] == "cuda:1 (Tiny GPU)"
    assert environment("cpu")["device"] == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert environment("cuda")["device"] == "cuda"


@pytest.mark.parametrize("git, commit", [("checkout", COMMIT), ("no commit", None), (None, None)])
def test_the_git_commit_is_the_one_git_gives_or_none(tmp_path, monkeypatch, git, commit):
    """Only what ``git rev-parse HEAD`` answers with success, as text; None for a failed answer or no git."""
    bin_dir = fake_git(tmp_path / "bin", GITS[git]) if git else tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    monkeypatch.setenv("PATH", str(bin_dir))  # the only git there is
    assert environment("cpu")["git_commit"] == commit


def test_the_git_commit_is_of_the_odebench_checkout_not_of_the_working_directory(tmp_path, monkeypatch):
    """A run started inside another repository still records the commit of the code that ran (None when
    odebench is not run from a checkout)."""
    if shutil.which("git") is None:
        pytest.skip("needs git")
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(tmp_path / "no_config"))

    def git(*args, cwd):
        return subprocess.run(["git", *args], capture_output=True, text=True, cwd=cwd, timeout=30)

    other = tmp_path / "other"
    other.mkdir()
    git("init", "-q", cwd=other)
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "--allow-empty", "-m", "x", cwd=other)
    theirs = git("rev-parse", "HEAD", cwd=other).stdout.strip()
    assert len(theirs) == 40
    ours = git("rev-parse", "HEAD", cwd=Path(records.__file__).parent)
    monkeypatch.chdir(other)
    recorded = environment("cpu")["git_commit"]
    assert recorded == (ours.stdout.strip() if ours.returncode == 0 else None) and recorded != theirs


@pytest.mark.slow
def test_a_hung_git_gives_up_and_records_no_commit(tmp_path, monkeypatch):
    """A git that never answers (a prompt, a lock on a network drive) must not hang every record."""
    sleep = shutil.which("sleep")
    monkeypatch.setenv("PATH", str(fake_git(tmp_path / "bin", f"exec {sleep} 60")))
    start = time.monotonic()
    assert environment("cpu")["git_commit"] is None
    assert time.monotonic() - start < 30


def test_a_record_starts_with_its_schema_version_config_and_provenance():
    cell = parse_spec(tiny_spec(name="prov", solvers=[{"name": "euler", "nfe": [2]}])).cells[0]
    before = time.time()
    record = base_record(cell, "cpu")
    assert set(record) == {"schema_version", "cell_id", "config", "config_hash", "environment", "created"}
    assert record["schema_version"] == SCHEMA_VERSION
    assert record["cell_id"] == record["config_hash"] == cell.id and record["config"] == cell.config()
    assert set(record["environment"]) == KEYS and record["environment"]["device"] == "cpu"
    assert before <= record["created"] <= time.time()


@pytest.mark.parametrize("failures, finished", [({"fid": "came out NaN"}, False), ({}, True), (None, True)])
def test_a_cell_with_a_failed_metric_is_not_finished(failures, finished):
    """Its other metrics were kept, but the cell runs again for the failed one."""
    record = {"schema_version": 1, "cell_id": "a", "status": "ok", "metrics": {"w2": 0.5}}
    if failures is not None:
        record["metric_failures"] = failures
    assert is_finished(record) is finished


def test_a_given_model_is_labelled_with_the_start_of_its_weights_hash():
    """Two given models under one name but with other weights get other labels; no hparams are listed."""
    sha = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
    label = method_label({"name": "mine", "given_model": sha, "factory": "pkg:make", "kind": "velocity"})
    assert label.startswith("mine@9f86d081") and sha.startswith(label.removeprefix("mine@"))
    other = method_label({"name": "mine", "given_model": "0" * 64, "factory": "pkg:make", "kind": "velocity"})
    assert other.startswith("mine@00000000") and other != label
