"""Training: MatchTrainer, its losses, callbacks and inference helpers."""

from __future__ import annotations

from typing import Any

__all__ = ["Callback", "MatchTrainer"]


def __getattr__(name: str) -> Any:
    if name == "MatchTrainer":
        from zoo.train.trainer import MatchTrainer

        return MatchTrainer
    if name == "Callback":
        from zoo.train.callbacks import Callback

        return Callback
    raise AttributeError(f"module 'zoo.train' has no attribute {name!r}")
