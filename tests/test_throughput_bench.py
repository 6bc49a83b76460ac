"""benchmarks/throughput.py and benchmarks/rechub_side_by_side.py: FLOP counting, samples/s arithmetic,
HitRate@50, argument parsing and results files, each against a slow obvious reference (no timings)."""

from __future__ import annotations

import importlib.util
import itertools
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
#: Torch-RecHub's own environment (docs/performance.md; .ci/run makes one and sets RECHUB_PYTHON)
RECHUB_PYTHON = os.environ.get(
    "RECHUB_PYTHON", str(Path(__file__).resolve().parents[1] / "rechub-venv" / "bin" / "python")
)


def load(name: str):
    """A script under benchmarks/ as a module (benchmarks/ is not a package)."""
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def throughput():
    return load("throughput")


@pytest.fixture(scope="module")
def side_by_side():
    return load("rechub_side_by_side")


@pytest.fixture(scope="module")
def renderer():
    return load("render_results")


# -- FLOP counting ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("input_grad", [False, True])
def test_flops_of_a_linear_step_match_the_textbook_count(throughput, bias, input_grad):
    """Forward 2*B*I*O; backward 2*B*I*O for the weight gradient, and as much again for the input's."""
    batch, inputs, outputs = 32, 24, 10
    layer = torch.nn.Linear(inputs, outputs, bias=bias)
    x = torch.randn(batch, inputs, requires_grad=input_grad)

    def step():
        layer(x).square().sum().backward()

    expected = 2 * batch * inputs * outputs * (3 if input_grad else 2)
    assert throughput.count_flops(step) == expected


def test_matmul_shapes_records_each_product_with_its_flops(throughput):
    a, b = torch.randn(8, 5), torch.randn(5, 30)
    batched = torch.randn(4, 6, 7), torch.randn(4, 7, 2)
    with throughput.MatmulShapes() as shapes:
        torch.mm(a, b)
        torch.mm(a, b)
        torch.bmm(*batched)
    assert shapes.flops == {(8, 5, 30): 2 * 2 * 8 * 5 * 30, (6, 7, 2): 2 * 4 * 6 * 7 * 2}
    assert shapes.dominant(1) == [(8, 5, 30)]


def test_counted_flops_agree_with_matmul_shapes_on_a_real_training_step(throughput, tiny_prepared):
    """FlopCounterMode and the shape recorder see the same products of a real MatchTrainer step."""
    from zoo.pipeline.stages import build_model
    from zoo.train.trainer import MatchTrainer

    prepared = tiny_prepared("dssm")
    model = build_model(prepared)
    trainer = MatchTrainer.from_config(model, prepared.settings.trainer, device="cpu")
    batch = next(iter(prepared.data.training_batches(model, 64, seed=0)))
    with throughput.MatmulShapes() as shapes:
        flops = throughput.count_flops(lambda: trainer.train_one_epoch([batch]))
    assert flops > 0
    assert flops == sum(shapes.flops.values())


# -- samples -----------------------------------------------------------------------------------------------
def slow_pairs(batch, history_key):
    """Per-position pairs counted one cell at a time: a real input item with a non-padding target."""
    from zoo.features import NEXT_ITEM

    targets, inputs = batch[NEXT_ITEM].tolist(), batch[history_key].tolist()
    return sum(
        1
        for row, t in zip(inputs, targets, strict=True)
        for x, y in zip(row, t, strict=True)
        if x != 0 and y != 0
    )


@pytest.fixture(scope="module")
def tiny_prepared():
    from zoo.pipeline import RunConfig, prepare

    cache = {}

    def make(model: str, **params):
        key = (model, tuple(sorted(params.items())))
        if key not in cache:
            cache[key] = prepare(
                RunConfig(
                    model=model,
                    dataset="synthetic",
                    device="cpu",
                    params={"embed_dim": 8, **params},
                    dataset_options={"users": 80, "items": 50},
                    save=False,
                )
            )
        return cache[key]

    return make


