"""Learning-rate schedules, stepped once per epoch after validation: constant, cosine, plateau."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch

from zoo.errors import UsageError
from zoo.train.config import TrainerConfig


class Schedule:
    """The constant schedule (and the interface): :meth:`step` once per epoch with its validation score."""

    #: whether :meth:`step` needs the epoch's validation score
    needs_validation = False
    #: the torch scheduler doing the work (None: the rate never changes)
    scheduler: Any = None

    def step(self, score: float | None) -> None:
        """Advance one epoch (``score``: the epoch's validation metric, None without validation data)."""


class EpochSchedule(Schedule):
    """A torch scheduler stepped once per epoch (cosine, or the seed API's ``scheduler_fn``)."""

    def __init__(self, scheduler: Any) -> None:
        self.scheduler = scheduler

    def step(self, score: float | None) -> None:
        self.scheduler.step()


class PlateauSchedule(Schedule):
    """Multiply the rate by ``lr_factor`` after ``lr_patience`` epochs in a row without a strictly
    better validation metric (the same test as early stopping's)."""

    needs_validation = True

    def __init__(self, optimizer: torch.optim.Optimizer, factor: float, patience: int) -> None:
        self.scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, mode="max", factor=factor, patience=patience - 1, threshold=0.0
        )

    def step(self, score: float | None) -> None:
        if score is None:
            raise UsageError("lr_schedule='plateau' needs validation data; pass some or use 'cosine'")
        self.scheduler.step(score)


def _cosine(optimizer: torch.optim.Optimizer, config: TrainerConfig) -> Schedule:
    """Cosine decay from the initial rate to 0 over ``epochs`` epochs."""
    return EpochSchedule(torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.epochs))


SCHEDULES: Mapping[str, Callable[[torch.optim.Optimizer, TrainerConfig], Schedule]] = {
    "constant": lambda optimizer, config: Schedule(),
    "cosine": _cosine,
    "plateau": lambda optimizer, config: PlateauSchedule(optimizer, config.lr_factor, config.lr_patience),
}


def make_schedule(
    optimizer: torch.optim.Optimizer,
    config: TrainerConfig,
    scheduler_fn: Any = None,
    scheduler_params: Mapping[str, Any] | None = None,
) -> Schedule:
    """The schedule ``config.lr_schedule`` names, or the seed API's ``scheduler_fn(optimizer, **params)``
    (only with the constant schedule)."""
    if scheduler_fn is not None:
        if config.lr_schedule != "constant":
            raise UsageError(f"give either scheduler_fn or lr_schedule={config.lr_schedule!r}, not both")
        return EpochSchedule(scheduler_fn(optimizer, **(scheduler_params or {})))
    return SCHEDULES[config.lr_schedule](optimizer, config)
