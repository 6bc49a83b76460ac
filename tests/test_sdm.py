"""SDM: the long/short split of the history, the gate (a convex mix of the two interests), padding
masked in every branch (LSTM included), side information read through the item table, save/load and
training through the pipeline."""

from __future__ import annotations

import pytest
import torch

from zoo.errors import UsageError
from zoo.features import SequenceFeature, SparseFeature
from zoo.models import load_model
from zoo_plugins.sdm.model import SDM, MaskedLSTM, right_aligned

ITEMS, DIM, SHORT, LONG = 30, 8, 3, 6
GENRES = 5


def make_model(seed: int = 0, **kwargs) -> SDM:
    torch.manual_seed(seed)
    history = SequenceFeature("hist_item_id", ITEMS, DIM, pooling=None, shared_with="item_id")
    user = [SparseFeature("user_id", 20, DIM), SparseFeature("gender", 3, DIM), history]
    items = [SparseFeature("item_id", ITEMS, DIM), SequenceFeature("genres", GENRES, DIM, pooling="mean")]
    kwargs.setdefault("short_length", SHORT)
    kwargs.setdefault("long_length", LONG)
    kwargs.setdefault("num_heads", 2)
    model = SDM(user, [history], items, temperature=0.1, **kwargs)
    genres = torch.randint(1, GENRES, (ITEMS, 2), generator=torch.Generator().manual_seed(3))
    genres[0] = 0
    model.set_item_table({"genres": genres})
    return model.eval()


def make_batch(rows: int = 5, length: int = SHORT + LONG, seed: int = 1) -> dict[str, torch.Tensor]:
    """Left-padded histories: row 0 full, then shorter ones; the last row only short-term items."""
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, ITEMS, (rows, length), generator=generator)
    for row in range(rows):
        ids[row, : row * 2] = 0
    ids[-1, : length - 2] = 0
    return {
        "hist_item_id": ids,
        "user_id": torch.arange(1, rows + 1),
        "gender": torch.ones(rows, dtype=torch.long),
        "item_id": torch.arange(1, rows + 1),
    }


# -- helpers ------------------------------------------------------------------------------------------
def test_right_aligned_cuts_and_pads():
    ids = torch.tensor([[0, 0, 3, 4, 5], [6, 7, 0, 0, 0]])
    assert right_aligned(ids, 3).tolist() == [[3, 4, 5], [0, 6, 7]]
    assert right_aligned(ids, 7).tolist() == [[0, 0, 0, 0, 3, 4, 5], [0, 0, 0, 0, 0, 6, 7]]


def test_masked_lstm_reads_only_the_real_items():
    torch.manual_seed(0)
    lstm = MaskedLSTM(4, 6)
    values = torch.randn(2, 5, 4)
    mask = torch.tensor([[False, False, True, True, True], [True, True, True, True, True]])
    outputs, last = lstm(values, mask)
    alone, _ = lstm.gru(values[:1, 2:])  # the first row's three items without padding
    torch.testing.assert_close(outputs[0, 2:], alone[0])
    torch.testing.assert_close(last[0], alone[0, -1])
    assert torch.equal(outputs[0, :2], torch.zeros(2, 6))


# -- the two interests and the gate ----------------------------------------------------------------
def test_gate_output_is_a_convex_mix_of_long_and_short_term():
    model = make_model()
    with torch.no_grad():
        fused, gate, short, long = model.fusion(make_batch())
    assert ((gate > 0) & (gate < 1)).all()
    torch.testing.assert_close(fused, gate * short + (1 - gate) * long)
    low, high = torch.minimum(short, long), torch.maximum(short, long)
    assert ((fused >= low - 1e-6) & (fused <= high + 1e-6)).all()
    user = model.user_tower(make_batch())
    torch.testing.assert_close(user, torch.nn.functional.normalize(fused, dim=-1))


