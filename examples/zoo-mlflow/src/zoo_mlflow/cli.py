"""``zoo mlflow``: where runs are logged, and the runs logged there.

A plugin cannot add options to a core command (``zoo run`` has a fixed signature, and a plugin
command that reuses a core name is refused), so the store reaches the ``zoo_run_finished`` hook
through the environment: ``ZOO_MLFLOW_URI``. ``zoo mlflow --mlflow-uri URI`` sets it for the
sub-command it runs, so both of these log to ``./store``::

    ZOO_MLFLOW_URI=./store zoo run dssm -r hnsw
    zoo mlflow --mlflow-uri ./store run dssm -r hnsw
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import typer

from zoo_mlflow.sink import DEFAULT_EXPERIMENT, DEFAULT_URI, EXPERIMENT_ENV, URI_ENV

app = typer.Typer(help="Log zoo runs to MLflow and list them (plugin zoo-mlflow).", no_args_is_help=True)


@app.callback()
def main(
    mlflow_uri: str = typer.Option(
        DEFAULT_URI, "--mlflow-uri", envvar=URI_ENV, help="MLflow tracking URI or local folder (file store)."
    ),
    experiment: str = typer.Option(
        DEFAULT_EXPERIMENT, "--experiment", envvar=EXPERIMENT_ENV, help="MLflow experiment name."
    ),
) -> None:
    """Log zoo runs to MLflow (every `zoo run` is logged to $ZOO_MLFLOW_URI, default ./mlruns)."""
    os.environ[URI_ENV] = mlflow_uri  # read by the zoo_run_finished hook
    os.environ[EXPERIMENT_ENV] = experiment


@app.command(
    "run",
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    add_help_option=False,
)
def run(ctx: typer.Context) -> None:
    """Run `zoo run ARGS...` and log it to --mlflow-uri (`zoo mlflow run --help` shows zoo run's options)."""
    root = ctx.find_root()
    command = root.command.get_command(root, "run")  # type: ignore[attr-defined]
    if command is None:  # pragma: no cover - the core always has `run`
        raise typer.BadParameter("this zoo has no 'run' command")
    with command.make_context("run", list(ctx.args), parent=root) as sub:
        command.invoke(sub)


@app.command("runs")
def runs(
    limit: int = typer.Option(20, "--limit", min=1, help="Newest runs to show."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """List the runs logged to --mlflow-uri, newest first."""
    from zoo_mlflow.sink import list_runs

    found = list_runs(limit=limit)
    if as_json:
        typer.echo(json.dumps(found, indent=2))
        return
    if not found:
        typer.echo(f"no runs in experiment '{os.environ.get(EXPERIMENT_ENV)}' at {os.environ.get(URI_ENV)}")
        return
    for r in found:
        hit = r["metrics"].get("exact.hitrate_at_10")
        shown = f"{hit:.4f}" if hit is not None else "-"
        typer.echo(f"{r['run_id']}  {r['status']:<8}  {r['name']:<40}  exact hitrate@10 {shown}")


@app.command("log")
def log(
    run_dir: Path = typer.Argument(..., help="A run directory written by `zoo run` (holds run.json)."),
) -> None:
    """Log a run directory written earlier (e.g. with the plugin switched off) to --mlflow-uri."""
    from zoo.errors import ZooError
    from zoo.report import RunReport
    from zoo_mlflow.sink import log_report

    try:
        report = RunReport.load(run_dir)
    except ZooError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(exc.exit_code) from None
    if report.run_dir is None or not Path(report.run_dir).is_dir():
        report.run_dir = str(run_dir)
    typer.echo(log_report(report))