def test_sequence_batch_pairs_match_a_cell_by_cell_count_and_the_model(throughput, tiny_prepared):
    """Pairs of a sequence-window batch: the slow count, and the rows GRU4Rec actually trains on."""
    from zoo.pipeline.stages import build_model

    prepared = tiny_prepared("gru4rec", window_stride=5)
    model = build_model(prepared)
    schema = prepared.data.schema
    batches = list(itertools.islice(iter(prepared.data.training_batches(model, 16, window_stride=5)), 3))
    for batch in batches:
        rows, pairs = throughput.batch_samples(batch, schema.user_id, schema.history_name)
        assert rows == 16
        assert pairs == slow_pairs(batch, schema.history_name)
        assert 0 < pairs < rows * batch[schema.history_name].shape[1]
        assert pairs == model.train_outputs(batch).user.shape[0]


def test_sample_batch_counts_rows_only(throughput, tiny_prepared):
    from zoo.pipeline.stages import build_model

    prepared = tiny_prepared("dssm")
    model = build_model(prepared)
    batch = next(iter(prepared.data.training_batches(model, 24)))
    assert throughput.batch_samples(batch, prepared.data.schema.user_id) == (24, 24)


def test_rate(throughput):
    assert throughput.rate(300, 1.5) == 200
    assert throughput.rate(5, 0.0) == 0.0


def test_measure_model_arithmetic_against_the_batches_it_timed(throughput):
    """samples/s = rows / step time, rows = the timed batches' rows (counted again here by walking the
    same seeded batches), FLOP/s = FLOPs / step time."""
    from zoo.pipeline import RunConfig, prepare
    from zoo.pipeline.stages import build_model
    from zoo.registry import default_registry

    params = ["embed_dim=8", "batch_size=32", "window_stride=5"]
    options = {"users": 80, "items": 50}
    protocol = default_registry().dataset("synthetic").default_protocol
    row = throughput.measure_model(
        "gru4rec", None, "cpu", 3, 1, params, dataset="synthetic", dataset_options=options, protocol=protocol
    )
    prepared = prepare(
        RunConfig(
            model="gru4rec",
            dataset="synthetic",
            device="cpu",
            params={"embed_dim": 8, "batch_size": 32, "window_stride": 5},
            dataset_options=options,
            save=False,
        )
    )
    model = build_model(prepared)
    schema = prepared.data.schema
    timed = list(itertools.islice(iter(prepared.data.training_batches(model, 32, window_stride=5)), 4))[1:]
    assert row["rows"] == sum(b[schema.user_id].shape[0] for b in timed) == 96
    assert row["pairs"] == sum(slow_pairs(b, schema.history_name) for b in timed)
    assert row["samples_per_s"] == pytest.approx(row["rows"] / row["step_s"])
    assert row["pairs_per_s"] == pytest.approx(row["pairs"] / row["step_s"])
    assert row["flops_per_step"] == pytest.approx(row["flops"] / 3)
    assert row["achieved_gflop_s"] == pytest.approx(row["flops"] / row["step_s"] / 1e9)
    assert row["flops"] > 0 and row["dominant_shapes"]

    peak = {"256x256x256": 10.0, "x".join(map(str, row["dominant_shapes"][0])): 4.0}
    best = throughput.add_peak([row], peak)
    assert best == 10.0
    assert row["peak_fraction"] == pytest.approx(row["achieved_gflop_s"] / 10.0)
    assert row["dominant_shape_gflop_s"] == 4.0


def test_a_trainer_setting_this_trainer_lacks_is_left_out(throughput, monkeypatch):
    monkeypatch.setattr(throughput, "OPTIONAL_TRAINER_KEYS", ("no_such_setting",))
    kept, dropped = throughput.split_optional({"lr": 0.01, "no_such_setting": True})
    assert kept == {"lr": 0.01} and dropped == {"no_such_setting": True}


def test_matmul_micro_benchmark_reports_each_shape(throughput, monkeypatch):
    monkeypatch.setattr(throughput, "SQUARE_SIZES", (64,))
    measured = throughput.matmul_peak([(32, 16, 48), (64, 64, 64)], "cpu", seconds=0.05)
    assert list(measured) == ["64x64x64", "32x16x48"]
    assert all(v > 0 for v in measured.values())


