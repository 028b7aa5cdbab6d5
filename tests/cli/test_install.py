"""A lean install: the README shows the CPU build of torch for a machine without a GPU, `[dev]` holds the test
tools only (Ray is its own extra), CI installs what its tests need, and the Ray tests skip without Ray."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from odebench.bench.harness.spec.sweep import tomllib  # tomli before Python 3.11

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


def test_ci_installs_as_the_readme_says_into_a_fresh_venv_then_the_extras_its_tests_use():
    ci = (ROOT / ".ci" / "run").read_text()
    readme = (ROOT / "README.md").read_text()
    fresh = readme.split("## On a fresh machine")[1].split("\n## ")[0]
    steps = ["python3 -m venv", "pip install -q torch --index-url https://download.pytorch.org/whl/cpu",
             "pip install -q -e '.[dev]'", "python3 -m pytest --collect-only",
             "pip install -q -e '.[dev,ray,adapters,tensorboard]'", "pip install -q --no-deps 'torchcfm>=1.0.7'",
             "python3 -m pytest -n auto\n"]
    at = [ci.index(step) for step in steps]
    assert at == sorted(at)  # in this order: the README's install and a collection of the suite come first
    for line in ("pip install torch --index-url https://download.pytorch.org/whl/cpu", "pip install -e '.[dev]'"):
        assert line in fresh and line.replace("pip install", "pip install -q") in ci  # the README's own lines
    assert "python3 -m pytest -n auto\n" in fresh  # the README's test command is the one CI runs


ENTRY_REQUIREMENT = re.compile(r"[<>=!~ ;\[]")
#: extras whose tests skip without them (pytest.importorskip / skipif), by the module the tests import
OPTIONAL = {"ray": "ray", "diffusers": "diffusers", "torchcfm": "torchcfm", "flow_matching": "flow_matching",
            "tensorboard": "tensorboard", "mlflow": "mlflow", "wandb": "wandb", "cleanfid": "clean-fid"}


def _test_imports() -> set[str]:
    """The top-level modules the test files import (absolute imports only)."""
    import ast

    names = set()
    for path in (ROOT / "tests").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return names


def test_dev_extra_installs_every_module_the_tests_import():
    """After `pip install -e '.[dev]'` the suite must collect and run: every third-party module a test imports is
    a dependency of odebench or of [dev], or an optional extra whose tests skip without it."""
    from importlib.metadata import packages_distributions

    def norm(name: str) -> str:
        return re.sub(r"[-_.]+", "-", name).lower()

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    installed = {norm(ENTRY_REQUIREMENT.split(d)[0]) for d in project["dependencies"] + extras()["dev"]}
    installed |= {"pytest"}  # the test runner itself
    dists = packages_distributions()
    missing = {}
    for module in sorted(_test_imports() - set(sys.stdlib_module_names) - {"odebench"} - set(OPTIONAL)):
        names = {norm(d) for d in dists.get(module, [])}
        if names and not names & installed:  # a module no distribution provides is one of the tests' own
            missing[module] = sorted(names)
    assert not missing, f"imported by tests but installed by no dependency of odebench or [dev]: {missing}"


def test_the_adapters_extra_keeps_the_installed_torch_build():
    """`pip install -e '.[adapters]'` must not replace a CPU torch: no package of the extra may pull in torchvision
    (which pins a torch release) or TorchCFM (which pulls in torchdyn -> torchvision); TorchCFM is installed with
    --no-deps, as the README says and CI does, and CI checks that torch is the same build afterwards."""
    from importlib.metadata import PackageNotFoundError, requires

    names = {ENTRY_REQUIREMENT.split(d)[0].lower() for d in extras()["adapters"]}
    assert "torchcfm" not in names and "torchvision" not in names
    for name in names:
        try:
            needs = [r for r in requires(name) or [] if "extra ==" not in r]
        except PackageNotFoundError:
            continue
        assert not [r for r in needs if ENTRY_REQUIREMENT.split(r)[0].lower() in ("torchvision", "torchdyn",
                                                                                   "lightning", "torchcfm")], name
    readme = (ROOT / "README.md").read_text()
    assert "pip install -e '.[adapters]'" in readme and "pip install --no-deps 'torchcfm>=1.0.7'" in readme
    ci = (ROOT / ".ci" / "run").read_text()
    assert 'if [ "$after" != "$torch_build" ]' in ci  # the build before the extras is the build after them


def test_each_tracking_sink_is_an_extra_and_track_is_all_of_them():
    names = {extra: {re.split(r"[<>=!~ ;\[]", d)[0].lower() for d in deps} for extra, deps in extras().items()}
    assert names["tensorboard"] == {"tensorboard"} and names["mlflow"] == {"mlflow-skinny"}
    assert names["wandb"] == {"wandb"} and names["track"] == names["tensorboard"] | names["mlflow"] | names["wandb"]


def _without_optional_extras(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess:
    """pytest ARGS in a Python where no optional extra can be imported (as after `pip install -e '.[dev]'`)."""
    block = "".join(f"sys.modules[{m!r}] = None; " for m in OPTIONAL)  # `import m` then raises ImportError
    code = f"import sys; {block}import pytest; sys.exit(pytest.main({args!r}))"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=1200)


@pytest.mark.slow
def test_the_suite_collects_and_the_extras_tests_skip_cleanly_without_the_extras(tmp_path):
    """With only [dev]: the whole suite collects without an error, and the tests of Ray, the peers, the tracking
    sinks and clean-fid skip, none fails (.ci/run checks the same in a fresh virtual environment)."""
    proc = _without_optional_extras(["--collect-only", "-p", "no:cacheprovider"], tmp_path)  # -q: addopts
    last = [line for line in proc.stdout.splitlines() if line.strip()][-1]
    assert proc.returncode == 0 and "ERROR collecting" not in proc.stdout, proc.stdout[-3000:] + proc.stderr
    assert re.fullmatch(r"\d+ tests collected in [\d.]+s", last), last
    proc = _without_optional_extras(["-q", "-rs", "-p", "no:cacheprovider", "-k", "ray or diffusers or fid or "
                                     "tensorboard or mlflow or wandb", "tests/adapters",
                                     "tests/benchmarks/test_bench_train.py", "tests/harness/test_harness.py",
                                     "tests/harness/test_tracking.py", "tests/core/test_multistep.py",
                                     "tests/metrics/test_fid.py"], tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr
    skipped = proc.stdout.split("short test summary info")[1]
    for module in ("ray", "diffusers", "flow_matching", "torchcfm", "tensorboard", "mlflow", "wandb", "cleanfid"):
        assert module in skipped.lower(), (module, skipped)
    assert "failed" not in proc.stdout


def test_the_adapters_extra_names_the_peers_and_ci_installs_them():
    names = {re.split(r"[<>=!~ ;\[]", d)[0].lower() for d in extras()["adapters"]}
    assert names == {"flow_matching", "diffusers"}  # TorchCFM in a second step, with --no-deps
    ci = (ROOT / ".ci" / "run").read_text()
    assert "pip install -q --no-deps 'torchcfm>=1.0.7'" in ci and "'.[dev,ray,adapters,tensorboard]'" in ci
