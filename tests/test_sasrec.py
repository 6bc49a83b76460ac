"""SASRec: causal self-attention with masked padding, per-position training, persistence, zoo run."""

from __future__ import annotations

import math

import pytest
import torch

from zoo.data.match import NEXT_ITEM, MatchData
from zoo.data.protocol import get_protocol
from zoo.errors import UsageError
from zoo.features import SequenceFeature, SparseFeature
from zoo.models import RecallModel, load_model
from zoo.nn.sequence import CausalTransformer
from zoo.train.trainer import MatchTrainer
from zoo_plugins.sasrec.model import SASRec

VOCAB = 30


def make_model(side: bool = False, item_side: bool = False, **kwargs) -> SASRec:
    torch.manual_seed(0)
    history = SequenceFeature("hist_movie_id", VOCAB, 8, pooling=None, shared_with="movie_id")
    user = [SparseFeature("user_id", 20, 8), history] if side else [history]
    items = [SparseFeature("movie_id", VOCAB, 8)] + ([SparseFeature("cate_id", 5, 4)] if item_side else [])
    kwargs.setdefault("max_length", 10)
    kwargs.setdefault("num_heads", 2)
    return SASRec(user, [history], items, **kwargs)


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


def from_data(data: MatchData, **params) -> SASRec:
    torch.manual_seed(0)
    params = {"embed_dim": 16, "num_blocks": 1, "num_heads": 2, "dropout": 0.0, **params}
    model = SASRec.from_schema(data.schema, **params)
    model.set_item_table(data.item_table)
    return model


# -- towers and masking ------------------------------------------------------------------------------
@pytest.mark.parametrize("side, item_side", [(False, False), (True, True)])
def test_output_shapes(side, item_side):
    model = make_model(side=side, item_side=item_side).eval()
    batch = make_batch()
    assert model.user_tower(batch).shape == (6, 8)
    assert model.item_tower(batch).shape == (6, 8)
    outputs, mask = model.sequence_outputs(batch)
    assert outputs.shape == (6, 7, 8) and mask.shape == (6, 7)


def test_item_embedding_is_tied_with_the_input():
    model = make_model().eval()
    table = model.embedding.table("movie_id")
    assert model.embedding.table("hist_movie_id") is table
    ids = torch.tensor([3, 4, 5])
    torch.testing.assert_close(model.item_vectors(ids), table.weight[ids])


def test_padding_is_masked_in_attention():
    model = make_model(side=True).eval()
    batch = make_batch()
    before = model.user_tower(batch)
    outputs_before, mask = model.sequence_outputs(batch)
    with torch.no_grad():
        model.embedding.table("movie_id").weight[0].add_(5.0)
    torch.testing.assert_close(model.user_tower(batch), before, rtol=0, atol=0)
    # Each row alone, without any padding, gives the same vector: padded keys are never attended to.
    for row in range(4):
        items = batch["hist_movie_id"][row]
        alone = {"hist_movie_id": items[items != 0].unsqueeze(0), "user_id": batch["user_id"][row : row + 1]}
        torch.testing.assert_close(model.user_tower(alone)[0], before[row], atol=1e-5, rtol=1e-5)
    # More left padding: the same outputs at the real positions.
    longer = dict(
        batch, hist_movie_id=torch.cat([torch.zeros(6, 3, dtype=torch.long), batch["hist_movie_id"]], 1)
    )
    after, _ = model.sequence_outputs(longer)
    torch.testing.assert_close(after[:, 3:][mask], outputs_before[mask], atol=1e-5, rtol=1e-5)


def test_all_padding_rows_give_finite_vectors_in_training_and_inference():
    model = make_model()
    batch = {"hist_movie_id": torch.zeros(3, 5, dtype=torch.long), "movie_id": torch.tensor([1, 2, 3])}
    for train in (True, False):
        model.train(train)
        assert torch.isfinite(model.user_tower(batch)).all()
        assert torch.isfinite(model.sequence_outputs(batch)[0]).all()
    model.eval()
    user = model.user_tower(batch)
    torch.testing.assert_close(user[0], user[1])


def test_user_vector_depends_on_the_order_of_the_history():
    model = make_model().eval()
    batch = make_batch()
    reordered = batch["hist_movie_id"].clone()
    reordered[0] = batch["hist_movie_id"][0].flip(0)
    assert not torch.allclose(
        model.user_tower(dict(batch, hist_movie_id=reordered))[0], model.user_tower(batch)[0]
    )


def test_outputs_are_causal():
    model = make_model(num_blocks=3).eval()
    batch = make_batch()
    outputs, mask = model.sequence_outputs(batch)
    changed = batch["hist_movie_id"].clone()
    changed[:, 5:] = torch.where(changed[:, 5:] > 0, (changed[:, 5:] % (VOCAB - 1)) + 1, 0)
    after, _ = model.sequence_outputs(dict(batch, hist_movie_id=changed))
    torch.testing.assert_close(after[:, :5], outputs[:, :5], rtol=0, atol=0)
    assert not torch.allclose(after[:, 5:][mask[:, 5:]], outputs[:, 5:][mask[:, 5:]])
    torch.testing.assert_close(outputs[:4, -1], model.user_tower(batch)[:4])


