"""The seed tutorial's data helpers, under the seed's names and arguments, vectorised and seeded.

::

    df_train, df_test = generate_seq_feature_match(data, "user_id", "movie_id", time_col="timestamp",
                                                   item_attribute_cols=[], sample_method=1, mode=0,
                                                   neg_ratio=3, min_item=0)
    x_train = gen_model_input(df_train, user_profile, "user_id", item_profile, "movie_id", seq_max_len=50)
    train_dl, test_dl, item_dl = MatchDataGenerator(x=x_train, y=x_train["label"]).generate_dataloader(
        x_test, all_item, batch_size=256)

Differences from the reference implementation: no per-row Python loop (the reference walks every
user and every position in Python and deep-copies rows); negatives are drawn in one vectorised pass
and never equal the row's positive; ``seed`` makes the sampling and the shuffling reproducible; the
loaders are slices of pre-built tensors instead of a per-sample ``DataLoader``.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Iterator, Mapping, Sequence
from itertools import repeat
from typing import Any

import numpy as np
import pandas as pd
import torch

from zoo.errors import DataError, UsageError

SAMPLE_METHODS = {0: "uniform", 1: "word2vec popularity^0.75", 2: "log(count+1)+1e-6", 3: "RALM rank-based"}


def negative_probabilities(counts: np.ndarray, sample_method: int) -> np.ndarray:
    """Sampling distribution over items for the seed's ``sample_method`` 0..3."""
    counts = np.asarray(counts, dtype=np.float64)
    if sample_method == 0:
        weights = np.ones_like(counts)
    elif sample_method == 1:
        weights = counts**0.75
    elif sample_method == 2:
        weights = np.log(counts + 1) + 1e-6
    elif sample_method == 3:
        rank = np.empty(len(counts), dtype=np.float64)
        rank[np.argsort(-counts, kind="stable")] = np.arange(len(counts))
        weights = (np.log(rank + 2) - np.log(rank + 1)) / np.log(len(counts) + 1)
    else:
        raise UsageError(
            f"sample_method must be one of {sorted(SAMPLE_METHODS)} ({SAMPLE_METHODS}), got {sample_method!r}"
        )
    return weights / weights.sum()


def sample_negatives(
    positives: np.ndarray, items: np.ndarray, probs: np.ndarray, n: int, rng: np.random.Generator
) -> np.ndarray:
    """``n`` negatives per positive drawn from ``items`` with ``probs``, none equal to its positive.

    Collisions are redrawn in vectorised rounds (only the colliding cells), so the result is exact.
    """
    if n <= 0:
        return np.empty((len(positives), 0), dtype=items.dtype)
    if len(items) < 2:
        raise DataError("negative sampling needs at least two distinct items")
    draws = items[rng.choice(len(items), size=(len(positives), n), p=probs)]
    clash = draws == positives[:, None]
    rounds = 0
    while clash.any():
        rounds += 1
        if rounds > 1000:  # an item holding (almost) all the probability mass
            raise DataError(
                "cannot draw negatives different from the positive: one item holds nearly all the mass"
            )
        draws[clash] = items[rng.choice(len(items), size=int(clash.sum()), p=probs)]
        clash = draws == positives[:, None]
    return draws


