"""Nothing outside the folder the user named is ever deleted or written: one guard for every delete
(``safe_paths.remove_file``), temp files recognised by odebench's own naming in the folders it owns only, and
tracking sinks that create every folder through the write guard."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from finished_sweep import RUN, SWEEP, copy_project, has_tensorboard, one_error_line, snapshot

from odebench.bench.cli import main
from odebench.bench.harness.guards.safe_paths import UnsafePath, make_dirs, remove_file
from odebench.bench.harness.store.stale_files import remove_stale_temps


@pytest.fixture
def victim(tmp_path) -> Path:
    """A folder of the user's outside every results folder, holding files named like figures."""
    folder = tmp_path / "victim"
    folder.mkdir()
    for name in ("thesis_plot.png", "paper.pdf", "quality_vs_nfe_moons.png", "index.html"):
        (folder / name).write_bytes(f"the user's own {name}".encode())
    return folder


def link_out(path: Path, target: Path) -> None:
    """Replace ``path`` (a file or folder of the sweep) with a symlink to ``target``."""
    if path.is_dir() and not path.is_symlink():
        for p in sorted(path.rglob("*"), reverse=True):
            p.rmdir() if p.is_dir() else p.unlink()
        path.rmdir()
    elif path.exists() or path.is_symlink():
        path.unlink()
    path.symlink_to(target)


# ------------------------------------------------------------------------------------------------ the delete guard
def test_remove_file_deletes_only_regular_files_reached_inside_the_root(tmp_path, victim):
    root = tmp_path / "out"
    (root / "sw" / "figures").mkdir(parents=True)
    own = root / "sw" / "figures" / "a.png"
    own.write_bytes(b"ours")
    assert remove_file(root, own) and not own.exists()
    assert remove_file(root, own) is False  # gone already
    (root / "sw" / "linked").symlink_to(victim)
    with pytest.raises(UnsafePath, match="outside the results folder"):  # a folder that leads out
        remove_file(root, root / "sw" / "linked" / "paper.pdf")
    (root / "sw" / "figures" / "b.png").symlink_to(victim / "thesis_plot.png")
    with pytest.raises(UnsafePath, match="not a regular file"):  # a link: neither it nor its target
        remove_file(root, root / "sw" / "figures" / "b.png")
    with pytest.raises(UnsafePath, match="not a regular file"):
        remove_file(root, root / "sw" / "figures")
    with pytest.raises(UnsafePath):
        remove_file(root, victim / "paper.pdf")
    assert (root / "sw" / "figures" / "b.png").is_symlink()
    assert sorted(p.name for p in victim.iterdir()) == ["index.html", "paper.pdf", "quality_vs_nfe_moons.png",
                                                       "thesis_plot.png"]


def test_make_dirs_checks_every_level_it_creates(tmp_path, victim):
    root = tmp_path / "out"
    made = make_dirs(root, root / "sw" / "tracking" / "tensorboard" / "models" / "m")
    assert made == (root / "sw/tracking/tensorboard/models/m").resolve() and made.is_dir()
    (root / "sw" / "tracking" / "tensorboard" / "cells").symlink_to(victim)
    with pytest.raises(UnsafePath, match="is a symlink to"):
        make_dirs(root, root / "sw" / "tracking" / "tensorboard" / "cells" / "c1")
    with pytest.raises(UnsafePath):
        make_dirs(root, tmp_path / "elsewhere")
    assert not (victim / "c1").exists() and not (tmp_path / "elsewhere").exists()


