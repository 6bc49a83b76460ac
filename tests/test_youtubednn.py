"""YoutubeDNN: the seed-style constructor, shared item table, padding never pooled, temperature,
deterministic save/load, training in every mode and the pipeline (beats popularity, hnsw recall)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from zoo.errors import UsageError
from zoo.features import SequenceFeature, SparseFeature
from zoo.models import load_model
from zoo_plugins.youtubednn.model import YoutubeDNN

ITEMS, USERS, DIM = 40, 20, 8


def make_model(seed: int = 0, temperature: float = 0.1, **kwargs) -> YoutubeDNN:
    torch.manual_seed(seed)
    user_features = [
        SparseFeature("user_id", USERS, DIM),
        SparseFeature("gender", 3, DIM),
        SequenceFeature("hist_movie_id", ITEMS, DIM, pooling="mean", shared_with="movie_id"),
    ]
    item_features = [SparseFeature("movie_id", ITEMS, DIM), SparseFeature("cate_id", 5, DIM)]
    kwargs.setdefault("user_params", {"dims": [32, DIM]})
    return YoutubeDNN(user_features, item_features, temperature=temperature, **kwargs)


def make_batch(n: int = 8, seed: int = 1) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    hist = torch.randint(2, ITEMS, (n, 10), generator=g)
    for row in range(n):
        hist[row, : row % 6] = 0  # left padding of varying length
    return {
        "user_id": torch.randint(1, USERS, (n,), generator=g),
        "gender": torch.randint(1, 3, (n,), generator=g),
        "hist_movie_id": hist,
        "movie_id": torch.randint(2, ITEMS, (n,), generator=g),
        "cate_id": torch.randint(1, 5, (n,), generator=g),
    }


def test_seed_constructor_shapes_and_shared_item_table():
    model = make_model().eval()
    batch = make_batch()
    user, item = model.user_tower(batch), model.item_tower(batch)
    assert user.shape == item.shape == (8, DIM)
    torch.testing.assert_close(user.norm(dim=-1), torch.ones(8))
    torch.testing.assert_close(item.norm(dim=-1), torch.ones(8))
    assert model.embedding.table("hist_movie_id") is model.embedding.table("movie_id")
    # The item vector is the (normalised) mean of the id and side embeddings; without sides, the id alone.
    table = model.embedding.table("movie_id").weight
    id_only = make_model(item_side=False).eval()
    torch.testing.assert_close(
        id_only.item_tower(batch),
        torch.nn.functional.normalize(id_only.embedding.table("movie_id").weight[batch["movie_id"]], dim=-1),
    )
    cate = model.embedding.table("cate_id").weight[batch["cate_id"]]
    torch.testing.assert_close(item, torch.nn.functional.normalize(table[batch["movie_id"]] + cate, dim=-1))


def test_temperature_divides_the_logits():
    batch = make_batch()
    model = make_model(temperature=0.05).eval()
    score = model.score(model.user_tower(batch), model.item_tower(batch))
    torch.testing.assert_close(model(batch), torch.sigmoid(score / 0.05))


def test_padding_is_never_pooled():
    model = make_model().eval()
    batch = make_batch()
    before = model.user_tower(batch)
    with torch.no_grad():
        model.embedding.table("movie_id").weight[0] += 10.0
    torch.testing.assert_close(model.user_tower(batch), before, rtol=0, atol=1e-6)
    changed = dict(batch, hist_movie_id=batch["hist_movie_id"].clone())
    changed["hist_movie_id"][:, -1] = (batch["hist_movie_id"][:, -1] - 2 + 1) % (ITEMS - 2) + 2
    assert not torch.allclose(model.user_tower(changed), before)


def test_recent_history_option():
    model = make_model(recent_history=3).eval()
    batch = make_batch()
    before = model.user_tower(batch)
    hist = batch["hist_movie_id"]
    order = torch.argsort((hist == 0).to(torch.int8), dim=1, stable=True)  # post-padding, same items
    torch.testing.assert_close(
        model.user_tower(dict(batch, hist_movie_id=hist.gather(1, order))), before, atol=1e-6, rtol=0
    )
    with torch.no_grad():
        model.embedding.table("movie_id").weight[0] += 10.0
    torch.testing.assert_close(model.user_tower(batch), before, rtol=0, atol=1e-6)


def test_save_load_round_trip_is_exact(tmp_path):
    model = make_model().eval()
    batch = make_batch()
    model.remember_items(batch)
    first = model.user_tower(batch)
    torch.testing.assert_close(model.user_tower(batch), first, rtol=0, atol=0)
    model.save(tmp_path / "m")
    loaded = load_model(tmp_path / "m").eval()
    assert isinstance(loaded, YoutubeDNN)
    torch.testing.assert_close(loaded.user_tower(batch), first, rtol=0, atol=0)
    torch.testing.assert_close(
        loaded.item_vectors(batch["movie_id"]), model.item_vectors(batch["movie_id"]), rtol=0, atol=0
    )
    torch.save(model.state_dict(), tmp_path / "model.pth")
    other = make_model(seed=5).eval()
    other.load_state_dict(torch.load(tmp_path / "model.pth", weights_only=True))
    torch.testing.assert_close(other.user_tower(batch), first, rtol=0, atol=0)


@pytest.mark.parametrize(
    "mode, negatives", [(0, "uniform"), (1, "uniform"), (2, "inbatch"), (2, "mixed"), (2, "popularity")]
)
def test_each_mode_lowers_the_loss_on_a_fixed_batch(mode, negatives):
    from zoo.train.trainer import MatchTrainer

    model = make_model(temperature=0.2)
    batch = make_batch(n=32)
    model.remember_items(batch)
    trainer = MatchTrainer(
        model,
        mode=mode,
        negatives=negatives,
        num_negatives=8,
        optimizer_params={"lr": 0.01},
        n_epoch=1,
        model_path=None,
        seed=0,
        verbose=False,
        item_counts=np.arange(ITEMS) % 7 + 1.0,
    )

    def loss() -> float:
        trainer.generator.manual_seed(7)
        with torch.no_grad():
            return float(trainer.compute_loss(batch))

    before = loss()
    for _ in range(30):
        trainer.generator.manual_seed(7)
        value = trainer.compute_loss(batch)
        trainer.optimizer.zero_grad()
        value.backward()
        trainer.optimizer.step()
    assert loss() < 0.8 * before


def test_constructor_errors_are_clear():
    with pytest.raises(UsageError, match="make the last entry"):
        make_model(user_params={"dims": [32, 16]})
    with pytest.raises(UsageError, match="unknown key"):
        make_model(user_params={"dim": [8]})
    with pytest.raises(UsageError, match="pooling"):
        YoutubeDNN([SequenceFeature("h", ITEMS, DIM, pooling=None)], [SparseFeature("i", ITEMS, DIM)])
    with pytest.raises(UsageError, match="item_side"):
        YoutubeDNN(
            [SparseFeature("u", USERS, DIM)], [SparseFeature("i", ITEMS, DIM), SparseFeature("c", 5, 4)]
        )


def test_pipeline_beats_popularity_with_hnsw():
    from zoo.pipeline import RunConfig, run

    report = run(
        RunConfig(
            model="youtubednn",
            retriever="hnsw",
            device="cpu",
            epochs=3,
            save=False,
            dataset_options={"users": 500, "items": 200, "categories": 10, "mean_length": 20, "seed": 3},
            params={"embed_dim": 16, "batch_size": 128},
        )
    )
    exact, popularity = report.metrics["exact"], report.metrics["popularity"]
    assert exact["hitrate@10"] > 1.5 * popularity["hitrate@10"]
    assert report.retriever["recall_vs_exact"]["recall@10"] >= 0.9
    assert report.config["model_params"]["hidden_dims"] == [256]
