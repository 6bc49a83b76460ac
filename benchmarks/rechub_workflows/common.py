"""What the three workflows share: the tutorial's data preparation (数据准备) and a stopwatch that adds
up library time per stage (``prepare``, ``fit``, ``embed``); user code (reading the CSV, label
encoding) is not timed."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
from library import SequenceFeature, SparseFeature


class Stopwatch:
    """Seconds spent inside library calls, per stage."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {"prepare": 0.0, "fit": 0.0, "embed": 0.0}

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - started


def load_movielens(csv: str) -> tuple[pd.DataFrame, dict[str, int]]:
    """The tutorial's ``df = pd.read_csv("movielens.csv")``, label-encoded from 1 as its examples do."""
    df = pd.read_csv(csv)
    df["cate_id"] = df["genres"].str.split("|").str[0]
    for feature in ["user_id", "movie_id", "gender", "age", "occupation", "zip", "cate_id"]:
        df[feature] = pd.factorize(df[feature], sort=True)[0] + 1
    sizes = {
        "user_num": int(df["user_id"].max() + 1),
        "item_num": int(df["movie_id"].max() + 1),
        "cate_num": int(df["cate_id"].max() + 1),
    }
    return df, sizes


def tutorial_features(sizes: dict[str, int]) -> tuple[list[Any], list[Any]]:
    """The tutorial's user features (with the mean-pooled history) and item features, as written."""
    user_num, item_num, cate_num = sizes["user_num"], sizes["item_num"], sizes["cate_num"]
    user_features = [
        SparseFeature("user_id", vocab_size=user_num, embed_dim=16),
        SparseFeature("gender", vocab_size=3, embed_dim=16),
        SparseFeature("age", vocab_size=10, embed_dim=16),
        SparseFeature("occupation", vocab_size=25, embed_dim=16),
    ]
    user_features += [
        SequenceFeature(
            "hist_movie_id", vocab_size=item_num, embed_dim=16, pooling="mean", shared_with="movie_id"
        )
    ]
    item_features = [
        SparseFeature("movie_id", vocab_size=item_num, embed_dim=16),
        SparseFeature("cate_id", vocab_size=cate_num, embed_dim=16),
    ]
    return user_features, item_features


def profiles(df: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """User and item profiles (one row each), items sorted by id."""
    user_profile = df[["user_id", "gender", "age", "occupation"]].drop_duplicates("user_id")
    item_profile = df[["movie_id", "cate_id"]].drop_duplicates("movie_id").sort_values("movie_id")
    return user_profile, item_profile


def workflow_result(
    user: Any, item: Any, x_test: Any, all_item: Any, watch: Stopwatch, train_rows: int, changes: list[str]
) -> dict[str, Any]:
    """What every workflow returns to ``child.py``: the test users' and the catalogue's vectors, the
    test targets and catalogue ids, library seconds per stage, training rows and the Torch-RecHub-only
    changes it applied."""
    import torch

    return {
        "user": as_numpy(user),
        "item": as_numpy(item),
        "target": np.asarray(x_test["movie_id"], dtype=np.int64),
        "catalogue": np.asarray(all_item["movie_id"], dtype=np.int64),
        "seconds": watch.seconds,
        "train_rows": int(train_rows),
        "changes": changes,
        "torch_threads": torch.get_num_threads(),
    }


def as_numpy(vectors: Any) -> np.ndarray:
    """Embeddings (a tensor or an array) as a float32 array."""
    if hasattr(vectors, "detach"):
        vectors = vectors.detach().cpu().numpy()
    return np.ascontiguousarray(vectors, dtype=np.float32)
