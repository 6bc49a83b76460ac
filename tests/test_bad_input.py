"""Bad input: a one-line error naming the file, column or line, a non-zero exit code, nothing written."""

from __future__ import annotations

import pytest
import torch
from typer.testing import CliRunner

from zoo.errors import DataError
from zoo_cli.main import build_app

GOOD_ROWS = "\n".join(
    f"{u},{i},{(u * 7 + i) % 5 + 1},{1000 + t}" for u in range(1, 21) for t, i in enumerate(range(u, u + 6))
)


def run_csv(tmp_path, text: str, *extra: str):
    path = tmp_path / "log.csv"
    path.write_text(text)
    out = tmp_path / "run"
    result = CliRunner().invoke(
        build_app(),
        [
            "run",
            "dssm",
            "--dataset",
            "csv",
            "--data",
            str(path),
            "--epochs",
            "1",
            "--device",
            "cpu",
            "--quiet",
            "--out",
            str(out),
            *extra,
        ],
    )
    return result, path, out


def error_line(result) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


def test_good_csv_runs(tmp_path):
    result, _, out = run_csv(tmp_path, "user_id,item_id,rating,timestamp\n" + GOOD_ROWS + "\n")
    assert result.exit_code == 0, result.stderr
    assert (out / "run.json").is_file()


@pytest.mark.parametrize(
    "text, extra, fragments",
    [
        ("user_id,item_id,rating\n1,2,3\n", (), ["timestamp"]),  # missing column
        ("", (), ["empty"]),  # empty file
        (
            "user_id,item_id,rating,timestamp\n" + GOOD_ROWS + "\n1,2,3,4,5,6\n",
            (),
            ["line"],
        ),  # malformed line
        (
            "user_id,item_id,rating,timestamp\n1,2,,100\n" + GOOD_ROWS + "\n",
            ("--param", "data.rating_col=rating"),
            ["rating"],
        ),
        ("user_id,item_id,rating,timestamp\n1,2,3,yesterday\n" + GOOD_ROWS + "\n", (), ["timestamp"]),
    ],
    ids=["missing-column", "empty-file", "malformed-line", "nan-rating", "bad-timestamp"],
)
def test_bad_csv_is_one_line_exit_3_and_writes_nothing(tmp_path, text, extra, fragments):
    result, path, out = run_csv(tmp_path, text, *extra)
    assert result.exit_code == 3, result.stderr
    line = error_line(result)
    assert path.name in line
    for fragment in fragments:
        assert fragment in line.lower()
    assert not out.exists()
    assert not any(p.name.startswith(".run") for p in tmp_path.iterdir())


def test_malformed_movielens_line_names_file_and_line(tmp_path):
    folder = tmp_path / "ml-1m"
    folder.mkdir()
    rows = [f"{u}::{i}::4::{1000 + i}" for u in range(1, 11) for i in range(1, 8)]
    rows.insert(30, "5::17::4")
    (folder / "ratings.dat").write_text("\n".join(rows) + "\n")
    result = CliRunner().invoke(
        build_app(), ["run", "dssm", "--dataset", "movielens-1m", "--data", str(folder), "--quiet"]
    )
    assert result.exit_code == 3
    line = error_line(result)
    assert "ratings.dat" in line and "31" in line


def test_unknown_id_at_inference_is_a_one_line_error():
    from zoo.features import SequenceFeature, SparseFeature
    from zoo.train.trainer import MatchTrainer
    from zoo_plugins.dssm.model import DSSM

    model = DSSM(
        [SparseFeature("user_id", 10, 4), SequenceFeature("hist_item_id", 20, 4, shared_with="item_id")],
        [SparseFeature("item_id", 20, 4)],
        user_params={"dims": [4]},
        item_params={"dims": [4]},
    )
    trainer = MatchTrainer(model, mode=2, model_path=None, verbose=False)
    batch = {"user_id": torch.tensor([1, 50]), "hist_item_id": torch.tensor([[0, 3], [2, 4]])}
    with pytest.raises(DataError) as info:
        trainer.inference_embedding(model, "user", [batch])
    message = str(info.value)
    assert "\n" not in message and "'user_id'" in message and "50" in message and "vocabulary" in message
