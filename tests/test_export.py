"""zoo.export and ``zoo export``: the user tower in ONNX (every model family, checked with onnxruntime
against the torch tower on batch sizes and history lengths the export never saw), item vectors in
Parquet and safetensors, the manifest, the output folder rules and MatchTrainer.export_onnx."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from zoo.errors import UsageError
from zoo.export import ONNXExporter, check_export_folder, export_run

ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

HISTORY = 8
#: model -> params; one per model and family: two-tower, sequential, multi-interest
MODELS = {
    "dssm": {"embed_dim": 8, "dims": [16, 8]},
    "youtubednn": {"embed_dim": 8},
    "gru4rec": {"embed_dim": 8, "hidden_size": 8, "dims": [8]},
    "sasrec": {"embed_dim": 8, "num_blocks": 1},
    "mind": {"embed_dim": 8, "interest_num": 3},
    "comirec-sa": {"embed_dim": 8, "interest_num": 3},
    "comirec-dr": {"embed_dim": 8, "interest_num": 3},
}


@pytest.fixture(scope="module")
def data():
    from zoo.data.match import MatchData
    from zoo.data.protocol import get_protocol
    from zoo_plugins.synthetic.generator import generate

    interactions = generate(users=60, items=40, categories=4, mean_length=10, seed=1)
    return MatchData.from_interactions(interactions, get_protocol("loo").replace(history_len=HISTORY))


def _model(name: str, data):
    from zoo.registry import default_registry

    torch.manual_seed(0)
    model = default_registry().model(name).load().from_schema(data.schema, **MODELS[name])
    model.set_item_table(data.item_table)
    return model.eval()


def _session(path: Path):
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


@pytest.mark.parametrize("name", list(MODELS))
def test_onnx_user_tower_matches_torch(name, data, tmp_path):
    model = _model(name, data)
    info = ONNXExporter(model, history_len=HISTORY).export(tmp_path / "user.onnx")
    assert info.path.is_file() and info.max_abs_diff <= 1e-5
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary file left
    session = _session(info.path)
    graph_inputs = [i.name for i in session.get_inputs()]
    assert graph_inputs == [spec["name"] for spec in info.inputs]
    assert "hist_item_id" in graph_inputs and session.get_outputs()[0].name == "user_vector"
    users = data.ranking_task("test").users
    for rows, length in ((1, HISTORY), (7, 5), (4, 2), (13, 1)):  # the export traced 3 rows of 8
        batch = {n: users[n][10 : 10 + rows] for n in graph_inputs}
        batch["hist_item_id"] = batch["hist_item_id"][:, -length:]
        with torch.no_grad():
            expected = model.user_tower(batch).numpy()
        (got,) = session.run(None, {n: t.numpy() for n, t in batch.items()})
        assert got.shape == expected.shape
        np.testing.assert_allclose(got, expected, atol=1e-5, rtol=0)
    interests = model.num_interests
    assert info.output["shape"] == (["batch", interests, 8] if interests > 1 else ["batch", 8])
    assert model.training is False  # the exporter leaves the model as it found it


def test_onnx_item_tower_and_trainer_export(data, tmp_path):
    from zoo.train.trainer import MatchTrainer

    model = _model("dssm", data)
    model.train()
    trainer = MatchTrainer(model, device="cpu")
    path = trainer.export_onnx(tmp_path / "item.onnx", mode="item")
    assert model.training  # mode restored
    model.eval()
    session = _session(path)
    assert [i.name for i in session.get_inputs()] == ["item_id"]
    ids = torch.arange(2, 30)
    with torch.no_grad():
        expected = model.item_vectors(ids).numpy()
    (got,) = session.run(None, {"item_id": ids.numpy()})
    np.testing.assert_allclose(got, expected, atol=1e-5, rtol=0)
    user = trainer.export_onnx(tmp_path / "user.onnx", history_len=HISTORY)
    assert [i.name for i in _session(user).get_inputs()][-1] == "hist_item_id"
    with pytest.raises(UsageError, match="mode must be 'user' or 'item'"):
        trainer.export_onnx(tmp_path / "x.onnx", mode="both")


def test_history_longer_than_trained_keeps_the_most_recent_items(data, tmp_path):
    model = _model("youtubednn", data)
    info = ONNXExporter(model, history_len=HISTORY).export(tmp_path / "user.onnx")
    users = data.ranking_task("test").users
    names = [s["name"] for s in info.inputs]
    full = (users["hist_item_id"] != 0).all(dim=1).nonzero().flatten()[:4]  # no padding in these rows
    assert len(full) == 4
    batch = {n: users[n][full].numpy() for n in names}
    long = np.concatenate([np.full((4, 6), 7), batch["hist_item_id"]], axis=1)  # 6 older items in front
    (short,) = _session(info.path).run(None, batch)
    (longer,) = _session(info.path).run(None, {**batch, "hist_item_id": long})
    np.testing.assert_allclose(short, longer, atol=1e-6)


# -- zoo export RUN_DIR ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    from zoo.pipeline import RunConfig, run

    folder = tmp_path_factory.mktemp("export") / "run"
    run(
        RunConfig(
            model="mind",
            dataset_options={"users": 100, "items": 50, "categories": 4, "mean_length": 10, "seed": 2},
            epochs=1,
            device="cpu",
            params={"embed_dim": 8, "interest_num": 2},
            protocol_overrides={"history_len": HISTORY},
            out=str(folder),
        )
    )
    return folder


def _invoke(*args: str):
    from zoo_cli.main import build_app

    return CliRunner().invoke(build_app(), list(args))


def test_zoo_export_writes_tower_vectors_and_manifest(run_dir):
    import pyarrow.parquet as pq
    from safetensors.numpy import load_file

    from zoo.serving import Recommender

    result = _invoke("export", str(run_dir))
    assert result.exit_code == 0, result.output
    folder = run_dir / "export"
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["format"] == "recall-zoo-export" and manifest["model"] == "mind"
    assert manifest["family"] == "multi_interest" and manifest["interests"] == 2
    assert manifest["metric"] == "ip" and manifest["dimension"] == 8 and manifest["history_len"] == HISTORY
    assert sorted(manifest["files"]) == [
        "item_vectors.parquet",
        "item_vectors.safetensors",
        "user_tower.onnx",
        "vocab.json",
    ]
    tower = manifest["user_tower"]
    history = next(i for i in tower["inputs"] if i["name"] == "hist_item_id")
    assert history == {**history, "dtype": "int64", "shape": ["batch", "history"], "vocabulary": "item_id"}
    assert tower["output"] == {"name": "user_vector", "dtype": "float32", "shape": ["batch", 2, 8]}

    recommender = Recommender.load(run_dir)
    table = pq.read_table(folder / "item_vectors.parquet")
    assert table.column("item_id").to_pylist() == recommender.item_ids
    vectors = np.asarray(table.column("vector").to_pylist(), dtype=np.float32)
    np.testing.assert_allclose(vectors, recommender.item_matrix(), atol=1e-6)
    tensors = load_file(folder / "item_vectors.safetensors")
    assert tensors["item_ids"].tolist() == recommender.item_ids
    np.testing.assert_array_equal(tensors["vectors"], vectors)

    # the exported tower, fed with the stored users encoded by vocab.json, gives the recommender's vectors
    users = recommender.user_ids[:6]
    view, positions = recommender.full_view
    batch = view.batch(positions[:6])
    session = _session(folder / tower["file"])
    (got,) = session.run(None, {i.name: batch[i.name].numpy() for i in session.get_inputs()})
    np.testing.assert_allclose(got, recommender.user_vectors(users), atol=1e-5)


def test_export_formats_and_folder_rules(run_dir, tmp_path):
    out = tmp_path / "bundle"
    manifest = export_run(run_dir, ["parquet"], out)
    assert "user_tower" not in manifest and (out / "item_vectors.parquet").is_file()
    again = export_run(run_dir, ["onnx"], out)  # an earlier export is replaced whole
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json", "user_tower.onnx", "vocab.json"]
    assert again["folder"] == str(out)
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(UsageError, match="not a recall-zoo export"):
        export_run(run_dir, ["onnx"], foreign)
    assert sorted(p.name for p in foreign.iterdir()) == ["notes.txt"]
    (tmp_path / "file").write_text("x")
    with pytest.raises(UsageError, match="is a file"):
        check_export_folder(tmp_path / "file")
    with pytest.raises(UsageError, match="--format 'csv' must be one of onnx, parquet"):
        export_run(run_dir, ["csv"], tmp_path / "other")
    with pytest.raises(UsageError, match="not a run folder"):
        export_run(tmp_path, ["onnx"])


def test_zoo_export_bad_input_is_one_line(run_dir, tmp_path):
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "x").write_text("")
    result = _invoke("export", str(run_dir), "--out", str(tmp_path / "taken"))
    assert result.exit_code == 2 and "not a recall-zoo export" in result.output, result.output
    assert len(result.output.strip().splitlines()) == 1
    result = _invoke("export", str(run_dir), "--format", "tflite")
    assert result.exit_code == 2 and "tflite" in result.output and "Traceback" not in result.output
