"""Factory of the ``csv`` dataset: a column-mapped interaction log -> Interactions."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from zoo.data.interactions import Interactions
from zoo.data.readers import read_interactions

if TYPE_CHECKING:
    from zoo.data.prepared import EncodedLog


def load_csv(
    path: Path,
    *,
    user_col: str = "user_id",
    item_col: str = "item_id",
    time_col: str = "timestamp",
    rating_col: str = "",
    sep: str = ",",
) -> Interactions:
    """Read the log at ``path``; an empty ``rating_col`` means implicit feedback (no rating column)."""
    return read_interactions(
        path, user_col=user_col, item_col=item_col, time_col=time_col, rating_col=rating_col or None, sep=sep
    )


def stream_csv(
    path: Path,
    *,
    user_col: str = "user_id",
    item_col: str = "item_id",
    time_col: str = "timestamp",
    rating_col: str = "",
    sep: str = ",",
    advance: Callable[[int], None] | None = None,
) -> EncodedLog | None:
    """The log at ``path`` read in blocks for a prepared-data folder (``--prepared-dir``); None for a
    separator of several characters, which only :func:`load_csv` reads."""
    from zoo.data.prepared import can_stream, stream_interactions

    if not can_stream(path, sep):
        return None
    return stream_interactions(
        path, user_col=user_col, item_col=item_col, time_col=time_col, rating_col=rating_col or None,
        sep=sep, advance=advance,
    )  # fmt: skip


load_csv.zoo_stream = stream_csv  # type: ignore[attr-defined]  # see zoo.data.prepared.STREAM_ATTRIBUTE
