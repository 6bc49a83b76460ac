"""FaceBookDSSM: Torch-RecHub's constructor, the pair-wise loss against a hand computation, the negatives'
own side columns, saving under Torch-RecHub's argument names, and Torch-RecHub's example flow."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from zoo.errors import UsageError
from zoo.features import SequenceFeature, SparseFeature
from zoo.models import load_model
from zoo.train.trainer import MatchTrainer
from zoo_plugins.facebook_dssm.model import FaceBookDSSM

ITEMS, USERS, CATES, DIM = 40, 20, 6, 8


def features() -> tuple[list, list, list]:
    user = [
        SparseFeature("user_id", USERS, DIM),
        SequenceFeature("hist_movie_id", ITEMS, DIM, pooling="mean", shared_with="movie_id"),
    ]
    item = [SparseFeature("movie_id", ITEMS, DIM), SparseFeature("cate_id", CATES, DIM)]
    neg = [SparseFeature("neg_items", ITEMS, DIM), SparseFeature("neg_cate", CATES, DIM)]
    return user, item, neg


def make_model(temperature: float = 0.1, seed: int = 0, tower: dict | None = None, **kwargs) -> FaceBookDSSM:
    torch.manual_seed(seed)
    user, item, neg = features()
    tower = tower or {"dims": [16, DIM]}
    return FaceBookDSSM(
        user, item, neg, user_params=tower, item_params=dict(tower), temperature=temperature, **kwargs
    )


def make_batch(n: int = 8, seed: int = 1) -> dict[str, torch.Tensor]:
    """Positives are ids 2..19, negatives 20..39: no negative is ever a positive, so the item table
    knows the negatives' categories only from the negative columns."""
    g = torch.Generator().manual_seed(seed)
    hist = torch.randint(2, ITEMS, (n, 6), generator=g)
    hist[: n // 2, :2] = 0
    pos, neg = torch.randint(2, 20, (n,), generator=g), torch.randint(20, ITEMS, (n,), generator=g)
    return {
        "user_id": torch.randint(1, USERS, (n,), generator=g),
        "hist_movie_id": hist,
        "movie_id": pos,
        "cate_id": category(pos),
        "neg_items": neg,
        "neg_cate": category(neg),
    }


def category(ids: torch.Tensor) -> torch.Tensor:
    return ids % (CATES - 1) + 1


def test_torch_rechub_constructor_and_import():
    from zoo.models import FaceBookDSSM as Imported

    assert Imported.unbound_class() is FaceBookDSSM
    user, item, neg = features()
    model = Imported(
        user, item, neg, temperature=0.02, user_params={"dims": [32, 16]}, item_params={"dims": [32, 16]}
    )
    assert model.registry_name == "facebook-dssm" and model.train_modes == (1,)
    assert model.neg_items_key == "neg_items"
    assert model.negative_columns == {"movie_id": "neg_items", "cate_id": "neg_cate"}
    model.mode = "user"
    batch = make_batch()
    assert model(batch).shape == (8, 16)
    model.mode = "item"  # inference: item vectors are normalised too (the reference's were not)
    torch.testing.assert_close(model(batch).norm(dim=-1), torch.ones(8))


def test_negatives_equal_to_the_positive_features_mean_trainer_negatives():
    """Torch-RecHub's own end-to-end test passes the positive features as neg_item_features."""
    user, item, _ = features()
    model = FaceBookDSSM(user, item, item, {"dims": [DIM]}, {"dims": [DIM]})
    assert model.negative_columns == {} and model.neg_items_key == "neg_items"
    assert FaceBookDSSM(user, item, None, {"dims": [DIM]}, {"dims": [DIM]}).neg_item_feature == []


@pytest.mark.parametrize("kind", ["bpr", "hinge"])
def test_pairwise_loss_equals_a_hand_computation(kind):
    model = make_model(temperature=0.1).eval()
    batch = make_batch()
    trainer = MatchTrainer(
        model, mode=1, pairwise_loss=kind, margin=0.5, model_path=None, verbose=False, seed=0
    )
    model.remember_items(batch)
    with torch.no_grad():
        loss = trainer.compute_loss(batch)
        user = model.user_tower(batch)
        pos = model.item_tower({"movie_id": batch["movie_id"], "cate_id": batch["cate_id"]})
        neg = model.item_tower({"movie_id": batch["neg_items"], "cate_id": batch["neg_cate"]})
    diff = ((user * pos).sum(-1) - (user * neg).sum(-1)) / 0.1
    expected = -F.logsigmoid(diff).mean() if kind == "bpr" else F.relu(0.5 - diff).mean()
    torch.testing.assert_close(loss, expected)


def test_negative_side_columns_fill_the_item_table():
    model = make_model()
    batch = make_batch()
    model.remember_items(batch)
    table = model.item_table()["cate_id"]
    assert torch.equal(table[batch["neg_items"]], batch["neg_cate"])
    assert torch.equal(table[batch["movie_id"]], batch["cate_id"])
    # [B, n] negative columns (several negatives per row) are recorded the same way
    neg = torch.arange(20, 36).reshape(8, 2)
    several = dict(batch, neg_items=neg, neg_cate=category(neg))
    model.remember_items(several)
    assert torch.equal(table[several["neg_items"]], several["neg_cate"])


def test_only_pairwise_training():
    with pytest.raises(UsageError, match="mode 2"):
        MatchTrainer(make_model(), mode=2, model_path=None, verbose=False)


def test_bad_negative_columns_are_refused():
    user, item, neg = features()
    with pytest.raises(UsageError, match="one negative column per positive"):
        FaceBookDSSM(user, item, [*neg, SparseFeature("neg_x", 3, DIM)], {"dims": [DIM]}, {"dims": [DIM]})
    with pytest.raises(UsageError, match="negative item's id"):
        FaceBookDSSM(user, item, [item[0], neg[1]], {"dims": [DIM]}, {"dims": [DIM]})
    with pytest.raises(UsageError, match="JSON values"):
        FaceBookDSSM(user, item, neg, {"dims": [DIM], "batch_norm": object()}, {"dims": [DIM]})


def test_save_load_round_trip_under_torch_rechub_names(tmp_path):
    model = make_model(recent_history=2, tower={"dims": [np.int64(16), np.int64(DIM)]}).eval()  # numpy ints
    batch = make_batch()
    model.remember_items(batch)
    model.save(tmp_path / "m")
    config = model.read_meta(tmp_path / "m")["config"]
    assert [f["name"] for f in config["pos_item_features"]] == ["movie_id", "cate_id"]
    assert [f["name"] for f in config["neg_item_features"]] == ["neg_items", "neg_cate"]
    assert config["temperature"] == 0.1 and config["recent_history"] == 2
    loaded = load_model(tmp_path / "m").eval()
    assert isinstance(loaded, FaceBookDSSM) and loaded.negative_columns == model.negative_columns
    torch.testing.assert_close(loaded.user_tower(batch), model.user_tower(batch), rtol=0, atol=0)
    ids = torch.arange(2, ITEMS)
    torch.testing.assert_close(loaded.item_vectors(ids), model.item_vectors(ids), rtol=0, atol=0)


def test_torch_rechub_example_flow(tmp_path):
    """run_ml_facebook_dssm.py's steps on a tiny log: pair-wise samples with a negative id and its
    category per row, MatchTrainer(mode=1), inference embeddings."""
    from zoo.data import MatchDataGenerator, df_to_dict, gen_model_input, generate_seq_feature_match

    rng = np.random.default_rng(0)
    data = pd.DataFrame(
        {
            "user_id": rng.integers(1, USERS, 600),
            "movie_id": rng.integers(1, ITEMS, 600),
            "timestamp": np.arange(600),
        }
    )
    data["cate_id"] = data["movie_id"] % (CATES - 1) + 1
    user_profile = data[["user_id"]].drop_duplicates("user_id")
    item_profile = data[["movie_id", "cate_id"]].drop_duplicates("movie_id")
    df_train, df_test = generate_seq_feature_match(
        data,
        "user_id",
        "movie_id",
        "timestamp",
        item_attribute_cols=[],
        sample_method=1,
        mode=1,
        neg_ratio=3,
        seed=0,
    )
    x_train = gen_model_input(df_train, user_profile, "user_id", item_profile, "movie_id", seq_max_len=10)
    cate_map = dict(zip(item_profile["movie_id"], item_profile["cate_id"], strict=True))
    x_train["neg_cate"] = np.vectorize(cate_map.get)(x_train["neg_items"])
    x_test = gen_model_input(df_test, user_profile, "user_id", item_profile, "movie_id", seq_max_len=10)
    y_train = np.zeros(len(df_train), dtype=np.int64)  # a placeholder in pair-wise training

    model = make_model(temperature=0.05)
    trainer = MatchTrainer(
        model, mode=1, optimizer_params={"lr": 0.01}, n_epoch=2, model_path=tmp_path, verbose=False
    )
    train_dl, test_dl, item_dl = MatchDataGenerator(x=x_train, y=y_train, seed=0).generate_dataloader(
        x_test, df_to_dict(item_profile), batch_size=64
    )
    history = trainer.fit(train_dl)
    assert history[-1]["loss"] < history[0]["loss"]
    user_embedding = trainer.inference_embedding(model, "user", test_dl, model_path=tmp_path)
    item_embedding = trainer.inference_embedding(model, "item", item_dl, model_path=tmp_path)
    assert user_embedding.shape == (len(df_test), DIM) and item_embedding.shape == (len(item_profile), DIM)
    table = model.item_table()["cate_id"]
    assert all(int(table[i]) == c for i, c in cate_map.items())
