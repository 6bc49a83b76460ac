"""Readers that turn MovieLens folders and generic interaction logs into :class:`Interactions`.

Every reader returns canonical columns (``user_id``, ``item_id``, ``timestamp``, optional ``rating``;
side tables keyed by ``user_id`` / ``item_id``) and turns every kind of bad input into a one-line
:class:`~zoo.errors.DataError` that names the file, the line and the column at fault. Parsing is
vectorised (pandas' C parser plus column operations); nothing loops over ratings in Python.

Formats:

* ``ml-1m`` (and ``ml-10m``): ``ratings.dat`` ``UserID::MovieID::Rating::Timestamp``, optional
  ``users.dat`` and ``movies.dat`` (latin-1).
* ``ml-100k``: tab-separated ``u.data``, optional ``u.user``, ``u.item`` (and ``u.genre``).
* ``ml-latest-small`` / ``ml-20m`` / ``ml-25m``: ``ratings.csv`` plus optional ``movies.csv``.
* any CSV or Parquet interaction log with a column mapping (:func:`read_interactions`).
"""

from __future__ import annotations

import importlib.util
import os
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from zoo.data.interactions import Interactions
from zoo.errors import DataError, UsageError

PathLike = str | os.PathLike[str]

ML100K_GENRES = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary",
    "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller",
    "War", "Western",
)  # fmt: skip
"""The 19 genre flag columns at the end of ml-100k's ``u.item``, in file order (also in ``u.genre``)."""

NO_GENRES = "(no genres listed)"
GENRE_SEP = "|"
MOVIELENS_LAYOUTS: dict[str, str] = {
    "ratings.dat": "ml-1m / ml-10m (UserID::MovieID::Rating::Timestamp)",
    "u.data": "ml-100k (user<TAB>item<TAB>rating<TAB>timestamp)",
    "ratings.csv": "ml-latest-small / ml-20m / ml-25m (userId,movieId,rating,timestamp)",
}
"""Ratings file name -> the MovieLens releases that use it (what :func:`read_movielens` looks for)."""

_YEAR_IN_TITLE = r"\((\d{4})\)\s*$"
_ONLY_EMPTY_IS_MISSING: dict[str, Any] = {"keep_default_na": False, "na_values": [""]}


# --------------------------------------------------------------------------------------------
# Low-level helpers: files, parsing, per-column checks with line numbers
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Where:
    """Turns a row index of a parsed table into ``FILE, line N`` for error messages."""

    file: Path
    first_line: int = 1  # file line of row 0 (2 when the file has a header line)
    unit: str = "line"

    def at(self, row: Any) -> str:
        return f"{self.file}, {self.unit} {int(row) + self.first_line}"


def _existing_file(path: Path, what: str) -> Path:
    """``path`` if it is a readable non-empty file, else a DataError saying what is missing."""
    if not path.exists():
        raise DataError(f"{path}: no such file; expected {what}")
    if path.is_dir():
        raise DataError(f"{path} is a folder; expected {what} (pass the file itself)")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: the file is empty; expected {what} (re-download or re-export it)")
    return path


def _optional_file(folder: Path, name: str) -> Path | None:
    path = folder / name
    return path if path.is_file() else None


def _parse_error_line(message: str) -> str:
    found = re.search(r"line (\d+)", message)
    return f"line {found.group(1)}" if found else "a line"


