"""``zoo run MODEL --retriever R``: train, evaluate exactly and through the index, write a run dir."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import typer

from zoo.errors import UsageError
from zoo_cli import state
from zoo_cli.output import (
    OutputFormat,
    fmt,
    handle_errors,
    metric_table,
    print_json,
    protocol_option,
    stderr,
    stdout,
)
from zoo_cli.params import parse_ks, settings


class CliProgress:
    """Stage lines and a training progress bar on stderr (silent with --quiet or --format json)."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet

    def stage(self, name: str, detail: str = "") -> None:
        if not self.quiet:
            stderr.print(f"[dim]{name:>8}[/] {detail}", highlight=False)

    def warning(self, line: str) -> None:
        stderr.print(line, highlight=False, markup=False)

    def trainer_callbacks(self) -> list[Any]:
        if self.quiet:
            return []
        from zoo.train.progress import RichProgress

        return [RichProgress(console=stderr)]

    @contextlib.contextmanager
    def task(self, name: str, total: int | None = None) -> Iterator[Callable[[int], None]]:
        """A transient bar (a spinner with the elapsed time when ``total`` is unknown)."""
        if self.quiet:
            yield lambda done: None
            return
        from zoo_cli.output import task_bar

        with task_bar(name, total) as advance:
            yield advance


FORMAT = typer.Option(OutputFormat.human, "--format", help="human or json.")
PREPARED_DIR = typer.Option(
    None,
    "--prepared-dir",
    help="Prepare the data once into a folder here and reuse it while the input and protocol stay the same.",
)
NPROC = typer.Option(
    1, "--nproc", min=1, help="Train on N processes (DDP under torchrun): one per GPU, or CPU shares."
)
NNODES = typer.Option(1, "--nnodes", min=1, help="Machines taking part (each runs the same command).")
NODE_RANK = typer.Option(None, "--node-rank", min=0, help="This machine's rank, 0..nnodes-1 (with --nnodes).")
RDZV_ENDPOINT = typer.Option(
    None, "--rdzv-endpoint", help="HOST:PORT of node 0, where the machines meet (with --nnodes)."
)


def relaunched(nproc: int, nnodes: int, node_rank: int | None, rdzv_endpoint: str | None) -> bool:
    """With more than one process asked for and not yet under torchrun: run this command again under
    it (every rank waits for the others) and return True; else False (run it here)."""
    from zoo.distributed import LaunchOptions, relaunch, under_launcher

    options = LaunchOptions(nproc=nproc, nnodes=nnodes, node_rank=node_rank, rdzv_endpoint=rdzv_endpoint)
    if not options.distributed or under_launcher():
        return False
    relaunch(options)
    return True


