"""The dataset contract: an interaction log with optional user and item side tables.

Every dataset plugin returns an :class:`Interactions`. Columns are canonical so that the rest of the
pipeline never needs to know where the data came from:

* ``events``: ``user_id``, ``item_id``, ``timestamp`` (int, any monotone unit), optional ``rating``.
* ``users``: ``user_id`` plus categorical side features (one column each).
* ``items``: ``item_id`` plus categorical side features; a multi-valued column (MovieLens genres)
  holds strings joined by the separator given in ``item_multivalue``.

Raw ids may be ints or strings; the feature encoder maps them to dense indices later.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from zoo.errors import DataError

EVENT_COLUMNS = ("user_id", "item_id", "timestamp")


@dataclass
class Interactions:
    """An interaction log plus side tables (see module docstring for the columns)."""

    events: pd.DataFrame
    users: pd.DataFrame | None = None
    items: pd.DataFrame | None = None
    name: str = "interactions"
    source: str = ""
    item_multivalue: dict[str, str] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    #: what was repaired while loading (one line each), e.g. dropped duplicate events
    warnings: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.validate()
        self._drop_duplicate_events()

    def _drop_duplicate_events(self) -> None:
        """Drop exact repeats of an event (same user, item, timestamp and rating): a copy of a test event
        left in training would be masked at test time and score every metric 0. One warning line."""
        columns = [c for c in (*EVENT_COLUMNS, "rating") if c in self.events.columns]
        repeated = self.events.duplicated(subset=columns, keep="first").to_numpy()
        if repeated.any():
            self.events = self.events.loc[~repeated].reset_index(drop=True)
            self.warnings.append(
                f"warning: {self.where}: dropped {int(repeated.sum())} exact duplicate event(s) (same"
                f" {', '.join(c.removesuffix('_id') for c in columns)})"
            )

    @property
    def where(self) -> str:
        return self.source or self.name

    def validate(self) -> None:
        """Check the canonical columns; raise a one-line :class:`DataError` naming what is wrong."""
        events = self.events
        missing = [c for c in EVENT_COLUMNS if c not in events.columns]
        if missing:
            raise DataError(
                f"{self.where}: missing column {', '.join(repr(m) for m in missing)}; interactions need"
                f" {', '.join(EVENT_COLUMNS)} (map yours with the csv dataset's column options)"
            )
        if len(events) == 0:
            raise DataError(f"{self.where}: no interactions; the file is empty or every row was filtered out")
        for col in EVENT_COLUMNS:
            nulls = events[col].isna().to_numpy()
            if nulls.any():
                row = int(np.flatnonzero(nulls)[0])
                raise DataError(
                    f"{self.where}: column '{col}' is empty in {int(nulls.sum())} row(s), first at row"
                    f" {row + 1}"
                )
        if not pd.api.types.is_numeric_dtype(events["timestamp"]):
            raise DataError(
                f"{self.where}: column 'timestamp' must be numeric (seconds or any monotone integer)"
            )
        infinite = ~np.isfinite(events["timestamp"].to_numpy(dtype="float64"))
        if infinite.any():
            row = int(np.flatnonzero(infinite)[0])
            raise DataError(
                f"{self.where}: column 'timestamp' is not finite in {int(infinite.sum())} row(s), first at"
                f" row {row + 1}; timestamps must be finite numbers"
            )
        if "rating" in events.columns:
            rating = events["rating"]
            if not pd.api.types.is_numeric_dtype(rating):
                raise DataError(f"{self.where}: column 'rating' must be numeric")
            nan = rating.isna().to_numpy()
            if nan.any():
                row = int(np.flatnonzero(nan)[0])
                raise DataError(
                    f"{self.where}: column 'rating' is NaN in {int(nan.sum())} row(s), first at row"
                    f" {row + 1}; drop or fill those rows"
                )
        for table, key in ((self.users, "user_id"), (self.items, "item_id")):
            if table is None:
                continue
            if key not in table.columns:
                raise DataError(f"{self.where}: side table has no '{key}' column")
            if table[key].duplicated().any():
                dup = table[key][table[key].duplicated()].iloc[0]
                raise DataError(f"{self.where}: side table lists {key} {dup!r} more than once")
        if self.items is not None:
            for col in self.item_multivalue:
                if col not in self.items.columns:
                    raise DataError(
                        f"{self.where}: multi-valued item column '{col}' is not in the item table"
                    )

    def stats(self) -> dict[str, Any]:
        """Counts for reports: interactions, users, items, density."""
        n_users = int(self.events["user_id"].nunique())
        n_items = int(self.events["item_id"].nunique())
        n = len(self.events)
        return {
            "interactions": n,
            "users": n_users,
            "items": n_items,
            "density": n / max(1, n_users * n_items),
        }
