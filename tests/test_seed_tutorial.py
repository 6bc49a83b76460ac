"""The seed tutorial's DSSM path, step by step with our import names, on a MovieLens-format fixture.

Mirrors ../shared/seed/recall-tutorial.md: features -> generate_seq_feature_match -> gen_model_input ->
MatchDataGenerator -> DSSM -> MatchTrainer.fit -> evaluate -> inference_embedding -> retrieval ->
torch.save / load_state_dict.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from tests.conftest import write_seed_csv


@pytest.fixture(scope="module")
def movielens_csv(tmp_path_factory):
    """Large enough for a two-tower model's signal to show (600 users, 250 items in 12 categories)."""
    from zoo_plugins.synthetic.generator import generate

    log = generate(users=600, items=250, categories=12, mean_length=18, seed=7)
    return write_seed_csv(tmp_path_factory.mktemp("seed") / "movielens.csv", log)


def test_seed_tutorial_dssm_path(tmp_path, movielens_csv):
    from zoo.data import MatchDataGenerator, gen_model_input, generate_seq_feature_match
    from zoo.evaluate import ranking_metrics
    from zoo.features import SequenceFeature, SparseFeature
    from zoo.models import DSSM
    from zoo.registry import create_retriever
    from zoo.retrieval.filtering import query_excluding
    from zoo.train import MatchTrainer

    # 数据准备 (data preparation), label-encoded from 1 as the seed's examples do
    df = pd.read_csv(movielens_csv)
    df["cate_id"] = df["genres"].str.split("|").str[0]
    for feature in ["user_id", "movie_id", "gender", "age", "occupation", "zip", "cate_id"]:
        df[feature] = pd.factorize(df[feature], sort=True)[0] + 1
    user_num, item_num, cate_num = df["user_id"].max() + 1, df["movie_id"].max() + 1, df["cate_id"].max() + 1

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

    user_profile = df[["user_id", "gender", "age", "occupation"]].drop_duplicates("user_id")
    item_profile = df[["movie_id", "cate_id"]].drop_duplicates("movie_id").sort_values("movie_id")
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
        seed=0,
    )
    # Hold out the last training position of each user for validation, as one would in practice.
    x_train = gen_model_input(df_train, user_profile, "user_id", item_profile, "movie_id", seq_max_len=50)
    y_train = x_train["label"]
    x_test = gen_model_input(df_test, user_profile, "user_id", item_profile, "movie_id", seq_max_len=50)
    all_item = {
        "movie_id": item_profile["movie_id"].to_numpy(),
        "cate_id": item_profile["cate_id"].to_numpy(),
    }

    dg = MatchDataGenerator(x=x_train, y=y_train, seed=0)
    train_dl, test_dl, item_dl = dg.generate_dataloader(x_test, all_item, batch_size=512)

    # 基础双塔模型 (DSSM), the tutorial's constructor
    torch.manual_seed(0)
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
        regularization_params={"embedding_l2": 1e-5, "dense_l2": 1e-5},
        n_epoch=10,
        device="cpu",
        model_path=str(tmp_path),
        seed=0,
        verbose=False,
    )
    trainer.fit(train_dl, test_dl)  # the tutorial passes a validation loader
    assert (tmp_path / "model.safetensors").is_file()

    # 模型评估 (evaluation)
    auc = trainer.evaluate(trainer.model, test_dl)
    assert 0.5 < auc <= 1.0

    user_embeddings = trainer.inference_embedding(model, "user", test_dl, model_path=str(tmp_path))
    item_embeddings = trainer.inference_embedding(model, "item", item_dl, model_path=str(tmp_path))
    assert user_embeddings.shape == (len(x_test["user_id"]), 64)
    assert item_embeddings.shape == (len(all_item["movie_id"]), 64)

    # 向量检索 (vector retrieval) through an ANN index
    index = create_retriever("hnsw")
    index.fit(item_embeddings, ids=all_item["movie_id"])
    similar_items, scores = index.query(user_embeddings[0], topk=10)
    assert similar_items.shape == (10,) and np.all(np.diff(scores) <= 1e-6)
    assert set(similar_items) <= set(all_item["movie_id"].tolist())

    # The trained model ranks the held-out items far better than popularity. The log has no repeat
    # consumption, so both rankings skip what the user has already seen (the last 50 items).
    hist = x_test["hist_movie_id"]
    seen = (np.concatenate([[0], np.cumsum((hist > 0).sum(axis=1))]), hist[hist > 0])
    top, _ = query_excluding(index, user_embeddings, 10, seen)
    model_hits = ranking_metrics(top, x_test["movie_id"], ks=(10,))["hitrate@10"]
    counts = df_train[df_train["label"] == 1]["movie_id"].value_counts()
    popularity = create_retriever("exact").fit(
        counts.to_numpy()[:, None].astype(np.float32), ids=counts.index.to_numpy()
    )
    pop_top, _ = query_excluding(popularity, np.ones((len(hist), 1), np.float32), 10, seen)
    pop_hits = ranking_metrics(pop_top, x_test["movie_id"], ks=(10,))["hitrate@10"]
    assert model_hits > 1.5 * pop_hits

    # 模型保存与加载 (save and load)
    torch.save(model.state_dict(), tmp_path / "model.pth")
    reloaded = DSSM(
        user_features=user_features,
        item_features=item_features,
        temperature=0.02,
        user_params={"dims": [256, 128, 64], "activation": "prelu"},
        item_params={"dims": [256, 128, 64], "activation": "prelu"},
    )
    reloaded.load_state_dict(torch.load(tmp_path / "model.pth"))
    again = trainer.inference_embedding(reloaded, "user", test_dl)
    torch.testing.assert_close(again, user_embeddings)


