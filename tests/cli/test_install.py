"""A lean install: the README shows the CPU build of torch for a machine without a GPU, `[dev]` holds the test
tools only (Ray is its own extra), CI installs what its tests need, and the Ray tests skip without Ray."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from odebench.bench.harness.spec import tomllib  # tomli before Python 3.11

ROOT = Path(__file__).resolve().parents[2]


def extras() -> dict[str, list[str]]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]


def test_dev_extra_does_not_pull_ray():
    assert not [d for d in extras()["dev"] if d.lower().startswith("ray")]
    assert [d for d in extras()["ray"] if d.lower().startswith("ray")]


def test_readme_fresh_machine_installs_the_cpu_build_of_torch_first():
    readme = (ROOT / "README.md").read_text()
    fresh = readme.split("## On a fresh machine")[1].split("\n## ")[0]
    cpu = fresh.index("pip install torch --index-url https://download.pytorch.org/whl/cpu")
    assert cpu < fresh.index("pip install -e '.[dev]'")
    assert "with an NVIDIA GPU: pip install torch" in fresh  # and the CUDA build where there is a GPU
    assert "1.5 GB" in fresh  # the measured size of the CPU route's environment


def test_ci_installs_as_the_readme_says_plus_the_extras_its_tests_use():
    ci = (ROOT / ".ci" / "run").read_text()
    assert "--index-url https://download.pytorch.org/whl/cpu" in ci
    assert "pip install -q -e '.[dev,ray,peers,tensorboard]'" in ci  # tensorboard: the tracking tests' reader


def test_each_tracking_sink_is_an_extra_and_track_is_all_of_them():
    names = {extra: {re.split(r"[<>=!~ ;\[]", d)[0].lower() for d in deps} for extra, deps in extras().items()}
    assert names["tensorboard"] == {"tensorboard"} and names["mlflow"] == {"mlflow-skinny"}
    assert names["wandb"] == {"wandb"} and names["track"] == names["tensorboard"] | names["mlflow"] | names["wandb"]


@pytest.mark.slow
def test_ray_tests_skip_cleanly_without_ray(tmp_path):
    """A `ray` that cannot be imported (as after `pip install -e '.[dev]'`): the Ray tests skip, none fails."""
    (tmp_path / "ray").mkdir()
    (tmp_path / "ray" / "__init__.py").write_text('raise ModuleNotFoundError("No module named \'ray\' (test)")\n')
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)]), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "pytest", "-rs", "-p", "no:cacheprovider", "-k", "ray",
                           "tests/harness/test_harness.py"], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SKIPPED" in proc.stdout and "could not import 'ray'" in proc.stdout and "failed" not in proc.stdout


def test_the_adapters_extra_names_the_peers_and_ci_installs_them():
    assert {re.split(r"[<>=!~ ;\[]", d)[0].lower() for d in extras()["adapters"]} == {"torchcfm", "flow_matching",
                                                                                        "diffusers"}
    ci = (ROOT / ".ci" / "run").read_text()
    assert "pip install -q --no-deps 'torchcfm>=1.0.7' 'flow_matching>=1.0.10'" in ci  # diffusers: the peers extra
