"""Resumable training: a run killed with SIGKILL and resumed ends as an uninterrupted one; a fit interrupted
after epoch k and resumed ends with the same weights (EMA, plateau schedule, counted popularity negatives,
a sequence model); what a checkpoint refuses (none, another run's, a damaged one)."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from zoo.data.match import MatchData
from zoo.data.protocol import get_protocol
from zoo.errors import ModelFileError, UsageError
from zoo.train.callbacks import Callback
from zoo.train.checkpoint import RESUME_FILE, EpochCheckpoints, decode_state, encode_state
from zoo.train.trainer import MatchTrainer
from zoo_plugins.dssm.model import DSSM
from zoo_plugins.gru4rec.model import GRU4Rec

EPOCHS = 6
RUN_ARGS = [
    "run",
    "dssm",
    "--param",
    "data.users=160",
    "--param",
    "data.items=80",
    "--param",
    "embed_dim=8",
    "--param",
    "dims=16,8",
    "--param",
    "dropout=0.1",
    "--param",
    f"patience={EPOCHS}",
    "--epochs",
    str(EPOCHS),
    "--batch-size",
    "64",
    "--device",
    "cpu",
    "--seed",
    "0",
    "--quiet",
]


def zoo(*args: str) -> list[str]:
    return [sys.executable, "-m", "zoo_cli.main", *args]


def cli_env() -> dict[str, str]:
    return dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")


def checkpoint_epoch(folder: Path) -> int:
    try:
        return int(json.loads((folder / RESUME_FILE).read_text())["epoch"])
    except (OSError, ValueError, KeyError):
        return 0


def test_a_killed_run_resumed_ends_like_an_uninterrupted_one(tmp_path):
    env = cli_env()
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    done = subprocess.run(zoo(*RUN_ARGS, "--out", str(whole)), capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr

    sibling = tmp_path / ".cut.checkpoints"
    proc = subprocess.Popen(
        zoo(*RUN_ARGS, "--out", str(cut)), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env
    )
    deadline = time.monotonic() + 300
    try:
        while checkpoint_epoch(sibling) < 2:
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
            assert time.monotonic() < deadline, "no checkpoint of epoch 2 appeared"
            time.sleep(0.01)
        os.kill(proc.pid, signal.SIGKILL)  # a real kill -9: no exception handler, no cleanup
    finally:
        proc.wait(timeout=60)
        if proc.stderr:
            proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    killed_at = checkpoint_epoch(sibling)
    assert 2 <= killed_at < EPOCHS and not (cut / "run.json").exists()

    resumed = subprocess.run(
        zoo(*RUN_ARGS, "--out", str(cut), "--resume"), capture_output=True, text=True, env=env
    )
    assert resumed.returncode == 0, resumed.stderr
    expected = json.loads((whole / "run.json").read_text())
    got = json.loads((cut / "run.json").read_text())
    for evaluator, metrics in expected["metrics"].items():
        assert metrics.keys() == got["metrics"][evaluator].keys()
        for name, value in metrics.items():
            assert round(got["metrics"][evaluator][name], 4) == round(value, 4), (evaluator, name)
    history, resumed_history = expected["training"]["history"], got["training"]["history"]
    assert [h["epoch"] for h in resumed_history] == list(range(1, EPOCHS + 1))
    assert [round(h["loss"], 4) for h in resumed_history] == [round(h["loss"], 4) for h in history]
    assert [h["valid"] for h in resumed_history] == [h["valid"] for h in history]
    assert got["training"]["best_epoch"] == expected["training"]["best_epoch"]
    # the checkpoint moved into the committed run folder; the hidden sibling is gone
    assert not sibling.exists() and checkpoint_epoch(cut / "checkpoints") == EPOCHS
    assert checkpoint_epoch(whole / "checkpoints") == EPOCHS


# -- the Python API -------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def data(tiny_interactions) -> MatchData:
    return MatchData.from_interactions(tiny_interactions, get_protocol("loo"))


class Interrupt(Exception):
    pass


class StopAfter(Callback):
    """Raise after epoch ``epochs`` (1-based) ends, as a crash would."""

    def __init__(self, epochs: int) -> None:
        self.epochs = epochs

    def on_epoch_end(self, trainer, epoch, logs):
        if epoch + 1 == self.epochs:
            raise Interrupt


def dssm_trainer(data: MatchData, callbacks=(), **settings) -> MatchTrainer:
    torch.manual_seed(0)
    model = DSSM.from_schema(data.schema, embed_dim=8, dims=[16, 8], dropout=0.1)
    model.set_item_table(data.item_table)
    settings = {
        "n_epoch": 5,
        "earlystop_patience": 5,
        "optimizer_params": {"lr": 0.01},
        "mode": 2,
        "negatives": "popularity",  # drawn by the trainer's generator from counted frequencies
        "seed": 0,
        **settings,
    }
    return MatchTrainer(model, device="cpu", model_path=None, verbose=False, callbacks=callbacks, **settings)


def assert_same_fit(reference: MatchTrainer, resumed: MatchTrainer) -> None:
    for name, value in reference.model.state_dict().items():
        assert torch.equal(value, resumed.model.state_dict()[name]), name
    drop = ("seconds",)
    assert [{k: v for k, v in h.items() if k not in drop} for h in resumed.history] == [
        {k: v for k, v in h.items() if k not in drop} for h in reference.history
    ]
    assert (resumed.best_epoch, resumed.best_score, resumed.stop_reason) == (
        reference.best_epoch,
        reference.best_score,
        reference.stop_reason,
    )
    ref_opt, res_opt = reference.optimizer.state_dict(), resumed.optimizer.state_dict()
    assert ref_opt["param_groups"] == res_opt["param_groups"]
    for key, state in ref_opt["state"].items():
        for name, value in state.items():
            assert torch.equal(value, res_opt["state"][key][name]), (key, name)


def test_ema_and_plateau_fit_resumes_to_the_same_weights(data, tmp_path):
    settings = {
        "ema_decay": 0.9,
        "lr_schedule": "plateau",
        "lr_patience": 1,
        "lr_factor": 0.5,
        "optimizer_params": {"lr": 0.05},
    }
    valid = data.ranking_task("valid")
    reference = dssm_trainer(data, **settings)
    reference.fit(data.train_batches(64, seed=0), valid)  # no checkpoints: they change nothing
    assert [h["lr"] for h in reference.history] == [0.05, 0.05, 0.05, 0.025, 0.025]  # epoch 3 was worse

    interrupted = dssm_trainer(data, callbacks=[StopAfter(5)], **settings)
    with pytest.raises(Interrupt):
        interrupted.fit(data.train_batches(64, seed=0), valid, checkpoint_dir=tmp_path / "ckpt")
    assert checkpoint_epoch(tmp_path / "ckpt") == 4  # epoch 5's checkpoint comes after its callbacks

    resumed = dssm_trainer(data, **settings)
    history = resumed.fit(
        data.train_batches(64, seed=0), valid, resume=True, checkpoint_dir=tmp_path / "ckpt"
    )
    assert len(history) == 5 and checkpoint_epoch(tmp_path / "ckpt") == 5
    assert_same_fit(reference, resumed)
    assert resumed._ema is not None and resumed._ema.steps == reference._ema.steps
    assert resumed.scheduler.state_dict() == reference.scheduler.state_dict()
    assert torch.equal(resumed.item_counts, reference.item_counts)  # counted as the batches passed

    # resuming the finished fit runs no epoch and keeps the same best weights
    again = dssm_trainer(data, callbacks=[StopAfter(1)], **settings)
    again.fit(data.train_batches(64, seed=0), valid, resume=True, checkpoint_dir=tmp_path / "ckpt")
    assert_same_fit(reference, again)


def test_a_sequence_model_resumes_to_the_same_weights(data, tmp_path):
    def build(callbacks=()) -> tuple[MatchTrainer, object]:
        torch.manual_seed(0)
        model = GRU4Rec.from_schema(data.schema, embed_dim=8, hidden_size=8, dims=[8], dropout=0.2)
        model.set_item_table(data.item_table)
        trainer = MatchTrainer(
            model,
            mode=2,
            negatives="full",
            n_epoch=3,
            optimizer_params={"lr": 0.01},
            item_counts=data.item_counts,
            seed=0,
            device="cpu",
            model_path=None,
            verbose=False,
            callbacks=callbacks,
        )
        return trainer, data.training_batches(model, 128, seed=0)

    reference, batches = build()
    reference.fit(batches, data.ranking_task("valid"))
    interrupted, batches = build([StopAfter(2)])
    with pytest.raises(Interrupt):
        interrupted.fit(batches, data.ranking_task("valid"), checkpoint_dir=tmp_path)
    resumed, batches = build()
    resumed.fit(batches, data.ranking_task("valid"), resume=True, checkpoint_dir=tmp_path)
    assert_same_fit(reference, resumed)


def test_what_resuming_refuses(data, tmp_path):
    batches = data.train_batches(256, seed=0)
    with pytest.raises(UsageError, match="needs checkpoint_dir"):
        dssm_trainer(data).fit(batches, resume=True)
    with pytest.raises(UsageError, match="no checkpoint to resume from"):
        dssm_trainer(data).fit(batches, resume=True, checkpoint_dir=tmp_path)
    dssm_trainer(data, n_epoch=1).fit(batches, checkpoint_dir=tmp_path)
    with pytest.raises(
        UsageError, match=r"another training run \(trainer\.lr: checkpoint 0\.01, now 0\.02\)"
    ):
        dssm_trainer(data, n_epoch=1, optimizer_params={"lr": 0.02}).fit(
            batches, resume=True, checkpoint_dir=tmp_path
        )
    with pytest.raises(UsageError, match=r"run\.dataset: not set in the checkpoint, now \"other\""):
        dssm_trainer(data, n_epoch=1).fit(
            batches, resume=True, checkpoint_dir=tmp_path, fingerprint={"dataset": "other"}
        )
    state = next(tmp_path.glob("state-*.safetensors"))
    state.write_bytes(state.read_bytes()[:-8])
    with pytest.raises(ModelFileError, match="truncated or corrupted"):
        dssm_trainer(data, n_epoch=1).fit(batches, resume=True, checkpoint_dir=tmp_path)
    # a fresh fit replaces the damaged checkpoint and leaves other files alone
    (tmp_path / "notes.txt").write_text("mine")
    dssm_trainer(data, n_epoch=1).fit(batches, checkpoint_dir=tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [RESUME_FILE, "notes.txt", "state-0001.safetensors"]


def test_state_encoding_round_trips_exactly():
    value = {
        "state": {0: {"step": torch.tensor(3.0), "exp_avg": torch.randn(4)}},
        "groups": [{"betas": (0.9, 0.999), "lr": 0.1, "params": [0]}],
        "best": -math.inf,
        "none": None,
    }
    tensors: dict[str, torch.Tensor] = {}
    encoded = json.loads(json.dumps(encode_state(value, "optimizer", tensors), allow_nan=False))
    decoded = decode_state(encoded, tensors)
    assert decoded["groups"] == value["groups"] and decoded["best"] == -math.inf and decoded["none"] is None
    assert list(decoded["state"]) == [0] and torch.equal(
        decoded["state"][0]["exp_avg"], value["state"][0]["exp_avg"]
    )
    with pytest.raises(TypeError, match="cannot store a function"):
        encode_state({"f": lambda: 0}, "scheduler", {})
    assert not EpochCheckpoints(Path("nowhere"), {}).exists()


# -- zoo run --resume ------------------------------------------------------------------------------------
def test_zoo_run_resume_errors_and_stale_checkpoints(tmp_path):
    from zoo.pipeline import RunConfig, run

    def config(**changes) -> RunConfig:
        base = dict(
            model="dssm",
            dataset_options={"users": 120, "items": 60},
            params={"embed_dim": 8, "dims": [16, 8]},
            epochs=2,
            device="cpu",
            out=str(tmp_path / "run"),
        )
        return RunConfig(**{**base, **changes})

    with pytest.raises(UsageError, match="--resume: no checkpoint to continue"):
        run(config(resume=True))
    with pytest.raises(UsageError, match="same --out"):
        run(config(resume=True, out=None))
    stale = tmp_path / ".run.checkpoints"
    stale.mkdir()
    (stale / RESUME_FILE).write_text("{}")
    first = run(config())  # without --resume a stale checkpoint folder is replaced
    assert not stale.exists() and checkpoint_epoch(tmp_path / "run" / "checkpoints") == 2
    # a finished run resumes from its committed checkpoints: no epoch runs, same result
    again = run(config(resume=True))
    assert again.metrics == first.metrics and again.training["history"] == first.training["history"]
    with pytest.raises(UsageError, match=r"params\.embed_dim: checkpoint 8, now 16"):
        run(config(resume=True, params={"embed_dim": 16, "dims": [16, 8]}))
