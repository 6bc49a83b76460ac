"""MovieLens latest(-small) / 20M / 25M: ``ratings.csv`` plus optional ``movies.csv``."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from zoo.data.interactions import Interactions
from zoo.data.readers.checks import PathLike, existing_file, optional_file, require_int, require_numeric
from zoo.data.readers.csv import read_table
from zoo.data.readers.movielens_common import (
    NO_GENRES,
    movie_table,
    movielens_interactions,
    release_name,
    split_target,
)


def _ratings(path: Path) -> pd.DataFrame:
    wanted = ["userId", "movieId", "rating", "timestamp"]
    raw, where = read_table(path, wanted, "MovieLens ratings.csv (userId,movieId,rating,timestamp)")
    return pd.DataFrame(
        {
            "user_id": require_int(raw["userId"], "userId", where),
            "item_id": require_int(raw["movieId"], "movieId", where),
            "timestamp": require_int(raw["timestamp"], "timestamp", where),
            "rating": require_numeric(raw["rating"], "rating", where, dtype="float32"),
        }
    )


def _movies(path: Path) -> pd.DataFrame:
    wanted = ["movieId", "title", "genres"]
    what = "MovieLens movies.csv (movieId,title,genres)"
    raw, where = read_table(path, wanted, what, dtype={"title": "str", "genres": "str"})
    genres = raw["genres"].fillna("")
    genres = genres.where(genres != NO_GENRES, "")
    titles = raw["title"].fillna("").str.strip()
    return movie_table(require_int(raw["movieId"], "movieId", where), genres, titles, where)


def read_ratings_csv(folder_or_file: PathLike) -> Interactions:
    """Read the ``ratings.csv`` of ml-latest-small / ml-20m / ml-25m, plus ``movies.csv`` when present.

    Args:
        folder_or_file: the dataset folder, or its ``ratings.csv``.

    Returns:
        Interactions like :func:`~zoo.data.readers.read_ml1m` (no user side table; "(no genres
        listed)" becomes an empty ``genres`` value).
    """
    root, ratings_file = split_target(folder_or_file, "ratings.csv")
    events = _ratings(existing_file(ratings_file, "MovieLens ratings.csv (userId,movieId,rating,timestamp)"))
    movies_file = optional_file(root, "movies.csv")
    items = _movies(existing_file(movies_file, "movies.csv")) if movies_file else None
    return movielens_interactions(
        events, None, items, name=release_name(root, "movielens"), source=ratings_file,
        layout="ratings.csv", files=[ratings_file, movies_file],
    )  # fmt: skip
