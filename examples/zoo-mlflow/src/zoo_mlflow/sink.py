"""Turn a recall-zoo ``RunReport`` into one MLflow run (parameters, metrics, tags, artifacts).

Only :class:`mlflow.tracking.MlflowClient` is used, never MLflow's global "active run" state, so
logging from inside ``zoo run`` cannot leak into the user's own MLflow session.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

URI_ENV = "ZOO_MLFLOW_URI"
EXPERIMENT_ENV = "ZOO_MLFLOW_EXPERIMENT"
DEFAULT_URI = "./mlruns"
DEFAULT_EXPERIMENT = "recall-zoo"

_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")
_BAD_KEY_CHARS = re.compile(r"[^A-Za-z0-9_.\-/ ]")
_BATCH = 100  # MLflow's limit on parameters and tags per log_batch call
_MAX_PARAM = 6000


def tracking_uri(value: str | None = None) -> str:
    """The tracking URI: ``value``, else ``$ZOO_MLFLOW_URI``, else ``./mlruns``. A plain path (no
    scheme) becomes an absolute ``file:`` URI, resolved against the current directory."""
    raw = value or os.environ.get(URI_ENV) or DEFAULT_URI
    if _SCHEME.match(raw) and not re.match(r"^[A-Za-z]:[\\/]", raw):  # a scheme, not a Windows drive
        return raw
    return Path(raw).expanduser().resolve().as_uri()


def experiment_name(value: str | None = None) -> str:
    return value or os.environ.get(EXPERIMENT_ENV) or DEFAULT_EXPERIMENT


@contextlib.contextmanager
def _allow_file_store(uri: str) -> Iterator[None]:
    """MLflow 3 refuses its file store unless ``MLFLOW_ALLOW_FILE_STORE`` is set; this plugin's
    default *is* the local file store, so allow it for the duration of the call (and only then)."""
    if not uri.startswith("file:") or "MLFLOW_ALLOW_FILE_STORE" in os.environ:
        yield
        return
    os.environ["MLFLOW_ALLOW_FILE_STORE"] = "true"
    try:
        yield
    finally:
        os.environ.pop("MLFLOW_ALLOW_FILE_STORE", None)


def client(uri: str | None = None) -> Any:
    """An ``MlflowClient`` on ``uri`` (see :func:`tracking_uri`). Use inside :func:`store`."""
    try:
        from mlflow.tracking import MlflowClient
    except ImportError:
        raise ImportError("zoo-mlflow needs MLflow: pip install mlflow-skinny") from None
    return MlflowClient(tracking_uri=tracking_uri(uri))


@contextlib.contextmanager
def store(uri: str | None = None) -> Iterator[Any]:
    """``with store(uri) as mlflow_client:`` (the file store allowed while it is open)."""
    resolved = tracking_uri(uri)
    with _allow_file_store(resolved):
        yield client(resolved)


def metric_key(key: str) -> str:
    """An MLflow-safe name: ``hitrate@10`` -> ``hitrate_at_10``; other odd characters -> ``_``."""
    return _BAD_KEY_CHARS.sub("_", key.replace("@", "_at_"))[:250]


def flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}`` (lists stay values)."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, f"{name}."))
        else:
            out[name] = value
    return out


def _param_value(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text[:_MAX_PARAM]


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value == value


def run_params(report: Any) -> dict[str, str]:
    """Parameters: the run's configuration (model, retriever, dataset, model and trainer settings,
    retriever and dataset parameters, protocol), flattened with dots."""
    config = dict(report.config)
    params = flatten(config)
    params.update(
        flatten(
            {
                "retriever_settings": {
                    "build_params": report.retriever.get("build_params", {}),
                    "query_params": report.retriever.get("query_params", {}),
                    "metric": report.retriever.get("metric"),
                }
            }
        )
    )
    params["protocol"] = report.protocol.get("protocol", "")
    return {
        metric_key(k): _param_value(v) for k, v in params.items() if v is not None and v != {} and v != []
    }


def run_metrics(report: Any) -> list[tuple[str, float, int]]:
    """(name, value, step) of every metric: evaluator metrics, retriever recall and speed, timings,
    training summary, and the per-epoch curves (step = epoch)."""
    out: list[tuple[str, float, int]] = []
    for evaluator, metrics in report.metrics.items():
        for name, value in metrics.items():
            if _is_number(value):
                out.append((metric_key(f"{evaluator}.{name}"), float(value), 0))
    for name, value in report.retriever.get("recall_vs_exact", {}).items():
        out.append((metric_key(f"retriever.recall_vs_exact.{name}"), float(value), 0))
    for name in ("queries_per_s", "exact_queries_per_s"):
        if _is_number(report.retriever.get(name)):
            out.append((f"retriever.{name}", float(report.retriever[name]), 0))
    for name, value in report.timings.items():
        if _is_number(value):
            out.append((metric_key(f"time.{name}"), float(value), 0))
    training = report.training or {}
    for name in ("epochs_run", "best_epoch", "best_valid", "samples_per_s", "parameters"):
        if _is_number(training.get(name)):
            out.append((f"training.{name}", float(training[name]), 0))
    for entry in training.get("history", []):
        step = int(entry.get("epoch", 0))
        for name in ("loss", "valid", "lr", "seconds"):
            if _is_number(entry.get(name)):
                out.append((f"epoch.{name}", float(entry[name]), step))
    return out


def run_tags(report: Any) -> dict[str, str]:
    config = report.config
    name = (
        f"{config.get('model')}-{report.retriever.get('name', config.get('retriever'))}"
        f"-{config.get('dataset')}"
    )
    tags = {
        "mlflow.runName": name,
        "mlflow.source.name": "zoo run",
        "zoo.model": str(config.get("model")),
        "zoo.retriever": str(report.retriever.get("name", config.get("retriever"))),
        "zoo.dataset": str(config.get("dataset")),
        "zoo.protocol": str(report.protocol.get("protocol", "")),
        "zoo.device": str(report.device.get("device", "")),
        "zoo.version": str(report.versions.get("recall-zoo", "")),
        "zoo.created": str(report.created),
    }
    if report.run_dir:
        tags["zoo.run_dir"] = str(Path(report.run_dir).resolve())
    return tags


def experiment_id(mlflow: Any, experiment: str | None = None) -> str:
    """The id of the experiment ``experiment`` (default :func:`experiment_name`), created if needed."""
    name = experiment_name(experiment)
    found = mlflow.get_experiment_by_name(name)
    return found.experiment_id if found is not None else mlflow.create_experiment(name)


def log_report(
    report: Any,
    *,
    uri: str | None = None,
    experiment: str | None = None,
    quiet: bool = False,
    run_id: str | None = None,
) -> str:
    """Log ``report`` (a ``zoo.report.RunReport``) as one MLflow run; returns the MLflow run id. With
    ``run_id`` (a run opened by the live callback) the report goes into that run, whose per-epoch
    curves are already there."""
    from mlflow.entities import Metric, Param, RunTag

    resolved = tracking_uri(uri)
    name = experiment_name(experiment)
    with store(resolved) as mlflow:
        tags = run_tags(report)
        if run_id is None:
            run = mlflow.create_run(experiment_id(mlflow, name), run_name=tags["mlflow.runName"], tags=tags)
            run_id = run.info.run_id
            live = False
        else:
            mlflow.log_batch(run_id, tags=[RunTag(k, v) for k, v in tags.items()])
            live = True
        status = "FAILED"
        try:
            params = [Param(k, v) for k, v in run_params(report).items()]
            for start in range(0, len(params), _BATCH):
                mlflow.log_batch(run_id, params=params[start : start + _BATCH])
            stamp = _timestamp_ms(report)
            metrics = [
                Metric(k, v, stamp, step)
                for k, v, step in run_metrics(report)
                if not (live and k.startswith("epoch."))  # logged live already
            ]
            for start in range(0, len(metrics), 1000):
                mlflow.log_batch(run_id, metrics=metrics[start : start + 1000])
            if report.run_dir and Path(report.run_dir).is_dir():
                mlflow.log_artifacts(run_id, str(report.run_dir))
            else:  # `zoo run` without a run directory: keep the report at least
                mlflow.log_text(run_id, report.to_json(), "run.json")
            status = "FINISHED"
        finally:
            mlflow.set_terminated(run_id, status=status)
    if not quiet:
        sys.stderr.write(f"mlflow: logged run {run_id} to {resolved} (experiment '{name}')\n")
    return run_id


def _timestamp_ms(report: Any) -> int:
    import datetime as dt
    import time

    try:
        return int(dt.datetime.fromisoformat(str(report.created)).timestamp() * 1000)
    except ValueError:
        return int(time.time() * 1000)


def list_runs(uri: str | None = None, experiment: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
    """The logged runs, newest first: id, name, model, retriever, dataset, metrics."""
    with store(uri) as mlflow:
        found = mlflow.get_experiment_by_name(experiment_name(experiment))
        if found is None:
            return []
        runs = mlflow.search_runs(
            [found.experiment_id], max_results=limit, order_by=["attributes.start_time DESC"]
        )
    return [
        {
            "run_id": r.info.run_id,
            "name": r.data.tags.get("mlflow.runName", ""),
            "status": r.info.status,
            "model": r.data.tags.get("zoo.model", ""),
            "retriever": r.data.tags.get("zoo.retriever", ""),
            "dataset": r.data.tags.get("zoo.dataset", ""),
            "metrics": dict(r.data.metrics),
            "params": dict(r.data.params),
            "artifact_uri": r.info.artifact_uri,
        }
        for r in runs
    ]
