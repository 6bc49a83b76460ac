"""DSSM's short-term input: the mean of the most recent history items, padding never pooled."""

from __future__ import annotations

import torch

from zoo.features import SequenceFeature, SparseFeature
from zoo_plugins.dssm.model import DSSM


def model(recent: int) -> DSSM:
    torch.manual_seed(0)
    return DSSM(
        [SparseFeature("user_id", 10, 4), SequenceFeature("hist", 30, 4, shared_with="item_id")],
        [SparseFeature("item_id", 30, 4)],
        user_params={"dims": [8]},
        item_params={"dims": [8]},
        recent_history=recent,
    ).eval()


def test_recent_items_change_the_user_vector_and_old_ones_less():
    m = model(2)
    base = {"user_id": torch.tensor([1]), "hist": torch.tensor([[0, 0, 5, 6, 7, 8]])}
    recent_changed = {"user_id": base["user_id"], "hist": torch.tensor([[0, 0, 5, 6, 7, 9]])}
    old_changed = {"user_id": base["user_id"], "hist": torch.tensor([[0, 0, 4, 6, 7, 8]])}
    v = m.user_tower(base)
    # Swapping the most recent item moves the vector more than swapping an old one (it enters twice).
    assert (m.user_tower(recent_changed) - v).norm() > (m.user_tower(old_changed) - v).norm()


def test_recent_window_ignores_padding():
    m = model(3)
    short = {"user_id": torch.tensor([1]), "hist": torch.tensor([[0, 0, 0, 0, 0, 8]])}
    with torch.no_grad():
        before = m.user_tower(short)
        m.embedding.table("item_id").weight[0].add_(5.0)
        torch.testing.assert_close(m.user_tower(short), before)


def test_recent_history_is_saved_with_the_config(tmp_path):
    from zoo.models import load_model

    m = model(2)
    m.save(tmp_path / "m")
    loaded = load_model(tmp_path / "m").eval()
    assert loaded.recent_history == 2
    batch = {"user_id": torch.tensor([1, 2]), "hist": torch.tensor([[0, 3, 5, 6], [1, 2, 3, 4]])}
    torch.testing.assert_close(loaded.user_tower(batch), m.user_tower(batch))
