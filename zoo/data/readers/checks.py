"""Checks every reader shares: files that must exist, columns that must hold numbers, with line numbers.

Each check returns the cleaned column or raises a one-line :class:`~zoo.errors.DataError` naming the
file, the line (or row) and the column at fault.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from zoo.errors import DataError

PathLike = str | os.PathLike[str]


@dataclass(frozen=True)
class Where:
    """Turns a row index of a parsed table into ``FILE, line N`` for error messages."""

    file: Path
    first_line: int = 1  # file line of row 0 (2 when the file has a header line)
    unit: str = "line"

    def at(self, row: Any) -> str:
        return f"{self.file}, {self.unit} {int(row) + self.first_line}"


def existing_file(path: Path, what: str) -> Path:
    """``path`` if it is a readable non-empty file, else a DataError saying what is missing."""
    if not path.exists():
        raise DataError(f"{path}: no such file; expected {what}")
    if path.is_dir():
        raise DataError(f"{path} is a folder; expected {what} (pass the file itself)")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: the file is empty; expected {what} (re-download or re-export it)")
    return path


def optional_file(folder: Path, name: str) -> Path | None:
    path = folder / name
    return path if path.is_file() else None


def require_columns(path: Path, found: Sequence[str], wanted: Sequence[str], hint: str = "") -> None:
    """A DataError naming the columns of ``wanted`` missing from ``found``."""
    missing = [c for c in wanted if c not in found]
    if missing:
        listed = ", ".join(repr(c) for c in missing)
        present = ", ".join(found) or "none"
        raise DataError(
            f"{path}: missing column {listed}; the columns found are {present}"
            + (f"; {hint}" if hint else "")
        )


def first_bad(mask: np.ndarray | pd.Series, column: pd.Series) -> tuple[Any, Any]:
    """Index label and value of the first True in ``mask``."""
    pos = int(np.flatnonzero(np.asarray(mask))[0])
    return column.index[pos], column.iloc[pos]


def require_present(column: pd.Series, label: str, where: Where) -> pd.Series:
    """``column`` unchanged, or a DataError naming the first empty cell."""
    missing = column.isna().to_numpy()
    if missing.any():
        row, _ = first_bad(missing, column)
        raise DataError(
            f"{where.at(row)}: column '{label}' is empty ({int(missing.sum())} row(s) in all);"
            " fill or remove those rows"
        )
    return column


def require_numeric(column: pd.Series, label: str, where: Where, dtype: str = "float64") -> pd.Series:
    """``column`` as ``dtype``, or a DataError naming the first empty or non-numeric cell."""
    require_present(column, label, where)
    if not pd.api.types.is_numeric_dtype(column) or pd.api.types.is_bool_dtype(column):
        numbers = pd.to_numeric(column, errors="coerce")
        bad = numbers.isna().to_numpy()
        if bad.any():
            row, value = first_bad(bad, column)
            raise DataError(
                f"{where.at(row)}: column '{label}' holds {value!r}, which is not a number; fix or remove it"
            )
        column = numbers
    return column.astype(dtype)


def require_int(column: pd.Series, label: str, where: Where) -> pd.Series:
    """``column`` as int64, or a DataError naming the first empty, non-numeric or fractional cell."""
    if _is_int(column) and not column.isna().any():
        return column.astype("int64")
    numbers = require_numeric(column, label, where)
    values = numbers.to_numpy()
    fractional = ~np.isfinite(values) | (values != np.floor(values))
    if fractional.any():
        row, _ = first_bad(fractional, numbers)
        raise DataError(
            f"{where.at(row)}: column '{label}' holds {column.loc[row]!r}, which is not an integer;"
            " fix or remove it"
        )
    return numbers.astype("int64")


def _is_int(column: pd.Series) -> bool:
    return pd.api.types.is_integer_dtype(column) and not pd.api.types.is_bool_dtype(column)


def require_timestamp(column: pd.Series, label: str, where: Where) -> pd.Series:
    """Numeric timestamps (integers stay int64, fractional ones float64) or ISO-8601 date-times
    (``2003-07-31T12:00:00Z``, converted to integer seconds since 1970, UTC where no zone is given);
    an empty, non-finite or unreadable cell is a DataError naming its line."""
    require_present(column, label, where)
    if not pd.api.types.is_numeric_dtype(column) or pd.api.types.is_bool_dtype(column):
        numbers = pd.to_numeric(column, errors="coerce")
        if numbers.isna().all():  # no cell is a number: date-times, or a column of junk
            return _iso_seconds(column, label, where)
        if numbers.isna().any():
            row, value = first_bad(numbers.isna().to_numpy(), column)
            raise DataError(
                f"{where.at(row)}: column '{label}' holds {value!r}, which is not a number; timestamps must"
                " be numbers (e.g. seconds since 1970) or, in every row, ISO-8601 date-times"
            )
        column = numbers
    values = column.to_numpy(dtype="float64")
    infinite = ~np.isfinite(values)
    if infinite.any():
        row, value = first_bad(infinite, column)
        raise DataError(
            f"{where.at(row)}: column '{label}' holds {value!r}, which is not a finite number; timestamps"
            " must be finite (e.g. seconds since 1970) or ISO-8601 date-times"
        )
    if (values == np.floor(values)).all():
        return column.astype("int64")
    return column.astype("float64")


def _iso_seconds(column: pd.Series, label: str, where: Where) -> pd.Series:
    """ISO-8601 date-times as integer seconds since 1970 (UTC), or a DataError naming the first bad cell."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pandas warns about mixed zones; every cell is checked below
        parsed = pd.to_datetime(column.astype(str), format="ISO8601", utc=True, errors="coerce")
    bad = parsed.isna().to_numpy()
    if bad.any():
        row, value = first_bad(bad, column)
        raise DataError(
            f"{where.at(row)}: column '{label}' holds {value!r}, which is neither a number nor an ISO-8601"
            " date-time; timestamps must be numbers (e.g. seconds since 1970) or date-times like"
            " 2003-07-31T12:00:00Z"
        )
    seconds = (parsed - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(seconds=1)
    return pd.Series(seconds.to_numpy(dtype="int64"), index=column.index)


def unique_side(table: pd.DataFrame, key: str, where: Where) -> pd.DataFrame:
    """A side table with each ``key`` once, or a DataError naming the first duplicate line."""
    dup = table[key].duplicated().to_numpy()
    if dup.any():
        row, value = first_bad(dup, table[key])
        raise DataError(f"{where.at(row)}: {key} {value!r} is listed twice; remove the duplicate line")
    return table.reset_index(drop=True)


def finish_events(events: pd.DataFrame) -> pd.DataFrame:
    """The canonical event columns, in order, with a fresh index."""
    cols = [c for c in ("user_id", "item_id", "timestamp", "rating") if c in events.columns]
    return events[cols].reset_index(drop=True)
