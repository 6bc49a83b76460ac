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
    args = ["--models", "dssm", "--data", str(ml1m_dir), "--device", "cpu", "--out", str(out),
            "--param", "dssm:epochs=1", "--param", "dssm:embed_dim=8", "--param", "dssm:dims=16,8"]
    assert quality.main(args) == 0
    results = json.loads((out / "results.json").read_text())
    (row,) = results["results"]
    assert row["model"] == "dssm" and row["protocol"] == "deepmatch"
    assert 0 <= row["metrics"]["hitrate@50"] <= 1 and row["training"]["epochs_run"] == 1
    table = (out / "results.md").read_text()
    assert "| dssm | deepmatch |" in table and "Command:" in table
    # A rerun skips finished models.
    assert quality.main(args) == 0
    assert "already in" in capsys.readouterr().out


def test_quality_benchmark_rejects_unknown_models(quality, ml1m_dir, tmp_path):
    assert quality.main(["--models", "nosuch", "--data", str(ml1m_dir), "--out", str(tmp_path)]) == 2
    assert quality.main(["--models", "dssm", "--data", str(tmp_path / "missing"), "--out", str(tmp_path)]) == 3
