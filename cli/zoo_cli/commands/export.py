"""``zoo export RUN_DIR --format onnx|parquet``: the user tower, item vectors and a manifest (zoo.export)."""

from __future__ import annotations

import enum
from pathlib import Path

import typer

from zoo_cli import state
from zoo_cli.output import OutputFormat, handle_errors, print_json, stdout


class ExportFormat(str, enum.Enum):
    """``--format``: what to export."""

    onnx = "onnx"
    parquet = "parquet"


@handle_errors
def export(
    run_dir: Path = typer.Argument(..., help="A run folder (zoo run --out)."),
    formats: list[ExportFormat] = typer.Option(
        [], "--format", "-f", help="onnx (user tower) or parquet (item vectors); repeatable, default both."
    ),
    out: Path | None = typer.Option(
        None, "--out", help="Export folder (default RUN_DIR/export); only an earlier export is replaced."
    ),
    output: OutputFormat = typer.Option(
        OutputFormat.human, "--output", help="What to print: human or json (the manifest)."
    ),
) -> None:
    """Export RUN_DIR's model: the user tower to ONNX, the item vectors to Parquet and safetensors.

    Example: zoo export runs/my-run --format onnx --out my-model
    """
    from zoo.export import FORMATS, export_run

    chosen = tuple(f.value for f in formats) or FORMATS
    manifest = export_run(run_dir, chosen, out, registry=state.registry())
    if output is OutputFormat.json:
        print_json(manifest)
        return
    stdout.print(
        f"{manifest['model']} ({manifest['family']}, {manifest['interests']} interest(s), dimension"
        f" {manifest['dimension']}, metric {manifest['metric']}) exported to {manifest['folder']}:",
        highlight=False,
    )
    tower = manifest.get("user_tower")
    if tower:
        inputs = ", ".join(
            f"{i['name']} {i['dtype']}[{', '.join(map(str, i['shape']))}]" for i in tower["inputs"]
        )
        stdout.print(f"  {tower['file']}: inputs {inputs} -> {tower['output']['name']}", highlight=False)
    items = manifest.get("item_vectors")
    if items:
        stdout.print(
            f"  {items['parquet']}, {items['safetensors']}: {items['count']} item vectors", highlight=False
        )
    stdout.print("  vocab.json, manifest.json", highlight=False)
