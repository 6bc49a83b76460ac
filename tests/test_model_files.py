"""The model folder is checked on load (issue "Nothing lost", items 3 and 4): a flipped byte, a
truncated file or a malformed config is a one-line ModelFileError naming the file, never a silent
load or a traceback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from zoo.errors import ModelFileError
from zoo.models import load_model
from zoo_cli.main import build_app

SMALL = [
    "--param",
    "data.users=120",
    "--param",
    "data.items=60",
    "--param",
    "data.categories=4",
    "--param",
    "embed_dim=8",
    "--param",
    "dims=16,8",
    "--epochs",
    "1",
    "--device",
    "cpu",
    "--quiet",
]


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("run") / "run"
    result = CliRunner().invoke(build_app(), ["run", "dssm", *SMALL, "--out", str(out)])
    assert result.exit_code == 0, result.stderr
    return out / "model"


def copy(folder: Path, tmp_path: Path) -> Path:
    import shutil

    return Path(shutil.copytree(folder, tmp_path / "model"))


def test_the_model_folder_records_every_file(saved_model: Path) -> None:
    meta = json.loads((saved_model / "model.json").read_text())
    assert sorted(meta["files"]) == ["vocab.json", "weights.safetensors"]
    assert all(len(info["sha256"]) == 64 and info["bytes"] > 0 for info in meta["files"].values())
    load_model(saved_model)  # loads cleanly


@pytest.mark.parametrize("name", ["weights.safetensors", "vocab.json"])
def test_a_flipped_byte_is_refused_naming_the_file(saved_model: Path, tmp_path: Path, name: str) -> None:
    folder = copy(saved_model, tmp_path)
    data = bytearray((folder / name).read_bytes())
    data[len(data) // 2] ^= 0x01
    (folder / name).write_bytes(bytes(data))
    with pytest.raises(ModelFileError, match=f"{name}: checksum mismatch"):
        load_model(folder)


def test_a_truncated_file_is_refused(saved_model: Path, tmp_path: Path) -> None:
    folder = copy(saved_model, tmp_path)
    weights = folder / "weights.safetensors"
    weights.write_bytes(weights.read_bytes()[:-10])
    with pytest.raises(ModelFileError, match="truncated or corrupted"):
        load_model(folder)


@pytest.mark.parametrize("config", [{"embed_dim": "abc"}, {"no_such_argument": 1}, "not a mapping"])
def test_a_malformed_config_is_one_line(saved_model: Path, tmp_path: Path, config: object) -> None:
    folder = copy(saved_model, tmp_path)
    meta = json.loads((folder / "model.json").read_text())
    meta["config"] = config if not isinstance(config, dict) else {**meta["config"], **config}
    (folder / "model.json").write_text(json.dumps(meta))
    with pytest.raises(ModelFileError) as info:
        load_model(folder)
    assert "model.json" in info.value.message and "\n" not in info.value.message