def _read_csv(path: Path, what: str, **kwargs: Any) -> pd.DataFrame:
    """``pd.read_csv`` with every parser failure turned into a one-line DataError.

    Blank lines are kept while parsing (so that row positions stay line numbers) and dropped
    afterwards; the index of the result still maps each row to its line in the file.
    """
    kwargs.setdefault("skip_blank_lines", False)
    kwargs.setdefault("index_col", False)  # a line with extra fields is an error, never an index
    first_data_line = 1 if kwargs.get("header", "infer") is None else 2
    try:
        with warnings.catch_warnings():
            # A first line with more fields than ``names`` is silently truncated, with only a
            # ParserWarning: make that an error instead of losing data.
            warnings.simplefilter("error", pd.errors.ParserWarning)
            frame = pd.read_csv(path, engine="c", **kwargs)
    except pd.errors.ParserWarning as exc:
        raise DataError(
            f"{path}, line {first_data_line}: more fields than expected for {what}; check the separator"
        ) from exc
    except pd.errors.EmptyDataError as exc:
        raise DataError(f"{path}: the file is empty; expected {what}") from exc
    except pd.errors.ParserError as exc:
        line = _parse_error_line(str(exc))
        raise DataError(
            f"{path}, {line}: wrong number of fields for {what}; fix or remove that line"
        ) from exc
    except UnicodeDecodeError as exc:
        raise DataError(
            f"{path}: not valid {kwargs.get('encoding', 'utf-8')} text ({exc.reason}); save it as UTF-8"
        ) from exc
    except ValueError as exc:  # any other parser complaint: keep it one line
        raise DataError(f"{path}: cannot read {what}: {' '.join(str(exc).split())}") from exc
    return frame.loc[frame.notna().any(axis=1)]


def _first_bad(mask: np.ndarray | pd.Series, column: pd.Series) -> tuple[Any, Any]:
    """Index label and value of the first True in ``mask``."""
    pos = int(np.flatnonzero(np.asarray(mask))[0])
    return column.index[pos], column.iloc[pos]


def _require_present(column: pd.Series, label: str, where: _Where) -> pd.Series:
    """``column`` unchanged, or a DataError naming the first empty cell."""
    missing = column.isna().to_numpy()
    if missing.any():
        row, _ = _first_bad(missing, column)
        raise DataError(
            f"{where.at(row)}: column '{label}' is empty ({int(missing.sum())} row(s) in all); fill or remove those rows"
        )
    return column


def _require_numeric(column: pd.Series, label: str, where: _Where, dtype: str = "float64") -> pd.Series:
    """``column`` as ``dtype``, or a DataError naming the first empty or non-numeric cell."""
    _require_present(column, label, where)
    if not pd.api.types.is_numeric_dtype(column) or pd.api.types.is_bool_dtype(column):
        numbers = pd.to_numeric(column, errors="coerce")
        bad = numbers.isna().to_numpy()
        if bad.any():
            row, value = _first_bad(bad, column)
            raise DataError(
                f"{where.at(row)}: column '{label}' holds {value!r}, which is not a number; fix or remove it"
            )
        column = numbers
    return column.astype(dtype)


def _require_int(column: pd.Series, label: str, where: _Where) -> pd.Series:
    """``column`` as int64, or a DataError naming the first empty, non-numeric or fractional cell."""
    if _is_int(column) and not column.isna().any():
        return column.astype("int64")
    numbers = _require_numeric(column, label, where)
    values = numbers.to_numpy()
    fractional = ~np.isfinite(values) | (values != np.floor(values))
    if fractional.any():
        row, _ = _first_bad(fractional, numbers)
        raise DataError(
            f"{where.at(row)}: column '{label}' holds {column.loc[row]!r}, which is not an integer; fix or remove it"
        )
    return numbers.astype("int64")


def _is_int(column: pd.Series) -> bool:
    return pd.api.types.is_integer_dtype(column) and not pd.api.types.is_bool_dtype(column)


def _year_from_title(titles: pd.Series) -> pd.Series:
    """The release year in ``"Title (1995)"`` as nullable Int64 (missing where there is none)."""
    return pd.to_numeric(titles.str.extract(_YEAR_IN_TITLE, expand=False), errors="coerce").astype("Int64")


