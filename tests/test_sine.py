"""SINE: exactly top-L prototypes activated, padding masked, the two read-outs, Torch-RecHub's
constructor form (names, sizes, ``mode``), save/load and training through the pipeline."""

from __future__ import annotations

import pytest
import torch

from zoo.errors import UsageError
from zoo.features import SequenceFeature, SparseFeature
from zoo.models import SINE, load_model

ITEMS, DIM, LENGTH = 40, 8, 12


def rechub_model(seed: int = 0, **kwargs) -> SINE:
    """SINE as Torch-RecHub's run_ml_sine.py builds it (positional arguments, names as strings)."""
    torch.manual_seed(seed)
    num_concept = kwargs.pop("num_concept", 10)
    num_intention = kwargs.pop("num_intention", 3)
    return SINE(
        ["hist_movie_id"],
        ["movie_id"],
        ["neg_items"],
        ITEMS,
        DIM,
        16,
        num_concept,
        num_intention,
        LENGTH,
        temperature=kwargs.pop("temperature", 0.1),
        **kwargs,
    )


def histories(rows: int = 6, seed: int = 1) -> torch.Tensor:
    """Left-padded histories of several lengths (row 0 full, the last row a single item)."""
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, ITEMS, (rows, LENGTH), generator=generator)
    for row in range(rows):
        ids[row, : row * 2] = 0
    ids[-1, :-1] = 0
    return ids


def batch(ids: torch.Tensor) -> dict[str, torch.Tensor]:
    return {"hist_movie_id": ids, "movie_id": torch.arange(1, ids.shape[0] + 1)}


# -- concept activation -------------------------------------------------------------------------------
@pytest.mark.parametrize("num_intention", [1, 3, 5])
def test_exactly_top_l_prototypes_are_activated(num_intention):
    model = rechub_model(num_intention=num_intention).eval()
    ids = histories()
    with torch.no_grad():
        parts = model.encode(batch(ids))
        values, mask = model.inputs.sequence(batch(ids))
        z = (model.sequence_attention.attention(values, mask)[:, : model.num_heads] @ values).mean(1)
    chosen = parts["concepts"]
    assert chosen.shape == (ids.shape[0], num_intention)
    for row in range(ids.shape[0]):  # L distinct prototypes, the L best-scoring ones
        assert len(set(chosen[row].tolist())) == num_intention
        expected = set((z[row] @ model.concepts.T).topk(num_intention).indices.tolist())
        assert set(chosen[row].tolist()) == expected
    # the assignment distributes each position over the L active prototypes only
    assert parts["assignment"].shape == (ids.shape[0], LENGTH, num_intention)
    torch.testing.assert_close(parts["assignment"].sum(-1), torch.ones(ids.shape[0], LENGTH))


def test_inactive_prototypes_get_no_gradient_from_a_user():
    model = rechub_model(num_concept=12, num_intention=2).train()
    ids = histories(rows=1)
    model.encode(batch(ids))["user"].sum().backward()
    chosen = set(model.encode(batch(ids))["concepts"][0].tolist())
    touched = {i for i in range(12) if model.concepts.grad[i].abs().sum() > 0}
    assert touched == chosen


# -- padding ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("readout", ["aggregate", "interests"])
def test_padding_does_not_change_the_user_vector(readout):
    model = rechub_model(readout=readout).eval()
    ids = histories()
    with torch.no_grad():
        before = model.user_tower(batch(ids))
        model.inputs.bank.table("hist_movie_id").weight[0] += 5.0  # what padding positions would read
        after = model.user_tower(batch(ids))
        # a shorter window of the same items (less left padding) gives the same vectors
        cut = {"hist_movie_id": ids[:, 4:], "movie_id": torch.arange(1, 7)}
    torch.testing.assert_close(after, before, rtol=1e-5, atol=1e-6)
    long_rows = (ids[:, :4] == 0).all(1)  # rows whose first 4 columns are padding anyway
    with torch.no_grad():
        shorter = model.user_tower(cut)
    torch.testing.assert_close(shorter[long_rows], before[long_rows], rtol=1e-5, atol=1e-6)


def test_right_padded_histories_read_like_left_padded_ones():
    model = rechub_model().eval()
    ids = histories()
    right = torch.zeros_like(ids)
    for row in range(ids.shape[0]):
        real = ids[row][ids[row] != 0]
        right[row, : real.numel()] = real
    with torch.no_grad():
        torch.testing.assert_close(model.user_tower(batch(right)), model.user_tower(batch(ids)))


