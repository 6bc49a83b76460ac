"""GRU4Rec: padding-free GRU, per-position training with each loss, persistence, the seed tutorial."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from zoo.data.match import NEXT_ITEM, MatchData
from zoo.data.protocol import get_protocol
from zoo.errors import UsageError
from zoo.features import SequenceFeature, SparseFeature
from zoo.models import RecallModel, load_model
from zoo.nn.sequence import NEXT_ITEM as SEQUENCE_TARGET
from zoo.nn.sequence import MaskedGRU
from zoo.train.trainer import MatchTrainer
from zoo_plugins.gru4rec.model import GRU4Rec

VOCAB = 30


def make_model(side: bool = False, item_side: bool = False, **kwargs) -> GRU4Rec:
    torch.manual_seed(0)
    history = SequenceFeature("hist_movie_id", VOCAB, 8, pooling=None, shared_with="movie_id")
    user = [SparseFeature("user_id", 20, 8), history] if side else [history]
    items = [SparseFeature("movie_id", VOCAB, 8)] + ([SparseFeature("cate_id", 5, 4)] if item_side else [])
    kwargs.setdefault("user_params", {"dims": [16, 8], "num_layers": 2, "dropout": 0.2, "hidden_size": 12})
    return GRU4Rec(user, [history], items, **kwargs)


def make_batch(n: int = 6, length: int = 7) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    hist = torch.randint(1, VOCAB, (n, length), generator=g)
    lengths = torch.tensor([7, 5, 3, 1, 0, 6])[:n]
    hist[torch.arange(length).unsqueeze(0) < (length - lengths).unsqueeze(1)] = 0  # left padding
    return {
        "user_id": torch.randint(1, 20, (n,), generator=g),
        "hist_movie_id": hist,
        "movie_id": torch.randint(1, VOCAB, (n,), generator=g),
        "cate_id": torch.randint(1, 5, (n,), generator=g),
    }


@pytest.fixture(scope="module")
def data(tiny_interactions) -> MatchData:
    return MatchData.from_interactions(tiny_interactions, get_protocol("loo"))


def from_data(data: MatchData, **params) -> GRU4Rec:
    torch.manual_seed(0)
    params = {"embed_dim": 16, "hidden_size": 24, "dims": [16], "dropout": 0.0, **params}
    model = GRU4Rec.from_schema(data.schema, **params)
    model.set_item_table(data.item_table)
    return model


# -- towers and masking ------------------------------------------------------------------------------
@pytest.mark.parametrize("side, item_side", [(False, False), (True, True)])
def test_output_shapes(side, item_side):
    model = make_model(side=side, item_side=item_side).eval()
    batch = make_batch()
    assert model.user_tower(batch).shape == (6, 8)
    assert model.item_tower(batch).shape == (6, 8)
    assert model.item_vectors(torch.tensor([[1, 2, 3], [4, 5, 6]])).shape == (2, 3, 8)
    outputs, mask = model.sequence_outputs(batch)
    assert outputs.shape == (6, 7, 8) and mask.shape == (6, 7)


def test_target_column_name_matches_the_data():
    assert SEQUENCE_TARGET == NEXT_ITEM


def test_tied_embeddings_item_vector_is_the_input_embedding():
    model = make_model(user_params={"dims": [8]}).eval()
    table = model.embedding.table("movie_id")
    assert model.embedding.table("hist_movie_id") is table
    ids = torch.tensor([3, 4, 5])
    torch.testing.assert_close(model.item_vectors(ids), table.weight[ids])
    untied = make_model(user_params={"dims": [8]}, tie_embeddings=False)
    assert untied.embedding.table("hist_movie_id") is not untied.embedding.table("movie_id")


def test_user_vector_is_the_gru_output_after_the_last_real_item():
    """Exact reference: an unpadded nn.GRU run over each row's real items alone."""
    model = make_model(side=True).eval()
    batch = make_batch()
    user = model.user_tower(batch)
    gru = model.gru.gru
    table = model.embedding.table("movie_id").weight
    side = model.embedding.embed(batch, "user_id")
    for row in range(4):  # rows with at least one item
        items = batch["hist_movie_id"][row]
        items = items[items != 0]
        out, _ = gru(table[items].unsqueeze(0))
        expected = model.user_mlp(torch.cat([out[0, -1], side[row]]))
        torch.testing.assert_close(user[row], expected, atol=1e-6, rtol=1e-5)


