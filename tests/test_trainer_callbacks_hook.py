"""Trainer callbacks from plugins (issue "Everyday use", item 2): a third-party plugin's callback sees
every epoch's validation metric of a `zoo run`; a raising one is switched off with a warning; the
built-in TensorBoard logger writes event files when ZOO_TENSORBOARD_DIR is set."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from zoo_cli.main import build_app

TINY = ["--param", "data.users=120", "--param", "data.items=60", "--param", "embed_dim=8",
        "--param", "dims=16,8", "--batch-size", "128", "--epochs", "3", "--param", "patience=5",
        "--device", "cpu", "--quiet"]  # fmt: skip

RECORDER = """
import json, os
from zoo import hookimpl
from zoo.train.callbacks import Callback


class Recorder(Callback):
    def on_epoch_end(self, trainer, epoch, logs):
        with open(os.environ["RECORD_TO"], "a") as fh:
            fh.write(json.dumps({"epoch": logs["epoch"], "metric": logs.get("valid_metric"),
                                 "valid": logs.get("valid")}) + "\\n")


class Broken(Callback):
    def on_batch_end(self, trainer, step, loss):
        raise ConnectionError("tracker unreachable")


@hookimpl
def zoo_trainer_callbacks(config):
    return [Recorder(), Broken()] if config.model == "dssm" else None
"""


def test_a_plugin_callback_sees_every_epochs_validation_metric(tmp_path: Path, monkeypatch) -> None:
    plugin = tmp_path / "recorder.py"
    plugin.write_text(RECORDER)
    record = tmp_path / "epochs.jsonl"
    monkeypatch.setenv("RECORD_TO", str(record))
    result = CliRunner().invoke(
        build_app(),
        ["--plugin", str(plugin), "run", "dssm", *TINY, "--format", "json", "--out", str(tmp_path / "r")],
    )
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    seen = [json.loads(line) for line in record.read_text().splitlines()]
    history = report["training"]["history"]
    assert [s["epoch"] for s in seen] == [h["epoch"] for h in history] == [1, 2, 3]
    assert [s["valid"] for s in seen] == pytest.approx([h["valid"] for h in history])
    assert {s["metric"] for s in seen} == {"recall@50"}
    # the broken tracker was switched off with one warning line, and the run finished
    assert (
        result.stderr.count("Broken callback on_batch_end raised ConnectionError: tracker unreachable") == 1
    )


def test_tensorboard_logger_writes_event_files(tmp_path: Path, monkeypatch) -> None:
    pytest.importorskip(
        "tensorboard", reason='the TensorBoard logger needs it: pip install "recall-zoo[tensorboard]"'
    )
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    monkeypatch.setenv("ZOO_TENSORBOARD_DIR", str(tmp_path / "tb"))
    result = CliRunner().invoke(build_app(), ["run", "dssm", *TINY, "--out", str(tmp_path / "r")])
    assert result.exit_code == 0, result.stderr
    (log_dir,) = (tmp_path / "tb").iterdir()
    events = EventAccumulator(str(log_dir))
    events.Reload()
    scalars = events.Tags()["scalars"]
    assert {"train/loss", "train/lr", "valid/recall@50", "train/batch_loss"} <= set(scalars)
    assert [e.step for e in events.Scalars("valid/recall@50")] == [1, 2, 3]
