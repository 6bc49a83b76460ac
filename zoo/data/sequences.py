"""Torch-RecHub's sequence and sampling helpers (``torch_rechub.utils.data`` / ``utils.match``) under their
names and arguments: ``negative_sample``, ``neg_sample``, ``array_replace_with_dict``, and the ranking
samples ``generate_seq_feature`` and ``create_seq_features``.

Differences on purpose: ``negative_sample``'s method 3 ranks items by count (Torch-RecHub feeds the
counts themselves into the rank formula); ``array_replace_with_dict`` refuses values missing from the
mapping (Torch-RecHub returns a wrong neighbour's value); ``create_seq_features`` keeps each user's test
row out of the training rows (Torch-RecHub also adds it to training); neither function changes the
caller's DataFrame; ``neg_sample`` stops with an error when every id is in the history.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from zoo.data.seed_compat import negative_probabilities
from zoo.errors import DataError, UsageError


def negative_sample(items_cnt_order: Mapping[Any, int], ratio: int, method_id: int = 0) -> np.ndarray:
    """``ratio`` negative items drawn from the keys of ``items_cnt_order`` (item -> count, most frequent
    first) with numpy's global random state: 0 uniform, 1 count**0.75, 2 log(count+1), 3 RALM by rank
    (without replacement, so ``ratio`` may not exceed the number of items)."""
    items = np.array(list(items_cnt_order.keys()))
    counts = np.array(list(items_cnt_order.values()), dtype=np.float64)
    if len(items) == 0:
        raise UsageError("negative_sample: items_cnt_order is empty")
    probs = negative_probabilities(counts, method_id)
    if method_id == 3 and ratio > len(items):
        raise UsageError(f"negative_sample: method 3 draws without replacement, {ratio} > {len(items)} items")
    return np.random.choice(items, size=ratio, replace=method_id != 3, p=probs)


def neg_sample(click_hist: Sequence[int], item_size: int) -> int:
    """One random id in ``1..item_size`` (Python's ``random``) that is not in ``click_hist``."""
    seen = set(click_hist)
    if all(i in seen for i in range(1, item_size + 1)):
        raise DataError(f"neg_sample: every id 1..{item_size} is in the history; no negative is left")
    while True:
        candidate = random.randint(1, item_size)
        if candidate not in seen:
            return candidate


def array_replace_with_dict(array: Any, dic: Mapping[Any, Any]) -> np.ndarray:
    """``array`` with every value replaced by ``dic[value]`` (vectorised); a value missing from ``dic``
    is a DataError."""
    values = np.asarray(array)
    keys = np.array(list(dic.keys()))
    mapped = np.array(list(dic.values()))
    order = np.argsort(keys, kind="stable")
    sorted_keys = keys[order]
    position = np.searchsorted(sorted_keys, values).clip(max=max(len(keys) - 1, 0))
    if len(keys) == 0 or not np.all(sorted_keys[position] == values):
        missing = values[sorted_keys[position] != values] if len(keys) else values
        raise DataError(f"array_replace_with_dict: value {missing.ravel()[0]!r} is not a key of the mapping")
    return mapped[order[position]]


def _encode_from_one(data: pd.DataFrame) -> pd.DataFrame:
    """Every column label-encoded to 1..n (0 stays free for padding), as int32."""
    out = pd.DataFrame(index=data.index)
    for column in data.columns:
        out[column] = pd.factorize(data[column], sort=True)[0] + 1
    return out.astype("int32")


def _padded(values: Sequence[int], max_len: int) -> list[int]:
    return list(values[:max_len]) + [0] * (max_len - min(len(values), max_len))


def generate_seq_feature(
    data: pd.DataFrame,
    user_col: str,
    item_col: str,
    time_col: str,
    item_attribute_cols: Sequence[str] = (),
    min_item: int = 0,
    shuffle: bool = True,
    max_len: int = 50,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Ranking samples from an interaction log (Torch-RecHub's function): every column is label-encoded
    from 1; per user (in time order) each position ``i`` below ``max_len`` gives a positive row (label 1,
    the item at ``i``) and a negative row (label 0, an id the user never clicked), with the history
    before ``i`` padded after to ``max_len``. A user's last position goes to test, the one before to
    validation, the rest to train; users with fewer than ``min_item`` items are dropped.

    Returns ``(train, val, test)`` with columns ``label, target_item_id, <user_col>, hist_item_id`` and
    ``hist_<attr>, target_<attr>`` per attribute column.
    """
    attrs = list(item_attribute_cols)
    missing = [c for c in [user_col, item_col, time_col, *attrs] if c not in data.columns]
    if missing:
        raise DataError(f"generate_seq_feature: column(s) {', '.join(missing)} not in the data")
    encoded = _encode_from_one(data)
    n_items = int(encoded[item_col].max())
    attr_of = {a: dict(zip(encoded[item_col], encoded[a], strict=True)) for a in attrs}
    encoded = encoded.sort_values(time_col, kind="stable")
    parts: dict[str, list[list[Any]]] = {"train": [], "val": [], "test": []}
    for user, history in encoded.groupby(user_col, sort=True):
        items = history[item_col].tolist()
        if len(items) < min_item:
            continue
        attr_lists = {a: history[a].tolist() for a in attrs}
        negatives = [neg_sample(items, n_items) for _ in items]
        for i in range(1, min(len(items), max_len)):
            split = "test" if i == len(items) - 1 else "val" if i == len(items) - 2 else "train"
            for label, target in ((1, items[i]), (0, negatives[i])):
                row = [label, target, user, _padded(items[:i], max_len)]
                for a in attrs:
                    row += [_padded(attr_lists[a][:i], max_len), attr_of[a][target]]
                parts[split].append(row)
    columns = ["label", "target_item_id", user_col, "hist_item_id"]
    for a in attrs:
        columns += [f"hist_{a}", f"target_{a}"]
    if shuffle:
        for rows in parts.values():
            random.shuffle(rows)
    train, val, test = (pd.DataFrame(parts[s], columns=columns) for s in ("train", "val", "test"))
    return train, val, test


def create_seq_features(
    data: pd.DataFrame,
    seq_feature_col: Sequence[str] = ("item_id", "cate_id"),
    max_len: int = 50,
    drop_short: int = 3,
    shuffle: bool = True,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Ranking samples with item and category histories (Torch-RecHub's function; the data needs
    ``user_id, item_id, cate_id, time``): per user, the first ``max_len`` clicks in time order; each
    position gives a positive and a negative row with the histories before it (padded after). The last
    position is the test row, the one before validation, the rest training (each in exactly one split).

    Returns ``(train, val, test)`` with columns ``user_id, history_item, history_cate, target_item,
    target_cate, label``.
    """
    del seq_feature_col  # Torch-RecHub accepts it and reads item_id / cate_id regardless
    needed = ["user_id", "item_id", "cate_id", "time"]
    missing = [c for c in needed if c not in data.columns]
    if missing:
        raise DataError(f"create_seq_features: column(s) {', '.join(missing)} not in the data")
    encoded = _encode_from_one(data)
    n_items = int(encoded["item_id"].max())
    cate_of = dict(zip(encoded["item_id"], encoded["cate_id"], strict=True))
    encoded = encoded.sort_values(["user_id", "time"], kind="stable")
    parts: dict[str, list[list[Any]]] = {"train": [], "val": [], "test": []}
    for user, history in encoded.groupby("user_id", sort=True):
        if len(history) < drop_short:
            continue
        items = history["item_id"].tolist()[:max_len]
        cates = history["cate_id"].tolist()[:max_len]
        negatives = [neg_sample(items, n_items) for _ in items]
        for i in range(1, len(items)):
            split = "test" if i == len(items) - 1 else "val" if i == len(items) - 2 else "train"
            hist_items, hist_cates = _padded(items[:i], max_len), _padded(cates[:i], max_len)
            parts[split].append([user, hist_items, hist_cates, items[i], cates[i], 1])
            parts[split].append([user, hist_items, hist_cates, negatives[i], cate_of[negatives[i]], 0])
    if shuffle:
        for rows in parts.values():
            random.shuffle(rows)
    columns = ["user_id", "history_item", "history_cate", "target_item", "target_cate", "label"]
    train, val, test = (pd.DataFrame(parts[s], columns=columns) for s in ("train", "val", "test"))
    return train, val, test
