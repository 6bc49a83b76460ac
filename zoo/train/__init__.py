"""Training: MatchTrainer, its settings (TrainerConfig), losses, callbacks and inference helpers.

Imports are lazy: ``zoo.train.config`` (and so ``from zoo.train import TrainerConfig``) needs no torch.
"""

from __future__ import annotations

from typing import Any

__all__ = ["Callback", "MatchTrainer", "TrainerConfig"]


def __getattr__(name: str) -> Any:
    if name == "MatchTrainer":
        from zoo.train.trainer import MatchTrainer

        return MatchTrainer
    if name == "Callback":
        from zoo.train.callbacks import Callback

        return Callback
    if name == "TrainerConfig":
        from zoo.train.config import TrainerConfig

        return TrainerConfig
    raise AttributeError(f"module 'zoo.train' has no attribute {name!r}")