# -- read-outs --------------------------------------------------------------------------------------
def test_aggregate_is_the_weighted_sum_of_the_interests():
    model = rechub_model(readout="aggregate").eval()
    with torch.no_grad():
        parts = model.encode(batch(histories()))
        user = model.user_tower(batch(histories()))
    assert model.num_interests == 1 and user.shape == (6, DIM)
    torch.testing.assert_close(parts["weights"].sum(-1), torch.ones(6))
    mixed = (parts["weights"].unsqueeze(-1) * parts["interests"]).sum(1)
    torch.testing.assert_close(user, torch.nn.functional.normalize(mixed, dim=-1))
    torch.testing.assert_close(user.norm(dim=-1), torch.ones(6))


def test_interests_readout_returns_l_vectors():
    model = rechub_model(readout="interests", num_intention=3).eval()
    with torch.no_grad():
        user = model.user_tower(batch(histories()))
    assert model.num_interests == 3 and user.shape == (6, 3, DIM)
    torch.testing.assert_close(user.norm(dim=-1), torch.ones(6, 3))


def test_bad_settings_are_refused():
    with pytest.raises(UsageError, match="num_intention"):
        rechub_model(num_concept=3, num_intention=4)
    with pytest.raises(UsageError, match="readout"):
        rechub_model(readout="mean")
    with pytest.raises(UsageError, match="num_items"):
        SINE(["hist_movie_id"], ["movie_id"], ["neg_items"], None, None, 16, 10, 2, LENGTH)


# -- Torch-RecHub's form ------------------------------------------------------------------------------
def test_rechub_constructor_builds_features_and_modes():
    model = rechub_model()
    assert model.temperature == 0.1 and model.aggregation_temperature == 0.1
    assert model.neg_items_key == "neg_items"
    history = model.history_features[0]
    assert isinstance(history, SequenceFeature) and history.shared_with == "movie_id"
    assert isinstance(model.item_features[0], SparseFeature) and model.item_features[0].vocab_size == ITEMS
    data = batch(histories())
    model.eval()
    model.mode = "user"
    assert model(data).shape == (6, DIM)
    model.mode = "item"
    assert model(data).shape == (6, DIM)
    model.mode = None
    probabilities = model(data)
    assert probabilities.shape == (6,) and ((probabilities > 0) & (probabilities < 1)).all()


def test_rechub_form_trains_with_its_negatives_and_round_trips(tmp_path):
    from zoo.train import MatchTrainer

    model = rechub_model(num_intention=2)
    generator = torch.Generator().manual_seed(0)
    rows = 64
    data = {
        "hist_movie_id": torch.randint(1, ITEMS, (rows, LENGTH), generator=generator),
        "movie_id": torch.randint(1, ITEMS, (rows,), generator=generator),
        "neg_items": torch.randint(1, ITEMS, (rows, 3), generator=generator),
        "label": torch.zeros(rows, dtype=torch.long),
    }
    trainer = MatchTrainer(model, mode=2, optimizer_params={"lr": 0.01}, n_epoch=1, device="cpu")
    with torch.no_grad():
        before = float(trainer.compute_loss(data))
    trainer.train_one_epoch([data] * 10)
    with torch.no_grad():
        after = float(trainer.compute_loss(data))
    assert after < before
    model.eval()
    folder = model.save(tmp_path / "sine")
    loaded = load_model(folder).eval()
    with torch.no_grad():
        torch.testing.assert_close(loaded.user_tower(data), model.user_tower(data), rtol=0, atol=0)
    assert loaded.neg_items_key == "neg_items" and loaded.readout == "aggregate"


# -- through the pipeline -----------------------------------------------------------------------------
@pytest.mark.parametrize("readout", ["aggregate", "interests"])
def test_pipeline_beats_popularity(readout):
    from zoo.pipeline import RunConfig, embed, evaluate_exact, evaluate_popularity, prepare, train

    config = RunConfig(
        model="sine",
        dataset="synthetic",
        dataset_options={"users": 300, "items": 100, "categories": 6, "mean_length": 20, "seed": 3},
        device="cpu",
        params={"embed_dim": 16, "readout": readout, "epochs": 4, "batch_size": 128, "num_concept": 16},
        seed=0,
        ks=(10,),
        save=False,
    )
    test = embed(train(prepare(config)))
    model = evaluate_exact(test, (10,)).metrics["hitrate@10"]
    popularity = evaluate_popularity(test, (10,)).metrics["hitrate@10"]
    assert model > 1.2 * popularity
