"""MovieLens and generic CSV readers: canonical output, and a one-line DataError for every bad input.

Fixtures are tiny files written into tmp_path (MovieLens itself is never copied into the repo);
the real-data checks read ../shared/data/movielens and skip cleanly where it is absent.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from zoo.data.interactions import Interactions
from zoo.data.locate import env_data_dir
from zoo.data.readers import (
    ML100K_GENRES,
    read_interactions,
    read_ml1m,
    read_ml100k,
    read_movielens,
    read_ratings_csv,
)
from zoo.errors import DataError, UsageError

ML1M_RATINGS = "1::10::5::978300760\n1::20::3::978302109\n2::10::4::978301968\n2::30::1::978300275\n"
ML1M_USERS = "1::F::1::10::48067\n2::M::56::16::98107-2117\n"
ML1M_MOVIES = (
    "10::Toy Story (1995)::Animation|Children's|Comedy\n"
    "20::Dracula: Dead and Loving It (1995)::Comedy|Horror\n"
    "30::Café au lait (1993)::Drama\n"
)


def write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding=encoding)
    return path


@pytest.fixture
def ml1m(tmp_path: Path) -> Path:
    folder = tmp_path / "ml-1m"
    write(folder / "ratings.dat", ML1M_RATINGS, "latin-1")
    write(folder / "users.dat", ML1M_USERS, "latin-1")
    write(folder / "movies.dat", ML1M_MOVIES, "latin-1")
    return folder


def data_error(func, *args, **kwargs) -> str:
    """Call ``func`` expecting a DataError; return its message after checking it is one clean line."""
    with pytest.raises(DataError) as info:
        func(*args, **kwargs)
    message = str(info.value)
    assert "\n" not in message and "Traceback" not in message
    assert info.value.exit_code == 3
    return message


# --------------------------------------------------------------------------------------------
# ml-1m
# --------------------------------------------------------------------------------------------
def test_ml1m_reads_events_and_side_tables(ml1m: Path) -> None:
    data = read_ml1m(ml1m)
    assert isinstance(data, Interactions)
    assert data.name == "movielens-1m"
    assert data.source == str(ml1m / "ratings.dat")
    ev = data.events
    assert list(ev.columns) == ["user_id", "item_id", "timestamp", "rating"]
    assert [str(ev[c].dtype) for c in ("user_id", "item_id", "timestamp")] == ["int64"] * 3
    assert pd.api.types.is_float_dtype(ev["rating"])
    assert ev["item_id"].tolist() == [10, 20, 10, 30]
    assert ev["rating"].tolist() == [5, 3, 4, 1]

    assert data.users is not None and list(data.users.columns) == [
        "user_id",
        "gender",
        "age",
        "occupation",
        "zip",
    ]
    assert data.users["zip"].tolist() == ["48067", "98107-2117"]  # zip codes stay strings
    assert data.users["age"].tolist() == [1, 56]

    assert data.items is not None and list(data.items.columns) == ["item_id", "genres", "year"]
    assert data.item_multivalue == {"genres": "|"}
    assert data.items["genres"].tolist() == ["Animation|Children's|Comedy", "Comedy|Horror", "Drama"]
    assert data.items["year"].tolist() == [1995, 1995, 1993]
    assert data.meta["item_titles"][20] == "Dracula: Dead and Loving It (1995)"  # ':' in a title
    assert data.meta["item_titles"][30] == "Café au lait (1993)"  # latin-1 decoded


def test_ml1m_side_files_are_optional_and_file_path_works(tmp_path: Path) -> None:
    ratings = write(tmp_path / "ratings.dat", ML1M_RATINGS)
    data = read_ml1m(ratings)
    assert data.users is None and data.items is None and data.item_multivalue == {}
    assert len(data.events) == 4
    assert data.name == "movielens-1m"


def test_ml1m_blank_lines_are_ignored_and_line_numbers_stay_true(tmp_path: Path) -> None:
    write(tmp_path / "ratings.dat", "1::10::5::1\n\n1::20::3::2\n\n")
    assert len(read_ml1m(tmp_path).events) == 2
    write(tmp_path / "ratings.dat", "1::10::5::1\n\n1::20::x::2\n")
    assert "line 3" in data_error(read_ml1m, tmp_path)


def test_ml10m_style_half_star_ratings(tmp_path: Path) -> None:
    write(tmp_path / "ml-10M100K" / "ratings.dat", "1::122::5::838985046\n1::185::3.5::838983525\n")
    data = read_ml1m(tmp_path / "ml-10M100K")
    assert data.events["rating"].tolist() == [5.0, 3.5]
    assert data.events["user_id"].dtype == np.int64


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("1::10::5::1\n1::20::3::2::9\n", ["line 2", "wrong number of fields"]),
        ("1::10::5::1::9\n1::20::3::2\n", ["line 1"]),  # extra field on the first line
        ("1::10::5::1\n1::20::3\n", ["line 2", "Timestamp"]),  # missing field
        ("1::10::5::1\n1:20:3:2\n", ["line 2", "UserID::MovieID::Rating::Timestamp"]),  # single ':'
        ("1::10::5::1\nabc::20::3::2\n", ["line 2", "UserID", "'abc'"]),
        ("1::10::5::1\n1::2.5::3::2\n", ["line 2", "MovieID", "not an integer"]),
        ("1::10::5::1\n1::20::::2\n", ["line 2", "Rating", "empty"]),
        ("1::10::5::1\n1::20::NaN::2\n", ["line 2", "Rating"]),
        ("1::10::5::1\n1::20::3::soon\n", ["line 2", "Timestamp", "'soon'"]),
    ],
)
def test_ml1m_malformed_ratings(tmp_path: Path, content: str, expected: list[str]) -> None:
    path = write(tmp_path / "ratings.dat", content)
    message = data_error(read_ml1m, tmp_path)
    assert str(path) in message
    for part in expected:
        assert part in message


def test_ml1m_missing_and_empty_files(tmp_path: Path) -> None:
    message = data_error(read_ml1m, tmp_path)
    assert str(tmp_path / "ratings.dat") in message and "no such file" in message
    write(tmp_path / "ratings.dat", "")
    assert "empty" in data_error(read_ml1m, tmp_path)


def test_ml1m_bad_side_files(ml1m: Path) -> None:
    write(ml1m / "users.dat", ML1M_USERS + "1::M::25::3::11111\n")
    message = data_error(read_ml1m, ml1m)
    assert "users.dat, line 3" in message and "twice" in message
    write(ml1m / "users.dat", ML1M_USERS)
    write(ml1m / "movies.dat", ML1M_MOVIES + "40::No genres here (2000)\n", "latin-1")
    message = data_error(read_ml1m, ml1m)
    assert "movies.dat, line 4" in message and "MovieID::Title::Genres" in message


# --------------------------------------------------------------------------------------------
# ml-100k
# --------------------------------------------------------------------------------------------
def _flags(*names: str) -> str:
    return "|".join("1" if g in names else "0" for g in ML100K_GENRES)


@pytest.fixture
def ml100k(tmp_path: Path) -> Path:
    folder = tmp_path / "ml-100k"
    write(folder / "u.data", "196\t242\t3\t881250949\n186\t302\t3\t891717742\n196\t302\t5\t881250950\n")
    write(folder / "u.user", "196|49|M|writer|55105\n186|39|F|executive|00000\n")
    write(
        folder / "u.item",
        f"242|Kolya (1996)|24-Jan-1997||http://us.imdb.com/M/title-exact?Kolya%20(1996)|{_flags('Comedy')}\n"
        f"302|L.A. Confidential (1997)|01-Jan-1997||http://x|"
        f"{_flags('Crime', 'Film-Noir', 'Mystery', 'Thriller')}\n"
        f"303|unknown|||http://x|{_flags('unknown')}\n",
        "latin-1",
    )
    return folder


def test_ml100k_reads_and_joins_genre_flags(ml100k: Path) -> None:
    data = read_ml100k(ml100k)
    assert data.name == "movielens-100k"
    assert data.events["user_id"].tolist() == [196, 186, 196]
    assert data.events["timestamp"].dtype == np.int64
    assert data.users is not None and list(data.users.columns) == [
        "user_id",
        "gender",
        "age",
        "occupation",
        "zip",
    ]
    assert data.users["zip"].tolist() == ["55105", "00000"]
    assert data.items is not None
    assert data.items["genres"].tolist() == ["Comedy", "Crime|Film-Noir|Mystery|Thriller", "unknown"]
    assert data.items["year"].isna().tolist() == [False, False, True]
    assert data.item_multivalue == {"genres": "|"}


def test_ml100k_uses_u_genre_names(ml100k: Path) -> None:
    names = [f"g{i}" for i in range(19)]
    write(ml100k / "u.genre", "".join(f"{n}|{i}\n" for i, n in enumerate(names)) + "\n")
    data = read_ml100k(ml100k)
    assert data.items is not None and data.items["genres"].iloc[0] == "g5"  # Comedy is flag 5


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("196\t242\t3\t881250949\n186\t302\t3\n", ["line 2", "fewer than 4 fields"]),
        ("196\t242\t3\t881250949\n186\t302\t3\t1\t7\n", ["line 2", "more than 4 fields"]),
        ("196\t242\t3\t881250949\n186\tx\t3\t1\n", ["line 2", "item id", "'x'"]),
    ],
)
def test_ml100k_malformed_ratings(ml100k: Path, content: str, expected: list[str]) -> None:
    write(ml100k / "u.data", content)
    message = data_error(read_ml100k, ml100k)
    assert str(ml100k / "u.data") in message
    for part in expected:
        assert part in message


def test_ml100k_item_with_wrong_flag_count(ml100k: Path) -> None:
    write(ml100k / "u.item", "242|Kolya (1996)|24-Jan-1997||http://x|0|1\n")
    message = data_error(read_ml100k, ml100k)
    assert "u.item, line 1" in message


# --------------------------------------------------------------------------------------------
# ratings.csv (ml-latest-small / 20m / 25m)
# --------------------------------------------------------------------------------------------
@pytest.fixture
def mlsmall(tmp_path: Path) -> Path:
    folder = tmp_path / "ml-latest-small"
    write(
        folder / "ratings.csv",
        "userId,movieId,rating,timestamp\n1,1,4.0,964982703\n1,3,4.5,964981247\n2,1,0.5,9\n",
    )
    write(
        folder / "movies.csv",
        "movieId,title,genres\n1,Toy Story (1995),Adventure|Animation\n"
        '3,"Grumpier Old Men, The (1995)",Comedy\n'
        "5,Some Film,(no genres listed)\n",
    )
    return folder


def test_ratings_csv_reads(mlsmall: Path) -> None:
    data = read_ratings_csv(mlsmall)
    assert data.name == "movielens-latest-small"
    assert data.events["rating"].tolist() == [4.0, 4.5, 0.5]
    assert data.events["item_id"].dtype == np.int64
    assert data.users is None
    assert data.items is not None
    assert data.items["genres"].tolist() == ["Adventure|Animation", "Comedy", ""]
    assert data.items["year"].isna().tolist() == [False, False, True]
    assert data.meta["item_titles"][3] == "Grumpier Old Men, The (1995)"


def test_ratings_csv_missing_column_lists_found_columns(mlsmall: Path) -> None:
    write(mlsmall / "ratings.csv", "user,movieId,rating,timestamp\n1,1,4.0,1\n")
    message = data_error(read_ratings_csv, mlsmall)
    assert "'userId'" in message and "user, movieId, rating, timestamp" in message


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        ("1,3,,964981247", ["line 3", "rating", "empty"]),
        ("1,3,4.0,later", ["line 3", "timestamp", "'later'"]),
        ("1,3,4.0", ["line 3", "timestamp", "empty"]),
        ("1,3,4.0,5,6", ["line 3", "wrong number of fields"]),
    ],
)
def test_ratings_csv_malformed(mlsmall: Path, row: str, expected: list[str]) -> None:
    write(mlsmall / "ratings.csv", f"userId,movieId,rating,timestamp\n1,1,4.0,964982703\n{row}\n")
    message = data_error(read_ratings_csv, mlsmall / "ratings.csv")
    assert "ratings.csv" in message
    for part in expected:
        assert part in message


def test_ratings_csv_extra_field_on_the_first_data_line(mlsmall: Path) -> None:
    write(mlsmall / "ratings.csv", "userId,movieId,rating,timestamp\n1,1,4.0,9,7\n1,3,4.0,1\n")
    assert "line 2" in data_error(read_ratings_csv, mlsmall)


def test_ratings_csv_header_only_is_empty(mlsmall: Path) -> None:
    write(mlsmall / "ratings.csv", "userId,movieId,rating,timestamp\n")
    assert "no interactions" in data_error(read_ratings_csv, mlsmall)


# --------------------------------------------------------------------------------------------
# read_movielens dispatch
# --------------------------------------------------------------------------------------------
def test_read_movielens_detects_each_layout(ml1m: Path, ml100k: Path, mlsmall: Path) -> None:
    assert read_movielens(ml1m).meta["format"] == "ml-1m"
    assert read_movielens(ml100k).meta["format"] == "ml-100k"
    assert read_movielens(mlsmall).meta["format"] == "ratings.csv"
    assert read_movielens(ml1m / "ratings.dat").items is not None  # file path: side files next to it
    assert read_movielens(ml100k / "u.data").name == "movielens-100k"


def test_read_movielens_unknown_folder_lists_what_it_looked_for(tmp_path: Path) -> None:
    write(tmp_path / "notes.txt", "hello")
    message = data_error(read_movielens, tmp_path)
    assert str(tmp_path) in message
    for name in ("ratings.dat", "u.data", "ratings.csv"):
        assert name in message
    assert "no such file" in data_error(read_movielens, tmp_path / "missing")
    assert "not a MovieLens ratings file" in data_error(read_movielens, tmp_path / "notes.txt")


# --------------------------------------------------------------------------------------------
# read_interactions (generic logs)
# --------------------------------------------------------------------------------------------
LOG = "uid,iid,ts,score,extra\nu1,i1,10,1.0,x\nu1,i2,20,0.5,y\nu2,i1,15,2.0,z\n"


def test_read_interactions_maps_columns_and_drops_others(tmp_path: Path) -> None:
    path = write(tmp_path / "log.csv", LOG)
    data = read_interactions(path, user_col="uid", item_col="iid", time_col="ts", rating_col="score")
    assert list(data.events.columns) == ["user_id", "item_id", "timestamp", "rating"]
    assert data.events["user_id"].tolist() == ["u1", "u1", "u2"]
    assert data.events["timestamp"].dtype == np.int64
    assert data.name == "log" and data.source == str(path)
    implicit = read_interactions(path, user_col="uid", item_col="iid", time_col="ts")
    assert "rating" not in implicit.events.columns


def test_read_interactions_tsv_alias(tmp_path: Path) -> None:
    path = write(tmp_path / "log.tsv", "user_id\titem_id\ttimestamp\n1\t2\t3\n")
    data = read_interactions(path, sep="\\t")
    assert data.events["item_id"].tolist() == [2]


def test_read_interactions_missing_columns(tmp_path: Path) -> None:
    path = write(tmp_path / "log.csv", LOG)
    message = data_error(read_interactions, path, user_col="uid", item_col="item", time_col="ts")
    assert "'item'" in message and "uid, iid, ts, score, extra" in message and str(path) in message
    message = data_error(
        read_interactions, path, user_col="uid", item_col="iid"
    )  # time_col left at 'timestamp'
    assert "'timestamp'" in message


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        ("u3,i3,later,1.0,q", ["line 5", "'ts'", "'later'", "number"]),
        ("u3,i3,30,,q", ["line 5", "'score'", "empty"]),
        ("u3,i3,30,NaN,q", ["line 5", "'score'"]),
        (",i3,30,1.0,q", ["line 5", "'uid'", "empty"]),
    ],
)
def test_read_interactions_bad_values(tmp_path: Path, row: str, expected: list[str]) -> None:
    path = write(tmp_path / "log.csv", LOG + row + "\n")
    message = data_error(
        read_interactions, path, user_col="uid", item_col="iid", time_col="ts", rating_col="score"
    )
    for part in expected:
        assert part in message


def test_read_interactions_reports_a_line_with_extra_fields(tmp_path: Path) -> None:
    path = write(tmp_path / "log.csv", LOG + "u3,i3,30,1.0,q,unquoted comma\n")
    message = data_error(read_interactions, path, user_col="uid", item_col="iid", time_col="ts")
    assert "line 5" in message and "wrong number of fields" in message


def test_read_interactions_missing_empty_and_folder(tmp_path: Path) -> None:
    assert "no such file" in data_error(read_interactions, tmp_path / "nope.csv")
    assert "empty" in data_error(read_interactions, write(tmp_path / "empty.csv", ""))
    assert "folder" in data_error(read_interactions, tmp_path)


def test_read_interactions_same_column_twice_is_a_usage_error(tmp_path: Path) -> None:
    path = write(tmp_path / "log.csv", LOG)
    with pytest.raises(UsageError):
        read_interactions(path, user_col="uid", item_col="uid", time_col="ts")


@pytest.mark.skipif(importlib.util.find_spec("pyarrow") is None, reason="pyarrow is not installed")
def test_read_interactions_parquet(tmp_path: Path) -> None:
    frame = pd.DataFrame({"u": [1, 2, 2], "i": [5, 6, 5], "t": [1.0, 2.0, 3.0], "r": [1.0, np.nan, 2.0]})
    path = tmp_path / "log.parquet"
    frame.to_parquet(path)
    data = read_interactions(path, user_col="u", item_col="i", time_col="t")
    assert data.events["timestamp"].dtype == np.int64  # whole-number floats become ints
    message = data_error(read_interactions, path, user_col="u", item_col="i", time_col="t", rating_col="r")
    assert "row 2" in message and "'r'" in message
    message = data_error(read_interactions, path, user_col="u", item_col="x", time_col="t")
    assert "'x'" in message and "u, i, t, r" in message


def test_read_interactions_parquet_without_pyarrow(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "pyarrow" else real(name, *a)
    )
    path = write(tmp_path / "log.parquet", "not really parquet")
    assert 'pip install "recall-zoo[parquet]"' in data_error(read_interactions, path)


# --------------------------------------------------------------------------------------------
# Real data ($ZOO_DATA_DIR/<name>), skipped where absent
# --------------------------------------------------------------------------------------------
def _real(name: str) -> Path:
    root = env_data_dir()
    if root is None or not (root / name).is_dir():
        pytest.skip(f"real MovieLens data not found: set ZOO_DATA_DIR to a folder holding {name}/")
    return root / name


@pytest.mark.realdata
def test_real_ml1m_counts() -> None:
    data = read_movielens(_real("ml-1m"))
    assert data.stats()["interactions"] == 1_000_209
    assert data.stats()["users"] == 6_040
    assert data.stats()["items"] == 3_706
    assert data.users is not None and len(data.users) == 6_040
    assert data.items is not None and len(data.items) == 3_883
    assert data.events["rating"].between(1, 5).all()
    assert int(data.events["timestamp"].min()) == 956_703_932
    assert int(data.events["timestamp"].max()) == 1_046_454_590


@pytest.mark.realdata
def test_real_ml_latest_small_counts() -> None:
    data = read_movielens(_real("ml-latest-small"))
    stats = data.stats()
    assert (stats["interactions"], stats["users"], stats["items"]) == (100_836, 610, 9_724)
    assert data.items is not None and len(data.items) == 9_742
