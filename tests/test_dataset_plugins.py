"""The movielens and csv dataset plugins, through the registry as the pipeline uses them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from zoo.data.archive import Archive
from zoo.data.download import archives
from zoo.data.interactions import Interactions
from zoo.errors import DataError, PluginError, UsageError
from zoo.plugins import PluginManager
from zoo.registry import Registry
from zoo.specs import DatasetSpec

MOVIELENS = ("movielens-1m", "movielens-100k", "movielens-latest-small", "movielens-20m", "movielens-25m")


@pytest.fixture(scope="module")
def registry() -> Registry:
    return Registry(PluginManager())


def write_ml1m(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "ratings.dat").write_text("1::10::5::978300760\n1::20::3::978302109\n2::10::4::978301968\n")
    (folder / "movies.dat").write_text("10::Toy Story (1995)::Animation\n20::Heat (1995)::Action|Crime\n")
    return folder


def test_dataset_names_are_listed(registry: Registry) -> None:
    names = registry.names("dataset")
    for name in (*MOVIELENS, "csv"):
        assert name in names


@pytest.mark.parametrize("name", MOVIELENS)
def test_movielens_specs_match_the_download_table(registry: Registry, name: str) -> None:
    spec = registry.dataset(name)
    assert isinstance(spec, DatasetSpec)
    assert spec.needs_path and spec.plugin == "movielens"
    table = archives(registry)
    assert spec.download == name and spec.download in table
    assert table[name] == spec.archive and spec.archive.name == name
    assert spec.archive.folder == spec.data_dir_name
    assert spec.archive.url == f"https://files.grouplens.org/datasets/movielens/{spec.data_dir_name}.zip"
    assert spec.default_protocol == ("deepmatch" if name == "movielens-1m" else "loo")
    assert callable(spec.load())


def test_csv_spec(registry: Registry) -> None:
    spec = registry.dataset("csv")
    assert spec.needs_path and spec.data_dir_name is None and spec.default_protocol == "loo"
    assert dict(spec.options) == {
        "user_col": "user_id",
        "item_col": "item_id",
        "time_col": "timestamp",
        "rating_col": "",
        "sep": ",",
    }


def test_plugin_modules_stay_light() -> None:
    """Registering the datasets must not import pandas (the readers load only with a dataset)."""
    code = "import sys, zoo_plugins.movielens, zoo_plugins.csv; print('pandas' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_load_csv_through_the_registry(registry: Registry, tmp_path: Path) -> None:
    log = tmp_path / "clicks.csv"
    log.write_text("uid,iid,when,stars\na,x,3,1\nb,y,1,5\na,y,2,4\n")
    data = registry.load_dataset("csv", log, user_col="uid", item_col="iid", time_col="when")
    assert isinstance(data, Interactions)
    assert list(data.events.columns) == ["user_id", "item_id", "timestamp"]
    rated = registry.load_dataset(
        "csv", log, user_col="uid", item_col="iid", time_col="when", rating_col="stars"
    )
    assert rated.events["rating"].tolist() == [1, 5, 4]


def test_csv_dataset_tab_separator(registry: Registry, tmp_path: Path) -> None:
    log = tmp_path / "clicks.tsv"
    log.write_text("user_id\titem_id\ttimestamp\n1\t2\t3\n1\t3\t4\n")
    assert len(registry.load_dataset("csv", log, sep="\\t").events) == 2


def test_csv_dataset_errors(registry: Registry, tmp_path: Path) -> None:
    log = tmp_path / "clicks.csv"
    log.write_text("uid,iid\na,x\n")
    with pytest.raises(DataError, match="'timestamp'"):
        registry.load_dataset("csv", log, user_col="uid", item_col="iid")
    with pytest.raises(UsageError, match="no option 'user'"):
        registry.load_dataset("csv", log, user="uid")
    with pytest.raises(DataError, match="no such file"):
        registry.load_dataset("csv", tmp_path / "missing.csv")


def test_movielens_1m_from_path_and_from_zoo_data_dir(
    registry: Registry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = write_ml1m(tmp_path / "data" / "ml-1m")
    data = registry.load_dataset("movielens-1m", folder)
    assert data.name == "movielens-1m" and data.items is not None
    monkeypatch.setenv("ZOO_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("ZOO_CACHE_DIR", str(tmp_path / "empty-cache"))
    assert registry.load_dataset("movielens-1m").stats()["interactions"] == 3


def test_movielens_100k_and_ratings_csv_loaders(registry: Registry, tmp_path: Path) -> None:
    ml100k = tmp_path / "ml-100k"
    ml100k.mkdir()
    (ml100k / "u.data").write_text("1\t2\t3\t4\n2\t2\t5\t6\n")
    assert registry.load_dataset("movielens-100k", ml100k).stats()["users"] == 2
    small = tmp_path / "ml-latest-small"
    small.mkdir()
    (small / "ratings.csv").write_text("userId,movieId,rating,timestamp\n1,1,4.0,1\n")
    assert registry.load_dataset("movielens-latest-small", small).name == "movielens-latest-small"


def test_a_movielens_dataset_refuses_another_release(registry: Registry, tmp_path: Path) -> None:
    small = tmp_path / "ml-latest-small"
    small.mkdir()
    (small / "ratings.csv").write_text("userId,movieId,rating,timestamp\n1,1,4.0,1\n")
    with pytest.raises(DataError, match="ratings.dat"):
        registry.load_dataset("movielens-1m", small)


def test_missing_data_says_how_to_download(
    registry: Registry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ZOO_DATA_DIR", raising=False)
    monkeypatch.setenv("ZOO_CACHE_DIR", str(tmp_path / "empty-cache"))
    with pytest.raises(DataError, match="zoo data download movielens-1m"):
        registry.load_dataset("movielens-1m")


def test_archives_are_listed_in_the_order_the_plugin_registers_them(registry: Registry) -> None:
    assert list(archives(registry)) == [
        "movielens-100k", "movielens-1m", "movielens-latest-small", "movielens-20m", "movielens-25m"
    ]  # fmt: skip


def test_an_archive_fills_in_download_and_data_dir_name() -> None:
    url = "https://example.org/d/logs-v2.tar.gz"
    archive = Archive(url=url, folder="logs", checksum="sha256:" + "ab" * 32)
    spec = DatasetSpec(name="my-logs", factory="a:b", needs_path=True, archive=archive)
    assert spec.download == "my-logs" and spec.data_dir_name == "logs" and spec.archive.name == "my-logs"
    assert spec.archive.filename == "logs-v2.tar.gz"
    assert spec.with_provider("p", "d").archive == spec.archive  # dataclasses.replace keeps it


@pytest.mark.parametrize(
    ("changes", "fragment"),
    [
        ({"needs_path": False}, "needs_path=True"),
        ({"data_dir_name": "other"}, "differs from the archive's folder"),
        ({"download": "movielens-1m"}, "leave download out"),
        ({"archive": {"url": "x"}}, "must be a zoo.data.archive.Archive"),
    ],
)
def test_bad_archive_declarations_are_plugin_errors(changes: dict, fragment: str) -> None:
    archive = Archive(url="https://example.org/logs.zip", folder="logs", checksum="md5:" + "0" * 32)
    fields = {"name": "my-logs", "factory": "a:b", "needs_path": True, "archive": archive, **changes}
    with pytest.raises(PluginError, match=fragment):
        DatasetSpec(**fields)


@pytest.mark.parametrize(
    ("fields", "fragment"),
    [
        ({"url": "logs.zip"}, "url"),
        ({"folder": "../up"}, "plain folder name"),
        ({"checksum": "sha256:xyz"}, "checksum"),
        ({"size": -1}, "size"),
    ],
)
def test_bad_archives_are_plugin_errors(fields: dict, fragment: str) -> None:
    good = {"url": "https://example.org/logs.zip", "folder": "logs", "checksum": "sha256:" + "0" * 64}
    with pytest.raises(PluginError, match=fragment):
        Archive(**{**good, **fields})


def test_data_is_found_only_through_data_zoo_data_dir_or_the_cache(
    registry: Registry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No search up the directory tree: a shared/data/movielens folder above the cwd is not used."""
    from zoo.data.locate import env_data_dir

    write_ml1m(tmp_path / "shared" / "data" / "movielens" / "ml-1m")
    work = tmp_path / "checkout" / "sub"
    work.mkdir(parents=True)
    monkeypatch.chdir(work)
    monkeypatch.delenv("ZOO_DATA_DIR", raising=False)
    monkeypatch.setenv("ZOO_CACHE_DIR", str(tmp_path / "empty-cache"))
    assert env_data_dir() is None
    with pytest.raises(DataError, match="needs its files"):
        registry.load_dataset("movielens-1m")
    write_ml1m(tmp_path / "empty-cache" / "ml-1m")
    assert registry.load_dataset("movielens-1m").stats()["interactions"] == 3
