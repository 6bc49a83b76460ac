"""Any interaction log (CSV / TSV with a header line, or Parquet) with a column mapping."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from zoo.data.interactions import Interactions
from zoo.data.readers import csv, parquet
from zoo.data.readers.checks import (
    PathLike,
    existing_file,
    finish_events,
    require_numeric,
    require_present,
    require_timestamp,
)
from zoo.errors import UsageError

HINT = (
    "map yours with --param data.user_col=NAME (and data.item_col=, data.time_col=, data.rating_col=) on the"
    " command line, or user_col=... in Python"
)


LOG_WHAT = "an interaction log (CSV with a header line, or Parquet)"


def column_mapping(user_col: str, item_col: str, time_col: str, rating_col: str | None) -> dict[str, str]:
    """The log's column -> the canonical column (``rating`` only with a ``rating_col``); a UsageError
    when two options name the same column."""
    mapping = {user_col: "user_id", item_col: "item_id", time_col: "timestamp"}
    if rating_col:
        mapping[rating_col] = "rating"
    if len(mapping) < (4 if rating_col else 3):
        raise UsageError(
            f"user_col={user_col!r}, item_col={item_col!r}, time_col={time_col!r}, rating_col={rating_col!r}"
            " must name different columns"
        )
    return mapping


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
    p = existing_file(Path(path).expanduser(), LOG_WHAT)
    mapping = column_mapping(user_col, item_col, time_col, rating_col)
    sep = csv.normalize_sep(sep)
    if parquet.is_parquet(p):
        raw, where = parquet.read_log(p, list(mapping), HINT)
    else:
        raw, where = csv.read_log(p, list(mapping), sep, HINT)
    events = pd.DataFrame(
        {
            "user_id": require_present(raw[user_col], user_col, where),
            "item_id": require_present(raw[item_col], item_col, where),
            "timestamp": require_timestamp(raw[time_col], time_col, where),
        }
    )
    if rating_col:
        events["rating"] = require_numeric(raw[rating_col], rating_col, where, dtype="float32")
    return Interactions(
        events=finish_events(events),
        name=p.stem,
        source=str(p),
        meta={"format": "interactions", "columns": mapping},
    )