def _movie_table(item_ids: pd.Series, genres: pd.Series, titles: pd.Series, where: _Where) -> pd.DataFrame:
    """The item side table every MovieLens layout shares: id, '|'-joined genres, year from the title
    (titles themselves kept in ``attrs["titles"]``, out of the features)."""
    movies = pd.DataFrame({"item_id": item_ids, "genres": genres, "year": _year_from_title(titles)})
    movies = _unique_side(movies, "item_id", where)
    movies.attrs["titles"] = dict(zip(movies["item_id"].tolist(), titles.tolist(), strict=True))
    return movies


def _movielens_name(folder: Path, fallback: str) -> str:
    """``ml-1m`` -> ``movielens-1m``; any folder not named ``ml-*`` gets ``fallback``."""
    stem = folder.name.lower()
    return "movielens-" + stem[3:] if stem.startswith("ml-") and len(stem) > 3 else fallback


def _split_target(path: PathLike, ratings_name: str) -> tuple[Path, Path]:
    """(folder, ratings file) for a reader given either the folder or the ratings file itself."""
    p = Path(path).expanduser()
    if p.is_dir():
        return p, p / ratings_name
    return p.parent, p


def _finish_events(events: pd.DataFrame) -> pd.DataFrame:
    cols = [c for c in ("user_id", "item_id", "timestamp", "rating") if c in events.columns]
    return events[cols].reset_index(drop=True)


def _unique_side(table: pd.DataFrame, key: str, where: _Where) -> pd.DataFrame:
    dup = table[key].duplicated().to_numpy()
    if dup.any():
        row, value = _first_bad(dup, table[key])
        raise DataError(f"{where.at(row)}: {key} {value!r} is listed twice; remove the duplicate line")
    return table.reset_index(drop=True)


# --------------------------------------------------------------------------------------------
# ml-1m: '::'-separated .dat files
# --------------------------------------------------------------------------------------------
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
    raw = _read_csv(
        path, layout, sep=":", header=None, names=range(2 * n), index_col=False, dtype=dtype,
        encoding=encoding, **_ONLY_EMPTY_IS_MISSING,
    )  # fmt: skip
    where = _Where(path)
    for col in range(1, 2 * n, 2):
        stray = raw[col].notna().to_numpy()
        if stray.any():
            row, _ = _first_bad(stray, raw[col])
            raise DataError(
                f"{where.at(row)}: not in the {layout} layout (wrong number of fields or a single ':')"
            )
    out = raw[list(range(0, 2 * n, 2))]
    out.columns = list(fields)
    return out


def _ml1m_ratings(path: Path) -> pd.DataFrame:
    layout = "UserID::MovieID::Rating::Timestamp"
    raw = _read_double_colon(path, ("user_id", "item_id", "rating", "timestamp"), layout)
    where = _Where(path)
    return pd.DataFrame(
        {
            "user_id": _require_int(raw["user_id"], "UserID", where),
            "item_id": _require_int(raw["item_id"], "MovieID", where),
            "timestamp": _require_int(raw["timestamp"], "Timestamp", where),
            "rating": _require_numeric(raw["rating"], "Rating", where, dtype="float32"),
        }
    )


def _ml1m_users(path: Path) -> pd.DataFrame:
    layout = "UserID::Gender::Age::Occupation::Zip-code"
    raw = _read_double_colon(
        path, ("user_id", "gender", "age", "occupation", "zip"), layout, text=("gender", "zip")
    )
    where = _Where(path)
    users = pd.DataFrame(
        {
            "user_id": _require_int(raw["user_id"], "UserID", where),
            "gender": _require_present(raw["gender"], "Gender", where),
            "age": _require_int(raw["age"], "Age", where),
            "occupation": _require_int(raw["occupation"], "Occupation", where),
            "zip": raw["zip"].fillna(""),
        }
    )
    return _unique_side(users, "user_id", where)


def _read_lines(path: Path, encoding: str) -> pd.Series:
    """Non-blank lines of a small text file, indexed by their 0-based line position."""
    try:
        text = path.read_text(encoding=encoding)
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not valid {encoding} text ({exc.reason})") from exc
    lines = pd.Series(text.splitlines(), dtype="str")
    return lines[lines.str.strip() != ""]