@pytest.mark.parametrize("mode", [1, 2])
def test_seed_pairwise_and_listwise_data_train_dssm(mode, movielens_csv):
    """Modes 1 and 2 consume the ``neg_items`` column that generate_seq_feature_match writes."""
    from zoo.data import MatchDataGenerator, gen_model_input, generate_seq_feature_match
    from zoo.features import SequenceFeature, SparseFeature
    from zoo.models import DSSM
    from zoo.train import MatchTrainer

    df = pd.read_csv(movielens_csv)
    for feature in ["user_id", "movie_id"]:
        df[feature] = pd.factorize(df[feature], sort=True)[0] + 1
    item_num = df["movie_id"].max() + 1
    df_train, df_test = generate_seq_feature_match(
        df, "user_id", "movie_id", "timestamp", mode=mode, neg_ratio=4, seed=1
    )
    users = df[["user_id"]].drop_duplicates()
    items = df[["movie_id"]].drop_duplicates()
    x_train = gen_model_input(df_train, users, "user_id", items, "movie_id", seq_max_len=20)
    x_test = gen_model_input(df_test, users, "user_id", items, "movie_id", seq_max_len=20)
    train_dl, test_dl, _ = MatchDataGenerator(x=x_train, seed=0).generate_dataloader(
        x_test, {"movie_id": items["movie_id"].to_numpy()}, 128
    )
    model = DSSM(
        [
            SparseFeature("user_id", df["user_id"].max() + 1, 8),
            SequenceFeature("hist_movie_id", item_num, 8, pooling="mean", shared_with="movie_id"),
        ],
        [SparseFeature("movie_id", item_num, 8)],
        temperature=0.1,
        user_params={"dims": [16]},
        item_params={"dims": [16]},
    )
    trainer = MatchTrainer(
        model, mode=mode, n_epoch=2, model_path=None, seed=0, verbose=False, optimizer_params={"lr": 0.01}
    )
    history = trainer.fit(train_dl)
    assert history[-1]["loss"] < history[0]["loss"]
    assert 0.5 < trainer.evaluate(model, test_dl) <= 1.0
