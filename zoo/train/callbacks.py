"""Training callbacks: how the trainer reports progress without printing anything itself."""

from __future__ import annotations

from typing import Any


class Callback:
    """Override what you need; every method is a no-op by default."""

    def on_fit_start(self, trainer: Any, epochs: int, steps_per_epoch: int | None) -> None:
        """Called once before the first epoch."""

    def on_epoch_start(self, trainer: Any, epoch: int) -> None:
        """Called before each epoch (0-based)."""

    def on_batch_end(self, trainer: Any, step: int, loss: float) -> None:
        """Called after each optimisation step with the batch loss."""

    def on_epoch_end(self, trainer: Any, epoch: int, logs: dict[str, Any]) -> None:
        """Called after each epoch with its logs (loss, valid metric, seconds, best so far)."""

    def on_fit_end(self, trainer: Any, history: list[dict[str, Any]]) -> None:
        """Called once after training, after the best weights were restored."""


class CallbackList(Callback):
    def __init__(self, callbacks: list[Callback]) -> None:
        self.callbacks = list(callbacks)

    def on_fit_start(self, trainer: Any, epochs: int, steps_per_epoch: int | None) -> None:
        for cb in self.callbacks:
            cb.on_fit_start(trainer, epochs, steps_per_epoch)

    def on_epoch_start(self, trainer: Any, epoch: int) -> None:
        for cb in self.callbacks:
            cb.on_epoch_start(trainer, epoch)

    def on_batch_end(self, trainer: Any, step: int, loss: float) -> None:
        for cb in self.callbacks:
            cb.on_batch_end(trainer, step, loss)

    def on_epoch_end(self, trainer: Any, epoch: int, logs: dict[str, Any]) -> None:
        for cb in self.callbacks:
            cb.on_epoch_end(trainer, epoch, logs)

    def on_fit_end(self, trainer: Any, history: list[dict[str, Any]]) -> None:
        for cb in self.callbacks:
            cb.on_fit_end(trainer, history)


class GuardedCallback(Callback):
    """A plugin's callback that cannot stop training: the first exception it raises switches it off and
    is reported once through ``warn`` (a tracker that loses its connection must not cost the run)."""

    def __init__(self, callback: Callback, name: str, warn: Any) -> None:
        self.callback = callback
        self.name = name
        self.warn = warn
        self.failed = False

    def _call(self, method: str, *args: Any) -> None:
        if self.failed:
            return
        try:
            getattr(self.callback, method)(*args)
        except Exception as exc:  # noqa: BLE001 - reported, then the callback is off
            self.failed = True
            self.warn(
                f"warning: {self.name} callback {method} raised {type(exc).__name__}: {exc}; it is off now"
            )

    def on_fit_start(self, trainer: Any, epochs: int, steps_per_epoch: int | None) -> None:
        self._call("on_fit_start", trainer, epochs, steps_per_epoch)

    def on_epoch_start(self, trainer: Any, epoch: int) -> None:
        self._call("on_epoch_start", trainer, epoch)

    def on_batch_end(self, trainer: Any, step: int, loss: float) -> None:
        self._call("on_batch_end", trainer, step, loss)

    def on_epoch_end(self, trainer: Any, epoch: int, logs: dict[str, Any]) -> None:
        self._call("on_epoch_end", trainer, epoch, logs)

    def on_fit_end(self, trainer: Any, history: list[dict[str, Any]]) -> None:
        self._call("on_fit_end", trainer, history)