def _ml1m_movies(path: Path) -> pd.DataFrame:
    """``movies.dat``: ``MovieID::Title::Genres``; titles may contain ':' so split with a regex."""
    lines = _read_lines(path, "latin-1")
    parts = lines.str.extract(r"^\s*([^:]*)::(.*)::([^:]*?)\s*$")
    where = _Where(path)
    unmatched = parts[0].isna().to_numpy()
    if unmatched.any():
        row, _ = _first_bad(unmatched, parts[0])
        raise DataError(f"{where.at(row)}: not in the MovieID::Title::Genres layout; fix or remove that line")
    return _movie_table(_require_int(parts[0], "MovieID", where), parts[2], parts[1].str.strip(), where)


def read_ml1m(folder: PathLike) -> Interactions:
    """Read MovieLens 1M (or 10M): ``ratings.dat`` plus ``users.dat`` / ``movies.dat`` when present.

    Args:
        folder: the ``ml-1m`` folder, or its ``ratings.dat`` file.

    Returns:
        Interactions with int64 ids and timestamps, float32 ratings; user side columns
        ``gender, age, occupation, zip``; item side columns ``genres`` ('|'-joined, multi-valued)
        and ``year`` (from the title). Titles are in ``meta["item_titles"]``.
    """
    root, ratings_file = _split_target(folder, "ratings.dat")
    events = _ml1m_ratings(
        _existing_file(ratings_file, "MovieLens ratings (UserID::MovieID::Rating::Timestamp)")
    )
    users_file = _optional_file(root, "users.dat")
    movies_file = _optional_file(root, "movies.dat")
    users = _ml1m_users(_existing_file(users_file, "users.dat")) if users_file else None
    items = _ml1m_movies(_existing_file(movies_file, "movies.dat")) if movies_file else None
    return _movielens_interactions(
        events, users, items, name=_movielens_name(root, "movielens-1m"), source=ratings_file,
        layout="ml-1m", files=[ratings_file, users_file, movies_file],
    )  # fmt: skip


def _movielens_interactions(
    events: pd.DataFrame,
    users: pd.DataFrame | None,
    items: pd.DataFrame | None,
    *,
    name: str,
    source: Path,
    layout: str,
    files: Sequence[Path | None],
) -> Interactions:
    meta: dict[str, Any] = {"format": layout, "files": [str(f) for f in files if f is not None]}
    if items is not None:
        meta["item_titles"] = items.attrs.pop("titles", {})
    return Interactions(
        events=_finish_events(events),
        users=users,
        items=items,
        name=name,
        source=str(source),
        item_multivalue={"genres": GENRE_SEP} if items is not None else {},
        meta=meta,
    )


# --------------------------------------------------------------------------------------------
# ml-100k: tab-separated u.data, '|'-separated u.user / u.item
# --------------------------------------------------------------------------------------------
def _read_separated(
    path: Path, sep: str, n: int, layout: str, *, encoding: str, text: Sequence[int] = ()
) -> pd.DataFrame:
    """A headerless ``sep``-separated file of exactly ``n`` fields per line (one spare column catches extras)."""
    raw = _read_csv(
        path, layout, sep=sep, header=None, names=range(n + 1), index_col=False,
        dtype=dict.fromkeys(text, "str"), encoding=encoding, **_ONLY_EMPTY_IS_MISSING,
    )  # fmt: skip
    extra = raw[n].notna().to_numpy()
    if extra.any():
        row, _ = _first_bad(extra, raw[n])
        raise DataError(f"{_Where(path).at(row)}: more than {n} fields; expected {layout}")
    return raw[list(range(n))]