# -- argument parsing and results files --------------------------------------------------------------------
def test_throughput_arguments(throughput, tmp_path, capsys):
    args = throughput.parse_args(["--models", "dssm,mind", "--param", "dssm:compile=true", "--steps", "4"])
    assert args.model_list == ["dssm", "mind"] and args.steps == 4
    for bad in (
        ["--models", "nope"],
        ["--param", "compile=true"],
        ["--models", "dssm", "--param", "mind:lr=0.1"],
        ["--steps", "0"],
        ["--record", str(tmp_path / "missing")],
    ):
        with pytest.raises(SystemExit) as exc:
            throughput.parse_args(bad)
        assert exc.value.code == 2
    assert "--record" in capsys.readouterr().err


def fake_row(name: str) -> dict:
    return {
        "model": name,
        "batch_size": 256,
        "steps": 10,
        "warmup": 2,
        "step_s": 2.5,
        "cpu_s": 4.9,
        "others_cpu_s": 0.05,
        "build_s": 0.6,
        "samples_per_s": 1024.0,
        "pairs_per_s": 9000.0,
        "flops_per_step": 3.2e9,
        "achieved_gflop_s": 12.8,
        "peak_fraction": 0.2,
        "dominant_shapes": [[256, 128, 384]],
        "dropped_params": {},
    }


def test_throughput_results_file_follows_the_schema(throughput, renderer, tmp_path):
    command = throughput.public_command(
        ["--data", "/work/x/ml-1m", "--models", "dssm", "--record", str(tmp_path)]
    )
    assert command == f"python benchmarks/throughput.py --models dssm --record {tmp_path.name}"
    record = throughput.record(
        [fake_row("dssm"), fake_row("gru4rec")], {"1x1x1": 2.0}, 64.0, command, "2026-12-03", "cpu"
    )
    name = "2026-12-03-benchmark-throughput-cpu.json"
    assert renderer.validate(name, json.loads(json.dumps(record))) == []
    assert record["figures"]["dssm"]["step_ms"] == 250.0
    assert record["figures"]["matmul_peak_gflop_s"] == 64.0
    assert record["figures"]["dssm"]["cpu_per_wall"] == 1.96
    assert record["figures"]["dssm"]["others_cpu_per_wall"] == 0.02


def test_side_by_side_arguments(side_by_side, tmp_path):
    args = side_by_side.parse_args(["--workflows", "dssm,gru4rec-1layer", "--libraries", "zoo"])
    assert args.variants == ["dssm", "gru4rec-1layer"] and args.library_list == ["zoo"]
    for bad in (["--workflows", "sasrec"], ["--libraries", "tensorflow"], ["--users", "1"]):
        with pytest.raises(SystemExit) as exc:
            side_by_side.parse_args(bad)
        assert exc.value.code == 2
    command = side_by_side.public_command(
        ["--rechub-python", "/work/rechub-venv/bin/python", "--workdir", "/tmp/w", f"--record={tmp_path}"]
    )
    assert command == (
        "python benchmarks/rechub_side_by_side.py --rechub-python rechub-venv/bin/python"
        f" --record={tmp_path.name}"
    )


def slow_hitrate(user, item, target, catalogue, k):
    hits = 0
    for u, t in zip(user, target, strict=True):
        vectors = u if u.ndim == 2 else u[None]
        scores = [max(float(v @ item[j]) for v in vectors) for j in range(len(item))]
        order = sorted(range(len(item)), key=lambda j: (-scores[j], j))[:k]
        hits += int(t in catalogue[order])
    return hits / len(user)


@pytest.mark.parametrize("interests", [0, 3])
def test_hitrate_matches_a_slow_reference(side_by_side, interests):
    rng = np.random.default_rng(0)
    shape = (300, interests, 6) if interests else (300, 6)
    user = rng.normal(size=shape).astype(np.float32)
    item = rng.normal(size=(80, 6)).astype(np.float32)
    catalogue = np.arange(100, 180)
    target = rng.choice(catalogue, size=300)
    got = side_by_side.hitrate_at_k(user, item, target, catalogue, k=10)
    assert got == pytest.approx(slow_hitrate(user, item, target, catalogue, 10))
    assert 0 < got < 1


def fake_run(seconds, hr):
    return {
        "seconds": dict(zip(("prepare", "fit", "embed"), seconds, strict=True)),
        "library_s": sum(seconds),
        "train_rows": 1000,
        "hitrate@50": hr,
        "changes": ["history pooling='concat'"],
    }


