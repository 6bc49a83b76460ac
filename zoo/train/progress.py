"""A rich progress bar for training (used by ``verbose=True`` and by the CLI; silent otherwise)."""

from __future__ import annotations

from typing import Any

from zoo.train.callbacks import Callback


class RichProgress(Callback):
    """Two bars: the current epoch (running loss, its ETA) and the whole run (every epoch's steps: the
    ETA of the run, an upper bound since early stopping may end it sooner); a line per epoch with its
    validation metric."""

    def __init__(self, console: Any = None, description: str = "train") -> None:
        from rich.console import Console

        self.console = console or Console(stderr=True)
        self.description = description
        self._progress: Any = None
        self._task: Any = None
        self._run_task: Any = None
        self._epochs = 0
        self._loss = 0.0
        self._steps = 0

    def on_fit_start(self, trainer: Any, epochs: int, steps_per_epoch: int | None) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self._epochs = epochs
        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]:.4f}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=self.console,
            transient=True,
        )
        self._progress.start()
        total = steps_per_epoch * epochs if steps_per_epoch else None
        self._run_task = self._progress.add_task(f"{self.description} run (at most)", total=total, loss=0.0)
        self._task = self._progress.add_task(self.description, total=steps_per_epoch, loss=0.0)

    def on_epoch_start(self, trainer: Any, epoch: int) -> None:
        self._loss, self._steps = 0.0, 0
        if self._progress is not None:
            description = f"{self.description} epoch {epoch + 1}/{self._epochs}"
            self._progress.reset(self._task, description=description, loss=0.0)

    def on_batch_end(self, trainer: Any, step: int, loss: float) -> None:
        self._loss += loss
        self._steps += 1
        if self._progress is not None:
            self._progress.update(self._task, advance=1, loss=self._loss / self._steps)
            self._progress.update(self._run_task, advance=1, loss=self._loss / self._steps)

    def on_epoch_end(self, trainer: Any, epoch: int, logs: dict[str, Any]) -> None:
        parts = [f"epoch {epoch + 1}/{self._epochs}", f"loss {logs['loss']:.4f}"]
        if logs.get("valid") is not None:
            mark = " *" if logs.get("improved") else ""
            parts.append(f"valid {logs['valid_metric']} {logs['valid']:.4f}{mark}")
        parts.append(f"{logs['seconds']:.1f}s")
        self.console.print("  ".join(parts))

    def on_fit_end(self, trainer: Any, history: list[dict[str, Any]]) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
