"""zoo run's pipeline: report contents, run directory, reproducibility, hooks, quality vs popularity."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from zoo import hookimpl
from zoo.errors import DeviceError, UnknownNameError, UsageError
from zoo.pipeline import RunConfig, run
from zoo.plugins import PluginManager
from zoo.registry import Registry
from zoo_cli.params import parse_param_value, parse_params

SMALL = {"users": 300, "items": 120, "categories": 6, "mean_length": 18, "seed": 7}


def small_config(tmp_path, **changes) -> RunConfig:
    base = dict(
        model="dssm",
        retriever="hnsw",
        dataset_options=dict(SMALL),
        epochs=2,
        device="cpu",
        params={"embed_dim": 8, "dims": [16, 8]},
        out=str(tmp_path / "run"),
    )
    base.update(changes)
    return RunConfig(**base)


def test_run_writes_a_complete_run_directory(tmp_path):
    report = run(small_config(tmp_path))
    run_dir = tmp_path / "run"
    assert report.run_dir == str(run_dir)
    for name in (
        "run.json",
        "model/model.json",
        "model/weights.safetensors",
        "model/vocab.json",
        "index/index.json",
    ):
        assert (run_dir / name).is_file(), name
    saved = json.loads((run_dir / "run.json").read_text())
    assert saved["metrics"]["exact"]["hitrate@10"] == report.metrics["exact"]["hitrate@10"]
    for evaluator in ("exact", "retriever", "popularity"):
        assert set(report.metrics[evaluator]) >= {
            "hitrate@10",
            "ndcg@50",
            "mrr@10",
            "recall@50",
            "precision@10",
        }
    card = report.protocol
    assert card["protocol"] == "loo" and "masking" in card and "split" in card and "candidates" in card
    assert card["dataset"] == "synthetic"
    assert report.retriever["name"] == "hnsw" and report.retriever["recall_vs_exact"]["recall@10"] >= 0.95
    assert report.training["epochs_run"] <= 2 and report.training["samples_per_s"] > 0
    assert {"load_s", "prepare_s", "train_s", "index_build_s", "index_query_s"} <= set(report.timings)
    assert report.versions["recall-zoo"] and report.versions["torch"] and report.versions["hnsw"]


def test_saved_model_and_index_reload(tmp_path):
    from zoo.data.encoder import FeatureEncoder
    from zoo.models import load_model
    from zoo_plugins.hnsw.retriever import HnswRetriever

    run(small_config(tmp_path))
    model = load_model(tmp_path / "run" / "model").eval()
    index = HnswRetriever.load(tmp_path / "run" / "index")
    vocab = FeatureEncoder.load(tmp_path / "run" / "model" / "vocab.json")
    catalogue = torch.arange(2, vocab.item_vocab)
    with torch.no_grad():
        items = model.item_vectors(catalogue).numpy()
    ids, scores = index.query(items[:5], topk=1)
    # An item's own vector finds itself first: the reloaded model and the saved index agree.
    assert ids[:, 0].tolist() == catalogue[:5].tolist()
    np.testing.assert_allclose(scores[:, 0], 1.0, atol=1e-4)


def test_same_seed_same_metrics_and_weights(tmp_path):
    first = run(small_config(tmp_path / "a", out=str(tmp_path / "a")))
    second = run(small_config(tmp_path / "b", out=str(tmp_path / "b")))
    assert first.metrics["exact"] == second.metrics["exact"]
    assert (tmp_path / "a" / "model" / "weights.safetensors").read_bytes() == (
        tmp_path / "b" / "model" / "weights.safetensors"
    ).read_bytes()
    third = run(small_config(tmp_path / "c", out=str(tmp_path / "c"), seed=1))
    assert (tmp_path / "c" / "model" / "weights.safetensors").read_bytes() != (
        tmp_path / "a" / "model" / "weights.safetensors"
    ).read_bytes()
    assert third.config["seed"] == 1


def test_dssm_clearly_beats_popularity_on_synthetic(tmp_path):
    config = RunConfig(
        model="dssm",
        retriever="exact",
        device="cpu",
        epochs=6,
        save=False,
        dataset_options={"users": 800, "items": 300, "categories": 12, "mean_length": 20, "seed": 3},
    )
    report = run(config)
    model, popularity = report.metrics["exact"], report.metrics["popularity"]
    assert model["hitrate@10"] > 2 * popularity["hitrate@10"]
    assert model["ndcg@10"] > 2 * popularity["ndcg@10"]
    assert report.metrics["retriever"] == model  # the exact retriever reproduces exact search


def test_lr_schedule_param_reaches_the_trainer(tmp_path):
    params = {"embed_dim": 8, "dims": [16, 8], "lr": 0.01, "lr_schedule": "cosine"}
    report = run(small_config(tmp_path, save=False, epochs=3, params=params))
    rates = [epoch["lr"] for epoch in report.training["history"]]
    assert rates == pytest.approx([0.01, 0.0075, 0.0025])  # cosine over 3 epochs


def test_unmasked_protocol_is_recorded_and_used(tmp_path):
    masked = run(small_config(tmp_path, save=False))
    unmasked = run(small_config(tmp_path, save=False, mask_seen=False))
    assert unmasked.protocol["protocol"] == "loo+custom"
    assert unmasked.protocol["masking"].startswith("none")
    # On a log without repeats, masking seen items can only help the ranking.
    assert masked.metrics["exact"]["hitrate@50"] >= unmasked.metrics["exact"]["hitrate@50"]


def test_protocol_overrides_filter_the_data(tmp_path):
    report = run(small_config(tmp_path, save=False, protocol_overrides={"min_rating": 4, "user_core": 5}))
    card = report.protocol
    assert card["protocol"] == "loo+custom"
    assert card["filters"]["min_rating"] == 4 and card["filters"]["user_core"] == 5
    assert card["removed"]["below_min_rating"] > 0
    with pytest.raises(UsageError, match="protocol"):
        run(small_config(tmp_path, save=False, protocol_overrides={"no_such": 1}))


def test_run_finished_hook_receives_the_report(tmp_path):
    seen = []

    class Sink:
        @hookimpl
        def zoo_run_finished(self, report):
            seen.append(report)

    class Broken:
        @hookimpl
        def zoo_run_finished(self, report):
            raise RuntimeError("sink down")

    manager = PluginManager()
    manager.register(Sink(), name="sink")
    manager.register(Broken(), name="broken")
    report = run(small_config(tmp_path, save=False), registry=Registry(manager))
    assert seen == [report]
    assert any("broken" in line and "sink down" in line for line in report.warnings)


def test_names_and_device_fail_before_any_work(tmp_path):
    with pytest.raises(UnknownNameError, match="Did you mean 'dssm'"):
        run(small_config(tmp_path, model="dsm"))
    with pytest.raises(UnknownNameError, match="hnsw"):
        run(small_config(tmp_path, retriever="hnws"))
    with pytest.raises(UnknownNameError, match="synthetic"):
        run(small_config(tmp_path, dataset="synthetc"))
    if not torch.cuda.is_available():
        with pytest.raises(DeviceError, match="no CUDA device"):
            run(small_config(tmp_path, device="cuda"))
    with pytest.raises(UsageError, match="mode"):
        run(small_config(tmp_path, params={"mode": 5}))
    with pytest.raises(UsageError, match="unexpected keyword|--param"):
        run(small_config(tmp_path, params={"no_such_param": 1}))
    assert not (tmp_path / "run").exists()


def test_param_parsing():
    assert parse_param_value("0.05") == 0.05
    assert parse_param_value("[128, 64]") == [128, 64]
    assert parse_param_value("128,64") == [128, 64]
    assert parse_param_value("true") is True
    assert parse_param_value("inbatch") == "inbatch"
    model, retriever, data, protocol = parse_params(
        ["temperature=0.1", "retriever.ef=128", "data.users=50", "model.dims=32,16", "protocol.min_rating=4"]
    )
    assert (
        model == {"temperature": 0.1, "dims": [32, 16]} and retriever == {"ef": 128} and data == {"users": 50}
    )
    assert protocol == {"min_rating": 4}
    with pytest.raises(UsageError, match="key=value"):
        parse_params(["temperature"])


def test_long_steps_report_progress(tmp_path):
    """Embedding reports every user and item row it embeds; the index build is a task too (a spinner
    in the CLI), so a long step never looks like a hang."""
    import contextlib

    from zoo.pipeline import Progress

    class Recorder(Progress):
        def __init__(self) -> None:
            self.tasks: list[list] = []

        @contextlib.contextmanager
        def task(self, name, total=None):
            record = [name, total, 0]
            self.tasks.append(record)

            def advance(done: int) -> None:
                record[2] += done

            yield advance

    recorder = Recorder()
    report = run(small_config(tmp_path, retriever="exact"), progress=recorder)
    embed_task, index_task = recorder.tasks
    users, items = report.data["users"], report.data["items"]
    assert embed_task[0] == f"embed {users:,} users and {items:,} items"  # every user is a test user here
    assert embed_task[1] == embed_task[2] == users + items
    assert index_task[0].startswith("build the exact index") and index_task[1] is None
