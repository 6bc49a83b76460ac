"""Live training curves: an MLflow run opened when training starts, one point per epoch while it runs.

``zoo_run_finished`` then logs the rest of the report (parameters, final metrics, artifacts) into the
same MLflow run, so a run appears once, with curves that grew during training.
"""

from __future__ import annotations

import time
from typing import Any

from zoo.train.callbacks import Callback

#: the MLflow run ids opened by live callbacks, oldest first, waiting for their run's report
PENDING: list[str] = []


def take_pending() -> str | None:
    """The MLflow run opened for the run that just finished (None when nothing was logged live)."""
    return PENDING.pop() if PENDING else None


class LiveCurves(Callback):
    """Logs ``epoch.loss``, ``epoch.lr``, ``epoch.valid`` (step = epoch) while training runs."""

    def __init__(self, config: Any) -> None:
        self.config = config
        self.run_id: str | None = None

    def on_fit_start(self, trainer: Any, epochs: int, steps_per_epoch: int | None) -> None:
        from zoo_mlflow.sink import experiment_id, store

        with store() as mlflow:
            name = f"{self.config.model}-{self.config.retriever}-{self.config.dataset}"
            run = mlflow.create_run(experiment_id(mlflow), run_name=name, tags={"mlflow.runName": name})
        self.run_id = run.info.run_id
        PENDING.append(self.run_id)

    def on_epoch_end(self, trainer: Any, epoch: int, logs: dict[str, Any]) -> None:
        from mlflow.entities import Metric

        from zoo_mlflow.sink import store

        stamp = int(time.time() * 1000)
        step = int(logs.get("epoch", epoch + 1))
        metrics = [
            Metric(f"epoch.{name}", float(logs[name]), stamp, step)
            for name in ("loss", "lr", "valid", "seconds")
            if isinstance(logs.get(name), (int, float)) and not isinstance(logs.get(name), bool)
        ]
        with store() as mlflow:
            mlflow.log_batch(self.run_id, metrics=metrics)
