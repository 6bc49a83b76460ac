"""STAMP: attention and masking, the paper's read-out, Torch-RecHub's form and its session example.

Session-level checks shared with NARM come from ``tests/test_narm.py``.
"""

from __future__ import annotations

import pytest
import torch

from tests.test_narm import (
    HISTORY,
    VOCAB,
    check_every_position_is_its_prefix,
    check_fit_on_windows_learns,
    check_padding_anywhere_reads_the_same,
    check_save_load,
    history_feature,
    left_padded,
    run_sbr_flow,
)
from zoo.errors import UsageError
from zoo.features import SparseFeature
from zoo.nn.session import causal_keys
from zoo_plugins.stamp.model import STAMP


def make_model(**kwargs) -> STAMP:
    torch.manual_seed(0)
    kwargs.setdefault("emb_std", 0.1)  # the paper's 0.002 makes every vector near zero at the start
    return STAMP(history_feature(), 0.3, **kwargs).eval()


def test_torch_rechub_constructor_and_facade():
    from zoo.models import STAMP as Facade

    model = Facade(history_feature(), 0.05, 0.002)
    assert isinstance(model, STAMP) and model.registry_name == "stamp"
    assert model.item_id_feature == "item_id" and model.training_data == "sequences"
    assert model.embedding.table(HISTORY) is model.embedding.table("item_id")
    std = model.embedding.table("item_id").weight.std().item()
    assert 0.001 < std < 0.004  # emb_std
    assert 0.03 < model.w_1.weight.std().item() < 0.07  # weight_std
    with_item = STAMP(history_feature(), 0.05, 0.002, SparseFeature("movie_id", VOCAB, 8))
    assert with_item.item_id_feature == "movie_id"


def test_shapes_and_full_scores():
    model = make_model()
    hist = left_padded()
    user = model.user_tower({HISTORY: hist})
    assert user.shape == (6, 8) and torch.isfinite(user).all()
    scores = model({HISTORY: hist})
    assert scores.shape == (6, VOCAB) and bool(torch.isinf(scores[:, 0]).all())
    torch.testing.assert_close(scores[:, 1:], user @ model.item_vectors(torch.arange(1, VOCAB)).T)


def test_attention_weights_sum_to_one_over_real_earlier_items():
    model = make_model()
    values, mask = model._read({HISTORY: left_padded()})
    positions = torch.arange(7).expand(6, 7)  # a query at every position
    last, mean = values, values.cumsum(1) / mask.cumsum(1).clamp_min(1).unsqueeze(-1)
    weights = model.attention(values, mask, positions, last, mean)
    allowed = causal_keys(mask, positions)
    torch.testing.assert_close(weights[mask].sum(-1), torch.ones(int(mask.sum())))
    assert bool((weights[~allowed] == 0).all()) and bool((weights[allowed] > 0).all())
    assert bool((weights[~mask] == 0).all())


def test_user_vector_is_the_papers_trilinear_read_out():
    """Exact reference for one session: m_s, x_t, the attention memory m_a, h_s * h_t."""
    model = make_model()
    items = left_padded()[1]
    x = model.embedding.table(HISTORY).weight[items[items != 0]]
    m_s, x_t = x.mean(0), x[-1]
    scores = model.w_0(torch.sigmoid(model.w_1(x) + model.w_2(x_t) + model.w_3(m_s))).squeeze(-1)
    m_a = (torch.softmax(scores, 0).unsqueeze(-1) * x).sum(0) + m_s
    expected = torch.tanh(model.f_s(m_a)) * torch.tanh(model.f_t(x_t))
    torch.testing.assert_close(
        model.user_tower({HISTORY: items.unsqueeze(0)})[0], expected, atol=1e-6, rtol=1e-5
    )


def test_padding_anywhere_reads_the_same():
    check_padding_anywhere_reads_the_same(make_model())


def test_every_position_is_its_prefix():
    check_every_position_is_its_prefix(make_model())


def test_the_last_click_matters_most():
    """Changing the last item changes the user vector; the empty session gives a finite zero-input one."""
    model = make_model()
    hist = left_padded()
    changed = hist.clone()
    changed[0, -1] = changed[0, -1] % (VOCAB - 1) + 1
    assert not torch.allclose(model.user_tower({HISTORY: changed})[0], model.user_tower({HISTORY: hist})[0])
    empty = model.user_tower({HISTORY: torch.zeros(2, 5, dtype=torch.long)})
    assert torch.isfinite(empty).all()
    torch.testing.assert_close(empty[0], empty[1])


def test_torch_rechub_session_example_learns_the_pattern(tmp_path):
    metrics = run_sbr_flow(lambda feature: STAMP(feature, 0.05, 0.05), tmp_path, epochs=8, negatives="full")
    assert metrics["Hit@3"] > 0.8, metrics


def test_torch_rechub_session_example_trains_with_the_default_negatives(tmp_path):
    metrics = run_sbr_flow(lambda feature: STAMP(feature, 0.05, 0.05), tmp_path, epochs=3)
    assert metrics["Hit@3"] > 0.3, metrics


def test_fit_on_windows_learns_the_sequences(tiny_interactions):
    def build(schema):
        return STAMP.from_schema(schema, embed_dim=16, emb_std=0.05, normalize=True, temperature=0.1)

    check_fit_on_windows_learns(build, tiny_interactions)


def test_save_load_round_trip(tmp_path):
    loaded = check_save_load(make_model(temperature=0.1, normalize=True, dropout=0.2), tmp_path)
    assert loaded.temperature == 0.1 and loaded.normalize and loaded.dropout.p == 0.2


def test_constructor_errors_are_clear():
    with pytest.raises(UsageError, match="SequenceFeature"):
        STAMP(SparseFeature(HISTORY, VOCAB, 8), 0.05, 0.002)
    with pytest.raises(UsageError, match="emb_std"):
        STAMP(history_feature(), 0.05, 0.0)
    with pytest.raises(UsageError, match="dropout"):
        STAMP(history_feature(), 0.05, 0.002, dropout=1.0)
    with pytest.raises(UsageError, match="tied"):
        STAMP(history_feature(), 0.05, 0.002, SparseFeature("item_id", VOCAB, 4))


def test_preset_and_registry():
    from zoo.registry import default_registry

    spec = default_registry().model("stamp")
    assert (spec.family, set(spec.train_modes), spec.training_data) == ("sequential", {1, 2}, "sequences")
    assert (spec.trainer_defaults["negatives"], spec.trainer_defaults["valid_metric"]) == (
        "full",
        "hitrate@10",
    )
    assert "recbole-seq" in spec.description
