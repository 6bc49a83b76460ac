"""A trainer callback writing TensorBoard event files (``torch.utils.tensorboard``)."""

from __future__ import annotations

import datetime as _dt
from pathlib import Path
from typing import Any

from zoo.errors import PluginError
from zoo.train.callbacks import Callback


class TensorBoardLogger(Callback):
    """Scalars per optimisation step (``train/batch_loss``) and per epoch (``train/loss``, ``train/lr``,
    ``valid/<metric>``) into ``log_dir``."""

    def __init__(self, log_dir: str | Path) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise PluginError(
                'the tensorboard plugin needs the tensorboard package: pip install "recall-zoo[tensorboard]"'
                " (or unset ZOO_TENSORBOARD_DIR)"
            ) from None
        self.log_dir = Path(log_dir)
        self._writer_class = SummaryWriter
        self.writer: Any = None
        self._step = 0

    @classmethod
    def for_run(cls, folder: str | Path, config: Any) -> TensorBoardLogger:
        stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        return cls(Path(folder) / f"{config.model}-{config.dataset}-{stamp}")

    def on_fit_start(self, trainer: Any, epochs: int, steps_per_epoch: int | None) -> None:
        self.writer = self._writer_class(log_dir=str(self.log_dir))
        self._step = 0

    def on_batch_end(self, trainer: Any, step: int, loss: float) -> None:
        self._step += 1
        self.writer.add_scalar("train/batch_loss", loss, self._step)

    def on_epoch_end(self, trainer: Any, epoch: int, logs: dict[str, Any]) -> None:
        number = int(logs.get("epoch", epoch + 1))
        self.writer.add_scalar("train/loss", float(logs["loss"]), number)
        if "lr" in logs:
            self.writer.add_scalar("train/lr", float(logs["lr"]), number)
        if logs.get("valid") is not None:
            self.writer.add_scalar(f"valid/{logs['valid_metric']}", float(logs["valid"]), number)
        self.writer.flush()

    def on_fit_end(self, trainer: Any, history: list[dict[str, Any]]) -> None:
        if self.writer is not None:
            self.writer.close()
