"""Torch-RecHub's data helpers from zoo.data and the initializer argument of zoo.features."""

from __future__ import annotations

import random
from collections import OrderedDict

import numpy as np
import pandas as pd
import pytest
import torch

from zoo.errors import DataError, UsageError


def test_negative_sample_methods() -> None:
    from zoo.data import negative_sample

    counts = OrderedDict([("a", 50), ("b", 30), ("c", 15), ("d", 5)])
    np.random.seed(0)
    for method in (0, 1, 2):
        drawn = negative_sample(counts, 4000, method)
        assert len(drawn) == 4000 and set(drawn) <= set(counts)
    share = np.mean(negative_sample(counts, 20000, 1) == "a")
    assert share == pytest.approx(50**0.75 / sum(c**0.75 for c in counts.values()), abs=0.02)
    assert sorted(negative_sample(counts, 4, 3)) == ["a", "b", "c", "d"]  # without replacement
    with pytest.raises(UsageError):
        negative_sample(counts, 5, 3)
    with pytest.raises(UsageError):
        negative_sample(counts, 5, 7)


def test_neg_sample_and_array_replace() -> None:
    from zoo.data import array_replace_with_dict, neg_sample

    random.seed(0)
    assert all(neg_sample([1, 2, 4], 5) in (3, 5) for _ in range(50))
    with pytest.raises(DataError):
        neg_sample([1, 2], 2)
    array = np.array([[3, 1], [2, 3]])
    assert array_replace_with_dict(array, {1: 10, 2: 20, 3: 30}).tolist() == [[30, 10], [20, 30]]
    with pytest.raises(DataError, match="4"):
        array_replace_with_dict(np.array([4]), {1: 10})


def _log() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = [(u, int(rng.integers(100, 130)), t) for u in range(6) for t in range(5 + u)]
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "time"])
    frame["cate_id"] = frame["item_id"] % 4 + 70
    return frame


def test_generate_seq_feature_splits_and_rows() -> None:
    from zoo.data import generate_seq_feature

    data = _log()
    before = data.copy()
    train, val, test = generate_seq_feature(
        data, "user_id", "item_id", "time", ["cate_id"], max_len=6, shuffle=False
    )
    pd.testing.assert_frame_equal(data, before)  # the caller's frame is untouched
    assert list(train.columns) == [
        "label",
        "target_item_id",
        "user_id",
        "hist_item_id",
        "hist_cate_id",
        "target_cate_id",
    ]
    users = data["user_id"].nunique()
    # positions 1..min(len, 6)-1, two rows each; the last position of users with len <= 6 is the test row
    lengths = data.groupby("user_id").size()
    expected = sum(2 * (min(n, 6) - 1) for n in lengths)
    assert len(train) + len(val) + len(test) == expected
    assert len(test) == 2 * sum(n <= 6 for n in lengths) and len(test) <= 2 * users
    for frame in (train, val, test):
        assert set(frame["label"]) <= {0, 1} and all(len(h) == 6 for h in frame["hist_item_id"])
        negatives = frame[frame["label"] == 0]
        for _, row in negatives.iterrows():
            assert row["target_item_id"] not in set(row["hist_item_id"]) - {0}


def test_create_seq_features_keeps_test_out_of_train() -> None:
    from zoo.data import create_seq_features

    train, val, test = create_seq_features(_log(), max_len=50, drop_short=3, shuffle=False)
    assert list(train.columns) == [
        "user_id",
        "history_item",
        "history_cate",
        "target_item",
        "target_cate",
        "label",
    ]

    def key(f: pd.DataFrame) -> set:
        return set(
            zip(f["user_id"], f["target_item"], f["label"], map(tuple, f["history_item"]), strict=True)
        )

    assert not key(train) & key(test) and not key(train) & key(val)
    assert len(test) == 2 * 6 and len(val) == 2 * 6


