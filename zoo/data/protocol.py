"""Evaluation protocols: filters, the split and the ranking rules, recorded in a protocol card.

Published recall numbers are only comparable under the protocol that produced them (on MovieLens-1M
the same model family scores from 0.25 to 0.82 HitRate@10 depending on protocol), so the protocol is
a named, frozen object and every report carries its card.

Presets:
    loo          all ratings, users with >= 3 events, time-ordered leave-one-out (last item test,
                 second last valid, the rest train), full ranking, the user's earlier items masked.
    deepmatch    as DeepMatch measures: last item per user is the test item, earlier items train
                 (the second last is held out for early stopping and still appears in the test
                 history), full catalogue, no seen-item filter.
    recbole-seq  ratings >= 3, 10-core, time-ordered leave-one-out, full ranking, not masked,
                 history length 50, events ordered by float32 timestamps as RecBole stores them
                 (RecBole's sequential benchmark).
    sasrec       all ratings, 5-core, time-ordered leave-one-out, full ranking, history length 200.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from zoo.errors import DataError, UnknownNameError, UsageError

if TYPE_CHECKING:  # numpy and pandas load when a protocol filters, so the CLI can list protocols cheaply
    import numpy as np
    import pandas as pd

    from zoo.data.interactions import Interactions

SPLITS = ("leave_one_out",)
#: how timestamps are compared when events are put in time order (see ``Protocol.time_precision``)
TIME_PRECISIONS = ("float64", "float32")


@dataclass(frozen=True)
class Protocol:
    """How interactions become train / valid / test and how rankings are scored.

    Attributes:
        name: preset name (or ``custom``).
        min_rating: keep only events with ``rating >= min_rating`` (None keeps all).
        user_core / item_core: iterated k-core filter (0 = off).
        split: ``leave_one_out`` (by time; ties keep file order).
        mask_seen: remove the user's earlier items from the ranking before taking the top K.
        history_len: most recent items given to the model as the user's history.
        min_user_events: users with fewer events after filtering are dropped (3 = one each for
            train, valid and test).
        time_precision: ``float64`` orders events by their exact timestamps; ``float32`` by the
            timestamps rounded to float32, as RecBole stores them (at 2000-era Unix times that is
            steps of 64 seconds: events that round to the same step keep file order). Either way
            equal keys keep file order.
    """

    name: str = "loo"
    min_rating: float | None = None
    user_core: int = 0
    item_core: int = 0
    split: str = "leave_one_out"
    mask_seen: bool = True
    history_len: int = 50
    min_user_events: int = 3
    time_precision: str = "float64"
    description: str = ""

    def __post_init__(self) -> None:
        if self.split not in SPLITS:
            raise UsageError(f"protocol split {self.split!r} is unknown; use one of {', '.join(SPLITS)}")
        if self.history_len < 1:
            raise UsageError(f"protocol history_len must be >= 1, got {self.history_len}")
        if self.time_precision not in TIME_PRECISIONS:
            raise UsageError(
                f"protocol time_precision {self.time_precision!r} is unknown; use one of"
                f" {', '.join(TIME_PRECISIONS)}"
            )
        if self.min_user_events < 3:
            raise UsageError(
                "protocol min_user_events must be >= 3 (one event each for train, valid and test)"
            )

    def replace(self, **changes: Any) -> Protocol:
        """A copy with ``changes``; the name becomes ``<name>+custom`` when anything changed (unless a
        new ``name`` is given). ``None`` values mean "not given" and change nothing."""
        fields = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(changes) - fields)
        if unknown:
            raise UsageError(
                f"protocol has no setting {', '.join(map(repr, unknown))}; settings:"
                f" {', '.join(sorted(fields))}"
            )
        changes = {k: v for k, v in changes.items() if v is not None and getattr(self, k) != v}
        if not changes:
            return self
        name = changes.pop("name", None) or (
            self.name if self.name.endswith("+custom") else f"{self.name}+custom"
        )
        return dataclasses.replace(self, name=name, **changes)

    # -- filters ----------------------------------------------------------------------------------
    def filter_events(self, interactions: Interactions) -> tuple[pd.DataFrame, dict[str, Any]]:
        """Apply the rating threshold and k-core; returns the kept events and what was removed."""
        events = interactions.events
        removed: dict[str, Any] = {}
        if self.min_rating is not None:
            if "rating" not in events.columns:
                raise DataError(
                    f"{interactions.where}: protocol '{self.name}' keeps ratings >= {self.min_rating}, but"
                    " the data has no 'rating' column; choose a protocol without a rating threshold"
                )
            keep = events["rating"].to_numpy() >= self.min_rating
            removed["below_min_rating"] = int((~keep).sum())
            events = events[keep]
        if self.user_core or self.item_core:
            events, rounds = _k_core(events, self.user_core, self.item_core)
            removed["k_core_rounds"] = rounds
        if len(events) == 0:
            raise DataError(
                f"{interactions.where}: no interactions left after the '{self.name}' protocol's filters"
            )
        return events, removed

    def time_keys(self, timestamps: np.ndarray) -> np.ndarray:
        """The keys events are time-ordered by (see ``time_precision``): the timestamps as they are
        for ``float64`` (no conversion, so integer nanoseconds keep their order), float32 otherwise."""
        import numpy as np

        if self.time_precision == "float32":
            return np.asarray(timestamps, dtype=np.float32)
        return np.asarray(timestamps)

    def card(self) -> dict[str, Any]:
        """The protocol's settings in words and values (the static part of the protocol card)."""
        return {
            "protocol": self.name,
            "description": self.description,
            "filters": {
                "min_rating": self.min_rating,
                "user_core": self.user_core,
                "item_core": self.item_core,
                "min_user_events": self.min_user_events,
            },
            "split": (
                "time-ordered leave-one-out per user: last event = test, second last = valid, the rest ="
                " train"
                + (
                    " (timestamps compared as float32, as RecBole stores them: 64-second steps at 2000-era"
                    " times; equal keys keep file order)"
                    if self.time_precision == "float32"
                    else " (equal timestamps keep file order)"
                )
            ),
            "time_precision": self.time_precision,
            "masking": (
                "the user's earlier items are removed from the ranking"
                if self.mask_seen
                else "none: earlier items stay in the ranking"
            ),
            "candidates": "full ranking over every item of the training vocabulary (no sampled candidates)",
            "history_len": self.history_len,
            "oov_targets": "a test item never seen in training cannot be retrieved and counts as a miss",
        }


