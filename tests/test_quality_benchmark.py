"""benchmarks/quality.py runs end to end (on a MovieLens-format fixture, one epoch) and writes its table."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "quality.py"


@pytest.fixture(scope="module")
def quality():
    spec = importlib.util.spec_from_file_location("zoo_quality_benchmark", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_quality_benchmark_writes_results(quality, ml1m_dir, tmp_path, capsys):
    out = tmp_path / "q"
    args = [
        "--models",
        "dssm",
        "--data",
        str(ml1m_dir),
        "--device",
        "cpu",
        "--out",
        str(out),
        "--param",
        "dssm:epochs=1",
        "--param",
        "dssm:embed_dim=8",
        "--param",
        "dssm:dims=16,8",
    ]
    assert quality.main(args) == 0
    results = json.loads((out / "results.json").read_text())
    (row,) = results["results"]
    assert row["model"] == "dssm" and row["protocol"] == "deepmatch"
    assert 0 <= row["metrics"]["hitrate@50"] <= 1 and row["training"]["epochs_run"] == 1
    table = (out / "results.md").read_text()
    assert "| dssm | deepmatch |" in table and "[1] `python benchmarks/quality.py --models dssm" in table
    # A rerun skips finished models.
    assert quality.main(args) == 0
    assert "already in" in capsys.readouterr().out


def test_quality_benchmark_time_limit_is_applied_and_shown(quality, ml1m_dir, tmp_path, capsys):
    out = tmp_path / "q"
    args = [
        "--models",
        "dssm",
        "--data",
        str(ml1m_dir),
        "--device",
        "cpu",
        "--out",
        str(out),
        "--time-limit",
        "1e-6",
        "--param",
        "dssm:epochs=3",
        "--param",
        "dssm:embed_dim=8",
        "--param",
        "dssm:dims=16,8",
    ]
    assert quality.main(args) == 0
    (row,) = json.loads((out / "results.json").read_text())["results"]
    assert row["training"]["epochs_run"] == 1 and row["training"]["stopped"] == "time_limit"
    assert "1 (1), time limit" in (out / "results.md").read_text()
    assert "dssm epoch 1: loss" in capsys.readouterr().out


def test_quality_benchmark_imports_rows_from_another_machine(quality, ml1m_dir, tmp_path):
    elsewhere = tmp_path / "gpu"
    args = [
        "--models",
        "dssm",
        "--data",
        str(ml1m_dir),
        "--device",
        "cpu",
        "--param",
        "dssm:epochs=1",
        "--param",
        "dssm:embed_dim=8",
        "--param",
        "dssm:dims=16,8",
    ]
    assert quality.main([*args, "--out", str(elsewhere)]) == 0
    payload = json.loads((elsewhere / "results.json").read_text())
    payload["machine"] = {**payload["machine"], "gpu": "Test GPU", "cuda": "12.0"}
    for row in payload["results"]:
        row.pop("machine"), row.pop("command")  # rows of an older results.json carry neither
        row["device"] = "cuda"
    (elsewhere / "results.json").write_text(json.dumps(payload))
    here = tmp_path / "here"
    assert (
        quality.main(
            [
                "--models",
                "dssm",
                "--data",
                str(ml1m_dir),
                "--out",
                str(here),
                "--import",
                str(elsewhere / "results.json"),
            ]
        )
        == 0
    )
    (row,) = json.loads((here / "results.json").read_text())["results"]
    assert row["machine"]["gpu"] == "Test GPU" and "--out" in row["command"]
    table = (here / "results.md").read_text()
    assert (
        "| cuda [1] |" in table
        and "[1] `python benchmarks/quality.py" in table
        and "Test GPU (CUDA 12.0)" in table
    )
    with pytest.raises(SystemExit, match="--import"):
        quality.main(
            [
                "--models",
                "dssm",
                "--data",
                str(ml1m_dir),
                "--out",
                str(here),
                "--import",
                str(tmp_path / "nope.json"),
            ]
        )


def test_quality_benchmark_rejects_unknown_models(quality, ml1m_dir, tmp_path):
    assert quality.main(["--models", "nosuch", "--data", str(ml1m_dir), "--out", str(tmp_path)]) == 2
    assert (
        quality.main(["--models", "dssm", "--data", str(tmp_path / "missing"), "--out", str(tmp_path)]) == 3
    )


def test_quality_benchmark_over_seeds_reports_mean_and_spread(quality, ml1m_dir, tmp_path, capsys):
    """--seeds trains once per seed, the row holds the mean (checked against the per-seed runs) and the
    sample standard deviation, a rerun with one more seed trains only that seed, and --record writes a
    results file that the renderer accepts."""
    import statistics

    render_spec = importlib.util.spec_from_file_location(
        "zoo_render_results", SCRIPT.parent / "render_results.py"
    )
    render = importlib.util.module_from_spec(render_spec)
    render_spec.loader.exec_module(render)
    out, record = tmp_path / "q", tmp_path / "results"
    record.mkdir()
    base = ["--models", "dssm", "--data", str(ml1m_dir), "--device", "cpu", "--out", str(out)]
    base += ["--param", "dssm:epochs=1", "--param", "dssm:embed_dim=8", "--param", "dssm:dims=16,8"]
    assert quality.main([*base, "--seeds", "0,1"]) == 0
    (row,) = json.loads((out / "results.json").read_text())["results"]
    assert row["seeds"] == [0, 1] and [r["seed"] for r in row["runs"]] == [0, 1]
    values = [r["metrics"]["ndcg@10"] for r in row["runs"]]
    assert values[0] != values[1]  # the seeds really differ
    assert row["metrics"]["ndcg@10"] == pytest.approx(statistics.fmean(values))
    assert row["spread"]["ndcg@10"]["std"] == pytest.approx(statistics.stdev(values))
    assert row["passed"] == (row["metrics"]["hitrate@50"] >= row["floor"])
    assert " ± " in (out / "results.md").read_text()
    capsys.readouterr()
    assert quality.main([*base, "--seeds", "0,1,2", "--record", str(record)]) == 0
    printed = capsys.readouterr().out
    assert "seed 2 ..." in printed and "seed 0 ..." not in printed and "seed 1 ..." not in printed
    (written,) = record.iterdir()
    assert written.name.endswith("-quality-dssm-seeds-0-1-2-cpu.json")
    document = json.loads(written.read_text())
    assert render.validate(written.name, document) == []
    assert document["seed"] == [0, 1, 2] and len(document["figures"]["hitrate@50_by_seed"]) == 3
    assert document["figures"]["ndcg@10"] == pytest.approx(
        statistics.fmean(document["figures"]["ndcg@10_by_seed"]), abs=1e-4
    )


def test_quality_benchmark_rejects_bad_seeds(quality, tmp_path):
    for bad in (["--seeds", "0,x"], ["--seeds", "1,1"], ["--seed", "1", "--seeds", "0,1"]):
        with pytest.raises(SystemExit) as exited:
            quality.main([*bad, "--out", str(tmp_path / "q")])
        assert exited.value.code == 2


def test_quality_benchmark_on_two_processes_records_each_seed(ml1m_dir, tmp_path):
    """--nproc 2 relaunches the benchmark under torchrun: rank 0 announces each (model, seed) and the
    other rank trains it alongside; every seed is measured once and the record names --nproc."""
    import os
    import subprocess
    import sys

    from zoo.pipeline import RunConfig
    from zoo.pipeline.stages import announcement

    assert announcement(RunConfig(model="dssm", seed=3)) == "dssm@3"
    out, record = tmp_path / "q", tmp_path / "results"
    record.mkdir()
    args = ["--models", "dssm", "--data", str(ml1m_dir), "--device", "cpu", "--out", str(out)]
    args += ["--param", "dssm:epochs=1", "--param", "dssm:embed_dim=8", "--param", "dssm:dims=16,8"]
    args += ["--seeds", "0,1", "--nproc", "2", "--record", str(record)]
    result = subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.count("dssm seed 0: HR@10") == 1 and result.stdout.count("dssm seed 1: HR@10") == 1
    (row,) = json.loads((out / "results.json").read_text())["results"]
    assert row["seeds"] == [0, 1]
    (written,) = record.iterdir()
    assert "--nproc 2" in json.loads(written.read_text())["command"]