def _prefix_views(values: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """An object array whose element r is the zero-copy view ``values[starts[r]:ends[r]]``.

    ``map`` over ``slice`` runs in C: no Python bytecode per row, and no history is copied.
    """
    out = np.empty(len(starts), dtype=object)
    out[:] = list(map(values.__getitem__, map(slice, starts.tolist(), ends.tolist())))
    return out


def generate_seq_feature_match(
    data: pd.DataFrame,
    user_col: str,
    item_col: str,
    time_col: str,
    item_attribute_cols: Sequence[str] | None = None,
    sample_method: int = 0,
    mode: int = 0,
    neg_ratio: int = 0,
    min_item: int = 0,
    *,
    seed: int | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Turn an interaction log into training samples (every position but the last) and test samples
    (each user's last item), each with its full history (the seed's function, vectorised).

    Args:
        data: the log; needs ``user_col``, ``item_col``, ``time_col``.
        item_attribute_cols: item columns that get a history too (``hist_<col>``).
        sample_method: 0 uniform, 1 popularity^0.75, 2 log(count+1), 3 RALM rank-based negatives.
        mode: 0 point-wise (negative rows with ``label`` 0), 1 pair-wise (one ``neg_items`` id per row,
            ``neg_ratio`` rows per positive), 2 list-wise (``neg_items`` holds ``neg_ratio`` ids).
        neg_ratio: negatives per positive.
        min_item: users with fewer items are skipped.
        seed: seeds the negative sampling and the shuffling of the training rows.

    Returns:
        ``(df_train, df_test)``: columns ``user_col``, ``item_col``, ``hist_<item_col>`` (numpy views
        into one shared array), ``histlen_<item_col>``, ``hist_<attr>``, ``time_col``, and ``label``
        (mode 0 train, and test) or ``neg_items`` (modes 1 and 2).
    """
    attrs = list(item_attribute_cols or [])
    missing = [c for c in [user_col, item_col, time_col, *attrs] if c not in data.columns]
    if missing:
        raise DataError(
            f"generate_seq_feature_match: column(s) {', '.join(map(repr, missing))} not in the data"
            f" (it has {', '.join(map(str, data.columns))})"
        )
    if mode not in (0, 1, 2):
        raise UsageError(f"mode must be 0, 1 or 2, got {mode!r}")
    if mode in (1, 2) and neg_ratio < 1:
        raise UsageError(f"mode {mode} needs neg_ratio >= 1 negatives per positive")
    rng = np.random.default_rng(seed)
    order = np.lexsort((data[time_col].to_numpy(), data[user_col].to_numpy()))
    users = data[user_col].to_numpy()[order]
    items = data[item_col].to_numpy()[order]
    times = data[time_col].to_numpy()[order]
    attr_values = {a: data[a].to_numpy()[order] for a in attrs}
    new_user = np.concatenate([[True], users[1:] != users[:-1]])
    starts_per_user = np.flatnonzero(new_user)
    lengths = np.diff(np.concatenate([starts_per_user, [len(users)]]))
    start = np.repeat(starts_per_user, lengths)
    position = np.arange(len(users)) - start
    is_last = np.repeat(np.concatenate([starts_per_user[1:], [len(users)]]) - 1, lengths) == np.arange(
        len(users)
    )
    long_enough = np.repeat(lengths >= max(min_item, 0), lengths)
    sample = long_enough & (position >= 1)

    def frame(rows: np.ndarray) -> pd.DataFrame:
        out = pd.DataFrame({user_col: users[rows], item_col: items[rows]})
        out[f"hist_{item_col}"] = _prefix_views(items, start[rows], rows)
        out[f"histlen_{item_col}"] = position[rows]
        for a in attrs:
            out[f"hist_{a}"] = _prefix_views(attr_values[a], start[rows], rows)
        out[time_col] = times[rows]
        return out

    test = frame(np.flatnonzero(sample & is_last))
    test["label"] = 1
    train_rows = np.flatnonzero(sample & ~is_last)
    train = frame(train_rows)
    if neg_ratio > 0 or mode in (1, 2):
        catalogue, counts = np.unique(items, return_counts=True)
        negatives = sample_negatives(
            items[train_rows], catalogue, negative_probabilities(counts, sample_method), neg_ratio, rng
        )
    if mode == 0:
        train["label"] = 1
        if neg_ratio > 0:
            repeated = train.loc[np.repeat(np.arange(len(train)), neg_ratio)].reset_index(drop=True)
            repeated[item_col] = negatives.reshape(-1)
            repeated["label"] = 0
            train = pd.concat([train, repeated], ignore_index=True)
    elif mode == 1:
        train = train.loc[np.repeat(np.arange(len(train)), neg_ratio)].reset_index(drop=True)
        train["neg_items"] = negatives.reshape(-1)
    else:
        column = np.empty(len(train), dtype=object)
        column[:] = list(negatives)
        train["neg_items"] = column
    train = train.iloc[rng.permutation(len(train))].reset_index(drop=True)
    return train, test


def pad_sequences(
    sequences: Any,
    maxlen: int | None = None,
    dtype: Any = "int64",
    padding: str = "pre",
    truncating: str = "pre",
    value: Any = 0,
) -> np.ndarray:
    """Pad/truncate variable-length sequences to a ``[n, maxlen]`` array (Keras semantics), vectorised.

    ``truncating="pre"`` keeps the last ``maxlen`` items (the most recent); ``padding="pre"`` puts the
    padding in front, so the most recent item is always in the last column.
    """
    if padding not in ("pre", "post") or truncating not in ("pre", "post"):
        raise UsageError("padding and truncating must be 'pre' or 'post'")
    seqs = list(sequences)
    lengths = np.fromiter(map(len, seqs), dtype=np.int64, count=len(seqs))
    if maxlen is None:
        maxlen = int(lengths.max(initial=0))
    out = np.full((len(seqs), maxlen), value, dtype=dtype)
    if not len(seqs) or maxlen == 0:
        return out
    # Cut every sequence to what survives truncation first (C-level map, no Python per row), so a
    # long history costs maxlen elements, not its full length.
    cut = slice(-maxlen, None) if truncating == "pre" else slice(0, maxlen)
    pieces = list(map(operator.getitem, seqs, repeat(cut)))
    kept = np.minimum(lengths, maxlen)
    if kept.sum() == 0:
        return out
    flat = np.concatenate(pieces)
    # The cells that receive items, in row-major order (the order of ``flat``): the last ``kept``
    # columns of each row with "pre" padding, the first ``kept`` with "post".
    columns = np.arange(maxlen)
    filled = columns >= (maxlen - kept)[:, None] if padding == "pre" else columns < kept[:, None]
    out[filled] = flat
    return out


def df_to_dict(data: pd.DataFrame) -> dict[str, np.ndarray]:
    """DataFrame -> ``{column: array}``; list/array columns become 2-D arrays."""
    out: dict[str, np.ndarray] = {}
    for col in data.columns:
        values = data[col].to_numpy()
        if values.dtype == object and len(values) and isinstance(values[0], (list, tuple, np.ndarray)):
            try:
                out[col] = np.stack(values)  # equal-length lists -> a 2-D array
            except ValueError:
                out[col] = values  # ragged: keep as is (pad with pad_sequences)
        else:
            out[col] = values
    return out


def gen_model_input(
    df: pd.DataFrame,
    user_profile: pd.DataFrame,
    user_col: str,
    item_profile: pd.DataFrame,
    item_col: str,
    seq_max_len: int,
    padding: str = "pre",
    truncating: str = "pre",
) -> dict[str, np.ndarray]:
    """Join user and item profiles, pad every ``hist_*`` column to ``seq_max_len`` and return the
    model input dict (the seed's function)."""
    for frame, key, what in (
        (user_profile, user_col, "user_profile"),
        (item_profile, item_col, "item_profile"),
    ):
        if key not in frame.columns:
            raise DataError(f"gen_model_input: {what} has no '{key}' column")
    merged = df.merge(user_profile, on=user_col, how="left", suffixes=("", "_user"))
    merged = merged.merge(item_profile, on=item_col, how="left", suffixes=("", "_item"))
    out: dict[str, np.ndarray] = {}
    for col in merged.columns:
        values = merged[col]
        if col.startswith("hist_"):
            out[col] = pad_sequences(
                values.to_numpy(), maxlen=seq_max_len, padding=padding, truncating=truncating
            )
        elif col.startswith("histlen_"):
            out[col] = np.minimum(values.to_numpy(), seq_max_len)
        elif col == "neg_items" and values.dtype == object:
            out[col] = np.stack(values.to_numpy())
        else:
            out[col] = values.to_numpy()
    return out


def _tensor_columns(x: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """Numeric columns as tensors (text columns such as titles are left out: models never read them)."""
    out: dict[str, torch.Tensor] = {}
    lengths = set()
    for key, value in x.items():
        array = np.asarray(value)
        if array.dtype == object:
            try:
                array = np.stack(array)
            except (ValueError, TypeError):
                continue
        if array.dtype.kind in "iub":
            array = np.ascontiguousarray(array.astype(np.int64, copy=False))
        elif array.dtype.kind == "f":
            array = np.ascontiguousarray(array.astype(np.float32, copy=False))
        else:
            continue
        if not array.flags.writeable:  # pandas copy-on-write hands out read-only views: never alias them
            array = array.copy()
        out[key] = torch.from_numpy(array)
        lengths.add(out[key].shape[0])
    if len(lengths) > 1:
        raise DataError(
            f"input columns have different lengths {sorted(lengths)}; every column needs one value per row"
        )
    return out


class DictLoader:
    """Mini-batches of a column dict, sliced from pre-built tensors (a fast stand-in for a DataLoader).

    Iterating yields ``{column: tensor}`` batches (with ``label`` when labels were given); a seeded
    shuffle draws a new permutation each pass.
    """

    def __init__(
        self,
        x: Mapping[str, Any],
        batch_size: int,
        *,
        y: Any = None,
        shuffle: bool = False,
        seed: int | None = None,
    ):
        if batch_size < 1:
            raise UsageError(f"batch_size must be >= 1, got {batch_size}")
        self.columns = _tensor_columns(x)
        if not self.columns:
            raise DataError("no numeric input columns to batch")
        self.rows = next(iter(self.columns.values())).shape[0]
        if y is not None and len(y):
            labels = torch.from_numpy(np.array(y, dtype=np.float32))  # a copy: y may be a read-only view
            if labels.shape[0] != self.rows:
                raise DataError(f"y has {labels.shape[0]} labels for {self.rows} rows")
            self.columns["label"] = labels
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.seed = seed
        self._epoch = 0

    def __len__(self) -> int:
        return math.ceil(self.rows / self.batch_size)

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        index = None
        if self.shuffle:
            generator = torch.Generator().manual_seed((self.seed or 0) * 1_000_003 + self._epoch)
            index = torch.randperm(self.rows, generator=generator)
        self._epoch += 1
        for start in range(0, self.rows, self.batch_size):
            if index is None:
                yield {k: v[start : start + self.batch_size] for k, v in self.columns.items()}
            else:
                rows = index[start : start + self.batch_size]
                yield {k: v[rows] for k, v in self.columns.items()}


class MatchDataGenerator:
    """The seed's loader factory: ``MatchDataGenerator(x, y).generate_dataloader(x_test_user, x_all_item,
    batch_size)`` -> ``(train_dl, test_dl, item_dl)``.

    ``num_workers`` is accepted for compatibility; batches are tensor slices, so no worker processes
    are needed. ``seed`` makes the training shuffle reproducible.
    """

    def __init__(self, x: Mapping[str, Any], y: Any = (), *, seed: int | None = None) -> None:
        self.x = x
        self.y = None if y is None or len(y) == 0 else y
        self.seed = seed

    def generate_dataloader(
        self,
        x_test_user: Mapping[str, Any],
        x_all_item: Mapping[str, Any],
        batch_size: int,
        num_workers: int = 8,
    ) -> tuple[DictLoader, DictLoader, DictLoader]:
        train = DictLoader(self.x, batch_size, y=self.y, shuffle=True, seed=self.seed)
        test = DictLoader(x_test_user, batch_size)
        items = DictLoader(x_all_item, batch_size)
        return train, test, items
