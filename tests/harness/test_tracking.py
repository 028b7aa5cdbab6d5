"""Tracking sinks (``--track`` / ``[track]``), read back with the real libraries from their local stores:
TensorBoard's event reader, MLflow's client on its file store, W&B's offline run file. Then what holds for any
sink: a missing library is one error naming the extra, a failing sink loses no record and changes no result,
and without tracking nothing is called at all."""

from __future__ import annotations

import importlib.util
import json
import struct
from pathlib import Path

import pytest
from harness_tiny import tiny_spec, to_toml

from odebench.bench.cli import main
from odebench.bench.harness.execution.run import run_sweep
from odebench.bench.harness.spec.sweep import parse_spec
from odebench.bench.harness.store.records import RecordStore
from odebench.bench.harness.tracking import Tracker
from odebench.bench.harness.tracking.base import scalar_params


def _missing(module: str) -> bool:
    return importlib.util.find_spec(module) is None


def _run(tmp_path: Path, *extra: str, **spec_extra) -> Path:
    raw = tiny_spec("tr", methods=[{"name": "fm_ot"}], solvers=[{"name": "euler", "nfe": [2, 4]}], **spec_extra)
    path = tmp_path / "tr.toml"
    path.write_text(to_toml(raw))
    out = tmp_path / "out"
    assert main(["run", "--spec", str(path), "--out", str(out), "--jobs", "1", "--no-progress", *extra]) == 0
    return out / "tr"


def _model_meta(sweep: Path) -> dict:
    [meta] = [json.loads(p.read_text()) for p in (sweep.parent / ".cache" / "models").glob("*.json")]
    return meta


@pytest.mark.skipif(_missing("tensorboard"),
                    reason="tensorboard is not installed (pip install 'odebench[tensorboard]')")
def test_tensorboard_event_files_hold_the_curves_metrics_config_and_figures(tmp_path, capsys):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    sweep = _run(tmp_path, "--track", "tensorboard")
    assert "tracking: tensorboard -> event files in" in capsys.readouterr().out
    logdir = sweep / "tracking" / "tensorboard"

    def events(run: str) -> EventAccumulator:
        acc = EventAccumulator(str(logdir / run), size_guidance={"scalars": 0, "images": 0, "tensors": 0})
        return acc.Reload()

    meta = _model_meta(sweep)
    model = events("models/fm_ot_on_moons_seed_0")
    train = model.Scalars("loss/train")
    assert [e.value for e in train] == pytest.approx(meta["losses"], rel=1e-6)
    assert train[-1].step == 30 and [e.step for e in train][:2] == [1, 2]  # 30 steps, one point per step
    held = model.Scalars("loss/heldout")
    assert [e.step for e in held] == meta["evidence"]["heldout"]["steps"]
    assert [e.value for e in held] == pytest.approx(meta["evidence"]["heldout"]["loss"], rel=1e-6)
    text = model.Tensors("model/text_summary")[0].tensor_proto.string_val[0].decode()
    assert f"(rule v{meta['evidence']['convergence']['rule_version']})" in text  # the version that judged

    records = {r["config"]["nfe"]: r for r in RecordStore(sweep).records()}
    curve = events("curves/moons/fm_ot/euler/seed0")
    expected = [(n, pytest.approx(records[n]["metrics"]["w2"], rel=1e-6)) for n in (2, 4)]
    assert [(e.step, e.value) for e in curve.Scalars("w2")] == expected
    assert [e.value for e in curve.Scalars("nfe")] == [2, 4]
    assert set(curve.Tags()["scalars"]) >= {"w2", "sliced_w", "nfe", "sample_seconds", "metric_seconds"}

    rec = records[4]
    cell = events(f"cells/{rec['cell_id']}")
    start = plugin_data_pb2.HParamsPluginData.FromString(
        cell.PluginTagToContent("hparams")["_hparams_/session_start_info"]).session_start_info
    assert start.hparams["train.steps"].number_value == 30 and start.hparams["method.name"].string_value == "fm_ot"
    assert set(start.hparams) == set(scalar_params(rec["config"])) | {"cell_id", "model_key", "status"}
    assert cell.Scalars("cell/w2")[0].value == pytest.approx(rec["metrics"]["w2"], rel=1e-6)

    figures = events("images").Tags()["images"]
    assert figures and all(t.startswith("figures/") for t in figures)  # moons: report figures, no sample sheets