def _k_core(events: pd.DataFrame, user_core: int, item_core: int) -> tuple[pd.DataFrame, int]:
    """Iteratively drop users with < user_core and items with < item_core events (until stable)."""
    import numpy as np

    columns = [(events["user_id"].to_numpy(), user_core), (events["item_id"].to_numpy(), item_core)]
    keep = np.ones(len(events), dtype=bool)
    rounds = 0
    changed = True
    while changed and keep.any():
        rounds += 1
        changed = False
        for values, core in columns:
            if not core:
                continue
            _, inverse, counts = np.unique(values[keep], return_inverse=True, return_counts=True)
            drop = counts[inverse] < core
            if drop.any():
                keep[np.flatnonzero(keep)[drop]] = False
                changed = True
    return events[keep], rounds


PROTOCOLS: dict[str, Protocol] = {
    "loo": Protocol(
        name="loo",
        description="time-ordered leave-one-out, full ranking, the user's earlier items masked",
    ),
    "deepmatch": Protocol(
        name="deepmatch",
        mask_seen=False,
        description="DeepMatch's MovieLens protocol: last item per user as test, earlier items train, full"
        " catalogue, no seen-item filter",
    ),
    "recbole-seq": Protocol(
        name="recbole-seq",
        min_rating=3,
        user_core=10,
        item_core=10,
        mask_seen=False,
        history_len=50,
        # RecBole keeps timestamps in a float32 tensor and sorts by it: at MovieLens-1M's times events
        # within 64 seconds tie and keep file order. With exact timestamps 18% of the test targets
        # and 96% of the test histories differ from RecBole's.
        time_precision="float32",
        description="RecBole sequential benchmark: ratings >= 3, 10-core, leave-one-out, full ranking, not"
        " masked, events ordered by float32 timestamps as RecBole orders them",
    ),
    # SASRec+ / eSASRec, the anchors, rank the full catalogue with the user's earlier items filtered
    # out (their evaluation's ``filter_seen``); unmasked figures are not comparable with them.
    "sasrec": Protocol(
        name="sasrec",
        user_core=5,
        item_core=5,
        mask_seen=True,
        history_len=200,
        description="SASRec+: all ratings, 5-core, leave-one-out, full ranking with the user's earlier items"
        " masked, history length 200",
    ),
}


def get_protocol(name: str | Protocol) -> Protocol:
    """The protocol preset called ``name`` (exit 2 with did-you-mean when unknown)."""
    if isinstance(name, Protocol):
        return name
    try:
        return PROTOCOLS[name]
    except KeyError:
        raise UnknownNameError("protocol", name, PROTOCOLS) from None
