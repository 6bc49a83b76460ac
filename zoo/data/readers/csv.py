"""Delimited text (CSV, TSV, ``::`` and ``|`` files): pandas' C parser with one-line errors.

Blank lines are kept while parsing (so that row positions stay line numbers) and dropped afterwards;
the index of every table read here still maps each row to its line in the file.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from zoo.data.readers.checks import Where, first_bad, require_columns
from zoo.errors import DataError, UsageError

ONLY_EMPTY_IS_MISSING: dict[str, Any] = {"keep_default_na": False, "na_values": [""]}
"""``read_csv`` options that make only an empty field missing (``NA``, ``null``... stay text)."""


def _parse_error_line(message: str) -> str:
    found = re.search(r"line (\d+)", message)
    return f"line {found.group(1)}" if found else "a line"


def read_csv(path: Path, what: str, **kwargs: Any) -> pd.DataFrame:
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


def csv_header(path: Path, sep: str, what: str, encoding: str = "utf-8") -> list[str]:
    """The column names on the header line."""
    header = read_csv(path, what, sep=sep, nrows=0, encoding=encoding)
    return [str(c).strip() for c in header.columns]  # "user_id, item_id" names item_id, not " item_id"


def read_table(
    path: Path, wanted: Sequence[str], what: str, *, sep: str = ",", hint: str = "", **kwargs: Any
) -> tuple[pd.DataFrame, Where]:
    """A file with a header line, after checking it has the ``wanted`` columns, and its :class:`Where`.

    Every column is parsed (no ``usecols``: with it pandas silently drops extra fields instead of
    reporting the line).
    """
    require_columns(path, csv_header(path, sep, what), wanted, hint)
    frame = read_csv(path, what, sep=sep, **ONLY_EMPTY_IS_MISSING, **kwargs)
    frame.columns = [str(c).strip() for c in frame.columns]
    return frame, Where(path, first_line=2)


def read_fields(
    path: Path, sep: str, n: int, layout: str, *, encoding: str, text: Sequence[int] = ()
) -> pd.DataFrame:
    """A headerless ``sep``-separated file of exactly ``n`` fields per line.

    One spare column is read so that a line with extra fields is caught.
    """
    raw = read_csv(
        path, layout, sep=sep, header=None, names=range(n + 1), index_col=False,
        dtype=dict.fromkeys(text, "str"), encoding=encoding, **ONLY_EMPTY_IS_MISSING,
    )  # fmt: skip
    extra = raw[n].notna().to_numpy()
    if extra.any():
        row, _ = first_bad(extra, raw[n])
        raise DataError(f"{Where(path).at(row)}: more than {n} fields; expected {layout}")
    return raw[list(range(n))]


def read_lines(path: Path, encoding: str) -> pd.Series:
    """Non-blank lines of a small text file, indexed by their 0-based line position."""
    try:
        text = path.read_text(encoding=encoding)
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not valid {encoding} text ({exc.reason})") from exc
    lines = pd.Series(text.splitlines(), dtype="str")
    return lines[lines.str.strip() != ""]


def normalize_sep(sep: str) -> str:
    """``"\\t"`` / ``"tab"`` -> a tab; an empty separator is a UsageError."""
    aliases = {"\\t": "\t", "tab": "\t", "TAB": "\t"}
    sep = aliases.get(sep, sep)
    if not sep:
        raise UsageError("sep must not be empty; use ',' for CSV or '\\t' for TSV")
    return sep


def read_log(path: Path, columns: list[str], sep: str, hint: str) -> tuple[pd.DataFrame, Where]:
    """The requested columns of a CSV / TSV interaction log with a header line."""
    frame, where = read_table(path, columns, "an interaction log with a header line", sep=sep, hint=hint)
    return frame[columns], where
