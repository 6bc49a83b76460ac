"""The seed tutorial's DSSM workflow (基础双塔模型, point-wise), written once for either library."""

from __future__ import annotations

from typing import Any

from common import Stopwatch, load_movielens, profiles, tutorial_features, workflow_result
from library import (
    DSSM,
    MatchDataGenerator,
    MatchTrainer,
    df_to_dict,
    gen_model_input,
    generate_seq_feature_match,
)

#: what this workflow changes for Torch-RecHub only (none: it runs the tutorial's lines as written)
RECHUB_CHANGES: list[str] = []


def run(csv: str, workdir: str, *, epochs: int = 1, batch_size: int = 512, **_: Any) -> dict[str, Any]:
    """Prepare, fit and embed; returns the test users' and the catalogue's vectors, the test targets,
    library seconds per stage and the number of training rows."""
    watch = Stopwatch()
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
            mode=0,
            neg_ratio=3,
            min_item=0,
        )
        x_train = gen_model_input(df_train, user_profile, "user_id", item_profile, "movie_id", seq_max_len=50)
        y_train = x_train["label"]
        x_test = gen_model_input(df_test, user_profile, "user_id", item_profile, "movie_id", seq_max_len=50)
        all_item = df_to_dict(item_profile)
        dg = MatchDataGenerator(x=x_train, y=y_train)
        train_dl, test_dl, item_dl = dg.generate_dataloader(x_test, all_item, batch_size=batch_size)

    with watch.stage("fit"):
        model = DSSM(
            user_features=user_features,
            item_features=item_features,
            temperature=0.02,
            user_params={"dims": [256, 128, 64], "activation": "prelu"},
            item_params={"dims": [256, 128, 64], "activation": "prelu"},
        )
        trainer = MatchTrainer(
            model=model,
            mode=0,  # point-wise
            optimizer_params={"lr": 0.001, "weight_decay": 1e-5},
            n_epoch=epochs,
            device="cpu",
            model_path=workdir,
        )
        trainer.fit(train_dl)

    with watch.stage("embed"):
        user_embeddings = trainer.inference_embedding(model, "user", test_dl, model_path=workdir)
        item_embeddings = trainer.inference_embedding(model, "item", item_dl, model_path=workdir)

    return workflow_result(
        user_embeddings, item_embeddings, x_test, all_item, watch, len(y_train), RECHUB_CHANGES
    )