def _ml100k_ratings(path: Path) -> pd.DataFrame:
    layout = "user<TAB>item<TAB>rating<TAB>timestamp"
    raw = _read_separated(path, "\t", 4, layout, encoding="latin-1")
    where = _Where(path)
    if raw[3].isna().any():  # a short line: name it as such, not as an empty timestamp
        row, _ = _first_bad(raw[3].isna().to_numpy(), raw[3])
        raise DataError(f"{where.at(row)}: fewer than 4 fields; expected {layout}")
    return pd.DataFrame(
        {
            "user_id": _require_int(raw[0], "user id", where),
            "item_id": _require_int(raw[1], "item id", where),
            "timestamp": _require_int(raw[3], "timestamp", where),
            "rating": _require_numeric(raw[2], "rating", where, dtype="float32"),
        }
    )


def _ml100k_users(path: Path) -> pd.DataFrame:
    raw = _read_separated(
        path, "|", 5, "user id|age|gender|occupation|zip code", encoding="latin-1", text=(2, 3, 4)
    )
    where = _Where(path)
    users = pd.DataFrame(
        {
            "user_id": _require_int(raw[0], "user id", where),
            "gender": _require_present(raw[2], "gender", where),
            "age": _require_int(raw[1], "age", where),
            "occupation": _require_present(raw[3], "occupation", where),
            "zip": raw[4].fillna(""),
        }
    )
    return _unique_side(users, "user_id", where)


def _ml100k_genre_names(folder: Path) -> tuple[str, ...]:
    """Genre names from ``u.genre`` (``name|index`` lines) when present and sane, else the documented 19."""
    path = _optional_file(folder, "u.genre")
    if path is None:
        return ML100K_GENRES
    lines = _read_lines(path, "latin-1")
    names = tuple(lines.str.rpartition("|")[0].tolist())
    return names if len(names) == len(ML100K_GENRES) and all(names) else ML100K_GENRES


