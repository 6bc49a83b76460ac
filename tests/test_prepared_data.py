"""Prepared-data folders (zoo.data.prepared): the streamed read and the folder give exactly what the
in-memory path gives, are reused while input and protocol stay the same, rebuilt when the input
changes, and refused (one line naming the folder) when damaged or foreign. No pickle anywhere."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from zoo.data.match import MatchData
from zoo.data.prepared import MANIFEST, build_match_data, load_folder, stream_interactions
from zoo.data.prepared.folder import _load_array
from zoo.data.protocol import get_protocol
from zoo.data.readers import read_interactions
from zoo.errors import DataError, UsageError
from zoo.pipeline import Progress, RunConfig, embed, evaluate_exact, prepare, train

ARRAYS = (
    "seq_items",
    "seq_users",
    "seq_start",
    "train_positions",
    "valid_positions",
    "test_positions",
    "item_counts",
)
TINY = {"embed_dim": 8, "dims": [16, 8]}


class Lines(Progress):
    """Records the stage lines."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def stage(self, name: str, detail: str = "") -> None:
        self.lines.append(f"{name} {detail}")


@pytest.fixture(scope="module")
def events(tmp_path_factory) -> pd.DataFrame:
    """A shuffled log with string user ids, a few exact duplicate rows and equal timestamps."""
    from zoo_plugins.synthetic.generator import generate

    frame = generate(users=300, items=120, seed=1).events
    frame = frame.sample(frac=1.0, random_state=1).reset_index(drop=True)
    frame["user_id"] = "u" + frame["user_id"].astype(str)
    frame.loc[::7, "timestamp"] = frame["timestamp"].iloc[0]  # ties keep file order
    return pd.concat([frame, frame.iloc[:4]], ignore_index=True)


def write(path: Path, frame: pd.DataFrame, **kwargs) -> Path:
    frame.to_csv(path, index=False, **kwargs)
    return path


def assert_same(a: MatchData, b: MatchData) -> None:
    for name in ARRAYS:
        x, y = getattr(a, name), getattr(b, name)
        assert x.dtype == y.dtype, name
        assert torch.equal(x, y), name
    assert a.encoder.to_dict() == b.encoder.to_dict()
    assert a.schema == b.schema
    assert a.protocol == b.protocol
    assert a.user_table.keys() == b.user_table.keys() and a.item_table.keys() == b.item_table.keys()
    for name in a.item_table:
        assert torch.equal(a.item_table[name], b.item_table[name])
    for name in a.user_table:
        assert torch.equal(a.user_table[name], b.user_table[name])
    card_a, card_b = dict(a.card), dict(b.card)
    card_a.pop("prepare_seconds")
    card_b.pop("prepare_seconds")
    assert json.loads(json.dumps(card_a)) == json.loads(json.dumps(card_b))


@pytest.mark.parametrize("ids", ["text", "int"])
@pytest.mark.parametrize("protocol", ["loo", "recbole-seq", "sasrec"])
def test_streamed_read_builds_the_in_memory_arrays(tmp_path, events, ids, protocol):
    frame = events.copy()
    if ids == "int":
        frame["user_id"] = frame["user_id"].str[1:].astype(int)
    path = write(tmp_path / "log.csv", frame)
    chosen = get_protocol(protocol)
    expected = MatchData.from_interactions(read_interactions(path, rating_col="rating"), chosen)
    log = stream_interactions(path, rating_col="rating")
    assert log.warnings == read_interactions(path, rating_col="rating").warnings  # the 4 duplicates
    assert log.warnings and "4 exact duplicate" in log.warnings[0]
    assert_same(expected, build_match_data(log, chosen))


def test_streamed_read_in_several_blocks_tsv_and_iso_times(tmp_path, events, monkeypatch):
    from zoo.data.prepared import stream

    monkeypatch.setattr(stream, "BLOCK_BYTES", 4096)  # dozens of blocks
    frame = events.copy()
    frame["timestamp"] = pd.to_datetime(frame["timestamp"], unit="s").dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    path = write(tmp_path / "log.tsv", frame.drop(columns="rating"), sep="\t")
    chosen = get_protocol("loo")
    expected = MatchData.from_interactions(read_interactions(path, sep="tab"), chosen)
    log = stream_interactions(path, sep="tab")
    assert log.timestamps.dtype == np.int64
    assert_same(expected, build_match_data(log, chosen))


def test_streamed_read_of_parquet(tmp_path, events):
    path = tmp_path / "log.parquet"
    events.to_parquet(path)
    chosen = get_protocol("loo")
    expected = MatchData.from_interactions(read_interactions(path), chosen)
    assert_same(expected, build_match_data(stream_interactions(path), chosen))


