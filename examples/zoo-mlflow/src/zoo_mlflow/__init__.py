"""zoo-mlflow: a recall-zoo plugin that logs every ``zoo run`` to MLflow.

Three hooks, nothing else; ``mlflow`` is imported only when a run is logged, so listing commands stay
fast:

* ``zoo_trainer_callbacks(config)`` opens the MLflow run when training starts and logs each epoch's
  loss, learning rate and validation metric while it runs (live curves);
* ``zoo_run_finished(report)`` logs the run's parameters, metrics (with per-epoch training curves),
  tags and artifacts (the run directory: ``run.json``, ``model/``, ``index/``) to the store named by
  ``ZOO_MLFLOW_URI`` (default ``./mlruns``, MLflow's local file store), in the experiment
  ``ZOO_MLFLOW_EXPERIMENT`` (default ``recall-zoo``).
* ``zoo_register_commands(app)`` adds ``zoo mlflow``: ``zoo mlflow --mlflow-uri URI run ...`` runs
  ``zoo run ...`` and logs it there; ``zoo mlflow runs`` lists the logged runs; ``zoo mlflow log
  RUN_DIR`` logs a run directory written earlier.

Switch logging off without uninstalling: ``ZOO_DISABLE_PLUGINS=mlflow``.
"""

from __future__ import annotations

from typing import Any

from zoo import hookimpl

__version__ = "0.1.0"


@hookimpl
def zoo_trainer_callbacks(config: Any) -> list[Any]:
    """Open the run's MLflow run when training starts and log every epoch's curves while it runs."""
    from zoo_mlflow.live import LiveCurves

    return [LiveCurves(config)]


@hookimpl
def zoo_run_finished(report: Any) -> None:
    """Log the finished run to MLflow (a failure here is one warning line; the run still succeeds)."""
    from zoo_mlflow.live import take_pending
    from zoo_mlflow.sink import log_report

    log_report(report, run_id=take_pending())


@hookimpl
def zoo_register_commands(app: Any) -> None:
    """Add the ``zoo mlflow`` command group (``app`` is the root ``typer.Typer``)."""
    from zoo_mlflow.cli import app as mlflow_app

    app.add_typer(mlflow_app, name="mlflow")
