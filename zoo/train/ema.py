"""Exponential moving average of a model's weights (``ema_decay``)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import torch


class WeightAverage:
    """The running average of ``parameters``, moved toward the live weights after every optimiser step
    with decay ``min(decay, (1 + t) / (10 + t))`` at step t. Buffers are not averaged."""

    def __init__(self, parameters: Iterable[torch.nn.Parameter], decay: float) -> None:
        self.parameters = list(parameters)
        self.decay = float(decay)
        self.average = [p.detach().clone() for p in self.parameters]
        self.steps = 0

    @torch.no_grad()
    def update(self) -> None:
        """One step toward the live weights (call after each optimiser step)."""
        decay = min(self.decay, (1 + self.steps) / (10 + self.steps))
        self.steps += 1
        torch._foreach_lerp_(self.average, [p.detach() for p in self.parameters], 1.0 - decay)

    def state_dict(self) -> dict[str, Any]:
        """The averaged weights (in parameter order) and the step count (what a resumed fit needs)."""
        return {"average": list(self.average), "steps": self.steps}

    @torch.no_grad()
    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from a :meth:`state_dict` of an average over the same parameters."""
        average = list(state["average"])
        if len(average) != len(self.average):
            raise ValueError(f"the saved average holds {len(average)} tensors, this one {len(self.average)}")
        for mine, saved in zip(self.average, average, strict=True):
            mine.copy_(saved)
        self.steps = int(state["steps"])

    @contextmanager
    def applied(self) -> Iterator[None]:
        """Inside the block the model holds the averaged weights; the live ones come back after it."""
        with torch.no_grad():
            live = [p.detach().clone() for p in self.parameters]
            for param, average in zip(self.parameters, self.average, strict=True):
                param.copy_(average)
        try:
            yield
        finally:
            with torch.no_grad():
                for param, weights in zip(self.parameters, live, strict=True):
                    param.copy_(weights)