@handle_errors
def run(
    model: str | None = typer.Argument(
        None, help="Model name (see 'zoo models'); or [run] model in --config."
    ),
    config_file: Path | None = typer.Option(
        None, "--config", "-c", help="TOML/YAML settings file (a run folder's config.yaml reproduces it)."
    ),
    retriever: str | None = typer.Option(
        None, "--retriever", "-r", help="Retrieval backend (see 'zoo retrievers'; default exact)."
    ),
    dataset: str | None = typer.Option(
        None, "--dataset", "-d", help="Dataset (see 'zoo datasets'; default synthetic)."
    ),
    data: Path | None = typer.Option(
        None, "--data", help="Folder (or file) the dataset reads; else ZOO_DATA_DIR."
    ),
    protocol: str | None = protocol_option(),
    mask_seen: bool | None = typer.Option(
        None, "--mask-seen/--no-mask-seen", help="Override the protocol's masking of seen items."
    ),
    device: str | None = typer.Option(None, "--device", help="auto (default), cpu, cuda, cuda:N or mps."),
    epochs: int | None = typer.Option(
        None, "--epochs", min=1, help="Maximum epochs (default: the model's preset)."
    ),
    batch_size: int | None = typer.Option(None, "--batch-size", min=1, help="Training batch size."),
    lr: float | None = typer.Option(None, "--lr", min=0.0, help="Learning rate."),
    param: list[str] = typer.Option(
        [], "--param", "-p", help="key=value; 'retriever.KEY=V', 'data.KEY=V', 'protocol.KEY=V' go there."
    ),
    seed: int | None = typer.Option(
        None, "--seed", help="Random seed, default 0 (same seed, same result on CPU)."
    ),
    k: str | None = typer.Option(
        None, "--k", help="Cut-offs for the metrics, comma-separated (default 10,50)."
    ),
    out: Path | None = typer.Option(
        None, "--out", help="Run directory (default runs/<time>-<model>-<retriever>-<dataset>)."
    ),
    force: bool = typer.Option(
        False,
        "--force",
        help="Write into an --out folder that holds other files (only the run's own entries are replaced).",
    ),
    resume: bool = typer.Option(
        False,
        "--resume",
        help="Continue an interrupted run with the same --out and options from its last epoch checkpoint.",
    ),
    prepared_dir: Path | None = PREPARED_DIR,
    output_format: OutputFormat = FORMAT,
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress output."),
    nproc: int = NPROC,
    nnodes: int = NNODES,
    node_rank: int | None = NODE_RANK,
    rdzv_endpoint: str | None = RDZV_ENDPOINT,
) -> None:
    """Train MODEL, evaluate it with exact search and through the retriever, and write a run directory.

    Example: zoo run dssm --retriever hnsw --dataset movielens-1m --data ml-1m --param embed_dim=64
    """
    from zoo.pipeline import RunConfig
    from zoo.pipeline import run as run_pipeline

    file_run, params = settings(config_file, param)
    flags = {
        "model": model, "retriever": retriever, "dataset": dataset, "data_path": str(data) if data else None,
        "protocol": protocol, "mask_seen": mask_seen, "device": device, "seed": seed,
        "ks": parse_ks(k) if k is not None else None, "out": str(out) if out is not None else None,
    }  # fmt: skip
    fields = {**file_run, **{key: value for key, value in flags.items() if value is not None}}
    if not fields.get("model"):
        raise UsageError("give a MODEL (e.g. 'zoo run dssm') or a --config file whose [run] names the model")
    config = RunConfig(
        **fields,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        params=params.model,
        retriever_params=params.retriever,
        dataset_options=params.dataset,
        protocol_overrides=params.protocol,
        force=force,
        resume=resume,
        prepared_dir=str(prepared_dir) if prepared_dir is not None else None,
    )
    if relaunched(nproc, nnodes, node_rank, rdzv_endpoint):
        return
    report = run_pipeline(
        config, registry=state.registry(), progress=CliProgress(quiet or output_format is OutputFormat.json)
    )
    if report is None:  # another rank of a distributed run: rank 0 reports
        return
    for line in report.warnings:
        stderr.print(line, highlight=False, markup=False)
    if output_format is OutputFormat.json:
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
    if retr["name"] == "exact":  # the index is the exact search: one column, one speed
        del columns["retriever"]
    stdout.print(metric_table(report.metrics, columns, cfg["ks"]))
    if retr["name"] == "exact":
        stdout.print(f"exact search: {retr['exact_queries_per_s']:,.0f} users/s", highlight=False)
    else:
        recall = "  ".join(f"@{key.split('@')[1]} {fmt(v, 3)}" for key, v in retr["recall_vs_exact"].items())
        stdout.print(
            f"{retr['name']} recall vs exact: {recall}   {retr['queries_per_s']:,.0f} users/s"
            f" (exact search {retr['exact_queries_per_s']:,.0f} users/s)",
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
        stdout.print(next_steps(report.run_dir, cfg["model"]), highlight=False)


def next_steps(run_dir: str, model: str) -> str:
    """What to do with a finished run (the closing lines of ``zoo run``)."""
    return (
        f"next: zoo recommend {run_dir} --user ID      (top-K for a user)\n"
        f"      zoo serve {run_dir}                  (HTTP API on 127.0.0.1:8000)\n"
        f"      zoo export {run_dir} --format onnx   (user tower + item vectors)\n"
        f"      zoo bench {model} --retriever exact,hnsw  (compare indexes)"
    )
