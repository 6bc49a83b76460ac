"""`zoo run` through the CLI: output formats, exit codes, did-you-mean, devices, and a real subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
from typer.testing import CliRunner

from zoo_cli.main import build_app

SMALL = [
    "--param",
    "data.users=300",
    "--param",
    "data.items=120",
    "--param",
    "data.categories=6",
    "--param",
    "embed_dim=8",
    "--param",
    "dims=16,8",
    "--epochs",
    "1",
    "--device",
    "cpu",
]


@pytest.fixture
def invoke():
    runner = CliRunner()

    def _invoke(*args: str):
        return runner.invoke(build_app(), list(args))

    return _invoke


def one_line_error(result) -> str:
    """The error is one line on stderr (stage lines may precede it), with no traceback."""
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, result.stderr
    assert result.stderr.rstrip().endswith(lines[0])
    return lines[0]


def test_run_json_output(invoke, tmp_path):
    result = invoke(
        "run", "dssm", "--retriever", "hnsw", *SMALL, "--format", "json", "--out", str(tmp_path / "r")
    )
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["retriever"]["name"] == "hnsw"
    assert report["metrics"]["exact"]["users"] == 300
    assert (tmp_path / "r" / "run.json").is_file()
    assert "epoch" not in result.stderr  # json mode is quiet


def test_run_human_summary(invoke, tmp_path):
    result = invoke("run", "dssm", "-r", "exact", *SMALL, "--k", "5,20", "--out", str(tmp_path / "r"))
    assert result.exit_code == 0, result.stderr
    out = result.stdout
    assert "hitrate@5" in out and "ndcg@20" in out and "popularity" in out
    header = next(line for line in out.splitlines() if "metric" in line)
    assert header.count("exact") == 1  # the exact retriever is the exact search: one column, one speed
    assert "exact search:" in out and "users/s" in out and "recall vs exact" not in out
    assert "run directory" in out and f"zoo recommend {tmp_path / 'r'} --user ID" in out


def test_run_summary_through_an_index(invoke, tmp_path):
    result = invoke("run", "dssm", "-r", "hnsw", *SMALL, "--out", str(tmp_path / "r"))
    assert result.exit_code == 0, result.stderr
    header = next(line for line in result.stdout.splitlines() if "metric" in line)
    assert "exact" in header and "hnsw" in header
    assert "hnsw recall vs exact" in result.stdout and "(exact search" in result.stdout


def test_format_is_a_choice(invoke):
    result = invoke("run", "dssm", "--format", "xml")
    assert result.exit_code == 2
    assert "'human'" in result.output and "'json'" in result.output


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["run", "dsm"], "Did you mean 'dssm'"),
        (["run", "dssm", "--retriever", "hnws"], "Did you mean 'hnsw'"),
        (["run", "dssm", "--dataset", "movielens-1n"], "Did you mean 'movielens-1m'"),
        (["run", "dssm", "--protocol", "deepmach"], "Did you mean 'deepmatch'"),
        (["run", "dssm", "--device", "tpu"], "--device 'tpu' is not a device"),
        (["run", "dssm", "--param", "temperature"], "key=value"),
        (["run", "dssm", "--k", "ten"], "--k"),
        (["run", "dssm", "--param", "retriever.nope=1"], "has no parameter 'nope'"),
        (
            ["run", "dssm", "--param", "lr_schedule=step"],
            "lr_schedule=step: must be one of constant, cosine, plateau",
        ),
    ],
)
def test_usage_errors_exit_2_with_one_line(invoke, args, fragment):
    result = invoke(*args)
    assert result.exit_code == 2
    assert fragment in one_line_error(result)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_where_none_exists_says_what_exists(invoke):
    result = invoke("run", "dssm", "--device", "cuda")
    assert result.exit_code == 2
    line = one_line_error(result)
    assert "no CUDA device" in line and "available: cpu" in line


def test_missing_dataset_folder_says_how_to_get_it(invoke, monkeypatch, tmp_path):
    monkeypatch.delenv("ZOO_DATA_DIR", raising=False)
    monkeypatch.setenv("ZOO_CACHE_DIR", str(tmp_path / "cache"))
    result = invoke("run", "dssm", "--dataset", "movielens-1m")
    assert result.exit_code == 3
    line = one_line_error(result)
    assert "--data" in line and "zoo data download movielens-1m" in line


def test_movielens_format_folder_runs(invoke, ml1m_dir, tmp_path):
    result = invoke(
        "run",
        "dssm",
        "--dataset",
        "movielens-1m",
        "--data",
        str(ml1m_dir),
        *SMALL[6:],
        "--format",
        "json",
        "--out",
        str(tmp_path / "r"),
    )
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["protocol"]["protocol"] == "deepmatch" and report["protocol"]["masking"].startswith("none")
    assert "genres" in report["data"]["schema"]["item_side"]


def test_real_subprocess_run(tmp_path):
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    command = [
        sys.executable,
        "-m",
        "zoo_cli.main",
        "run",
        "dssm",
        "--retriever",
        "hnsw",
        *SMALL,
        "--quiet",
        "--out",
        str(tmp_path / "r"),
    ]
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "hnsw recall vs exact" in done.stdout
    assert (tmp_path / "r" / "model" / "weights.safetensors").is_file()
    bad = subprocess.run(
        [sys.executable, "-m", "zoo_cli.main", "run", "nosuchmodel"], capture_output=True, text=True, env=env
    )
    assert (
        bad.returncode == 2 and "unknown model 'nosuchmodel'" in bad.stderr and "Traceback" not in bad.stderr
    )