@pytest.mark.parametrize(
    ("cell", "column", "needle"),
    [
        ("", "user_id", "column 'user_id' is empty"),
        ("soon", "timestamp", "column 'timestamp' holds 'soon', which is not a number"),
        ("x", "rating", "column 'rating' holds 'x', which is not a number"),
    ],
)
def test_streamed_read_bad_cell_is_one_line_naming_file_row_and_column(
    tmp_path, events, cell, column, needle
):
    frame = events.head(40).astype({column: object})
    frame.loc[17, column] = cell
    path = write(tmp_path / "bad.csv", frame)
    with pytest.raises(DataError) as caught:
        stream_interactions(path, rating_col="rating")
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"{path}, data row 18: ") and needle in message


def test_streamed_read_missing_column(tmp_path, events):
    path = write(tmp_path / "log.csv", events.drop(columns="timestamp"))
    with pytest.raises(DataError, match=r"missing column 'timestamp'.*data\.time_col"):
        stream_interactions(path)


def csv_config(path: Path, prepared: Path | None, **extra) -> RunConfig:
    return RunConfig(
        model="dssm",
        dataset="csv",
        data_path=str(path),
        device="cpu",
        epochs=1,
        params=dict(TINY),
        dataset_options={"rating_col": "rating"},
        prepared_dir=str(prepared) if prepared is not None else None,
        **extra,
    )


def test_run_from_the_folder_gives_the_same_data_batches_and_metrics(tmp_path, events):
    path = write(tmp_path / "log.csv", events)
    in_memory = prepare(csv_config(path, None))
    from_folder = prepare(csv_config(path, tmp_path / "prepared"))
    assert_same(in_memory.data, from_folder.data)
    maps = Path("/proc/self/maps")
    if maps.exists():  # the arrays are memory-mapped from the folder, not loaded
        (folder,) = (tmp_path / "prepared").iterdir()
        assert str(folder / "seq_items.npy") in maps.read_text()
    assert from_folder.dataset_stats == in_memory.dataset_stats
    assert from_folder.warnings == in_memory.warnings
    model = object()
    first = [b for b, _ in zip(in_memory.data.training_batches(model, 256, seed=4), range(3), strict=False)]
    second = [
        b for b, _ in zip(from_folder.data.training_batches(model, 256, seed=4), range(3), strict=False)
    ]
    for a, b in zip(first, second, strict=True):
        assert a.keys() == b.keys()
        assert all(torch.equal(a[k], b[k]) for k in a)
    results = []
    for prepared in (in_memory, from_folder):
        embedded = embed(train(prepared))
        results.append(evaluate_exact(embedded, (10, 20)).metrics)
    assert results[0] == results[1]


def test_second_run_reuses_the_folder_and_a_changed_input_rebuilds_it(tmp_path, events):
    path = write(tmp_path / "log.csv", events)
    root = tmp_path / "prepared"
    first = Lines()
    built = prepare(csv_config(path, root), progress=first)
    (folder,) = root.iterdir()
    assert not any("reusing" in line for line in first.lines)
    stamp = (folder / MANIFEST).stat().st_mtime_ns
    again = Lines()
    reused = prepare(csv_config(path, root), progress=again)
    assert [line for line in again.lines if "reusing" in line] == [
        f"prepare reusing {folder} (same input and protocol)"
    ]
    assert (folder / MANIFEST).stat().st_mtime_ns == stamp
    assert_same(built.data, reused.data)

    write(path, events.iloc[:-30])  # another input at the same path
    changed = Lines()
    rebuilt = prepare(csv_config(path, root), progress=changed)
    assert any(line.startswith(f"prepare rebuilding {folder}: the input changed") for line in changed.lines)
    assert sorted(root.iterdir()) == [folder]  # rebuilt in place, no leftovers
    assert rebuilt.data.seq_items.shape[0] < built.data.seq_items.shape[0]
    assert_same(
        MatchData.from_interactions(read_interactions(path, rating_col="rating"), get_protocol("loo")),
        rebuilt.data,
    )

    other = prepare(csv_config(path, root, protocol="sasrec"))  # another protocol: its own folder
    assert len(list(root.iterdir())) == 2 and other.data.protocol.name == "sasrec"


def test_a_dataset_without_a_stream_reader_is_loaded_once_then_read_from_the_folder(tmp_path):
    config = RunConfig(
        model="dssm",
        dataset="synthetic",
        device="cpu",
        params=dict(TINY),
        dataset_options={"users": 120, "items": 60, "categories": 5},
    )
    expected = prepare(config)
    config.prepared_dir = str(tmp_path / "prepared")
    built = prepare(config)
    lines = Lines()
    reused = prepare(config, progress=lines)
    assert any("reusing" in line for line in lines.lines)
    assert expected.data.item_table  # side tables travel through the folder
    assert_same(expected.data, built.data)
    assert_same(expected.data, reused.data)


def built_folder(tmp_path: Path, events: pd.DataFrame) -> tuple[Path, RunConfig]:
    path = write(tmp_path / "log.csv", events)
    config = csv_config(path, tmp_path / "prepared")
    prepare(config)
    (folder,) = (tmp_path / "prepared").iterdir()
    return folder, config


