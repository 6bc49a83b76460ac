"""ComiRec-SA and ComiRec-DR: shapes, masking, deterministic inference, save/load, hard label-aware
selection, training in every mode, and the pipeline (hnsw merges the K interests in the core)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.test_mind import DIM, ITEMS, LENGTH, features, make_batch
from zoo.errors import UsageError
from zoo.models import load_model
from zoo.nn.interests import CapsuleRouting, SelfAttentiveInterests
from zoo_plugins.comirec_dr.model import ComirecDR
from zoo_plugins.comirec_sa.model import ComirecSA

MODELS = {"comirec-sa": ComirecSA, "comirec-dr": ComirecDR}


def make_model(name: str, seed: int = 0, **kwargs):
    torch.manual_seed(seed)
    user, history, item = features()
    kwargs.setdefault("interest_num", 4)
    kwargs.setdefault("temperature", 0.1)
    return MODELS[name](user, history, item, max_length=LENGTH, **kwargs)


@pytest.fixture(params=sorted(MODELS))
def name(request) -> str:
    return request.param


# -- building blocks ----------------------------------------------------------------------------------
def test_self_attention_weights_cover_only_real_positions():
    torch.manual_seed(0)
    extractor = SelfAttentiveInterests(6, num_interests=3, hidden_dim=12, max_length=7)
    values = torch.randn(4, 7, 6)
    mask = torch.ones(4, 7, dtype=torch.bool)
    mask[:, :3] = False
    mask[3] = False  # an empty history
    weights = extractor.attention(values, mask)
    assert weights.shape == (4, 3, 7)
    torch.testing.assert_close(weights[:3].sum(-1), torch.ones(3, 3))
    assert torch.equal(weights[:, :, :3], torch.zeros(4, 3, 3)) and torch.equal(weights[3], torch.zeros(3, 7))
    out = extractor(values, mask)
    assert torch.isfinite(out).all() and torch.equal(out[3], torch.zeros(3, 6))
    torch.testing.assert_close(out[:3], weights[:3] @ (values[:3] * mask[:3].unsqueeze(-1)))


def test_per_position_routing_starts_position_independent_and_stays_deterministic():
    torch.manual_seed(0)
    routing = CapsuleRouting(6, 6, num_interests=3, max_length=5, bilinear="per_position", init="zeros")
    assert routing.weight.shape == (5, 3, 6, 6)
    assert torch.equal(routing.weight[0], routing.weight[4])
    assert not torch.equal(routing.weight[0, 0], routing.weight[0, 1])
    values, mask = torch.randn(2, 5, 6), torch.tensor([[False, True, True, True, True]] * 2)
    out = routing(values, mask)
    torch.testing.assert_close(routing(values, mask), out, rtol=0, atol=0)
    assert not torch.allclose(out[:, 0], out[:, 1])  # zero initial logits, yet distinct interests


# -- both models ----------------------------------------------------------------------------------------
def test_shapes_one_and_k_interests(name):
    batch = make_batch()
    model = make_model(name).eval()
    user = model.user_tower(batch)
    assert user.shape == (8, 4, DIM) and model.num_interests == 4
    torch.testing.assert_close(user.norm(dim=-1), torch.ones(8, 4))
    assert model.item_tower(batch).shape == (8, DIM)
    single = make_model(name, interest_num=1).eval()
    assert single.user_tower(batch).shape == (8, DIM)


def test_padding_is_masked(name):
    model = make_model(name).eval()
    batch = make_batch()
    before = model.user_tower(batch)
    with torch.no_grad():
        model.inputs.bank.table("movie_id").weight[0] += 5.0
    torch.testing.assert_close(model.user_tower(batch), before, rtol=0, atol=1e-6)
    hist = batch["hist_movie_id"]
    order = torch.argsort((hist == 0).to(torch.int8), dim=1, stable=True)
    post = dict(batch, hist_movie_id=hist.gather(1, order))  # post-padding: the same items, right-aligned
    torch.testing.assert_close(model.user_tower(post), before, rtol=0, atol=1e-6)
    longer = dict(batch, hist_movie_id=torch.cat([torch.zeros(8, 4, dtype=torch.long), hist], dim=1))
    torch.testing.assert_close(model.user_tower(longer), before, rtol=0, atol=1e-6)
    changed = dict(batch, hist_movie_id=hist.clone())
    changed["hist_movie_id"][:, -1] = (hist[:, -1] - 2 + 1) % (ITEMS - 2) + 2
    assert not torch.allclose(model.user_tower(changed), before)


def test_inference_is_deterministic_and_survives_save_load(name, tmp_path):
    model = make_model(name).eval()
    batch = make_batch()
    first = model.user_tower(batch)
    torch.testing.assert_close(model.user_tower(batch), first, rtol=0, atol=0)
    model.save(tmp_path / "m")
    loaded = load_model(tmp_path / "m").eval()
    assert isinstance(loaded, type(model)) and loaded.registry_name == model.registry_name == name
    torch.testing.assert_close(loaded.user_tower(batch), first, rtol=0, atol=0)
    torch.testing.assert_close(
        loaded.item_vectors(batch["movie_id"]), model.item_vectors(batch["movie_id"]), rtol=0, atol=0
    )
    torch.save(model.state_dict(), tmp_path / "model.pth")
    other = make_model(name, seed=99).eval()
    other.load_state_dict(torch.load(tmp_path / "model.pth", weights_only=True))
    torch.testing.assert_close(other.user_tower(batch), first, rtol=0, atol=0)


def test_training_selects_the_closest_interest_and_gradients_flow(name):
    model = make_model(name).train()
    batch = make_batch()
    user = model.user_tower(batch)
    target = model.item_tower(batch)
    closest = (user * target.unsqueeze(1)).sum(-1).argmax(-1)
    selected = model.select_interest(user, target)
    torch.testing.assert_close(selected, user[torch.arange(8), closest], rtol=0, atol=0)
    selected.mul(target).sum().backward()
    extractor = model.extractor.hidden.weight if name == "comirec-sa" else model.routing.weight
    for parameter in (extractor, model.inputs.bank.table("movie_id").weight):
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0


@pytest.mark.parametrize("mode, negatives", [(0, "uniform"), (1, "uniform"), (2, "inbatch"), (2, "mixed")])
def test_each_mode_lowers_the_loss_on_a_fixed_batch(name, mode, negatives):
    from zoo.train.trainer import MatchTrainer

    model = make_model(name, temperature=0.2)
    batch = make_batch(n=32, lengths=[LENGTH - (i % 6) for i in range(32)])
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
        item_counts=np.ones(ITEMS),
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


def test_profile_option_reads_the_user_features(name):
    plain = make_model(name).eval()
    with_profile = make_model(name, profile=True, profile_dims=[16]).eval()
    batch = make_batch()
    other_user = dict(batch, user_id=(batch["user_id"] % 18) + 1)
    torch.testing.assert_close(plain.user_tower(other_user), plain.user_tower(batch))  # history only
    assert not torch.allclose(with_profile.user_tower(other_user), with_profile.user_tower(batch))


def test_profile_recent_history_adds_the_short_term_mean(name, tmp_path):
    with_profile = make_model(name, profile=True, profile_dims=[16])
    with_recent = make_model(name, profile=True, profile_dims=[16], recent_history=2).eval()
    assert with_recent.inputs.profile_dim == with_profile.inputs.profile_dim + DIM
    batch = make_batch(lengths=[LENGTH] * 8)
    older = batch["hist_movie_id"].clone()
    older[:, 0] = (older[:, 0] % (ITEMS - 2)) + 1  # change the oldest item only: history mean moves
    vectors = with_recent.user_tower(batch)
    assert not torch.allclose(with_recent.user_tower(dict(batch, hist_movie_id=older)), vectors)
    with_recent.save(tmp_path / "m")
    torch.testing.assert_close(load_model(tmp_path / "m").eval().user_tower(batch), vectors)
    with pytest.raises(UsageError, match="recent_history"):
        make_model(name, profile=True, recent_history=LENGTH + 1)


def test_comirec_sa_positions_matter_and_can_be_switched_off():
    batch = make_batch(lengths=[LENGTH] * 8)
    reversed_batch = dict(batch, hist_movie_id=batch["hist_movie_id"].flip(1))
    positional = make_model("comirec-sa").eval()
    assert not torch.allclose(positional.user_tower(reversed_batch), positional.user_tower(batch))
    plain = make_model("comirec-sa", positional=False).eval()
    torch.testing.assert_close(plain.user_tower(reversed_batch), plain.user_tower(batch))
    attention = positional.attention(batch)
    torch.testing.assert_close(attention.sum(-1), torch.ones(8, 4))


def test_comirec_dr_refuses_identical_capsules():
    user, history, item = features()
    with pytest.raises(UsageError, match="identical"):
        ComirecDR(user, history, item, bilinear="shared", routing_init="zeros")
    shared = ComirecDR(
        user, history, item, max_length=LENGTH, bilinear="shared", routing_init="normal"
    ).eval()
    assert shared.user_tower(make_batch()).shape == (8, 4, DIM)


SYNTHETIC = {"users": 500, "items": 200, "categories": 10, "mean_length": 20, "seed": 3}


@pytest.mark.parametrize("model", sorted(MODELS))
def test_pipeline_beats_popularity_and_hnsw_merges_interests(model):
    from zoo.pipeline import RunConfig, run

    report = run(
        RunConfig(
            model=model,
            retriever="hnsw",
            device="cpu",
            epochs=3,
            save=False,
            dataset_options=dict(SYNTHETIC),
            params={
                "embed_dim": 16,
                "batch_size": 128,
                "lr": 0.001,
            },  # the presets' lr is for 2048-row batches
        )
    )
    exact, popularity = report.metrics["exact"], report.metrics["popularity"]
    assert exact["hitrate@10"] > 1.5 * popularity["hitrate@10"]
    assert exact["hitrate@50"] > popularity["hitrate@50"]
    assert report.retriever["recall_vs_exact"]["recall@10"] >= 0.9
    assert report.retriever["recall_vs_exact"]["recall@50"] >= 0.9