# -------------------------------------------------------------------- issue: figures deleted through a symlink
@pytest.mark.parametrize("figures", [["--no-figures"], []])
def test_report_through_a_symlinked_figures_folder_deletes_and_writes_nothing(work, victim, capsys, figures):
    sweep = work / "results" / SWEEP
    link_out(sweep / "figures", victim)
    before, outside = snapshot(sweep), snapshot(victim)
    assert main(["report", f"results/{SWEEP}", *figures]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert str(sweep / "figures") in line and f"is a symlink to {victim}" in line
    assert snapshot(victim) == outside and snapshot(sweep) == before


def test_run_with_a_symlinked_figures_folder_keeps_its_records_and_deletes_nothing(work, victim, capsys):
    sweep = work / "results" / SWEEP
    link_out(sweep / "figures", victim)
    records = sorted(os.listdir(sweep / "cells"))
    (sweep / "cells" / records[0]).unlink()  # one cell to run again
    outside = snapshot(victim)
    assert main(RUN) == 2
    line = one_error_line(capsys.readouterr().err)
    assert "the sweep finished and its records are kept" in line and str(sweep / "figures") in line
    assert snapshot(victim) == outside
    assert sorted(os.listdir(sweep / "cells")) == records  # the cell ran again and its record is written


def test_pack_into_a_dest_with_a_symlinked_figures_folder_deletes_nothing(work, victim, capsys):
    dest = work / "packs" / "tier"
    assert main(["pack", f"results/{SWEEP}", "packs/tier", "--no-figures"]) == 0  # an earlier pack, then its
    link_out(dest / "figures", victim)                                             # figures/ made a link out
    outside = snapshot(victim)
    assert main(["pack", f"results/{SWEEP}", "packs/tier", "--no-figures"]) == 2
    assert str(dest / "figures") in one_error_line(capsys.readouterr().err)
    assert snapshot(victim) == outside


def test_pack_refuses_a_folder_that_is_neither_empty_nor_a_pack(work, capsys):
    thesis = work / "thesis"
    (thesis / "figures").mkdir(parents=True)
    (thesis / "figures" / "my_plot.png").write_bytes(b"the user's own plot")
    (thesis / "index.html").write_text("<p>mine</p>")
    before = snapshot(thesis)
    assert main(["pack", f"results/{SWEEP}", "thesis", "--no-figures"]) == 2
    assert "neither empty nor an earlier pack" in one_error_line(capsys.readouterr().err)
    assert snapshot(thesis) == before
    assert main(["pack", f"results/{SWEEP}", "results", "--no-figures"]) == 2  # a results root is no pack either


def test_report_of_a_results_root_skips_a_sweep_folder_linked_out_of_it(work, tmp_path, capsys):
    elsewhere = tmp_path / "elsewhere"
    copy_project(work / "results" / SWEEP, elsewhere)
    (elsewhere / "figures" / "user_plot.png").write_bytes(b"the user's own plot")
    (work / "results" / "linked").symlink_to(elsewhere)
    before = snapshot(elsewhere)
    assert main(["report", "results", "--no-figures"]) == 0
    assert f"skipped {work / 'results' / 'linked'}" in capsys.readouterr().err
    assert snapshot(elsewhere) == before


# ---------------------------------------------------------------------------- issue: stale temps and user files
def test_stale_temp_cleanup_removes_odebench_temps_only_in_folders_odebench_owns(work, victim):
    out = work / "results"
    ours = [out / SWEEP / "cells" / ".3f2a.json.abcdefgh.tmp",  # named before the tag, in cells/
            out / SWEEP / "cells" / ".3f2a.json.odebench-k2j3ab_9.tmp",
            out / SWEEP / ".index.html.odebench-abcdefgh.tmp",
            out / SWEEP / ".leaderboard.md.abcdefgh.tmp",
            out / SWEEP / "figures" / ".samples_moons.png.a1b2c3d4.tmp",
            out / ".cache" / "models" / ".k.safetensors.odebench-zzzzzzzz.tmp",
            out / ".cache" / "transport_reference" / ".0123abcd.json.odebench-k2_x9q.tmp"]
    users = [out / ".thesis.docx.tmp", out / ".thesis.docx.abcdefgh.tmp", out / "sub" / ".data.csv.tmp",
             out / ".cache" / "transport_reference" / ".notes.txt.abcdefgh.tmp",
             out / "sub" / ".x.json.abcdefgh.tmp", out / "sub" / ".x.json.odebench-abcdefgh.tmp",
             out / SWEEP / ".thesis.docx.abcdefgh.tmp", out / SWEEP / "notes" / ".a.json.odebench-abcdefgh.tmp",
             out / SWEEP / "cells" / ".notes.txt.abcdefgh.tmp", out / "mine" / "cells" / ".a.json.abcdefgh.tmp"]
    link = out / SWEEP / "figures" / ".q.png.odebench-linklink.tmp"  # named like ours, but a link: never followed
    for p in ours + users:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"bytes")
    link.symlink_to(victim / "thesis_plot.png")
    old = time.time() - 3600
    for p in ours + users:
        os.utime(p, (old, old))
    os.utime(link, (old, old), follow_symlinks=False)
    removed = remove_stale_temps(out)
    assert sorted(removed) == sorted(ours)
    assert all(p.exists() for p in users) and link.is_symlink()
    assert (victim / "thesis_plot.png").read_bytes() == b"the user's own thesis_plot.png"


def test_a_run_removes_only_its_own_temps(work, capsys):
    out = work / "results"
    user = [out / ".thesis.docx.tmp", out / "sub" / ".data.csv.tmp"]
    ours = out / SWEEP / "cells" / ".ab.json.odebench-abcdefgh.tmp"
    for p in [*user, ours]:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"bytes")
        os.utime(p, (time.time() - 3600, time.time() - 3600))
    assert main(RUN) == 0
    assert all(p.read_bytes() == b"bytes" for p in user) and not ours.exists()


# --------------------------------------------------------------------------- issue: tracking through a symlink
@pytest.mark.skipif(not has_tensorboard(), reason="tensorboard is not installed (pip install 'odebench[tensorboard]')")
@pytest.mark.parametrize("where", ["tracking/tensorboard", "tracking/tensorboard/images"])
def test_tensorboard_refuses_a_folder_that_links_out_of_out(work, victim, capsys, where):
    sweep = work / "results" / SWEEP
    (sweep / where).parent.mkdir(parents=True, exist_ok=True)
    (sweep / where).symlink_to(victim)
    outside = snapshot(victim)
    assert main([*RUN, "--track", "tensorboard"]) == 0  # tracking never stops a run: the sink is dropped
    err = capsys.readouterr().err
    assert "tracking to tensorboard" in err and f"it leads to {victim}, outside the results folder" in err, err
    assert snapshot(victim) == outside and sorted(os.listdir(victim)) == sorted(outside)
