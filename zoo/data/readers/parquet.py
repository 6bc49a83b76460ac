"""Parquet interaction logs (needs pyarrow: ``pip install "recall-zoo[parquet]"``)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pandas as pd

from zoo.data.readers.checks import Where, require_columns
from zoo.errors import DataError

PARQUET_SUFFIXES = (".parquet", ".pq")


def is_parquet(path: Path) -> bool:
    """Whether ``path`` is read as Parquet (by its suffix)."""
    return path.suffix.lower() in PARQUET_SUFFIXES


def parquet_columns(path: Path) -> list[str]:
    """The column names in the file's schema (read without loading the data)."""
    if importlib.util.find_spec("pyarrow") is None:
        raise DataError(
            f'{path}: reading Parquet needs pyarrow: pip install "recall-zoo[parquet]"'
            " (or pip install pyarrow)"
        )
    import pyarrow.parquet as pq

    try:
        return list(pq.read_schema(path).names)
    except Exception as exc:  # pyarrow raises several unrelated types for a bad file
        raise DataError(f"{path}: not a readable Parquet file ({' '.join(str(exc).split())[:200]})") from exc


def read_log(path: Path, columns: list[str], hint: str) -> tuple[pd.DataFrame, Where]:
    """The requested columns of a Parquet interaction log, after checking they exist."""
    require_columns(path, parquet_columns(path), columns, hint)
    return pd.read_parquet(path, columns=columns), Where(path, first_line=1, unit="row")
