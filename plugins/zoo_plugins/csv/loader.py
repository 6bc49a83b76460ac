"""Factory of the ``csv`` dataset: a column-mapped interaction log -> Interactions."""

from __future__ import annotations

from pathlib import Path

from zoo.data.interactions import Interactions
from zoo.data.readers import read_interactions


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
