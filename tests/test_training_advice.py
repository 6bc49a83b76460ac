"""The once-only warning for a temperature that keeps cosine logits nearly flat."""

from __future__ import annotations

import warnings

import pytest

from zoo.train import advice
from zoo.train.advice import TrainingAdvice, flat_softmax_advice, warn_once


class Cosine:
    cosine_scores = True

    def __init__(self, temperature: float) -> None:
        self.temperature = temperature


class Dot(Cosine):
    cosine_scores = False


def test_advice_only_for_cosine_scores_at_a_high_temperature():
    assert flat_softmax_advice(Cosine(0.05)) is None
    assert flat_softmax_advice(Cosine(advice.FLAT_TEMPERATURE)) is None
    assert flat_softmax_advice(Dot(1.0)) is None  # unnormalised scores can grow past +-1
    line = flat_softmax_advice(Cosine(1.0))
    assert line is not None and "±1" in line and "set temperature=0.05" in line


def test_warned_once_per_class_and_temperature(monkeypatch):
    monkeypatch.setattr(advice, "_warned", set())
    with pytest.warns(TrainingAdvice) as caught:
        warn_once(Cosine(1.0))
        warn_once(Cosine(1.0))
        warn_once(Cosine(0.5))
    assert len(caught) == 2
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warn_once(Cosine(1.0))  # already said
        warn_once(Cosine(0.05))  # nothing to say


def test_built_in_models_declare_cosine_scores():
    """DSSM normalises both towers; GRU4Rec only with normalize=True."""
    from zoo.features import SequenceFeature, SparseFeature
    from zoo.models import DSSM, GRU4Rec

    user = [SparseFeature("user_id", 10, 8)]
    items = [SparseFeature("item_id", 20, 8)]
    assert DSSM(user, items, temperature=1.0).cosine_scores
    history = [SequenceFeature("hist_item_id", 20, 8, pooling=None, shared_with="item_id")]
    assert not GRU4Rec(user, history, items).cosine_scores
    assert GRU4Rec(user, history, items, normalize=True).cosine_scores
