"""Any MovieLens release, its layout detected from the files present."""

from __future__ import annotations

from pathlib import Path

from zoo.data.interactions import Interactions
from zoo.data.readers.checks import PathLike
from zoo.data.readers.ml1m import read_ml1m
from zoo.data.readers.ml100k import read_ml100k
from zoo.data.readers.ml_csv import read_ratings_csv
from zoo.errors import DataError

__all__ = ["MOVIELENS_LAYOUTS", "read_ml1m", "read_ml100k", "read_movielens", "read_ratings_csv"]

MOVIELENS_LAYOUTS: dict[str, str] = {
    "ratings.dat": "ml-1m / ml-10m (UserID::MovieID::Rating::Timestamp)",
    "u.data": "ml-100k (user<TAB>item<TAB>rating<TAB>timestamp)",
    "ratings.csv": "ml-latest-small / ml-20m / ml-25m (userId,movieId,rating,timestamp)",
}
"""Ratings file name -> the MovieLens releases that use it (what :func:`read_movielens` looks for)."""

_READERS = {"ratings.dat": read_ml1m, "u.data": read_ml100k, "ratings.csv": read_ratings_csv}


def read_movielens(path: PathLike) -> Interactions:
    """Read any MovieLens release, detected from the files present.

    Args:
        path: a MovieLens folder (holding ``ratings.dat``, ``u.data`` or ``ratings.csv``) or one of
            those files directly (side files are then read from the same folder).

    Raises:
        DataError: the path does not exist or holds none of the known ratings files.
    """
    p = Path(path).expanduser()
    if not p.exists():
        raise DataError(f"{p}: no such file or folder; pass a MovieLens folder such as ml-1m/")
    if p.is_file():
        reader = _READERS.get(p.name) or (read_ml1m if p.suffix == ".dat" else None)
        if reader is None and p.suffix.lower() == ".csv":
            reader = read_ratings_csv
        if reader is None:
            raise DataError(f"{p}: not a MovieLens ratings file; expected one of {', '.join(_READERS)}")
        return reader(p)
    for name, reader in _READERS.items():
        if (p / name).is_file():
            return reader(p)
    looked = "; ".join(f"{name} for {layout}" for name, layout in MOVIELENS_LAYOUTS.items())
    raise DataError(f"{p}: not a MovieLens folder; looked for {looked}")
