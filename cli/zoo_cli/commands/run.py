"""``zoo run MODEL --retriever R``: train, evaluate exactly and through the index, write a run dir."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from zoo.errors import UsageError
from zoo_cli import state
from zoo_cli.output import fmt, handle_errors, metric_table, print_json, stderr, stdout
from zoo_cli.params import parse_ks, parse_params

FORMATS = ("human", "json")


class CliProgress:
    """Stage lines and a training progress bar on stderr (silent with --quiet or --format json)."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet

    def stage(self, name: str, detail: str = "") -> None:
        if not self.quiet:
            stderr.print(f"[dim]{name:>8}[/] {detail}", highlight=False)

    def trainer_callbacks(self) -> list[Any]:
        if self.quiet:
            return []
        from zoo.train.progress import RichProgress

        return [RichProgress(console=stderr)]


@handle_errors
def run(
    model: str = typer.Argument(..., help="Model name (see 'zoo models')."),
    retriever: str = typer.Option(
        "exact", "--retriever", "-r", help="Retrieval backend (see 'zoo retrievers')."
    ),
    dataset: str = typer.Option("synthetic", "--dataset", "-d", help="Dataset (see 'zoo datasets')."),
    data: Path | None = typer.Option(
        None, "--data", help="Folder (or file) the dataset reads; else ZOO_DATA_DIR."
    ),
    protocol: str | None = typer.Option(
        None, "--protocol", help="loo, deepmatch, recbole-seq or sasrec (default: the dataset's)."
    ),
    mask_seen: bool | None = typer.Option(
        None, "--mask-seen/--no-mask-seen", help="Override the protocol's masking of seen items."
    ),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda, cuda:N or mps."),
    epochs: int | None = typer.Option(
        None, "--epochs", min=1, help="Maximum epochs (default: the model's preset)."
    ),
    batch_size: int | None = typer.Option(None, "--batch-size", min=1, help="Training batch size."),
    lr: float | None = typer.Option(None, "--lr", min=0.0, help="Learning rate."),
    param: list[str] = typer.Option(
        [], "--param", "-p", help="key=value; 'retriever.KEY=V', 'data.KEY=V', 'protocol.KEY=V' go there."
    ),
    seed: int = typer.Option(0, "--seed", help="Random seed (same seed, same result on CPU)."),
    k: str = typer.Option("10,50", "--k", help="Cut-offs for the metrics, comma-separated."),
    out: Path | None = typer.Option(
        None, "--out", help="Run directory (default runs/<time>-<model>-<retriever>-<dataset>)."
    ),
    force: bool = typer.Option(
        False,
        "--force",
        help="Write into an --out folder that holds other files (only the run's own entries are replaced).",
    ),
    output_format: str = typer.Option("human", "--format", help="human or json."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress output."),
) -> None:
    """Train MODEL, evaluate it with exact search and through the retriever, and write a run directory."""
    from zoo.pipeline import RunConfig
    from zoo.pipeline import run as run_pipeline

    if output_format not in FORMATS:
        raise UsageError(f"--format {output_format!r} must be one of {', '.join(FORMATS)}")
    model_params, retriever_params, dataset_options, protocol_overrides = parse_params(param)
    config = RunConfig(
        model=model,
        retriever=retriever,
        dataset=dataset,
        data_path=str(data) if data is not None else None,
        protocol=protocol,
        mask_seen=mask_seen,
        device=device,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        seed=seed,
        params=model_params,
        retriever_params=retriever_params,
        dataset_options=dataset_options,
        protocol_overrides=protocol_overrides,
        ks=parse_ks(k),
        out=str(out) if out is not None else None,
        force=force,
    )
    report = run_pipeline(
        config, registry=state.registry(), progress=CliProgress(quiet or output_format == "json")
    )
    for line in report.warnings:
        stderr.print(line, highlight=False, markup=False)
    if output_format == "json":
        print_json(report.to_dict())
        return
    render_summary(report)


def _masking(card: dict[str, Any]) -> str:
    return "seen items not masked" if str(card.get("masking", "")).startswith("none") else "seen items masked"


def render_summary(report: Any) -> None:
    """The human summary of a run: metrics table, retriever recall, timings, where it was written."""
    cfg = report.config
    card = report.protocol
    data = report.data
    retr = report.retriever
    stdout.print(
        f"[bold]{cfg['model']}[/] x [bold]{retr['name']}[/] on [bold]{data['dataset']}[/]: protocol"
        f" {card['protocol']} ({data['users']} users, {data['items']} items, {_masking(card)}), device"
        f" {report.device['device']}",
        highlight=False,
    )
    columns = {"exact": "exact", "retriever": retr["name"], "popularity": "popularity"}
    stdout.print(metric_table(report.metrics, columns, cfg["ks"]))
    recall = "  ".join(f"@{key.split('@')[1]} {fmt(v, 3)}" for key, v in retr["recall_vs_exact"].items())
    stdout.print(
        f"{retr['name']} recall vs exact: {recall}   queries {retr['queries_per_s']:,.0f} users/s"
        f" (exact {retr['exact_queries_per_s']:,.0f} users/s)",
        highlight=False,
    )
    training = report.training
    stdout.print(
        f"training: {training['epochs_run']} epochs (best {training['best_epoch']}, valid"
        f" {training['valid_metric']} {fmt(training['best_valid'] or float('nan'))}) in"
        f" {report.timings['train_s']:.1f} s, {training['samples_per_s']:,.0f} samples/s",
        highlight=False,
    )
    if report.run_dir:
        stdout.print(f"run directory: {report.run_dir}", highlight=False)
