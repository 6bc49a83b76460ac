"""Warnings about settings that train, but train badly: said once, with the fix.

A model whose scores are cosine similarities (L2-normalised towers, ``RecallModel.cosine_scores``)
has logits in ``[-1 / temperature, 1 / temperature]``. At ``temperature=1.0`` (the seed tutorial's
GRU4Rec and MIND sections) a softmax over thousands of items can then move the positive's probability
only by a factor of ``e ** 2`` over any other item, so training barely separates items.
"""

from __future__ import annotations

import warnings
from typing import Any

#: above this temperature, cosine logits span less than ``2 / FLAT_TEMPERATURE`` = 10 nats
FLAT_TEMPERATURE = 0.2

_warned: set[tuple[str, float]] = set()


class TrainingAdvice(UserWarning):
    """A setting that trains, but poorly; the message says what to set instead."""


def flat_softmax_advice(model: Any) -> str | None:
    """The advice for ``model``'s temperature, or None when its logits can spread enough."""
    temperature = float(getattr(model, "temperature", 0.0) or 0.0)
    if not getattr(model, "cosine_scores", False) or temperature <= FLAT_TEMPERATURE:
        return None
    name = type(model).__name__
    spec = getattr(model, "spec", None)
    preset = (getattr(spec, "model_defaults", None) or {}).get("temperature")
    suggestion = preset if isinstance(preset, (int, float)) and preset <= FLAT_TEMPERATURE else 0.05
    return (
        f"{name}(temperature={temperature:g}): its scores are cosine similarities, so logits stay within"
        f" ±{1 / temperature:.3g} and the softmax over the catalogue stays nearly flat; set"
        f" temperature={suggestion:g}{' (its preset)' if suggestion == preset else ''}"
    )


def warn_once(model: Any) -> None:
    """Warn (:class:`TrainingAdvice`) the first time a model class trains at a crippling temperature."""
    advice = flat_softmax_advice(model)
    key = (type(model).__name__, float(getattr(model, "temperature", 0.0)))
    if advice is not None and key not in _warned:
        _warned.add(key)
        warnings.warn(advice, TrainingAdvice, stacklevel=3)
