"""YoutubeSBC: Torch-RecHub's constructor, the in-batch softmax with its logQ correction against a hand
computation (every other row a negative, whatever n_neg), normalised towers, saving under Torch-RecHub's
argument names, and Torch-RecHub's example flow."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from zoo.errors import UsageError
from zoo.features import DenseFeature, SequenceFeature, SparseFeature
from zoo.models import load_model
from zoo.train.trainer import MatchTrainer
from zoo_plugins.youtube_sbc.model import YoutubeSBC

ITEMS, USERS, CATES, DIM, TEMPERATURE = 40, 20, 6, 8, 0.1


def make_model(seed: int = 0, **kwargs) -> YoutubeSBC:
    torch.manual_seed(seed)
    user = [
        SparseFeature("user_id", USERS, DIM),
        SequenceFeature("hist_movie_id", ITEMS, DIM, pooling="mean", shared_with="movie_id"),
    ]
    item = [SparseFeature("movie_id", ITEMS, DIM), SparseFeature("cate_id", CATES, DIM)]
    kwargs.setdefault("user_params", {"dims": [16, DIM]})
    kwargs.setdefault("item_params", {"dims": [16, DIM]})
    kwargs.setdefault("temperature", TEMPERATURE)
    kwargs.setdefault("n_neg", 3)
    return YoutubeSBC(user, item, [DenseFeature("sample_weight")], batch_size=8, **kwargs)


def make_batch(n: int = 8, seed: int = 1) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    hist = torch.randint(2, ITEMS, (n, 6), generator=g)
    hist[: n // 2, :2] = 0
    items = torch.randperm(ITEMS - 2, generator=g)[:n] + 2  # distinct positives: no in-batch duplicate
    return {
        "user_id": torch.randint(1, USERS, (n,), generator=g),
        "hist_movie_id": hist,
        "movie_id": items,
        "cate_id": items % (CATES - 1) + 1,
        "sample_weight": torch.rand(n, generator=g),  # Torch-RecHub's column: not read
    }


def test_torch_rechub_constructor_and_import():
    from zoo.models import YoutubeSBC as Imported

    assert Imported.unbound_class() is YoutubeSBC
    model = make_model()
    assert model.registry_name == "youtube-sbc" and model.train_modes == (2,)
    batch = make_batch()
    user, item = model.user_tower(batch), model.item_tower(batch)
    torch.testing.assert_close(user.norm(dim=-1), torch.ones(8))
    torch.testing.assert_close(item.norm(dim=-1), torch.ones(8))
    assert model.sample_weight_feature[0].name == "sample_weight"
    assert torch.equal(item, model.item_tower(dict(batch, sample_weight=torch.rand(8))))


def _trainer(model: YoutubeSBC, counts: np.ndarray, **settings) -> MatchTrainer:
    return MatchTrainer(model, mode=2, item_counts=counts, model_path=None, verbose=False, seed=0, **settings)


def test_logq_correction_subtracts_log_q_from_every_logit():
    model = make_model().eval()
    batch = make_batch()
    counts = np.arange(ITEMS, dtype=np.float64) % 9 + 1.0
    with torch.no_grad():
        corrected = _trainer(model, counts).compute_loss(batch)
        plain = _trainer(model, counts, logq_correction=False).compute_loss(batch)
        logits = model.user_tower(batch) @ model.item_tower(batch).T / TEMPERATURE
    q = torch.as_tensor(counts / counts.sum(), dtype=torch.float32)[batch["movie_id"]]
    log_q = torch.log(q * 8)  # the expected count of each item among the batch's 8 draws
    target = torch.arange(8)
    # Every row against all 7 other rows (n_neg=3 is Torch-RecHub's and not used).
    torch.testing.assert_close(corrected, F.cross_entropy(logits - log_q.unsqueeze(0), target))
    torch.testing.assert_close(plain, F.cross_entropy(logits, target))
    assert not torch.isclose(corrected, plain)
    # The correction shifts column j by -log q_j: uniform frequencies shift every logit alike.
    uniform = np.ones(ITEMS)
    with torch.no_grad():
        torch.testing.assert_close(_trainer(model, uniform).compute_loss(batch), plain)


def test_temperature_divides_the_cosine_not_the_correction():
    counts = np.arange(ITEMS, dtype=np.float64) + 1.0
    batch = make_batch()
    losses = []
    for temperature in (0.05, 0.2):
        model = make_model(temperature=temperature).eval()
        with torch.no_grad():
            losses.append(_trainer(model, counts).compute_loss(batch))
            logits = model.user_tower(batch) @ model.item_tower(batch).T / temperature
        q = torch.as_tensor(counts / counts.sum(), dtype=torch.float32)[batch["movie_id"]]
        expected = F.cross_entropy(logits - torch.log(q * 8).unsqueeze(0), torch.arange(8))
        torch.testing.assert_close(losses[-1], expected)


def test_only_listwise_training_and_bad_arguments():
    with pytest.raises(UsageError, match="mode 1"):
        MatchTrainer(make_model(), mode=1, model_path=None, verbose=False)
    with pytest.raises(UsageError, match="n_neg"):
        make_model(n_neg=0)
    with pytest.raises(UsageError, match="JSON values"):
        make_model(user_params={"dims": [16, DIM], "batch_norm": object()})


def test_save_load_round_trip_under_torch_rechub_names(tmp_path):
    model = make_model(recent_history=2).eval()
    batch = make_batch()
    model.remember_items(batch)
    model.save(tmp_path / "m")
    config = model.read_meta(tmp_path / "m")["config"]
    assert [f["name"] for f in config["sample_weight_feature"]] == ["sample_weight"]
    assert (config["batch_size"], config["n_neg"], config["temperature"]) == (8, 3, TEMPERATURE)
    loaded = load_model(tmp_path / "m").eval()
    assert isinstance(loaded, YoutubeSBC)
    torch.testing.assert_close(loaded.user_tower(batch), model.user_tower(batch), rtol=0, atol=0)
    ids = torch.arange(2, ITEMS)
    torch.testing.assert_close(loaded.item_vectors(ids), model.item_vectors(ids), rtol=0, atol=0)


def test_torch_rechub_example_flow(tmp_path):
    """run_ml_youtube_sbc.py's steps on a tiny log: positives only with a sample_weight column,
    MatchTrainer(mode=2), inference embeddings; the last short batch trains too."""
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
    weights = {item: count**0.75 for item, count in Counter(data["movie_id"].tolist()).items()}
    total = sum(weights.values())
    data["sample_weight"] = data["movie_id"].map({k: v / total for k, v in weights.items()})
    user_profile = data[["user_id"]].drop_duplicates("user_id")
    item_profile = data[["movie_id", "cate_id", "sample_weight"]].drop_duplicates("movie_id")
    df_train, df_test = generate_seq_feature_match(
        data, "user_id", "movie_id", "timestamp", item_attribute_cols=[], sample_method=1, mode=0, neg_ratio=0
    )
    x_train = gen_model_input(df_train, user_profile, "user_id", item_profile, "movie_id", seq_max_len=10)
    x_test = gen_model_input(df_test, user_profile, "user_id", item_profile, "movie_id", seq_max_len=10)
    y_train = np.zeros(len(df_train), dtype=np.int64)  # Torch-RecHub: "the positive is column 0"

    model = make_model(temperature=0.05)
    trainer = MatchTrainer(
        model, mode=2, optimizer_params={"lr": 0.01}, n_epoch=2, model_path=tmp_path, verbose=False
    )
    train_dl, test_dl, item_dl = MatchDataGenerator(x=x_train, y=y_train, seed=0).generate_dataloader(
        x_test, df_to_dict(item_profile), batch_size=60
    )
    assert len(df_train) % 60  # a last short batch
    history = trainer.fit(train_dl)
    assert history[-1]["loss"] < history[0]["loss"]
    user_embedding = trainer.inference_embedding(model, "user", test_dl, model_path=tmp_path)
    item_embedding = trainer.inference_embedding(model, "item", item_dl, model_path=tmp_path)
    assert user_embedding.shape == (len(df_test), DIM) and item_embedding.shape == (len(item_profile), DIM)
    torch.testing.assert_close(item_embedding.norm(dim=-1), torch.ones(len(item_profile)))