def test_the_window_splits_the_history_into_long_and_short_term():
    model = make_model()
    batch = make_batch()
    long_ids, short_ids = model.windows(batch)
    assert long_ids.shape == (5, LONG) and short_ids.shape == (5, SHORT)
    assert torch.equal(short_ids[0], batch["hist_item_id"][0, -SHORT:])
    assert torch.equal(long_ids[0], batch["hist_item_id"][0, :LONG])
    with torch.no_grad():
        _, _, short, long = model.fusion(batch)
        changed = dict(batch)
        changed["hist_item_id"] = batch["hist_item_id"].clone()
        changed["hist_item_id"][0, 0] = changed["hist_item_id"][0, 0] % (ITEMS - 1) + 1  # a long-term item
        _, _, short2, long2 = model.fusion(changed)
    assert torch.equal(short2, short) and not torch.allclose(long2[0], long[0])
    torch.testing.assert_close(long2[1:], long[1:])


def test_users_without_long_term_history_and_long_length_zero():
    model = make_model()
    batch = make_batch()
    with torch.no_grad():
        _, _, _, long = model.fusion(batch)
        none = make_model(long_length=0)
        user = none.user_tower(batch)
    # the last row has only short-term items: its long-term interest is the one of an empty window
    empty = torch.tanh(model.long_output.bias)
    torch.testing.assert_close(long[-1], empty)
    assert user.shape == (5, DIM) and torch.isfinite(user).all()


# -- padding --------------------------------------------------------------------------------------
def test_padding_changes_nothing_in_any_branch():
    model = make_model()
    batch = make_batch()
    with torch.no_grad():
        before = model.fusion(batch)
        model.embedding.table("item_id").weight[0] += 4.0
        model.embedding.table("genres").weight[0] += 4.0
        after = model.fusion(batch)
        # the same histories with fewer padding columns
        cut = dict(batch, hist_item_id=batch["hist_item_id"][:, 4:])
        shorter = model.fusion(cut)
    for a, b in zip(after, before, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    padded = (batch["hist_item_id"][:, :4] == 0).all(1)
    torch.testing.assert_close(shorter[0][padded], after[0][padded], rtol=1e-5, atol=1e-6)


def test_side_information_of_history_items_is_read():
    model = make_model()
    batch = make_batch()
    with torch.no_grad():
        before = model.user_tower(batch)
        table = model.item_table()["genres"].clone()
        table[batch["hist_item_id"][0, -1]] = torch.tensor([4, 0])
        model.set_item_table({"genres": table})
        after = model.user_tower(batch)
    assert not torch.allclose(after[0], before[0])
    plain = make_model(side_information=False)
    assert plain.session_input.in_features == DIM and model.session_input.in_features == 2 * DIM


def test_bad_settings_are_refused():
    with pytest.raises(UsageError, match="short_length"):
        make_model(short_length=0)
    with pytest.raises(UsageError, match="num_heads"):
        make_model(num_heads=3)
    with pytest.raises(UsageError, match="dropout"):
        make_model(dropout=1.0)


def test_save_load_round_trip(tmp_path):
    model = make_model()
    folder = model.save(tmp_path / "sdm")
    loaded = load_model(folder).eval()
    batch = make_batch()
    with torch.no_grad():
        torch.testing.assert_close(loaded.user_tower(batch), model.user_tower(batch), rtol=0, atol=0)
    assert (loaded.short_length, loaded.long_length) == (SHORT, LONG)


def test_from_schema_splits_the_protocol_history():
    from zoo.features import Schema

    schema = Schema(
        user_vocab=10, item_vocab=20, user_side={"age": 4}, item_side={"genre": 5}, history_len=30
    )
    model = SDM.from_schema(schema, embed_dim=8, short_length=4, num_heads=2)
    assert (model.short_length, model.long_length) == (4, 26)
    assert model.profile_names == ["user_id", "age"] and model.side_names == ["genre"]


def test_pipeline_beats_popularity():
    from zoo.pipeline import RunConfig, embed, evaluate_exact, evaluate_popularity, prepare, train

    config = RunConfig(
        model="sdm",
        dataset="synthetic",
        dataset_options={"users": 300, "items": 100, "categories": 6, "mean_length": 20, "seed": 3},
        device="cpu",
        params={"embed_dim": 16, "epochs": 4, "batch_size": 128},
        seed=0,
        ks=(10,),
        save=False,
    )
    test = embed(train(prepare(config)))
    model = evaluate_exact(test, (10,)).metrics["hitrate@10"]
    popularity = evaluate_popularity(test, (10,)).metrics["hitrate@10"]
    assert model > 1.2 * popularity
