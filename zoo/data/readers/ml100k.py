"""MovieLens 100K: tab-separated ``u.data``, '|'-separated ``u.user`` / ``u.item`` (and ``u.genre``)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
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
from zoo.data.readers.csv import read_fields, read_lines
from zoo.data.readers.movielens_common import (
    GENRE_SEP,
    movie_table,
    movielens_interactions,
    release_name,
    split_target,
)
from zoo.errors import DataError

ML100K_GENRES = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary",
    "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller",
    "War", "Western",
)  # fmt: skip
"""The 19 genre flag columns at the end of ml-100k's ``u.item``, in file order (also in ``u.genre``)."""


def _ratings(path: Path) -> pd.DataFrame:
    layout = "user<TAB>item<TAB>rating<TAB>timestamp"
    raw = read_fields(path, "\t", 4, layout, encoding="latin-1")
    where = Where(path)
    if raw[3].isna().any():  # a short line: name it as such, not as an empty timestamp
        row, _ = first_bad(raw[3].isna().to_numpy(), raw[3])
        raise DataError(f"{where.at(row)}: fewer than 4 fields; expected {layout}")
    return pd.DataFrame(
        {
            "user_id": require_int(raw[0], "user id", where),
            "item_id": require_int(raw[1], "item id", where),
            "timestamp": require_int(raw[3], "timestamp", where),
            "rating": require_numeric(raw[2], "rating", where, dtype="float32"),
        }
    )


def _users(path: Path) -> pd.DataFrame:
    layout = "user id|age|gender|occupation|zip code"
    raw = read_fields(path, "|", 5, layout, encoding="latin-1", text=(2, 3, 4))
    where = Where(path)
    users = pd.DataFrame(
        {
            "user_id": require_int(raw[0], "user id", where),
            "gender": require_present(raw[2], "gender", where),
            "age": require_int(raw[1], "age", where),
            "occupation": require_present(raw[3], "occupation", where),
            "zip": raw[4].fillna(""),
        }
    )
    return unique_side(users, "user_id", where)


def _genre_names(folder: Path) -> tuple[str, ...]:
    """Genre names from ``u.genre`` (``name|index`` lines) when present and sane, else the documented 19."""
    path = optional_file(folder, "u.genre")
    if path is None:
        return ML100K_GENRES
    lines = read_lines(path, "latin-1")
    names = tuple(lines.str.rpartition("|")[0].tolist())
    return names if len(names) == len(ML100K_GENRES) and all(names) else ML100K_GENRES


def _join_flags(flags: pd.DataFrame, names: Sequence[str], where: Where) -> pd.Series:
    """0/1 flag columns -> one '|'-joined string per row (column-wise, no per-row Python)."""
    matrix = np.column_stack(
        [
            require_int(flags[c], f"genre flag {n}", where).to_numpy()
            for c, n in zip(flags.columns, names, strict=True)
        ]
    )
    bad = ~np.isin(matrix, (0, 1))
    if bad.any():
        row_pos = int(np.flatnonzero(bad.any(axis=1))[0])
        raise DataError(f"{where.at(flags.index[row_pos])}: genre flags must be 0 or 1")
    joined = pd.Series("", index=flags.index, dtype="str")
    for j, name in enumerate(names):
        joined = joined + np.where(matrix[:, j] == 1, name + GENRE_SEP, "")
    return joined.str.rstrip(GENRE_SEP)


def _items(path: Path, genre_names: Sequence[str]) -> pd.DataFrame:
    n_genres = len(genre_names)
    layout = f"movie id|title|release date|video release date|IMDb URL|{n_genres} genre flags"
    raw = read_fields(path, "|", 5 + n_genres, layout, encoding="latin-1", text=(1, 2, 3, 4))
    where = Where(path)
    genres = _join_flags(raw[list(range(5, 5 + n_genres))], genre_names, where)
    return movie_table(require_int(raw[0], "movie id", where), genres, raw[1].fillna("").str.strip(), where)


def read_ml100k(folder: PathLike) -> Interactions:
    """Read MovieLens 100K: ``u.data`` plus ``u.user`` / ``u.item`` (and ``u.genre``) when present.

    Args:
        folder: the ``ml-100k`` folder, or its ``u.data`` file.

    Returns:
        Interactions with the same canonical columns as :func:`~zoo.data.readers.read_ml1m` (the 19
        genre flags of ``u.item`` become one '|'-joined ``genres`` column).
    """
    root, ratings_file = split_target(folder, "u.data")
    events = _ratings(
        existing_file(ratings_file, "MovieLens 100K ratings (user<TAB>item<TAB>rating<TAB>timestamp)")
    )
    users_file = optional_file(root, "u.user")
    items_file = optional_file(root, "u.item")
    users = _users(existing_file(users_file, "u.user")) if users_file else None
    items = _items(existing_file(items_file, "u.item"), _genre_names(root)) if items_file else None
    return movielens_interactions(
        events, users, items, name=release_name(root, "movielens-100k"), source=ratings_file,
        layout="ml-100k", files=[ratings_file, users_file, items_file],
    )  # fmt: skip