def _join_flags(flags: pd.DataFrame, names: Sequence[str], where: _Where) -> pd.Series:
    """0/1 flag columns -> one '|'-joined string per row (column-wise, no per-row Python)."""
    matrix = np.column_stack(
        [
            _require_int(flags[c], f"genre flag {n}", where).to_numpy()
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


def _ml100k_items(path: Path, genre_names: Sequence[str]) -> pd.DataFrame:
    n_genres = len(genre_names)
    layout = f"movie id|title|release date|video release date|IMDb URL|{n_genres} genre flags"
    raw = _read_separated(path, "|", 5 + n_genres, layout, encoding="latin-1", text=(1, 2, 3, 4))
    where = _Where(path)
    genres = _join_flags(raw[list(range(5, 5 + n_genres))], genre_names, where)
    return _movie_table(_require_int(raw[0], "movie id", where), genres, raw[1].fillna("").str.strip(), where)


def read_ml100k(folder: PathLike) -> Interactions:
    """Read MovieLens 100K: ``u.data`` plus ``u.user`` / ``u.item`` (and ``u.genre``) when present.

    Args:
        folder: the ``ml-100k`` folder, or its ``u.data`` file.

    Returns:
        Interactions with the same canonical columns as :func:`read_ml1m` (the 19 genre flags
        of ``u.item`` become one '|'-joined ``genres`` column).
    """
    root, ratings_file = _split_target(folder, "u.data")
    events = _ml100k_ratings(
        _existing_file(ratings_file, "MovieLens 100K ratings (user<TAB>item<TAB>rating<TAB>timestamp)")
    )
    users_file = _optional_file(root, "u.user")
    items_file = _optional_file(root, "u.item")
    users = _ml100k_users(_existing_file(users_file, "u.user")) if users_file else None
    items = (
        _ml100k_items(_existing_file(items_file, "u.item"), _ml100k_genre_names(root)) if items_file else None
    )
    return _movielens_interactions(
        events, users, items, name=_movielens_name(root, "movielens-100k"), source=ratings_file,
        layout="ml-100k", files=[ratings_file, users_file, items_file],
    )  # fmt: skip


# --------------------------------------------------------------------------------------------
# ml-latest(-small) / ml-20m / ml-25m: ratings.csv + movies.csv
# --------------------------------------------------------------------------------------------
def _csv_header(path: Path, sep: str, what: str, encoding: str = "utf-8") -> list[str]:
    header = _read_csv(path, what, sep=sep, nrows=0, encoding=encoding)
    return [str(c) for c in header.columns]


def _require_columns(path: Path, found: Sequence[str], wanted: Sequence[str], hint: str = "") -> None:
    missing = [c for c in wanted if c not in found]
    if missing:
        listed = ", ".join(repr(c) for c in missing)
        raise DataError(
            f"{path}: missing column {listed}; the columns found are {', '.join(found) or 'none'}"
            + (f"; {hint}" if hint else "")
        )


def _ratings_csv(path: Path) -> pd.DataFrame:
    wanted = ["userId", "movieId", "rating", "timestamp"]
    what = "MovieLens ratings.csv (userId,movieId,rating,timestamp)"
    _require_columns(path, _csv_header(path, ",", what), wanted)
    # No usecols: with it pandas silently drops extra fields instead of reporting the line.
    raw = _read_csv(path, what, **_ONLY_EMPTY_IS_MISSING)
    where = _Where(path, first_line=2)
    return pd.DataFrame(
        {
            "user_id": _require_int(raw["userId"], "userId", where),
            "item_id": _require_int(raw["movieId"], "movieId", where),
            "timestamp": _require_int(raw["timestamp"], "timestamp", where),
            "rating": _require_numeric(raw["rating"], "rating", where, dtype="float32"),
        }
    )


def _movies_csv(path: Path) -> pd.DataFrame:
    wanted = ["movieId", "title", "genres"]
    what = "MovieLens movies.csv (movieId,title,genres)"
    _require_columns(path, _csv_header(path, ",", what), wanted)
    raw = _read_csv(path, what, dtype={"title": "str", "genres": "str"}, **_ONLY_EMPTY_IS_MISSING)
    where = _Where(path, first_line=2)
    genres = raw["genres"].fillna("")
    genres = genres.where(genres != NO_GENRES, "")
    return _movie_table(_require_int(raw["movieId"], "movieId", where), genres, raw["title"].fillna("").str.strip(), where)


def read_ratings_csv(folder_or_file: PathLike) -> Interactions:
    """Read the ``ratings.csv`` of ml-latest-small / ml-20m / ml-25m, plus ``movies.csv`` when present.

    Args:
        folder_or_file: the dataset folder, or its ``ratings.csv``.

    Returns:
        Interactions like :func:`read_ml1m` (no user side table; "(no genres listed)" becomes an
        empty ``genres`` value).
    """
    root, ratings_file = _split_target(folder_or_file, "ratings.csv")
    events = _ratings_csv(
        _existing_file(ratings_file, "MovieLens ratings.csv (userId,movieId,rating,timestamp)")
    )
    movies_file = _optional_file(root, "movies.csv")
    items = _movies_csv(_existing_file(movies_file, "movies.csv")) if movies_file else None
    return _movielens_interactions(
        events, None, items, name=_movielens_name(root, "movielens"), source=ratings_file,
        layout="ratings.csv", files=[ratings_file, movies_file],
    )  # fmt: skip


# --------------------------------------------------------------------------------------------
# Dispatch
# --------------------------------------------------------------------------------------------
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


# --------------------------------------------------------------------------------------------
# Generic interaction logs
# --------------------------------------------------------------------------------------------
PARQUET_SUFFIXES = (".parquet", ".pq")


def _parquet_columns(path: Path) -> list[str]:
    if importlib.util.find_spec("pyarrow") is None:
        raise DataError(
            f'{path}: reading Parquet needs pyarrow: pip install "recall-zoo[parquet]" (or pip install pyarrow)'
        )
    import pyarrow.parquet as pq

    try:
        return list(pq.read_schema(path).names)
    except Exception as exc:  # pyarrow raises several unrelated types for a bad file
        raise DataError(f"{path}: not a readable Parquet file ({' '.join(str(exc).split())[:200]})") from exc


def _read_log_table(path: Path, columns: list[str], sep: str) -> tuple[pd.DataFrame, _Where]:
    """The requested columns of a CSV or Parquet log, after checking they exist."""
    hint = "map yours with user_col= / item_col= / time_col= / rating_col= (--param on the command line)"
    if path.suffix.lower() in PARQUET_SUFFIXES:
        _require_columns(path, _parquet_columns(path), columns, hint)
        return pd.read_parquet(path, columns=columns), _Where(path, first_line=1, unit="row")
    what = "an interaction log with a header line"
    _require_columns(path, _csv_header(path, sep, what), columns, hint)
    # Every column is parsed (no usecols) so that a line with extra fields is reported, not shifted.
    frame = _read_csv(path, what, sep=sep, **_ONLY_EMPTY_IS_MISSING)
    return frame[columns], _Where(path, first_line=2)


def _normalize_sep(sep: str) -> str:
    aliases = {"\\t": "\t", "tab": "\t", "TAB": "\t"}
    sep = aliases.get(sep, sep)
    if not sep:
        raise UsageError("sep must not be empty; use ',' for CSV or '\\t' for TSV")
    return sep


def read_interactions(
    path: PathLike,
    *,
    user_col: str = "user_id",
    item_col: str = "item_id",
    time_col: str = "timestamp",
    rating_col: str | None = None,
    sep: str = ",",
) -> Interactions:
    """Read any CSV (or ``.parquet``) interaction log, mapping its columns to the canonical ones.

    Args:
        path: the CSV / TSV file (with a header line) or Parquet file.
        user_col, item_col: the columns holding user and item ids (ints or strings).
        time_col: the column holding a numeric timestamp (any monotone unit); required, because
            every split protocol needs an order.
        rating_col: the column holding a numeric rating, or None / "" for implicit feedback.
        sep: the CSV field separator (``"\\t"`` or ``"tab"`` for TSV).

    Returns:
        Interactions with ``user_id``, ``item_id``, ``timestamp`` (and ``rating``); other columns
        are dropped.
    """
    p = _existing_file(Path(path).expanduser(), "an interaction log (CSV with a header line, or Parquet)")
    mapping = {user_col: "user_id", item_col: "item_id", time_col: "timestamp"}
    if rating_col:
        mapping[rating_col] = "rating"
    if len(mapping) < (4 if rating_col else 3):
        raise UsageError(
            f"user_col={user_col!r}, item_col={item_col!r}, time_col={time_col!r}, rating_col={rating_col!r}"
            " must name different columns"
        )
    raw, where = _read_log_table(p, list(mapping), _normalize_sep(sep))
    events = pd.DataFrame(
        {
            "user_id": _require_present(raw[user_col], user_col, where),
            "item_id": _require_present(raw[item_col], item_col, where),
            "timestamp": _require_timestamp(raw[time_col], time_col, where),
        }
    )
    if rating_col:
        events["rating"] = _require_numeric(raw[rating_col], rating_col, where, dtype="float32")
    return Interactions(
        events=_finish_events(events),
        name=p.stem,
        source=str(p),
        meta={"format": "interactions", "columns": mapping},
    )


def _require_timestamp(column: pd.Series, label: str, where: _Where) -> pd.Series:
    """Integer timestamps stay int64; fractional ones stay float64; anything else is an error."""
    try:
        numbers = _require_numeric(column, label, where)
    except DataError as exc:
        raise DataError(f"{exc}; timestamps must be numbers (e.g. seconds since 1970)") from exc
    whole = numbers.to_numpy()
    if np.isfinite(whole).all() and (whole == np.floor(whole)).all():
        return numbers.astype("int64")
    return numbers
