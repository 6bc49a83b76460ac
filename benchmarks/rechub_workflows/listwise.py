"""The list-wise data preparation the GRU4Rec and MIND sections share (the tutorial's 数据准备 with
``mode=2``: each training row carries its sampled ``neg_items``; labels are 0, "the positive is
column 0", as Torch-RecHub's list-wise examples pass them)."""

from __future__ import annotations

from typing import Any

import numpy as np
from common import Stopwatch, load_movielens, profiles, tutorial_features
from library import MatchDataGenerator, df_to_dict, gen_model_input, generate_seq_feature_match


def prepare(csv: str, watch: Stopwatch, batch_size: int) -> dict[str, Any]:
    """Features, loaders and test rows of the list-wise workflows (library calls timed as ``prepare``)."""
    df, sizes = load_movielens(csv)
    user_features, item_features = tutorial_features(sizes)
    user_profile, item_profile = profiles(df)
    with watch.stage("prepare"):
        df_train, df_test = generate_seq_feature_match(
            df,
            "user_id",
            "movie_id",
            time_col="timestamp",
            item_attribute_cols=[],
            sample_method=1,
            mode=2,  # list-wise
            neg_ratio=3,
            min_item=0,
        )
        x_train = gen_model_input(df_train, user_profile, "user_id", item_profile, "movie_id", seq_max_len=50)
        y_train = np.array([0] * df_train.shape[0])
        x_test = gen_model_input(df_test, user_profile, "user_id", item_profile, "movie_id", seq_max_len=50)
        all_item = df_to_dict(item_profile)
        dg = MatchDataGenerator(x=x_train, y=y_train)
        train_dl, test_dl, item_dl = dg.generate_dataloader(x_test, all_item, batch_size=batch_size)
    return {
        "sizes": sizes,
        "user_features": user_features,
        "item_features": item_features,
        "train_dl": train_dl,
        "test_dl": test_dl,
        "item_dl": item_dl,
        "x_test": x_test,
        "all_item": all_item,
        "train_rows": len(y_train),
    }
