"""An :class:`~zoo.data.prepared.stream.EncodedLog` -> :class:`~zoo.data.match.MatchData`, exactly as
:meth:`MatchData.from_interactions` builds it from the same file.

The protocol's filters run on the integer codes (a k-core over codes keeps the same events as over
raw ids), and the split, encoding and indexing are :meth:`MatchData.from_events` itself, with ids
that are already codes ordered like the raw ids (:class:`RankedIds`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from zoo.data.encoder import FIRST_CODE, OOV, FeatureEncoder, Vocabulary
from zoo.data.match import MatchData
from zoo.data.prepared.stream import EncodedLog
from zoo.data.protocol import Protocol


@dataclass
class RankedIds:
    """Ids given as codes into sorted value arrays (an EncodedLog's): the encoder's vocabulary is the
    training codes' values, which are already sorted, as :meth:`Vocabulary.fit` sorts them."""

    user_values: np.ndarray
    item_values: np.ndarray
    _luts: dict[str, np.ndarray] = field(default_factory=dict)

    def fit(self, train_users: np.ndarray, train_items: np.ndarray) -> FeatureEncoder:
        encoder = FeatureEncoder()
        for key, codes, values in (
            ("user_id", train_users, self.user_values),
            ("item_id", train_items, self.item_values),
        ):
            seen = np.flatnonzero(np.bincount(codes, minlength=len(values)))
            encoder.vocabs[key] = Vocabulary(pd.Index(values[seen]))
            lut = np.full(len(values), OOV, dtype=np.int64)
            lut[seen] = np.arange(FIRST_CODE, FIRST_CODE + len(seen), dtype=np.int64)
            self._luts[key] = lut
        return encoder

    def encode(
        self, encoder: FeatureEncoder, users: np.ndarray, items: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        return self._luts["user_id"][users], self._luts["item_id"][items]

    def user_table(self, encoder: FeatureEncoder) -> dict[str, np.ndarray]:
        return {}

    def item_table(self, encoder: FeatureEncoder) -> dict[str, np.ndarray]:
        return {}


@dataclass
class _Events:
    """What :meth:`Protocol.filter_events` reads: the events and where they came from."""

    events: pd.DataFrame
    where: str


def build_match_data(log: EncodedLog, protocol: Protocol) -> MatchData:
    """Filter, split, encode and index ``log`` under ``protocol`` (the log's arrays are released as
    they are used)."""
    started = time.perf_counter()
    before = log.stats()
    removed: dict[str, Any] = {}
    users, items, timestamps = log.users, log.items, log.timestamps
    if protocol.min_rating is not None or protocol.user_core or protocol.item_core:
        columns = {"user_id": users, "item_id": items}
        if log.ratings is not None:
            columns["rating"] = log.ratings
        kept, removed = protocol.filter_events(_Events(pd.DataFrame(columns, copy=False), log.source))
        if len(kept) < len(users):
            rows = kept.index.to_numpy()
            users, items, timestamps = users[rows], items[rows], timestamps[rows]
        del kept
    return MatchData.from_events(
        users,
        items,
        timestamps,
        protocol,
        RankedIds(log.user_values, log.item_values),
        card={"dataset": log.name, "source": log.source, "before_filters": before, "removed": removed},
        started=started,
    )