def test_datasets_and_sequence_generator() -> None:
    from zoo.data import PredictDataset, SeqDataset, SequenceDataGenerator, TorchDataset

    x = {"a": np.arange(5), "b": np.arange(10).reshape(5, 2)}
    row, label = TorchDataset(x, np.arange(5) * 2)[3]
    assert (
        row["a"] == 3 and row["b"].tolist() == [6, 7] and label == 6 and len(TorchDataset(x, range(5))) == 5
    )
    assert len(PredictDataset(x)) == 5 and PredictDataset(x)[1]["a"] == 1
    with pytest.raises(DataError):
        TorchDataset(x, range(4))
    tokens = np.arange(40).reshape(10, 4)
    ds = SeqDataset(tokens, np.tile(np.arange(4), (10, 1)), np.arange(10), np.zeros((10, 4)))
    first = ds[2]
    assert (
        [t.dtype for t in first] == [torch.long] * 4
        and first[0].tolist() == [8, 9, 10, 11]
        and first[3].item() == 2
    )
    gen = SequenceDataGenerator(tokens, np.zeros((10, 4)), np.arange(10), np.zeros((10, 4)))
    (loader,) = gen.generate_dataloader(batch_size=4, shuffle=False)
    assert [b[0].shape[0] for b in loader] == [4, 4, 2]
    parts = gen.generate_dataloader(batch_size=4, split_ratio=(0.6, 0.2, 0.2))
    assert [len(p.dataset) for p in parts] == [6, 2, 2]
    with pytest.raises(UsageError):
        gen.generate_dataloader(split_ratio=(0.5, 0.2))


def test_features_initializer_and_auto_dim() -> None:
    from zoo.data import get_auto_embedding_dim
    from zoo.features import (
        Pretrained,
        RandomNormal,
        RandomUniform,
        SequenceFeature,
        SparseFeature,
        XavierNormal,
        XavierUniform,
        feature_from_dict,
    )

    assert get_auto_embedding_dim(1000) == int(np.floor(6 * 1000**0.25)) == SparseFeature("x", 1000).embed_dim
    torch.manual_seed(0)
    table = RandomUniform(2.0, 3.0)(50, 4, padding_idx=0)
    assert table.weight[0].abs().sum() == 0 and table.weight[1:].min() >= 2.0 and table.weight.max() < 3.0
    assert RandomNormal(0, 1e-4)(200, 8).weight.std().item() == pytest.approx(1e-4, rel=0.2)
    for init in (XavierNormal(), XavierUniform()):
        assert init(30, 6).weight.shape == (30, 6)
    weight = np.arange(12, dtype=np.float32).reshape(4, 3)
    frozen = Pretrained(weight)(4, 3)
    assert frozen.weight.tolist() == weight.tolist() and not frozen.weight.requires_grad
    with pytest.raises(UsageError):
        Pretrained(weight)(5, 3)
    feature = SequenceFeature(
        "h", 10, 3, pooling="mean", shared_with="x", initializer=Pretrained(np.ones((10, 3)))
    )
    # Pretrained rows are kept as given, the padding row too (as Torch-RecHub's from_pretrained)
    assert feature.get_embedding_layer().weight.sum().item() == pytest.approx(30.0)
    assert feature == SequenceFeature("h", 10, 3, pooling="mean", shared_with="x")
    assert "initializer" not in feature.to_dict() and feature_from_dict(feature.to_dict()) == feature
    with pytest.raises(UsageError, match="initializer"):
        SparseFeature("x", 10, initializer=0.1)


def test_feature_initializer_is_applied_to_the_models_table():
    """``initializer=`` sets the model's embedding table, not only ``get_embedding_layer()``'s."""
    import torch

    from zoo.features import Pretrained, RandomNormal, SequenceFeature, SparseFeature
    from zoo.nn.embedding import EmbeddingBank

    weights = torch.arange(40, dtype=torch.float32).reshape(10, 4)
    torch.manual_seed(0)
    tables = EmbeddingBank(
        [
            SparseFeature("user_id", 500, 8, initializer=RandomNormal(0.0, 3.0)),
            SparseFeature("item_id", 10, 4, initializer=Pretrained(weights)),
            SequenceFeature("hist_item_id", 10, 4, shared_with="item_id"),
            SparseFeature("city", 500, 8),
        ]
    )
    assert torch.equal(tables.table("item_id").weight.detach(), weights)
    assert torch.equal(tables.table("hist_item_id").weight.detach(), weights)  # the shared table
    assert not tables.table("item_id").weight.requires_grad  # Pretrained freezes by default
    assert 2.5 < tables.table("user_id").weight.std().item() < 3.5
    assert tables.table("city").weight.std().item() < 0.1  # no initializer: the default normal(0.05)