def test_padding_changes_nothing():
    model = make_model(side=True).eval()
    batch = make_batch()
    before = model.user_tower(batch)
    outputs_before, _ = model.sequence_outputs(batch)
    # The padding row of the embedding table is never read.
    with torch.no_grad():
        model.embedding.table("movie_id").weight[0].add_(5.0)
    torch.testing.assert_close(model.user_tower(batch), before, rtol=0, atol=0)
    # More (or less) left padding: the same vectors.
    longer = dict(
        batch, hist_movie_id=torch.cat([torch.zeros(6, 4, dtype=torch.long), batch["hist_movie_id"]], 1)
    )
    torch.testing.assert_close(model.user_tower(longer), before, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(model.sequence_outputs(longer)[0][:, 4:], outputs_before, atol=1e-6, rtol=1e-5)


def test_empty_history_gives_a_finite_vector():
    model = make_model().eval()
    batch = {"hist_movie_id": torch.zeros(3, 5, dtype=torch.long), "movie_id": torch.tensor([1, 2, 3])}
    user = model.user_tower(batch)
    assert torch.isfinite(user).all()
    torch.testing.assert_close(user[0], user[1])


def test_user_vector_depends_on_the_order_of_the_history():
    model = make_model().eval()
    batch = make_batch()
    reordered = batch["hist_movie_id"].clone()
    reordered[0] = batch["hist_movie_id"][0].flip(0)
    changed = model.user_tower(dict(batch, hist_movie_id=reordered))
    assert not torch.allclose(changed[0], model.user_tower(batch)[0])


def test_outputs_are_causal():
    model = make_model(side=True).eval()
    batch = make_batch()
    outputs, mask = model.sequence_outputs(batch)
    changed = batch["hist_movie_id"].clone()
    changed[:, 5:] = torch.where(changed[:, 5:] > 0, (changed[:, 5:] % (VOCAB - 1)) + 1, 0)
    after, _ = model.sequence_outputs(dict(batch, hist_movie_id=changed))
    torch.testing.assert_close(after[:, :5], outputs[:, :5], rtol=0, atol=0)
    assert not torch.allclose(after[:, 5:], outputs[:, 5:])
    # The last position's output is the user vector.
    torch.testing.assert_close(outputs[:4, -1], model.user_tower(batch)[:4], atol=1e-6, rtol=1e-5)


def test_masked_gru_handles_padding_anywhere():
    torch.manual_seed(0)
    gru = MaskedGRU(4, 5).eval()
    values = torch.randn(2, 6, 4)
    mask = torch.tensor([[True, False, True, False, True, False], [False, False, False, True, True, True]])
    outputs, last = gru(values, mask)
    reference, _ = gru.gru(values[0, mask[0]].unsqueeze(0))
    torch.testing.assert_close(outputs[0, mask[0]], reference[0])
    torch.testing.assert_close(last[0], reference[0, -1])
    assert (outputs[~mask] == 0).all()


# -- training ------------------------------------------------------------------------------------------
def test_train_outputs_on_windows_give_one_row_per_target(data):
    model = from_data(data)
    batch = data.sequence_batch(data.sequence_windows()[:16])
    out = model.train_outputs(batch)
    targets = batch[NEXT_ITEM]
    assert out.user.shape == (int((targets != 0).sum()), 16)
    assert torch.equal(out.pos_ids, targets[targets != 0])
    assert out.valid is not None and bool(out.valid.all())
    assert out.pos_item is not None and out.pos_item.shape == out.user.shape
    # Per-sample rows (no next_item_id): one row per sample, the item id column as the target.
    samples = data.batch(data.train_positions[:10])
    per_sample = model.train_outputs(samples)
    assert per_sample.user.shape == (10, 16) and torch.equal(per_sample.pos_ids, samples["item_id"])


def test_full_softmax_is_cross_entropy_over_every_position(data):
    model = from_data(data, temperature=0.5)
    trainer = MatchTrainer(
        model, mode=2, negatives="full", item_counts=data.item_counts, model_path=None, verbose=False
    )
    batch = data.sequence_batch(data.sequence_windows()[:8])
    with torch.no_grad():
        users, mask = model.sequence_outputs(batch)
        targets = batch[NEXT_ITEM]
        keep = (targets != 0) & mask
        items = model.item_vectors(torch.arange(2, data.schema.item_vocab))
        expected = torch.nn.functional.cross_entropy(users[keep] @ items.T / 0.5, targets[keep] - 2)
        assert float(trainer.compute_loss(batch)) == pytest.approx(float(expected), rel=1e-5)


@pytest.mark.parametrize(
    "mode, negatives, extra",
    [
        (2, "full", {}),
        (2, "shared", {"num_negatives": 32}),
        (1, "shared", {"pairwise_loss": "bpr-max", "num_negatives": 32}),
    ],
)
def test_each_loss_lowers_the_loss_on_a_fixed_batch(data, mode, negatives, extra):
    model = from_data(data)
    trainer = MatchTrainer(
        model,
        mode=mode,
        negatives=negatives,
        optimizer_params={"lr": 0.03},
        item_counts=data.item_counts,
        model_path=None,
        seed=0,
        verbose=False,
        **extra,
    )
    batch = data.sequence_batch(data.sequence_windows()[:32])

    def loss_on_fixed_negatives() -> float:
        trainer.generator.manual_seed(123)  # the same sampled negatives before and after training
        with torch.no_grad():
            return float(trainer.compute_loss(batch))

    first = loss_on_fixed_negatives()
    for _ in range(40):
        loss = trainer.compute_loss(batch)
        trainer.optimizer.zero_grad()
        loss.backward()
        trainer.optimizer.step()
    assert math.isfinite(first)
    assert loss_on_fixed_negatives() < 0.92 * first


def test_fit_on_windows_learns_the_sequences(data):
    model = from_data(data, normalize=True, temperature=0.1)
    trainer = MatchTrainer(
        model,
        mode=2,
        negatives="full",
        optimizer_params={"lr": 0.01},
        n_epoch=3,
        item_counts=data.item_counts,
        model_path=None,
        seed=0,
        verbose=False,
        valid_metric="hitrate@10",
    )
    history = trainer.fit(data.training_batches(model, 32, seed=0), data.ranking_task("valid"))
    assert history[-1]["loss"] < history[0]["loss"]
    assert trainer.best_score is not None and trainer.best_score > 0.3


# -- persistence ---------------------------------------------------------------------------------------
def test_save_load_round_trip_gives_identical_vectors(tmp_path):
    model = make_model(side=True, item_side=True, normalize=True, temperature=0.1).eval()
    batch = make_batch()
    model.remember_items(batch)
    model.save(tmp_path / "m")
    loaded = load_model(tmp_path / "m")
    assert isinstance(loaded, GRU4Rec) and isinstance(loaded, RecallModel)
    loaded.eval()
    torch.testing.assert_close(loaded.user_tower(batch), model.user_tower(batch), rtol=0, atol=0)
    torch.testing.assert_close(
        loaded.item_vectors(batch["movie_id"]), model.item_vectors(batch["movie_id"]), rtol=0, atol=0
    )
    assert loaded.temperature == 0.1 and loaded.normalize


def test_torch_save_state_dict_round_trip(tmp_path):
    model = make_model().eval()
    torch.save(model.state_dict(), tmp_path / "model.pth")
    other = make_model()
    with torch.no_grad():
        for p in other.parameters():
            p.add_(1.0)
    other.load_state_dict(torch.load(tmp_path / "model.pth", weights_only=True))
    other.eval()
    batch = make_batch()
    torch.testing.assert_close(other.user_tower(batch), model.user_tower(batch), rtol=0, atol=0)


def test_constructor_errors_are_clear():
    history = SequenceFeature("h", 10, 4, pooling=None)
    with pytest.raises(UsageError, match="unknown key"):
        GRU4Rec([history], [history], [SparseFeature("i", 10, 4)], user_params={"dim": [4]})
    with pytest.raises(UsageError, match="history_features"):
        GRU4Rec([SparseFeature("u", 5, 4)], None, [SparseFeature("i", 10, 4)])
    with pytest.raises(UsageError, match="tied"):
        GRU4Rec([history], [history], [SparseFeature("i", 10, 8)])
    with pytest.raises(UsageError, match="temperature"):
        GRU4Rec([history], [history], [SparseFeature("i", 10, 4)], temperature=0)


def test_preset_and_registry():
    from zoo.models import GRU4Rec as Facade
    from zoo.registry import default_registry

    spec = default_registry().model("gru4rec")
    assert issubclass(Facade, GRU4Rec) and Facade.spec == spec
    assert (spec.family, set(spec.train_modes), spec.training_data) == ("sequential", {1, 2}, "sequences")
    trainer = spec.trainer_defaults
    assert (trainer["negatives"], trainer["valid_metric"]) == ("full", "hitrate@10")
    assert dict(spec.data_defaults) == {"window_stride": 10}
    history = SequenceFeature("h", 10, 4, pooling=None)
    direct = GRU4Rec([history], [history], [SparseFeature("i", 10, 4)])
    assert direct.training_data == "sequences"  # the class imported from its module finds its spec too
    assert "recbole-seq" in spec.description


def test_zoo_run_beats_popularity_on_synthetic(tmp_path):
    from zoo.pipeline import RunConfig, run

    report = run(
        RunConfig(
            model="gru4rec",
            retriever="exact",
            device="cpu",
            epochs=3,
            save=False,
            dataset_options={"users": 300, "items": 120, "categories": 6, "mean_length": 18, "seed": 7},
            params={"batch_size": 16, "lr": 0.005},
        )
    )
    ours, popularity = report.metrics["exact"]["hitrate@10"], report.metrics["popularity"]["hitrate@10"]
    assert ours > 1.3 * popularity, (ours, popularity)
    assert report.training["negatives"] == "full"


# -- the seed tutorial's GRU4Rec section, as written (with our import names) ---------------------------
@pytest.fixture(scope="module")
def movielens_csv(tmp_path_factory):
    from tests.conftest import write_seed_csv
    from zoo_plugins.synthetic.generator import generate

    log = generate(users=400, items=150, categories=8, mean_length=18, seed=7)
    return write_seed_csv(tmp_path_factory.mktemp("seed") / "movielens.csv", log)


def test_seed_tutorial_gru4rec_section(tmp_path, movielens_csv):
    from zoo.data import MatchDataGenerator, gen_model_input, generate_seq_feature_match
    from zoo.features import SequenceFeature, SparseFeature
    from zoo.models import GRU4Rec
    from zoo.train import MatchTrainer

    # 数据准备 (data preparation)
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
        mode=2,
        neg_ratio=10,
        seed=0,
    )
    x_train = gen_model_input(df_train, user_profile, "user_id", item_profile, "movie_id", seq_max_len=20)
    x_test = gen_model_input(df_test, user_profile, "user_id", item_profile, "movie_id", seq_max_len=20)
    all_item = {
        "movie_id": item_profile["movie_id"].to_numpy(),
        "cate_id": item_profile["cate_id"].to_numpy(),
    }
    train_dl, test_dl, item_dl = MatchDataGenerator(x=x_train, seed=0).generate_dataloader(
        x_test, all_item, batch_size=256
    )

    # 序列推荐模型 (GRU4Rec), the tutorial's code
    history_features = [SequenceFeature("hist_movie_id", vocab_size=item_num, embed_dim=16, pooling=None)]
    neg_item_feature = [SparseFeature("neg_items", vocab_size=item_num, embed_dim=16)]
    torch.manual_seed(0)
    model = GRU4Rec(
        user_features=user_features,
        history_features=history_features,
        item_features=item_features,
        neg_item_feature=neg_item_feature,
        user_params={"dims": [128, 64], "num_layers": 2, "dropout": 0.2},
        temperature=1.0,
    )
    trainer = MatchTrainer(
        model=model,
        mode=2,  # list-wise
        optimizer_params={"lr": 0.001},
        n_epoch=4,
        device="cpu",
        model_path=str(tmp_path),
        seed=0,
        verbose=False,
    )
    history = trainer.fit(train_dl, test_dl)
    assert history[-1]["loss"] < history[0]["loss"]
    assert (tmp_path / "model.safetensors").is_file()

    # 模型评估 (evaluation) and embeddings
    auc = trainer.evaluate(trainer.model, test_dl)
    assert 0.6 < auc <= 1.0
    user_embeddings = trainer.inference_embedding(model, "user", test_dl, model_path=str(tmp_path))
    item_embeddings = trainer.inference_embedding(model, "item", item_dl, model_path=str(tmp_path))
    assert user_embeddings.shape == (len(x_test["user_id"]), 64)
    assert item_embeddings.shape == (len(all_item["movie_id"]), 64)
    assert torch.isfinite(user_embeddings).all()

    # Retrieval over the item vectors finds held-out items far more often than chance (the tutorial's
    # settings are not tuned: few epochs at lr 1e-3 against popularity-sampled negatives). The log has
    # no repeat consumption, so the ranking skips what the user has seen.
    from zoo.evaluate import ranking_metrics
    from zoo.registry import create_retriever
    from zoo.retrieval.filtering import query_excluding

    hist = x_test["hist_movie_id"]
    seen = (np.concatenate([[0], np.cumsum((hist > 0).sum(axis=1))]), hist[hist > 0])
    index = create_retriever("exact").fit(item_embeddings.numpy(), ids=all_item["movie_id"])
    top, _ = query_excluding(index, user_embeddings.numpy(), 10, seen)
    hits = ranking_metrics(top, x_test["movie_id"], ks=(10,))["hitrate@10"]
    assert hits > 2 * 10 / len(all_item["movie_id"])

    # 模型保存与加载 (save and load)
    torch.save(model.state_dict(), tmp_path / "model.pth")
    reloaded = GRU4Rec(
        user_features=user_features,
        history_features=history_features,
        item_features=item_features,
        neg_item_feature=neg_item_feature,
        user_params={"dims": [128, 64], "num_layers": 2, "dropout": 0.2},
        temperature=1.0,
    )
    reloaded.load_state_dict(torch.load(tmp_path / "model.pth"))
    torch.testing.assert_close(trainer.inference_embedding(reloaded, "user", test_dl), user_embeddings)
