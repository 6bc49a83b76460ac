"""MatchData: an encoded dataset as flat tensors, and the batches and ranking tasks cut from it.

Every user's events are stored once, in time order, in one flat tensor. A training sample is just a
position in it: its history is the ``history_len`` items before it (gathered per batch with one
index computation, left-padded with 0), its target the item at the position. Nothing is built per
row in Python and no ``[samples, history_len]`` matrix is ever materialised.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from typing import Protocol as Protocol_

import numpy as np
import torch

from zoo.data.encoder import FIRST_CODE, FeatureEncoder
from zoo.data.interactions import Interactions
from zoo.data.protocol import Protocol
from zoo.errors import DataError, UsageError
from zoo.features import NEXT_ITEM, Schema

TRAIN, VALID, TEST = 0, 1, 2
Batch = dict[str, torch.Tensor]


@dataclass
class RankingTask:
    """Users to rank the catalogue for, their targets and the items each must not be shown.

    Attributes:
        users: the users' input features (one row per user), as the user tower reads them.
        targets: the held-out item id of each user (-1 when it is not in the catalogue: a miss).
        catalogue: the item ids that can be recommended; ranking returns ids from it.
        exclude: CSR ``(indptr, indices)`` of catalogue ROW indices to mask per user, or None.
        name: "valid" or "test".
    """

    users: Batch
    targets: np.ndarray
    catalogue: torch.Tensor
    exclude: tuple[torch.Tensor, torch.Tensor] | None = None
    name: str = "test"

    @property
    def num_users(self) -> int:
        return int(self.targets.shape[0])


@dataclass
class MatchData:
    """An encoded dataset (see module docstring). Build it with :meth:`from_interactions`."""

    encoder: FeatureEncoder
    schema: Schema
    protocol: Protocol
    seq_items: torch.Tensor  # [E] item code of every kept event, users contiguous, time-ordered
    seq_users: torch.Tensor  # [E] user code of every event
    seq_start: torch.Tensor  # [E] position of the first event of that event's user
    train_positions: torch.Tensor  # positions predicted in training (have >= 1 earlier event)
    valid_positions: torch.Tensor  # one per user
    test_positions: torch.Tensor  # one per user
    user_table: dict[str, torch.Tensor]
    item_table: dict[str, torch.Tensor]
    item_counts: torch.Tensor  # [item_vocab] training frequency of each item code
    card: dict[str, Any] = field(default_factory=dict)

    # -- construction -------------------------------------------------------------------------------
    @classmethod
    def from_interactions(cls, interactions: Interactions, protocol: Protocol) -> MatchData:
        """Filter, split, encode and index ``interactions`` under ``protocol``."""
        started = time.perf_counter()
        before = interactions.stats()
        events, removed = protocol.filter_events(interactions)
        return cls.from_events(
            events["user_id"].to_numpy(),
            events["item_id"].to_numpy(),
            events["timestamp"].to_numpy(),
            protocol,
            RawIds(interactions),
            card={
                "dataset": interactions.name,
                "source": interactions.source,
                "before_filters": before,
                "removed": removed,
            },
            started=started,
        )

    @classmethod
    def from_events(
        cls,
        users_raw: np.ndarray,
        items_raw: np.ndarray,
        timestamps: np.ndarray,
        protocol: Protocol,
        ids: IdEncoding,
        *,
        card: dict[str, Any],
        started: float | None = None,
    ) -> MatchData:
        """Split, encode and index filtered events (one entry per event in each array) under
        ``protocol``. ``ids`` fits the encoder on the training part and encodes the ids (the raw ids,
        or codes ordered as the raw ids sort, as the prepared-data builder gives them); ``card`` holds
        the dataset's part of the protocol card (``dataset``, ``source``, ``before_filters``,
        ``removed``)."""
        started = time.perf_counter() if started is None else started
        where = str(card.get("source") or card.get("dataset") or "interactions")
        # Stable sort by (user, timestamp key): equal keys keep file order.
        order = np.lexsort((protocol.time_keys(timestamps), users_raw))
        users_raw = users_raw[order]
        items_raw = items_raw[order]
        del order
        boundaries = np.flatnonzero(users_raw[1:] != users_raw[:-1]) + 1
        starts = np.concatenate([[0], boundaries])
        lengths = np.diff(np.concatenate([starts, [len(users_raw)]]))
        keep_user = lengths >= protocol.min_user_events
        dropped_users = int((~keep_user).sum())
        if not keep_user.any():
            raise DataError(
                f"{where}: no user has {protocol.min_user_events} or more events after"
                " filtering; leave-one-out needs at least one event each for train, valid and test"
            )
        if dropped_users:
            keep_event = np.repeat(keep_user, lengths)
            users_raw, items_raw = users_raw[keep_event], items_raw[keep_event]
            del keep_event
        kept_items = len(np.unique(items_raw))
        _require_enough(where, int(keep_user.sum()), kept_items)
        lengths = lengths[keep_user]
        starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
        ends = starts + lengths
        role = np.zeros(len(users_raw), dtype=np.int8)
        role[ends - 1] = TEST
        role[ends - 2] = VALID
        train = role == TRAIN
        del role

        encoder = ids.fit(users_raw[train], items_raw[train])
        user_codes, item_codes = ids.encode(encoder, users_raw, items_raw)
        del users_raw, items_raw
        seq_start = np.repeat(starts, lengths)
        train_positions = np.flatnonzero(train & (np.arange(len(user_codes)) - seq_start >= 1))

        item_counts = np.bincount(item_codes[train], minlength=encoder.item_vocab)
        item_counts[:FIRST_CODE] = 0
        user_side = encoder.side_vocab_sizes("user")
        item_side = encoder.side_vocab_sizes("item")
        renamed_user = {
            col: (f"user_{col}" if col in item_side or col in ("user_id", "item_id") else col)
            for col in user_side
        }
        schema = Schema(
            user_vocab=encoder.user_vocab,
            item_vocab=encoder.item_vocab,
            user_side={renamed_user[c]: v for c, v in user_side.items()},
            item_side=dict(item_side),
            item_multivalue=tuple(c for c in item_side if c in encoder.item_multivalue),
            history_len=protocol.history_len,
        )
        user_table = {renamed_user[c]: torch.from_numpy(v) for c, v in ids.user_table(encoder).items()}
        item_table = {c: torch.from_numpy(v) for c, v in ids.item_table(encoder).items()}
        test_targets = item_codes[ends - 1]
        full_card = protocol.card()
        full_card.update(card)
        full_card.update(
            users_dropped_below_min_events=dropped_users,
            after_filters={
                "interactions": int(len(user_codes)),
                "users": int(len(lengths)),
                "items": int(kept_items),
            },
            train_interactions=int(train.sum()),
            train_samples=int(len(train_positions)),
            catalogue_items=int(encoder.item_vocab - FIRST_CODE),
            test_targets_not_in_training=int((test_targets < FIRST_CODE).sum()),
            valid_targets_not_in_training=int((item_codes[ends - 2] < FIRST_CODE).sum()),
            prepare_seconds=round(time.perf_counter() - started, 3),
        )
        return cls(
            encoder=encoder,
            schema=schema,
            protocol=protocol,
            seq_items=torch.from_numpy(item_codes),
            seq_users=torch.from_numpy(user_codes),
            seq_start=torch.from_numpy(seq_start),
            train_positions=torch.from_numpy(train_positions),
            valid_positions=torch.from_numpy(ends - 2),
            test_positions=torch.from_numpy(ends - 1),
            user_table=user_table,
            item_table=item_table,
            item_counts=torch.from_numpy(item_counts),
            card=full_card,
        )

    # -- batches ------------------------------------------------------------------------------------
    @property
    def catalogue(self) -> torch.Tensor:
        """Item codes that can be recommended: every item of the training vocabulary."""
        return torch.arange(FIRST_CODE, self.schema.item_vocab, dtype=torch.long)

    def histories(self, positions: torch.Tensor, length: int | None = None) -> torch.Tensor:
        """The ``length`` items before each position, left-padded with 0 (most recent last)."""
        length = length or self.schema.history_len
        offsets = positions.unsqueeze(1) - length + torch.arange(length, dtype=torch.long)
        valid = offsets >= self.seq_start[positions].unsqueeze(1)
        return torch.where(valid, self.seq_items[offsets.clamp_min(0)], torch.zeros((), dtype=torch.long))

    def item_features(self, items: torch.Tensor) -> Batch:
        """Item id plus item side features for item codes ``items``."""
        batch: Batch = {self.schema.item_id: items}
        for name, table in self.item_table.items():
            batch[name] = table[items]
        return batch

    def batch(self, positions: torch.Tensor) -> Batch:
        """The model input for sample ``positions``: user features, history, target item features."""
        users = self.seq_users[positions]
        batch: Batch = {self.schema.user_id: users}
        for name, table in self.user_table.items():
            batch[name] = table[users]
        batch[self.schema.history_name] = self.histories(positions)
        batch.update(self.item_features(self.seq_items[positions]))
        return batch

    def train_batches(self, batch_size: int, *, shuffle: bool = True, seed: int = 0) -> TrainBatches:
        """One sample per training position (its history and its target)."""
        return TrainBatches(self, self.train_positions, batch_size, shuffle=shuffle, seed=seed)

    # -- sequences (models trained on every position) ---------------------------------------------
    def sequence_windows(self, length: int | None = None, stride: int | None = None) -> torch.Tensor:
        """End positions of training windows: each user's training targets (every training position
        with an earlier event) cut into windows, the last one ending at the user's last training event.

        Windows hold ``length`` inputs and step back ``stride`` positions (default ``length``: windows
        side by side). With ``stride < length`` they overlap and each window trains only its last
        ``stride`` targets, so every target but a user's first few sees at least ``length - stride``
        earlier items (pass the same ``stride`` to :meth:`sequence_batch`). Either way, the windows
        cover every training target exactly once."""
        length = length or self.schema.history_len
        stride = _window_stride(length, stride)
        first_target = self.seq_start[self.valid_positions] + 1
        last_target = self.valid_positions - 1
        targets = (last_target - first_target + 1).clamp_min(0)
        windows = (targets + stride - 1) // stride
        owner_last = torch.repeat_interleave(last_target, windows)
        offsets = torch.arange(int(windows.sum())) - torch.repeat_interleave(
            torch.cumsum(windows, 0) - windows, windows
        )
        return owner_last - stride * offsets

    def sequence_batch(
        self, ends: torch.Tensor, length: int | None = None, stride: int | None = None
    ) -> Batch:
        """Inputs and next-item targets of windows ending at ``ends``: the history column holds the
        inputs [B, L] (left-padded with 0), ``next_item_id`` the target after each input (0 where there
        is none, and in the first ``L - stride`` columns, which are context only); user features as in
        :meth:`batch`, item features of each window's last target."""
        length = length or self.schema.history_len
        stride = _window_stride(length, stride)
        targets_at = ends.unsqueeze(1) - length + 1 + torch.arange(length, dtype=torch.long)
        start = self.seq_start[ends].unsqueeze(1)
        zero = torch.zeros((), dtype=torch.long)
        inputs = torch.where(targets_at - 1 >= start, self.seq_items[(targets_at - 1).clamp_min(0)], zero)
        trained = (targets_at >= start + 1) & (torch.arange(length) >= length - stride)
        targets = torch.where(trained, self.seq_items[targets_at.clamp_min(0)], zero)
        users = self.seq_users[ends]
        batch: Batch = {self.schema.user_id: users}
        for name, table in self.user_table.items():
            batch[name] = table[users]
        batch[self.schema.history_name] = inputs
        batch[NEXT_ITEM] = targets
        batch.update(self.item_features(self.seq_items[ends]))
        return batch

    def training_batches(
        self,
        model: Any,
        batch_size: int,
        *,
        shuffle: bool = True,
        seed: int = 0,
        window_stride: int | None = None,
    ) -> Any:
        """The batches ``model`` trains on: per-sample batches, or sequence windows for models whose
        ``training_data`` is ``"sequences"`` (trained on every position; ``window_stride`` as in
        :meth:`sequence_windows`)."""
        if getattr(model, "training_data", "samples") == "sequences":
            windows = self.sequence_windows(stride=window_stride)
            return SequenceBatches(
                self, windows, batch_size, shuffle=shuffle, seed=seed, stride=window_stride
            )
        if window_stride is not None:
            raise UsageError(
                f"window_stride applies to models trained on sequence windows (gru4rec, sasrec);"
                f" {type(model).__name__} trains on single samples: drop the parameter"
            )
        return self.train_batches(batch_size, shuffle=shuffle, seed=seed)

    def train_sample_count(self, model: Any = None) -> int:
        """Training targets per epoch (the same for per-sample and per-position training)."""
        return int(self.train_positions.shape[0])

    # -- evaluation -----------------------------------------------------------------------------------
    def ranking_task(self, split: str = "test") -> RankingTask:
        """The valid or test ranking task: one row per user, exclusion of the user's earlier items
        when the protocol masks them."""
        positions = {"valid": self.valid_positions, "test": self.test_positions}.get(split)
        if positions is None:
            raise ValueError(f"split must be 'valid' or 'test', got {split!r}")
        users = self.batch(positions)
        targets = self.seq_items[positions].numpy().copy()
        targets[targets < FIRST_CODE] = -1
        exclude = self.seen_items(positions) if self.protocol.mask_seen else None
        return RankingTask(
            users=users, targets=targets, catalogue=self.catalogue, exclude=exclude, name=split
        )

    def seen_items(self, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """CSR of catalogue rows of every item each user had before ``positions`` (OOV items skipped)."""
        starts = self.seq_start[positions].numpy()
        ends = positions.numpy()
        if len(ends) and (starts[1:] >= ends[:-1]).all():
            return self._seen_in_order(starts, ends)
        lengths = ends - starts
        owner = np.repeat(np.arange(len(lengths)), lengths)
        index = np.repeat(starts - np.concatenate([[0], np.cumsum(lengths)[:-1]]), lengths) + np.arange(
            lengths.sum()
        )
        rows = self.seq_items.numpy()[index] - FIRST_CODE
        keep = rows >= 0
        counts = np.bincount(owner[keep], minlength=len(lengths))
        indptr = np.concatenate([[0], np.cumsum(counts)])
        return torch.from_numpy(indptr.astype(np.int64)), torch.from_numpy(rows[keep].astype(np.int64))

    def _seen_in_order(self, starts: np.ndarray, ends: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`seen_items` for ranges ``[starts, ends)`` in event order that do not overlap (every
        user's valid or test position): one byte per event instead of several index arrays."""
        items = self.seq_items.numpy()
        marks = np.zeros(len(items) + 1, dtype=np.int8)
        np.add.at(marks, starts, 1)
        np.add.at(marks, ends, -1)
        covered = np.cumsum(marks, dtype=np.int8).view(bool)  # 0 or 1: the ranges do not overlap
        del marks
        covered[:-1] &= items >= FIRST_CODE
        bounds = np.stack([starts, ends], axis=1).ravel()
        sums = np.add.reduceat(covered, bounds, dtype=np.int64)[::2]
        counts = np.where(ends > starts, sums, 0)
        rows = items[covered[:-1]] - FIRST_CODE
        indptr = np.concatenate([[0], np.cumsum(counts)])
        return torch.from_numpy(indptr.astype(np.int64)), torch.from_numpy(rows.astype(np.int64, copy=False))

    def summary(self) -> dict[str, Any]:
        return {
            "users": int(self.valid_positions.shape[0]),
            "items": int(self.schema.item_vocab - FIRST_CODE),
            "train_samples": int(self.train_positions.shape[0]),
        }


def _require_enough(where: str, users: int, items: int) -> None:
    """A DataError for a log too small to train and rank on (after the protocol's filters)."""
    if users < 2:
        raise DataError(
            f"{where}: {users} user left after the protocol's filters; recall models learn from many users,"
            " so give the log more users (or relax the protocol: protocol.user_core, protocol.min_rating)"
        )
    if items < 2:
        raise DataError(
            f"{where}: {items} item left after the protocol's filters; ranking needs at least two items,"
            " so give the log more items (or relax the protocol: protocol.item_core, protocol.min_rating)"
        )


def _window_stride(length: int, stride: int | None) -> int:
    """``stride`` checked against the window ``length`` (None: ``length``)."""
    if stride is None:
        return int(length)
    if isinstance(stride, bool) or not 1 <= int(stride) <= int(length):
        raise UsageError(f"window_stride must be between 1 and the history length {length}, got {stride}")
    return int(stride)


class IdEncoding(Protocol_):
    """How :meth:`MatchData.from_events` turns ids into codes: fit the encoder on the training part,
    encode every event's ids, and build the side tables."""

    def fit(self, train_users: np.ndarray, train_items: np.ndarray) -> FeatureEncoder: ...

    def encode(
        self, encoder: FeatureEncoder, users: np.ndarray, items: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]: ...

    def user_table(self, encoder: FeatureEncoder) -> dict[str, np.ndarray]: ...

    def item_table(self, encoder: FeatureEncoder) -> dict[str, np.ndarray]: ...


@dataclass
class RawIds:
    """Ids as a dataset gives them (ints or strings), with its side tables."""

    interactions: Interactions

    def fit(self, train_users: np.ndarray, train_items: np.ndarray) -> FeatureEncoder:
        found = self.interactions
        return FeatureEncoder.fit(train_users, train_items, found.users, found.items, found.item_multivalue)

    def encode(
        self, encoder: FeatureEncoder, users: np.ndarray, items: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        return encoder.encode_users(users), encoder.encode_items(items)

    def user_table(self, encoder: FeatureEncoder) -> dict[str, np.ndarray]:
        return encoder.user_table(self.interactions.users)

    def item_table(self, encoder: FeatureEncoder) -> dict[str, np.ndarray]:
        return encoder.item_table(self.interactions.items)


class TrainBatches:
    """Shuffled mini-batches of training positions; iterable like a DataLoader, reshuffled each pass.

    The order of pass ``epoch`` is a pure function of ``(seed, epoch)`` (:meth:`order`): a seeded run
    sees the same batches in the same order, and a resumed one needs to save nothing about the
    iterator. :meth:`set_epoch` chooses the next pass (the trainer calls it before each epoch);
    otherwise each pass takes the next epoch number.
    """

    def __init__(
        self,
        data: MatchData,
        positions: torch.Tensor,
        batch_size: int,
        *,
        shuffle: bool = True,
        seed: int = 0,
    ):
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        self.data = data
        self.positions = positions
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.seed = int(seed)
        self.epoch = 0

    def __len__(self) -> int:
        return math.ceil(self.positions.shape[0] / self.batch_size)

    def set_epoch(self, epoch: int) -> None:
        """Make the next pass epoch ``epoch`` (0-based) of the seeded sequence."""
        self.epoch = int(epoch)

    def order(self, epoch: int) -> torch.Tensor:
        """The positions of pass ``epoch`` in the order they are batched (depends on seed and epoch only)."""
        if not self.shuffle:
            return self.positions
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + int(epoch))
        return self.positions[torch.randperm(self.positions.shape[0], generator=generator)]

    def __iter__(self) -> Iterator[Batch]:
        positions = self.order(self.epoch)
        self.epoch += 1
        for start in range(0, positions.shape[0], self.batch_size):
            yield self.data.batch(positions[start : start + self.batch_size])


class SequenceBatches(TrainBatches):
    """Shuffled mini-batches of sequence windows (see :meth:`MatchData.sequence_batch`)."""

    def __init__(
        self,
        data: MatchData,
        ends: torch.Tensor,
        batch_size: int,
        *,
        shuffle: bool = True,
        seed: int = 0,
        stride: int | None = None,
    ):
        super().__init__(data, ends, batch_size, shuffle=shuffle, seed=seed)
        self.stride = stride

    def __iter__(self) -> Iterator[Batch]:
        ends = self.order(self.epoch)
        self.epoch += 1
        for start in range(0, ends.shape[0], self.batch_size):
            yield self.data.sequence_batch(ends[start : start + self.batch_size], stride=self.stride)
