"""A newcomer's mistakes end with one clear line naming the fix and exit code 2, never a traceback; Ctrl-C ends
with 130 and the advice to re-run; a cut pipe is not an error; a bare ``odebench`` helps."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from load import scaled

from odebench.bench.cli import main
from odebench.bench.harness.store.records import NoRecords, RecordStore

ROOT = Path(__file__).resolve().parents[2]


def one_error_line(err: str) -> str:
    """The single line a user error prints (a spec with several problems may list them; these do not)."""
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    return lines[0]


def odebench(*args: str, timeout: float = 120, **kwargs) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "odebench", *args], capture_output=True, text=True, cwd=ROOT,
                          env=env, timeout=timeout, **kwargs)


@pytest.mark.parametrize("dry", [False, True])
def test_out_pointing_at_a_file(tmp_path, capsys, dry):
    target = tmp_path / "results.txt"
    target.write_text("not a folder")
    extra = ["--dry-run"] if dry else []
    assert main(["run", "--spec", "smoke", "--out", str(target), "--no-progress", *extra]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert f"--out {target} is a file" in line and "give a folder" in line
    assert main(["run", "--spec", "smoke", "--out", str(target / "sub"), "--no-progress", *extra]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert f"{target} is a file" in line and "give a folder" in line
    assert target.read_text() == "not a folder"


def test_out_in_an_unwritable_place(tmp_path, capsys, monkeypatch):
    real_access = os.access
    locked = tmp_path / "locked"
    locked.mkdir()
    # root ignores permission bits, so the test makes the folder unwritable the way the check sees it
    monkeypatch.setattr(os, "access", lambda p, mode: False if Path(p) == locked else real_access(p, mode))
    assert main(["run", "--spec", "smoke", "--out", str(locked / "results"), "--no-progress"]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert "permission denied" in line and "give a folder you can write" in line
    assert not (locked / "results").exists()


def test_out_that_cannot_be_created(tmp_path, capsys, monkeypatch):
    def refuse(self, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "mkdir", refuse)
    assert main(["run", "--spec", "smoke", "--out", str(tmp_path / "new"), "--no-progress"]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert "cannot write there (Permission denied)" in line


def test_ctrl_c_exits_130_and_says_how_to_resume(tmp_path, capsys, monkeypatch):
    import odebench.bench.harness.execution.run as run

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(run, "run_sweep", interrupted)
    assert main(["run", "--spec", "smoke", "--out", str(tmp_path), "--no-progress"]) == 130
    err = capsys.readouterr().err
    assert "re-run the same command to resume" in err and "Traceback" not in err


def test_ctrl_c_on_a_real_run(tmp_path):
    """SIGINT to the whole process group, as a terminal sends it, in the middle of a pooled run: exit 130, one
    line, no traceback from the driver or the workers; running it again finishes the sweep."""
    args = [sys.executable, "-m", "odebench", "run", "--spec", "smoke", "--out", str(tmp_path), "--no-progress",
            "--jobs", "2"]
    # SIGINT's default action in the child, as in a terminal (a test run in the background inherits it ignored)
    proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, env={**os.environ, "OMP_NUM_THREADS": "1"},
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + scaled(90)  # limits measured on an idle machine, stretched by the load
    while not (tmp_path / "smoke" / "cells").is_dir() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=scaled(60))
    if proc.returncode == 0:
        pytest.skip("the run finished before the interrupt arrived")
    assert proc.returncode == 130, err
    assert "re-run the same command to resume" in err
    # the driver and the workers, started or starting, print nothing more (a worker still starting used to
    # fail on the pool's removed semaphores: multiprocessing's SemLock._rebuild, FileNotFoundError)
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    again = odebench("run", "--spec", "smoke", "--out", str(tmp_path), "--no-progress", timeout=scaled(120))
    assert again.returncode == 0, again.stderr


def test_a_cut_pipe_is_not_an_error():
    """`odebench list | head`: the reader leaves early; odebench stops quietly."""
    proc = subprocess.Popen([sys.executable, "-m", "odebench", "list"], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    proc.stdout.close()  # the reader is gone before the first line is written
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 0
    assert "Traceback" not in err and "BrokenPipe" not in err and "Exception ignored" not in err


def test_dry_run_reads_data_dir(tmp_path, capsys, monkeypatch):
    """`--spec cifar10 --dry-run --data-dir DIR` plans from DIR; a missing DIR is one line naming it."""
    import pickle

    import numpy as np

    monkeypatch.setenv("ODEBENCH_DATA", "")  # restored after the test: the CLI sets it
    nowhere = tmp_path / "nowhere"
    assert main(["run", "--spec", "cifar10", "--dry-run", "--data-dir", str(nowhere), "--out", str(tmp_path)]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert str(nowhere) in line and "cifar-10-batches-py" in line
    folder = tmp_path / "data" / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        with open(folder / name, "wb") as fh:
            pickle.dump({b"data": np.zeros((4, 3072), dtype=np.uint8), b"labels": [0] * 4}, fh)
    assert main(["run", "--spec", "cifar10", "--dry-run", "--data-dir", str(tmp_path / "data"),
                 "--out", str(tmp_path)]) == 0
    assert "sweep 'cifar10'" in capsys.readouterr().out


@pytest.mark.parametrize("option", ["--threads", "--jobs"])
def test_dry_run_refuses_what_a_run_refuses(tmp_path, capsys, option):
    for extra in ([], ["--dry-run"]):
        assert main(["run", "--spec", "smoke", "--out", str(tmp_path), option, "0", *extra]) == 2
        line = one_error_line(capsys.readouterr().err)
        assert f"{option} must be at least 1" in line


def test_bare_command_prints_help_and_version():
    bare = odebench()
    assert bare.returncode == 0 and "usage: odebench" in bare.stdout and "run" in bare.stdout
    assert bare.stderr == ""
    version = odebench("--version")
    from odebench import __version__

    assert version.returncode == 0 and version.stdout.strip() == f"odebench {__version__}"


def test_run_help_says_where_results_go_and_that_reruns_resume(capsys):
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "OUT/<spec name>/" in text and "OUT/.cache/models" in text
    assert "Re-running the same command resumes" in text


def test_record_store_on_a_wrong_path_names_the_sweeps_it_found(tmp_path):
    (tmp_path / "quick" / "cells").mkdir(parents=True)
    (tmp_path / "quick" / "cells" / "abc.json").write_text("{}")
    with pytest.raises(NoRecords, match=r"sweep folders found: .*quick"):
        RecordStore(tmp_path).frame()  # the results root, not the sweep folder
    with pytest.raises(NoRecords, match=r"does not exist.*quick"):
        RecordStore(tmp_path / "quik").frame()
    with pytest.raises(NoRecords, match="run `odebench run"):
        RecordStore(tmp_path / "empty" / "x").frame()


def test_report_into_a_folder_it_cannot_write(tmp_path, capsys, monkeypatch):
    import odebench.bench.report.build as build

    (tmp_path / "quick" / "cells").mkdir(parents=True)

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied", str(tmp_path / "quick" / "index.html"))

    monkeypatch.setattr(build, "write_report", refuse)
    assert main(["report", str(tmp_path / "quick")]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert "cannot write the report" in line and "Permission denied" in line
