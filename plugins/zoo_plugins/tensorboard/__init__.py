"""The ``tensorboard`` plugin: live training curves of every run in TensorBoard.

Active when ``ZOO_TENSORBOARD_DIR`` is set (``tensorboard --logdir $ZOO_TENSORBOARD_DIR`` shows them):
each run writes its batch losses, epoch losses, learning rate and validation metric to
``$ZOO_TENSORBOARD_DIR/<model>-<dataset>-<time>``. Needs the ``tensorboard`` package
(``pip install "recall-zoo[tensorboard]"``); without it, a run says so in one warning line.
"""

from __future__ import annotations

import os
from typing import Any

from zoo import hookimpl

DIR_ENV = "ZOO_TENSORBOARD_DIR"


@hookimpl
def zoo_trainer_callbacks(config: Any) -> list[Any] | None:
    """A TensorBoard logger for the run when ``ZOO_TENSORBOARD_DIR`` is set."""
    folder = os.environ.get(DIR_ENV)
    if not folder:
        return None
    from zoo_plugins.tensorboard.logger import TensorBoardLogger

    return [TensorBoardLogger.for_run(folder, config)]