def test_side_by_side_ratios_and_results_file(side_by_side, renderer):
    rows = {"dssm": {"zoo": fake_run((1.0, 2.0, 1.0), 0.3), "torch_rechub": fake_run((3.0, 6.0, 1.0), 0.25)}}
    figures = side_by_side.figures(rows)
    assert figures["dssm, ratio Torch-RecHub / ours"] == {
        "prepare_s": 3.0,
        "fit_s": 3.0,
        "embed_s": 1.0,
        "library_s": 2.5,
    }
    assert "2.50x" in side_by_side.table(rows)
    record = {
        "kind": "benchmark",
        "date": "2026-12-03",
        "command": "python benchmarks/rechub_side_by_side.py",
        "machine": {"cpu": "x", "cores": 2},
        "versions": {"recall-zoo": "0.1.0"},
        "figures": figures,
        "notes": side_by_side.notes(rows, 600, 1),
    }
    assert "history pooling='concat'" in record["notes"]
    name = "2026-12-03-benchmark-rechub-side-by-side-cpu.json"
    assert renderer.validate(name, json.loads(json.dumps(record))) == []


# -- the workflows -----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def seed_csv(tmp_path_factory):
    from tests.conftest import write_seed_csv
    from zoo_plugins.synthetic.generator import generate

    log = generate(users=60, items=40, categories=5, mean_length=10, seed=3)
    return write_seed_csv(tmp_path_factory.mktemp("sbs") / "movielens.csv", log)


def run_workflow(python, library, workflow, csv, out, *extra):
    env = {**os.environ, "RECALL_WORKFLOW_LIBRARY": library, "TQDM_DISABLE": "1"}
    command = [
        python,
        str(ROOT / "benchmarks" / "rechub_workflows" / "child.py"),
        workflow,
        str(csv),
        str(out),
    ]
    done = subprocess.run([*command, *extra], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads((out / "run.json").read_text()), np.load(out / "embeddings.npz", allow_pickle=False)


@pytest.mark.parametrize("workflow", ["dssm", "gru4rec", "mind"])
def test_workflow_runs_under_zoo(workflow, seed_csv, tmp_path):
    info, arrays = run_workflow(sys.executable, "zoo", workflow, seed_csv, tmp_path, "--batch-size", "128")
    assert info["library"] == "zoo" and info["changes"] == []
    assert set(info["seconds"]) == {"prepare", "fit", "embed"}
    assert arrays["user"].shape[0] == arrays["target"].shape[0] == 60
    assert arrays["item"].shape[0] == arrays["catalogue"].shape[0]
    assert np.isfinite(arrays["user"]).all()


def test_gru4rec_workflow_builds_the_layers_asked_for(seed_csv, tmp_path):
    sys.path.insert(0, str(ROOT / "benchmarks" / "rechub_workflows"))
    try:
        import gru4rec

        captured = {}
        original = gru4rec.GRU4Rec

        def spy(**kwargs):
            captured.update(kwargs)
            return original(**kwargs)

        gru4rec.GRU4Rec = spy
        try:
            gru4rec.run(str(seed_csv), str(tmp_path), batch_size=128, layers=1)
        finally:
            gru4rec.GRU4Rec = original
    finally:
        sys.path.remove(str(ROOT / "benchmarks" / "rechub_workflows"))
        for name in ("gru4rec", "listwise", "common", "library"):
            sys.modules.pop(name, None)
    assert captured["user_params"]["num_layers"] == 1


@pytest.mark.skipif(
    not Path(RECHUB_PYTHON).is_file(),
    reason=f"no Torch-RecHub environment at {RECHUB_PYTHON} (set RECHUB_PYTHON to a venv's python with"
    " torch-rechub==0.9.0)",
)
def test_dssm_workflow_runs_under_torch_rechub(seed_csv, tmp_path):
    info, arrays = run_workflow(
        RECHUB_PYTHON, "torch_rechub", "dssm", seed_csv, tmp_path, "--batch-size", "128"
    )
    assert info["library"] == "torch_rechub"
    assert arrays["user"].shape == (60, 64)
