"""``zoo run --config FILE`` (issue "Everyday use", item 1): TOML or YAML sections, flags override the
file, unknown keys are errors naming key and section, and a run folder's config.yaml (or run.json)
reproduces the run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from zoo.errors import UsageError
from zoo.pipeline.config_file import read_config_file
from zoo_cli.main import build_app

YAML = """
run:
  model: dssm
  retriever: exact
  device: cpu
  seed: 3
  k: [5, 20]
model:
  embed_dim: 8
  dims: [16, 8]
trainer:
  epochs: 2
  lr: 0.01
data:
  users: 120
  items: 60
protocol:
  history_len: 20
"""

TOML = """
[run]
model = "dssm"
retriever = "exact"
device = "cpu"
seed = 3
k = [5, 20]

[model]
embed_dim = 8
dims = [16, 8]

[trainer]
epochs = 2
lr = 0.01

[data]
users = 120
items = 60

[protocol]
history_len = 20
"""


def invoke(*args: str):
    return CliRunner().invoke(build_app(), list(args))


def run_json(*args: str) -> dict:
    result = invoke("run", *args, "--quiet", "--format", "json")
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def test_yaml_and_toml_give_the_same_run(tmp_path: Path) -> None:
    (tmp_path / "run.yaml").write_text(YAML)
    (tmp_path / "run.toml").write_text(TOML)
    from_yaml = run_json("--config", str(tmp_path / "run.yaml"), "--out", str(tmp_path / "a"))
    from_toml = run_json("--config", str(tmp_path / "run.toml"), "--out", str(tmp_path / "b"))
    assert from_yaml["metrics"] == from_toml["metrics"]
    config = from_yaml["config"]
    assert (config["seed"], config["ks"], config["trainer"]["lr"], config["trainer"]["epochs"]) == (
        3,
        [5, 20],
        0.01,
        2,
    )
    assert config["model_params"]["embed_dim"] == 8 and config["dataset_options"] == {
        "users": 120,
        "items": 60,
    }
    assert from_yaml["protocol"]["history_len"] == 20


def test_flags_and_params_override_the_file(tmp_path: Path) -> None:
    (tmp_path / "run.yaml").write_text(YAML)
    report = run_json(
        "--config", str(tmp_path / "run.yaml"), "--seed", "4", "--param", "lr=0.02", "--retriever", "hnsw",
        "--out", str(tmp_path / "o"),
    )  # fmt: skip
    assert report["config"]["seed"] == 4 and report["config"]["trainer"]["lr"] == 0.02
    assert report["retriever"]["name"] == "hnsw" and report["config"]["trainer"]["epochs"] == 2


def test_the_run_folder_reproduces_the_run(tmp_path: Path) -> None:
    (tmp_path / "run.yaml").write_text(YAML)
    first = run_json("--config", str(tmp_path / "run.yaml"), "--out", str(tmp_path / "first"))
    again = run_json("--config", str(tmp_path / "first" / "config.yaml"), "--out", str(tmp_path / "again"))
    from_report = run_json("--config", str(tmp_path / "first" / "run.json"), "--out", str(tmp_path / "third"))
    assert again["metrics"] == first["metrics"] == from_report["metrics"]
    assert again["training"]["history"][-1]["loss"] == first["training"]["history"][-1]["loss"]


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("[runn]\nmodel = 'dssm'\n", "unknown section '[runn]'; did you mean '[run]'?"),
        ("[run]\nmodle = 'dssm'\n", "unknown key in [run] 'modle'; did you mean 'model'?"),
        ("[trainer]\nepoch = 3\n", "unknown key in [trainer] 'epoch'; did you mean 'epochs'?"),
        ("[model]\nlr = 0.1\n", "lr in [model] belong(s) in [trainer]"),
        ("[run]\nmodel = \n", "invalid TOML"),
        ("model = 'dssm'\n", "[model] must be a table of key = value, not str (a name goes in [run])"),
    ],
)
def test_bad_files_name_the_key_and_section(tmp_path: Path, text: str, fragment: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(UsageError) as info:
        read_config_file(path)
    assert fragment in info.value.message and str(path) in info.value.message


def test_cli_errors_are_one_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("run: [1, 2]\n")
    result = invoke("run", "--config", str(path))
    assert result.exit_code == 2
    assert "[run] must be a table" in result.stderr and "Traceback" not in result.stderr
    result = invoke("run", "--config", str(tmp_path / "missing.toml"))
    assert result.exit_code == 2 and "no such file" in result.stderr
    assert "give a MODEL" in invoke("run").stderr