def one_line(exc: pytest.ExceptionInfo, folder: Path) -> str:
    message = str(exc.value)
    assert "\n" not in message and str(folder) in message
    return message


def test_truncated_array_is_refused_naming_the_file_and_what_to_do(tmp_path, events):
    folder, config = built_folder(tmp_path, events)
    target = folder / "seq_items.npy"
    target.write_bytes(target.read_bytes()[:-80])
    with pytest.raises(DataError) as caught:
        prepare(config)
    message = one_line(caught, folder)
    assert str(target) in message and "damaged" in message and f"delete {folder} and run again" in message


def test_altered_small_array_fails_its_checksum(tmp_path, events):
    folder, config = built_folder(tmp_path, events)
    target = folder / "item_counts.npy"
    data = bytearray(target.read_bytes())
    data[-1] ^= 0xFF
    target.write_bytes(bytes(data))
    with pytest.raises(DataError, match="checksum mismatch") as caught:
        prepare(config)
    one_line(caught, folder)


def test_foreign_folder_at_the_folder_name_is_never_replaced(tmp_path, events):
    folder, config = built_folder(tmp_path, events)
    for entry in folder.iterdir():
        entry.unlink()
    (folder / "notes.txt").write_text("mine")
    with pytest.raises(DataError, match="is not a recall-zoo prepared-data folder") as caught:
        prepare(config)
    assert "notes.txt" in one_line(caught, folder)
    assert (folder / "notes.txt").read_text() == "mine"
    (folder / MANIFEST).write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(DataError, match="not a recall-zoo prepared-data folder"):
        prepare(config)


def test_newer_format_is_refused(tmp_path, events):
    folder, config = built_folder(tmp_path, events)
    manifest = json.loads((folder / MANIFEST).read_text())
    manifest["format_version"] = 99
    (folder / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(DataError, match="prepared-data format 99") as caught:
        prepare(config)
    one_line(caught, folder)


def test_prepared_dir_that_is_a_file_is_a_usage_error(tmp_path, events):
    path = write(tmp_path / "log.csv", events)
    (tmp_path / "taken").write_text("x")
    with pytest.raises(UsageError, match="--prepared-dir .*taken is a file"):
        prepare(csv_config(path, tmp_path / "taken"))


def test_folder_holds_no_pickle(tmp_path, events):
    folder, _ = built_folder(tmp_path, events)
    manifest = json.loads((folder / MANIFEST).read_text())
    for name, entry in manifest["arrays"].items():
        array = np.load(folder / entry["file"], allow_pickle=False)  # raises on any object array
        assert array.dtype != object, name
    pickled = folder / "evil.npy"
    np.save(pickled, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    from zoo.io import sha256_file

    entry = {"file": "evil.npy", "dtype": "|O", "shape": [1], "bytes": pickled.stat().st_size}
    entry["sha256"] = sha256_file(pickled)
    with pytest.raises(DataError, match="not a plain .npy array"):
        _load_array(folder, "evil", entry, "rebuild it")
    loaded = load_folder(folder)
    assert loaded.seq_items.shape[0] == manifest["arrays"]["seq_items"]["shape"][0]


def test_cli_run_and_bench_take_prepared_dir(tmp_path, events):
    from typer.testing import CliRunner

    from zoo_cli.main import build_app

    path = write(tmp_path / "log.csv", events)
    runner = CliRunner()
    args = ["run", "dssm", "--dataset", "csv", "--data", str(path), "--param", "data.rating_col=rating"]
    args += ["--param", "embed_dim=8", "--param", "dims=16,8", "--epochs", "1", "--device", "cpu"]
    args += ["--prepared-dir", str(tmp_path / "prepared"), "--format", "json"]
    first = runner.invoke(build_app(), [*args, "--out", str(tmp_path / "r1")])
    assert first.exit_code == 0, first.stderr
    second = runner.invoke(build_app(), [*args, "--out", str(tmp_path / "r2")])
    assert second.exit_code == 0, second.stderr
    assert json.loads(first.stdout)["metrics"] == json.loads(second.stdout)["metrics"]
    assert len(list((tmp_path / "prepared").iterdir())) == 1
    bench_help = runner.invoke(build_app(), ["bench", "--help"])
    assert "--prepared-dir" in bench_help.stdout


def test_seen_items_matches_a_per_user_reference(tmp_path, events):
    path = write(tmp_path / "log.csv", events)
    data = MatchData.from_interactions(read_interactions(path), get_protocol("sasrec"))
    items = data.seq_items.numpy()
    for positions in (data.valid_positions, data.test_positions, data.test_positions.flip(0)):
        indptr, rows = data.seen_items(positions)
        starts = data.seq_start[positions].numpy()
        for user, (start, end) in enumerate(zip(starts, positions.numpy(), strict=True)):
            expected = items[start:end][items[start:end] >= 2] - 2
            assert rows[indptr[user] : indptr[user + 1]].tolist() == expected.tolist()
        assert int(indptr[-1]) == len(rows)
