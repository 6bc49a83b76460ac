"""What the MovieLens layouts share: the movie side table, the dataset name, the Interactions built."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from zoo.data.interactions import Interactions
from zoo.data.readers.checks import PathLike, Where, finish_events, unique_side

NO_GENRES = "(no genres listed)"
GENRE_SEP = "|"

_YEAR_IN_TITLE = r"\((\d{4})\)\s*$"


def year_from_title(titles: pd.Series) -> pd.Series:
    """The release year in ``"Title (1995)"`` as nullable Int64 (missing where there is none)."""
    return pd.to_numeric(titles.str.extract(_YEAR_IN_TITLE, expand=False), errors="coerce").astype("Int64")


def movie_table(item_ids: pd.Series, genres: pd.Series, titles: pd.Series, where: Where) -> pd.DataFrame:
    """The item side table every MovieLens layout shares: id, '|'-joined genres, year from the title
    (titles themselves kept in ``attrs["titles"]``, out of the features)."""
    movies = pd.DataFrame({"item_id": item_ids, "genres": genres, "year": year_from_title(titles)})
    movies = unique_side(movies, "item_id", where)
    movies.attrs["titles"] = dict(zip(movies["item_id"].tolist(), titles.tolist(), strict=True))
    return movies


def release_name(folder: Path, fallback: str) -> str:
    """``ml-1m`` -> ``movielens-1m``; any folder not named ``ml-*`` gets ``fallback``."""
    stem = folder.name.lower()
    return "movielens-" + stem[3:] if stem.startswith("ml-") and len(stem) > 3 else fallback


def split_target(path: PathLike, ratings_name: str) -> tuple[Path, Path]:
    """(folder, ratings file) for a reader given either the folder or the ratings file itself."""
    p = Path(path).expanduser()
    if p.is_dir():
        return p, p / ratings_name
    return p.parent, p


def movielens_interactions(
    events: pd.DataFrame,
    users: pd.DataFrame | None,
    items: pd.DataFrame | None,
    *,
    name: str,
    source: Path,
    layout: str,
    files: Sequence[Path | None],
) -> Interactions:
    """The Interactions of one MovieLens release (titles moved from the item table to ``meta``)."""
    meta: dict[str, Any] = {"format": layout, "files": [str(f) for f in files if f is not None]}
    if items is not None:
        meta["item_titles"] = items.attrs.pop("titles", {})
    return Interactions(
        events=finish_events(events),
        users=users,
        items=items,
        name=name,
        source=str(source),
        item_multivalue={"genres": GENRE_SEP} if items is not None else {},
        meta=meta,
    )