def test_long_histories_keep_the_most_recent_max_length_items():
    model = make_model(max_length=4).eval()
    batch = make_batch()
    torch.testing.assert_close(
        model.user_tower(batch), model.user_tower(dict(batch, hist_movie_id=batch["hist_movie_id"][:, -4:]))
    )


def test_attention_mask():
    mask = torch.tensor([[False, True, True]])
    allowed = CausalTransformer.attention_mask(mask)[0, 0]
    expected = torch.tensor([[True, False, False], [False, True, False], [False, True, True]])
    assert torch.equal(allowed, expected)


# -- training ------------------------------------------------------------------------------------------
def test_from_schema_uses_the_protocol_history_length(data):
    model = from_data(data)
    assert model.encoder.max_length == data.schema.history_len
    assert from_data(data, max_length=20).encoder.max_length == 20


def test_train_outputs_on_windows_give_one_row_per_target(data):
    model = from_data(data)
    batch = data.sequence_batch(data.sequence_windows()[:16])
    out = model.train_outputs(batch)
    targets = batch[NEXT_ITEM]
    assert out.user.shape == (int((targets != 0).sum()), 16)
    assert torch.equal(out.pos_ids, targets[targets != 0])
    assert out.valid is not None and bool(out.valid.all())
    samples = data.batch(data.train_positions[:10])
    per_sample = model.train_outputs(samples)
    assert per_sample.user.shape == (10, 16) and torch.equal(per_sample.pos_ids, samples["item_id"])


def test_full_softmax_is_cross_entropy_over_every_position(data):
    model = from_data(data, temperature=0.5).eval()
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
    "negatives, extra", [("full", {}), ("shared", {"num_negatives": 32}), ("uniform", {"num_negatives": 16})]
)
def test_each_loss_lowers_the_loss_on_a_fixed_batch(data, negatives, extra):
    model = from_data(data)
    trainer = MatchTrainer(
        model,
        mode=2,
        negatives=negatives,
        optimizer_params={"lr": 0.01},
        item_counts=data.item_counts,
        model_path=None,
        seed=0,
        verbose=False,
        **extra,
    )
    batch = data.sequence_batch(data.sequence_windows()[:32])

    def loss_on_fixed_negatives() -> float:
        trainer.generator.manual_seed(123)
        with torch.no_grad():
            return float(trainer.compute_loss(batch))

    first = loss_on_fixed_negatives()
    for _ in range(30):
        loss = trainer.compute_loss(batch)
        trainer.optimizer.zero_grad()
        loss.backward()
        trainer.optimizer.step()
    assert math.isfinite(first)
    assert loss_on_fixed_negatives() < 0.9 * first


# -- persistence ---------------------------------------------------------------------------------------
def test_save_load_round_trip_gives_identical_vectors(tmp_path):
    model = make_model(side=True, item_side=True, activation="gelu", ffn_dim=12).eval()
    batch = make_batch()
    model.remember_items(batch)
    model.save(tmp_path / "m")
    loaded = load_model(tmp_path / "m")
    assert isinstance(loaded, SASRec) and isinstance(loaded, RecallModel)
    loaded.eval()
    torch.testing.assert_close(loaded.user_tower(batch), model.user_tower(batch), rtol=0, atol=0)
    torch.testing.assert_close(
        loaded.item_vectors(batch["movie_id"]), model.item_vectors(batch["movie_id"]), rtol=0, atol=0
    )
    assert loaded.encoder.max_length == 10


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
    history = SequenceFeature("h", 10, 8, pooling=None)
    items = [SparseFeature("i", 10, 8)]
    with pytest.raises(UsageError, match="num_heads"):
        SASRec([history], [history], items, num_heads=3)
    with pytest.raises(UsageError, match="num_blocks"):
        SASRec([history], [history], items, num_blocks=0)
    with pytest.raises(UsageError, match="dropout"):
        SASRec([history], [history], items, dropout=1.5)
    with pytest.raises(UsageError, match="history_features"):
        SASRec([SparseFeature("u", 5, 8)], None, items)


def test_preset_and_registry():
    from zoo.models import SASRec as Facade
    from zoo.registry import default_registry

    spec = default_registry().model("sasrec")
    assert issubclass(Facade, SASRec) and Facade.spec == spec
    assert (spec.family, spec.train_modes, spec.training_data) == ("sequential", (2,), "sequences")
    trainer = spec.trainer_defaults
    assert (trainer["negatives"], trainer["valid_metric"]) == ("full", "hitrate@10")


def test_zoo_run_beats_popularity_on_synthetic():
    from zoo.pipeline import RunConfig, run

    report = run(
        RunConfig(
            model="sasrec",
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
