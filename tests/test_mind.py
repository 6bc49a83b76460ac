"""MIND: shapes, masking, deterministic routing, dynamic interests, label-aware attention, training in
every mode, the pipeline (hnsw merges the K interests in the core) and the seed tutorial's MIND section."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from tests.conftest import write_seed_csv
from zoo.features import SequenceFeature, SparseFeature
from zoo.models import load_model
from zoo.nn.interests import (
    CapsuleRouting,
    active_interests,
    dynamic_interest_count,
    label_aware_attention,
    squash,
)
from zoo_plugins.mind.model import MIND

ITEMS, USERS, DIM, LENGTH = 40, 20, 8, 12


def features():
    user = [SparseFeature("user_id", USERS, DIM), SparseFeature("gender", 3, DIM)]
    history = [SequenceFeature("hist_movie_id", ITEMS, DIM, pooling=None, shared_with="movie_id")]
    item = [SparseFeature("movie_id", ITEMS, DIM), SparseFeature("cate_id", 5, DIM)]
    return user, history, item


def make_model(seed: int = 0, **kwargs) -> MIND:
    torch.manual_seed(seed)
    user, history, item = features()
    kwargs.setdefault("interest_num", 4)
    kwargs.setdefault("temperature", 0.1)
    return MIND(user, history, item, max_length=LENGTH, **kwargs)


def make_batch(n: int = 8, lengths=None, seed: int = 1) -> dict[str, torch.Tensor]:
    """Left-padded histories; row i has lengths[i] real items (distinct ids >= 2)."""
    g = torch.Generator().manual_seed(seed)
    lengths = lengths if lengths is not None else [LENGTH - (i % 5) * 2 for i in range(n)]
    hist = torch.zeros(len(lengths), LENGTH, dtype=torch.long)
    for row, length in enumerate(lengths):
        if length:
            hist[row, LENGTH - length :] = torch.randperm(ITEMS - 2, generator=g)[:length] + 2
    n = len(lengths)
    return {
        "user_id": torch.randint(1, USERS, (n,), generator=g),
        "gender": torch.randint(1, 3, (n,), generator=g),
        "hist_movie_id": hist,
        "movie_id": torch.randint(2, ITEMS, (n,), generator=g),
        "cate_id": torch.randint(1, 5, (n,), generator=g),
    }


# -- building blocks ----------------------------------------------------------------------------------
def test_squash_keeps_direction_and_bounds_the_norm():
    z = torch.tensor([[3.0, 4.0], [0.0, 0.0], [0.1, 0.0]])
    v = squash(z)
    torch.testing.assert_close(v[0], z[0] / 5 * (25 / 26))
    assert torch.equal(v[1], torch.zeros(2))  # zero stays zero, no NaN
    assert (v.norm(dim=-1) < 1).all()


def test_dynamic_interest_count_is_floor_log2_clamped():
    lengths = torch.tensor([0, 1, 2, 3, 4, 7, 8, 15, 16, 50])
    assert dynamic_interest_count(lengths, 4).tolist() == [1, 1, 1, 1, 2, 2, 3, 3, 4, 4]
    assert dynamic_interest_count(lengths, 2).tolist() == [1, 1, 1, 1, 2, 2, 2, 2, 2, 2]


def test_capsule_routing_ignores_padding_and_is_deterministic():
    torch.manual_seed(0)
    routing = CapsuleRouting(6, 5, num_interests=3, max_length=7, bilinear="shared", init="normal")
    values = torch.randn(4, 7, 6)
    mask = torch.ones(4, 7, dtype=torch.bool)
    mask[:, :3] = False
    out = routing(values, mask)
    assert out.shape == (4, 3, 5)
    torch.testing.assert_close(routing(values, mask), out, rtol=0, atol=0)
    noisy = values.clone()
    noisy[:, :3] = torch.randn(4, 3, 6) * 100  # whatever sits at padded positions
    torch.testing.assert_close(routing(noisy, mask), out, rtol=0, atol=0)
    # The shared map with fixed initial logits still tells the capsules apart.
    assert not torch.allclose(out[:, 0], out[:, 1])
    # Unused capsules receive nothing.
    active = torch.tensor([[True, False, False]] * 4)
    assert torch.equal(routing(values, mask, active)[:, 1:], torch.zeros(4, 2, 5))


def test_label_aware_attention_weights():
    torch.manual_seed(0)
    interests = torch.nn.functional.normalize(torch.randn(16, 4, 8), dim=-1)
    target = torch.nn.functional.normalize(torch.randn(16, 8), dim=-1)
    closest = (interests * target.unsqueeze(1)).sum(-1).argmax(-1)
    rows = torch.arange(16)
    for power in (0.0, 0.5, 1.0, 2.0, 3.7):
        readout, weights = label_aware_attention(interests, target, power, scale=10.0)
        torch.testing.assert_close(weights.sum(-1), torch.ones(16))
        torch.testing.assert_close(readout, (weights.unsqueeze(-1) * interests).sum(1))
    # p = 0 keeps only the signs; a large p: (almost) all the weight on the closest interest; p = inf: hard.
    _, flat = label_aware_attention(interests, target, 0.0, scale=10.0)
    signs = torch.sign((interests * target.unsqueeze(1)).sum(-1))
    torch.testing.assert_close(flat, torch.softmax(signs, dim=-1))
    readout, sharp = label_aware_attention(interests, target, 20.0, scale=10.0)
    assert torch.equal(sharp.argmax(-1), closest) and (sharp[rows, closest] > 0.99).all()
    torch.testing.assert_close(readout, interests[rows, closest], atol=1e-2, rtol=0)
    hard, weights = label_aware_attention(interests, target, math.inf, scale=10.0)
    torch.testing.assert_close(hard, interests[rows, closest])
    # Sign-safe for even powers: an interest pointing away from the target never wins.
    away = torch.stack([target, -target], dim=1) * torch.tensor([[[0.3], [0.9]]])
    _, w = label_aware_attention(away, target, 2.0, scale=10.0)
    assert (w[:, 0] > 0.99).all()
    # Masked (unused) interests get no weight.
    mask = torch.tensor([[True, False, True, False]] * 16)
    _, w = label_aware_attention(interests, target, 1.0, mask=mask)
    assert torch.equal(w[:, 1], torch.zeros(16)) and torch.equal(w[:, 3], torch.zeros(16))


# -- the model ------------------------------------------------------------------------------------------
def test_shapes_one_and_k_interests():
    batch = make_batch()
    model = make_model().eval()
    user = model.user_tower(batch)
    assert user.shape == (8, 4, DIM) and model.num_interests == 4
    torch.testing.assert_close(user.norm(dim=-1), torch.ones(8, 4))
    item = model.item_tower(batch)
    assert item.shape == (8, DIM)
    torch.testing.assert_close(item.norm(dim=-1), torch.ones(8))
    single = make_model(interest_num=1).eval()
    assert single.user_tower(batch).shape == (8, DIM) and single.num_interests == 1
    expected = (user * item.unsqueeze(1)).sum(-1).max(-1).values
    torch.testing.assert_close(model.score(user, item), expected)
    torch.testing.assert_close(model(batch), torch.sigmoid(expected / 0.1))


def test_seed_user_features_with_a_pooled_history_are_accepted():
    """The tutorial lists a mean-pooled hist_movie_id among the user features and the raw one as the
    history: the profile then holds the masked mean of the same sequence."""
    torch.manual_seed(0)
    user, history, item = features()
    user = user + [SequenceFeature("hist_movie_id", ITEMS, DIM, pooling="mean", shared_with="movie_id")]
    model = MIND(user, history, item, max_length=LENGTH, interest_num=3).eval()
    assert model.inputs.profile_dim == 3 * DIM
    assert model.user_tower(make_batch()).shape == (8, 3, DIM)


def test_padding_is_masked():
    model = make_model().eval()
    batch = make_batch()
    before = model.user_tower(batch)
    # The padding row of the item table changes nothing.
    perturbed = make_model().eval()
    perturbed.load_state_dict(model.state_dict())
    with torch.no_grad():
        perturbed.inputs.bank.table("movie_id").weight[0] += 5.0
    torch.testing.assert_close(perturbed.user_tower(batch), before, rtol=0, atol=1e-6)
    # Neither does where the padding is: post-padding, or a longer padded history, give the same vectors.
    hist = batch["hist_movie_id"]
    real = hist != 0
    order = torch.argsort((~real).to(torch.int8), dim=1, stable=True)
    post = dict(batch, hist_movie_id=hist.gather(1, order))
    assert not torch.equal(post["hist_movie_id"], hist)
    torch.testing.assert_close(model.user_tower(post), before, rtol=0, atol=1e-6)
    longer = dict(batch, hist_movie_id=torch.cat([torch.zeros(8, 5, dtype=torch.long), hist], dim=1))
    torch.testing.assert_close(model.user_tower(longer), before, rtol=0, atol=1e-6)
    # A real item does matter.
    changed = dict(batch, hist_movie_id=hist.clone())
    changed["hist_movie_id"][:, -1] = (hist[:, -1] - 2 + 1) % (ITEMS - 2) + 2
    assert not torch.allclose(model.user_tower(changed), before)


def test_recent_history_joins_the_profile():
    model = make_model(recent_history=3).eval()
    assert model.inputs.profile_dim == 3 * DIM  # user_id, gender, recent mean
    batch = make_batch()
    values, mask = model.inputs.sequence(batch)
    profile = model.inputs.profile(batch)
    torch.testing.assert_close(profile[:, 2 * DIM :], values[:, -3:].mean(dim=1))  # every row has >= 3 items
    before = model.user_tower(batch)
    with torch.no_grad():
        model.inputs.bank.table("movie_id").weight[0] += 5.0
    torch.testing.assert_close(model.user_tower(batch), before, rtol=0, atol=1e-6)


def test_history_longer_than_max_length_keeps_the_most_recent():
    model = make_model().eval()
    batch = make_batch()
    older = torch.randint(2, ITEMS, (8, 6), generator=torch.Generator().manual_seed(3))
    full = batch["hist_movie_id"].clone()
    full[:, :LENGTH] = torch.where(full == 0, torch.randint(2, ITEMS, full.shape), full)  # a full window
    long = dict(batch, hist_movie_id=torch.cat([older, full], dim=1))
    torch.testing.assert_close(model.user_tower(long), model.user_tower(dict(batch, hist_movie_id=full)))


def test_inference_is_deterministic_and_survives_save_load(tmp_path):
    model = make_model().eval()
    batch = make_batch()
    model.remember_items(batch)
    first = model.user_tower(batch)
    torch.testing.assert_close(model.user_tower(batch), first, rtol=0, atol=0)
    model.train()  # no dropout by default: training-mode forward is the same function
    torch.testing.assert_close(model.user_tower(batch), first, rtol=0, atol=0)
    model.eval()
    model.save(tmp_path / "m")
    loaded = load_model(tmp_path / "m").eval()
    assert isinstance(loaded, MIND) and loaded.power == model.power
    torch.testing.assert_close(loaded.user_tower(batch), first, rtol=0, atol=0)
    torch.testing.assert_close(
        loaded.item_vectors(batch["movie_id"]), model.item_vectors(batch["movie_id"]), rtol=0, atol=0
    )
    # The seed's torch.save(state_dict) round trip restores the routing's initial logits too.
    torch.save(model.state_dict(), tmp_path / "model.pth")
    other = make_model(seed=123).eval()
    assert not torch.equal(other.routing.initial_logits, model.routing.initial_logits)
    other.load_state_dict(torch.load(tmp_path / "model.pth", weights_only=True))
    torch.testing.assert_close(other.user_tower(batch), first, rtol=0, atol=0)


def test_dynamic_interests_fill_unused_slots_with_interest_zero():
    lengths = [1, 2, 3, 4, 7, 8, 12, 0]
    batch = make_batch(lengths=lengths)
    model = make_model(interest_num=4).eval()
    user = model.user_tower(batch)
    expected = [1, 1, 1, 2, 2, 3, 3, 1]
    for row, count in enumerate(expected):
        for slot in range(1, 4):
            if slot < count:
                assert not torch.equal(user[row, slot], user[row, 0])
            else:
                assert torch.equal(user[row, slot], user[row, 0])  # an exact copy of interest 0
    assert active_interests(user).sum(1).tolist() == expected
    # The copies add nothing to the merged top-k list: the same ids as querying the active ones only.
    from zoo.registry import create_retriever
    from zoo.retrieval.merge import query_interests

    items = model.item_vectors(torch.arange(2, ITEMS)).detach().numpy()
    index = create_retriever("exact").fit(items, ids=np.arange(2, ITEMS))
    merged, scores = query_interests(index, user.detach(), 10)
    for row, count in enumerate(expected):
        ids, _ = query_interests(index, user[row : row + 1, :count].detach(), 10)
        assert merged[row].tolist() == ids[0].tolist()
        assert len(set(merged[row].tolist())) == 10
    # Without dynamic interests every slot is its own interest.
    fixed = make_model(interest_num=4, dynamic_interests=False).eval()
    assert active_interests(fixed.user_tower(batch))[:7].all()


def test_select_interest_label_aware_in_training_hard_in_evaluation():
    # The power sharpens logits larger than 1 in magnitude; an untrained model's cosines are tiny, so a
    # small temperature puts its logits in that range.
    model = make_model(power=50.0, temperature=0.002)
    batch = make_batch()
    user = model.user_tower(batch)
    target = model.item_tower(batch)
    readout, weights = model.label_aware_weights(user, target)
    torch.testing.assert_close(weights.sum(-1), torch.ones(8))
    closest = (user * target.unsqueeze(1)).sum(-1).argmax(-1)
    rows = torch.arange(8)
    assert torch.equal(weights.argmax(-1), closest)
    model.train()
    torch.testing.assert_close(model.select_interest(user, target), readout)
    model.eval()
    torch.testing.assert_close(model.select_interest(user, target), user[rows, closest])
    # Duplicated (unused) slots get no attention.
    short = make_batch(lengths=[4] * 8)
    model.train()
    user = model.user_tower(short)
    _, weights = model.label_aware_weights(user, model.item_tower(short))
    assert torch.equal(weights[:, 2:], torch.zeros(8, 2))


def test_select_interest_gradient_flows():
    model = make_model(power=2.0).train()
    batch = make_batch()
    user = model.user_tower(batch)
    target = model.item_tower(batch)
    model.select_interest(user, target).mul(target).sum().backward()
    for name, parameter in [
        ("routing map", model.routing.weight),
        ("profile MLP", next(model.mlp.parameters())),
        ("item table", model.inputs.bank.table("movie_id").weight),
        ("user table", model.inputs.bank.table("user_id").weight),
    ]:
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name


@pytest.mark.parametrize(
    "mode, negatives", [(0, "uniform"), (1, "uniform"), (2, "inbatch"), (2, "mixed"), (2, "uniform")]
)
def test_each_mode_lowers_the_loss_on_a_fixed_batch(mode, negatives):
    from zoo.train.trainer import MatchTrainer

    model = make_model(temperature=0.2)
    batch = make_batch(n=32, lengths=[LENGTH - (i % 6) for i in range(32)])
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
        item_counts=np.ones(ITEMS),
    )
    model.remember_items(batch)

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
    from zoo.errors import UsageError

    user, history, item = features()
    with pytest.raises(UsageError, match="history_features"):
        MIND(user, [], item)
    with pytest.raises(UsageError, match="embed_dim"):
        MIND(user, history, [SparseFeature("movie_id", ITEMS, DIM), SparseFeature("cate_id", 5, DIM * 2)])
    with pytest.raises(UsageError, match="power"):
        MIND(user, history, item, power=-1)


# -- the pipeline and the seed tutorial ---------------------------------------------------------------
SYNTHETIC = {"users": 500, "items": 200, "categories": 10, "mean_length": 20, "seed": 3}


def test_pipeline_beats_popularity_and_hnsw_merges_interests():
    from zoo.pipeline import RunConfig, run

    report = run(
        RunConfig(
            model="mind",
            retriever="hnsw",
            device="cpu",
            epochs=3,
            save=False,
            dataset_options=dict(SYNTHETIC),
            params={"embed_dim": 16, "batch_size": 128},
        )
    )
    exact, popularity = report.metrics["exact"], report.metrics["popularity"]
    assert exact["hitrate@10"] > 1.5 * popularity["hitrate@10"]
    assert exact["hitrate@50"] > popularity["hitrate@50"]
    assert report.retriever["recall_vs_exact"]["recall@10"] >= 0.9
    assert report.retriever["recall_vs_exact"]["recall@50"] >= 0.9
    assert report.config["model_params"]["interest_num"] == 4


@pytest.fixture(scope="module")
def movielens_csv(tmp_path_factory):
    from zoo_plugins.synthetic.generator import generate

    log = generate(users=400, items=160, categories=8, mean_length=18, seed=7)
    return write_seed_csv(tmp_path_factory.mktemp("seed_mind") / "movielens.csv", log)


def test_seed_tutorial_mind_section(tmp_path, movielens_csv):
    """The tutorial's data preparation, GRU4Rec-section features and MIND section, with our import names."""
    from zoo.data import MatchDataGenerator, gen_model_input, generate_seq_feature_match
    from zoo.evaluate import ranking_metrics
    from zoo.features import SequenceFeature, SparseFeature
    from zoo.models import MIND as FacadeMIND
    from zoo.registry import create_retriever
    from zoo.retrieval.merge import query_interests
    from zoo.train import MatchTrainer

    assert issubclass(FacadeMIND, MIND) and FacadeMIND.spec.name == "mind"  # the class bound to its spec
    df = pd.read_csv(movielens_csv)
    df["cate_id"] = df["genres"].str.split("|").str[0]
    for feature in ["user_id", "movie_id", "gender", "age", "occupation", "zip", "cate_id"]:
        df[feature] = pd.factorize(df[feature], sort=True)[0] + 1
    user_num, item_num, cate_num = df["user_id"].max() + 1, df["movie_id"].max() + 1, df["cate_id"].max() + 1

    # 数据准备: the user and item features as the tutorial defines them
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
    # 序列推荐模型 (GRU4Rec) section: the raw history and the negatives column
    history_features = [SequenceFeature("hist_movie_id", vocab_size=item_num, embed_dim=16, pooling=None)]
    neg_item_feature = [SparseFeature("neg_items", vocab_size=item_num, embed_dim=16)]

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
        neg_ratio=5,
        min_item=0,
        seed=0,
    )
    x_train = gen_model_input(df_train, user_profile, "user_id", item_profile, "movie_id", seq_max_len=50)
    x_test = gen_model_input(df_test, user_profile, "user_id", item_profile, "movie_id", seq_max_len=50)
    assert x_train["neg_items"].shape[1] == 5
    all_item = {
        "movie_id": item_profile["movie_id"].to_numpy(),
        "cate_id": item_profile["cate_id"].to_numpy(),
    }
    train_dl, test_dl, item_dl = MatchDataGenerator(x=x_train, seed=0).generate_dataloader(
        x_test, all_item, batch_size=256
    )

    # 多兴趣模型 (MIND), as written
    torch.manual_seed(0)
    model = FacadeMIND(
        user_features=user_features,
        history_features=history_features,
        item_features=item_features,
        neg_item_feature=neg_item_feature,
        max_length=50,
        temperature=1.0,
        interest_num=4,
    )
    trainer = MatchTrainer(
        model=model,
        mode=2,  # list-wise
        optimizer_params={"lr": 0.001},
        n_epoch=10,
        device="cpu",
        model_path=str(tmp_path),
        seed=0,
        verbose=False,
    )
    from zoo.train.advice import TrainingAdvice

    # temperature=1.0 on cosine scores keeps the logits within +-1: the trainer says so, with the fix
    with pytest.warns(TrainingAdvice, match=r"MIND\(temperature=1\).*set temperature=0\.0?5"):
        history = trainer.fit(train_dl)
    assert history[-1]["loss"] < history[0]["loss"]

    # 模型评估
    auc = trainer.evaluate(trainer.model, test_dl)
    assert 0.5 < auc <= 1.0
    user_embeddings = trainer.inference_embedding(model, "user", test_dl, model_path=str(tmp_path))
    item_embeddings = trainer.inference_embedding(model, "item", item_dl, model_path=str(tmp_path))
    assert user_embeddings.shape == (len(x_test["user_id"]), 4, 16)
    assert item_embeddings.shape == (len(all_item["movie_id"]), 16)

    # 向量检索: one user's K interests are K queries; the core merges them into one list.
    index = create_retriever("hnsw")
    index.fit(item_embeddings, ids=all_item["movie_id"])
    per_interest, _ = index.query(user_embeddings[0], topk=10)
    assert per_interest.shape == (4, 10)
    merged, scores = query_interests(index, user_embeddings, topk=10)
    assert merged.shape == (len(x_test["user_id"]), 10) and np.all(np.diff(scores, axis=1) <= 1e-6)
    assert set(merged[0].tolist()) <= set(per_interest.reshape(-1).tolist())
    top50, _ = query_interests(index, user_embeddings, topk=50)
    hits = ranking_metrics(top50, x_test["movie_id"], ks=(50,))["hitrate@50"]
    counts = (
        df_train[df_train["label"] == 1]["movie_id"].value_counts()
        if "label" in df_train
        else df_train["movie_id"].value_counts()
    )
    pop_top = np.tile(counts.index.to_numpy()[:50], (len(x_test["movie_id"]), 1))
    assert hits > ranking_metrics(pop_top, x_test["movie_id"], ks=(50,))["hitrate@50"]

    # 模型保存与加载
    torch.save(model.state_dict(), tmp_path / "model.pth")
    reloaded = MIND(
        user_features,
        history_features,
        item_features,
        neg_item_feature,
        max_length=50,
        temperature=1.0,
        interest_num=4,
    )
    reloaded.load_state_dict(torch.load(tmp_path / "model.pth"))
    torch.testing.assert_close(trainer.inference_embedding(reloaded, "user", test_dl), user_embeddings)
