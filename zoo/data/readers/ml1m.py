"""MovieLens 1M (and 10M): ``::``-separated ``ratings.dat``, ``users.dat``, ``movies.dat`` (latin-1)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from zoo.data.interactions import Interactions
from zoo.data.readers.checks import (
    PathLike,
    Where,
    existing_file,
    first_bad,
    optional_file,
    require_int,
    require_numeric,
    require_present,
    unique_side,
)
from zoo.data.readers.csv import ONLY_EMPTY_IS_MISSING, read_csv, read_lines
from zoo.data.readers.movielens_common import movie_table, movielens_interactions, release_name, split_target
from zoo.errors import DataError


def _read_double_colon(
    path: Path, fields: Sequence[str], layout: str, *, text: Sequence[str] = (), encoding: str = "latin-1"
) -> pd.DataFrame:
    """A ``A::B::C`` file without ':' inside its values, parsed fast by the C engine.

    Reading with ``sep=":"`` makes each ``::`` an empty column between two values, so a line of
    ``n`` fields gives ``2n - 1`` columns. One more column is read so that an extra field lands
    somewhere visible; every separator column must then be empty.
    """
    n = len(fields)
    dtype = {2 * fields.index(name): "str" for name in text}
    raw = read_csv(
        path, layout, sep=":", header=None, names=range(2 * n), index_col=False, dtype=dtype,
        encoding=encoding, **ONLY_EMPTY_IS_MISSING,
    )  # fmt: skip
    where = Where(path)
    for col in range(1, 2 * n, 2):
        stray = raw[col].notna().to_numpy()
        if stray.any():
            row, _ = first_bad(stray, raw[col])
            raise DataError(
                f"{where.at(row)}: not in the {layout} layout (wrong number of fields or a single ':')"
            )
    out = raw[list(range(0, 2 * n, 2))]
    out.columns = list(fields)
    return out


def _ratings(path: Path) -> pd.DataFrame:
    layout = "UserID::MovieID::Rating::Timestamp"
    raw = _read_double_colon(path, ("user_id", "item_id", "rating", "timestamp"), layout)
    where = Where(path)
    return pd.DataFrame(
        {
            "user_id": require_int(raw["user_id"], "UserID", where),
            "item_id": require_int(raw["item_id"], "MovieID", where),
            "timestamp": require_int(raw["timestamp"], "Timestamp", where),
            "rating": require_numeric(raw["rating"], "Rating", where, dtype="float32"),
        }
    )


def _users(path: Path) -> pd.DataFrame:
    layout = "UserID::Gender::Age::Occupation::Zip-code"
    raw = _read_double_colon(
        path, ("user_id", "gender", "age", "occupation", "zip"), layout, text=("gender", "zip")
    )
    where = Where(path)
    users = pd.DataFrame(
        {
            "user_id": require_int(raw["user_id"], "UserID", where),
            "gender": require_present(raw["gender"], "Gender", where),
            "age": require_int(raw["age"], "Age", where),
            "occupation": require_int(raw["occupation"], "Occupation", where),
            "zip": raw["zip"].fillna(""),
        }
    )
    return unique_side(users, "user_id", where)


def _movies(path: Path) -> pd.DataFrame:
    """``movies.dat``: ``MovieID::Title::Genres``; titles may contain ':' so split with a regex."""
    lines = read_lines(path, "latin-1")
    parts = lines.str.extract(r"^\s*([^:]*)::(.*)::([^:]*?)\s*$")
    where = Where(path)
    unmatched = parts[0].isna().to_numpy()
    if unmatched.any():
        row, _ = first_bad(unmatched, parts[0])
        raise DataError(f"{where.at(row)}: not in the MovieID::Title::Genres layout; fix or remove that line")
    return movie_table(require_int(parts[0], "MovieID", where), parts[2], parts[1].str.strip(), where)


def read_ml1m(folder: PathLike) -> Interactions:
    """Read MovieLens 1M (or 10M): ``ratings.dat`` plus ``users.dat`` / ``movies.dat`` when present.

    Args:
        folder: the ``ml-1m`` folder, or its ``ratings.dat`` file.

    Returns:
        Interactions with int64 ids and timestamps, float32 ratings; user side columns
        ``gender, age, occupation, zip``; item side columns ``genres`` ('|'-joined, multi-valued)
        and ``year`` (from the title). Titles are in ``meta["item_titles"]``.
    """
    root, ratings_file = split_target(folder, "ratings.dat")
    events = _ratings(existing_file(ratings_file, "MovieLens ratings (UserID::MovieID::Rating::Timestamp)"))
    users_file = optional_file(root, "users.dat")
    movies_file = optional_file(root, "movies.dat")
    users = _users(existing_file(users_file, "users.dat")) if users_file else None
    items = _movies(existing_file(movies_file, "movies.dat")) if movies_file else None
    return movielens_interactions(
        events, users, items, name=release_name(root, "movielens-1m"), source=ratings_file,
        layout="ml-1m", files=[ratings_file, users_file, movies_file],
    )  # fmt: skip