@pytest.mark.skipif(_missing("mlflow"), reason="mlflow is not installed (pip install 'odebench[mlflow]')")
def test_mlflow_local_store_holds_a_run_per_model_and_per_cell(tmp_path):
    from mlflow.tracking import MlflowClient

    sweep = _run(tmp_path, track={"sinks": ["mlflow"]})  # from the spec's [track], no --track
    client = MlflowClient(tracking_uri=(sweep / "tracking" / "mlruns").resolve().as_uri())
    experiment = client.get_experiment_by_name("tr")
    runs = {r.info.run_name: r for r in client.search_runs([experiment.experiment_id])}
    meta = _model_meta(sweep)
    model = runs["train fm_ot on moons seed 0"]
    assert model.data.tags["model_key"] == meta["key"] and model.data.params["train.steps"] == "30"
    assert model.data.tags["convergence_rule"] == str(meta["evidence"]["convergence"]["rule_version"]) != "None"
    history = client.get_metric_history(model.info.run_id, "train_loss")
    assert [m.value for m in sorted(history, key=lambda m: m.step)] == pytest.approx(meta["losses"])
    held = sorted(client.get_metric_history(model.info.run_id, "heldout_loss"), key=lambda m: m.step)
    assert [m.step for m in held] == meta["evidence"]["heldout"]["steps"]
    for rec in RecordStore(sweep).records():
        run = runs[f"fm_ot moons euler@{rec['nfe']} seed 0"]
        assert run.data.params["cell_id"] == rec["cell_id"] and run.data.params["solver"] == "euler"
        assert run.data.params["eval.n_samples"] == "96" and run.data.tags["status"] == "ok"
        assert run.data.metrics["w2"] == pytest.approx(rec["metrics"]["w2"]) and run.data.metrics["nfe"] == rec["nfe"]
        assert run.data.metrics["sample_seconds"] == pytest.approx(rec["timings"]["sample_seconds"])
    figures = client.list_artifacts(runs["figures"].info.run_id, "figures")
    assert figures and all(f.path.startswith("figures/") for f in figures)


def _wandb_records(path: Path) -> list:
    """The records of a W&B offline run file (a LevelDB-style log of protobuf Records: 32 KiB blocks, 7-byte
    record headers (crc, length, type: 1 full, 2 first, 3 middle, 4 last), after a 7-byte file header)."""
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    assert data[:4] == b":W&B"
    pos, chunks, buf = 7, [], b""
    while pos + 7 <= len(data):
        if 32768 - pos % 32768 < 7:  # a block's tail too short for a header is padding
            pos += 32768 - pos % 32768
            continue
        _, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        part, pos = data[pos + 7:pos + 7 + length], pos + 7 + length
        if kind == 0:
            break
        buf = part if kind in (1, 2) else buf + part
        if kind in (1, 4):
            chunks.append(buf)
    out = []
    for chunk in chunks:
        record = wandb_internal_pb2.Record()
        record.ParseFromString(chunk)
        out.append(record)
    return out


@pytest.mark.skipif(_missing("wandb"), reason="wandb is not installed (pip install 'odebench[wandb]')")
def test_wandb_offline_run_holds_the_curves_and_the_cells(tmp_path):
    sweep = _run(tmp_path, "--track", "wandb")
    [path] = (sweep / "tracking" / "wandb").glob("wandb/offline-run-*/run-*.wandb")
    records = _wandb_records(path)
    history = [{i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in r.history.item}
               for r in records if r.WhichOneof("record_type") == "history"]
    meta = _model_meta(sweep)
    train = [h["fm_ot on moons seed 0/train_loss"] for h in history if "fm_ot on moons seed 0/train_loss" in h]
    assert train == pytest.approx(meta["losses"])
    by_nfe = {r["nfe"]: r for r in RecordStore(sweep).records()}
    cells = [h for h in history if "cells/moons/fm_ot/euler/seed0/w2" in h]
    assert [(h["nfe"], h["cells/moons/fm_ot/euler/seed0/w2"]) for h in cells] == [
        (n, pytest.approx(by_nfe[n]["metrics"]["w2"])) for n in (2, 4)]
    assert any(r.WhichOneof("record_type") == "run" and r.run.project == "tr" for r in records)


# ------------------------------------------------------------------------------------------ for any sink
def test_a_missing_library_is_one_error_naming_the_extra(tmp_path, capsys, monkeypatch):
    import importlib

    real = importlib.import_module

    def no_mlflow(name, *args):
        if name.split(".")[0] == "mlflow":
            raise ImportError(f"No module named {name!r}")
        return real(name, *args)

    monkeypatch.setattr(importlib, "import_module", no_mlflow)
    spec = tmp_path / "tr.toml"
    spec.write_text(to_toml(tiny_spec("tr")))
    for extra in ([], ["--dry-run"]):
        assert main(["run", "--spec", str(spec), "--track", "mlflow", "--out", str(tmp_path / "out"), *extra]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: --track mlflow needs the mlflow package") and "Traceback" not in err
        assert "pip install 'odebench[mlflow]'" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


class _Broken:
    name = "broken"

    def __init__(self):
        self.calls = []

    def model(self, event):
        self.calls.append("model")
        raise OSError("disk full")

    def cell(self, event):
        raise AssertionError("a dropped sink is not called again")

    def close(self):
        self.calls.append("close")


def _metrics(out: Path) -> dict:
    return {r["cell_id"]: (r["status"], r["nfe"], r["metrics"]) for r in RecordStore(out / "tr").records()}


def test_a_failing_sink_loses_no_record_and_changes_no_result(tmp_path):
    spec = parse_spec(tiny_spec("tr", methods=[{"name": "fm_ot"}, {"name": "rf", "k": 1}]))
    plain = run_sweep(spec, tmp_path / "a", progress=False)
    broken = _Broken()
    tracker = Tracker([broken])
    summary = run_sweep(spec, tmp_path / "b", progress=False, tracker=tracker)
    tracker.close()
    assert plain.status_counts == summary.status_counts == {"ok": 4}
    assert _metrics(tmp_path / "a") == _metrics(tmp_path / "b")  # bit for bit: tracking never touches a result
    assert broken.calls == ["model", "close"] and not tracker.sinks
    assert any("tracking to broken stopped (model: OSError: disk full)" in n for n in summary.notes)


def test_a_sink_that_cannot_start_is_a_note(tmp_path):
    def fails():
        raise RuntimeError("no such server")

    tracker = Tracker(openers={"mlflow": fails})
    summary = run_sweep(parse_spec(tiny_spec("tr")), tmp_path, progress=False, tracker=tracker)
    assert summary.status_counts == {"ok": 2}
    assert any("tracking to mlflow could not start (RuntimeError: no such server)" in n for n in summary.notes)


def test_a_dry_run_names_the_sinks_and_writes_nothing(tmp_path, capsys):
    spec = tmp_path / "tr.toml"
    spec.write_text(to_toml(tiny_spec("tr", track={"sinks": ["tensorboard"]})))
    if _missing("tensorboard"):
        pytest.skip("tensorboard is not installed")
    assert main(["run", "--spec", str(spec), "--out", str(tmp_path / "out"), "--dry-run"]) == 0
    assert "tracking: tensorboard (under" in capsys.readouterr().out
    assert main(["run", "--spec", str(spec), "--out", str(tmp_path / "out"), "--dry-run", "--track", "none"]) == 0
    assert "tracking:" not in capsys.readouterr().out and not (tmp_path / "out").exists()


@pytest.mark.skipif(_missing("tensorboard"), reason="tensorboard is not installed")
def test_an_image_cell_sends_its_sample_sheet(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    raw = tiny_spec("img", targets=("digits",), solvers=[{"name": "euler", "nfe": [2]}],
                    net={"name": "unet", "ch": 8, "ch_mult": [1], "num_res_blocks": 1, "attn_resolutions": []},
                    eval={"n_samples": 16, "metrics": ["fd"]})
    raw["train"]["steps"] = 4
    tracker_out = tmp_path / "out"
    path = tmp_path / "img.toml"
    path.write_text(to_toml(raw))
    assert main(["run", "--spec", str(path), "--out", str(tracker_out), "--jobs", "1", "--no-progress",
                 "--track", "tensorboard"]) == 0
    acc = EventAccumulator(str(tracker_out / "img" / "tracking" / "tensorboard" / "images"),
                           size_guidance={"images": 0}).Reload()
    [sheet] = [t for t in acc.Tags()["images"] if t.startswith("samples/")]
    assert sheet == "samples/digits/fm_ot/euler@2/seed0"
    image = acc.Images(sheet)[0]
    assert image.width >= 32 and image.height >= 32 and image.step == 2
