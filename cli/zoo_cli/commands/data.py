"""``zoo data``: fetch and inspect the archives that dataset plugins ship (``DatasetSpec.archive``).

Thin by design: it parses options and calls :mod:`zoo.data.download`; failures are
:class:`zoo.errors.ZooError` subclasses, printed as one line with their exit code (``handle_errors``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from zoo_cli.output import handle_errors

app = typer.Typer(help="Fetch and inspect datasets.", no_args_is_help=True)


def _progress_bar(console: Console) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    )


@app.command("download")
@handle_errors
def download_command(
    name: Annotated[str, typer.Argument(help="Dataset to fetch, e.g. movielens-1m (see 'zoo data list').")],
    directory: Annotated[
        Path | None,
        typer.Option(
            "--dir", help="Folder to extract into (default: $ZOO_CACHE_DIR or ~/.cache/recall-zoo)."
        ),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Download again even if the folder exists.")] = False,
) -> None:
    """Download, verify (sha256) and extract a dataset; print the folder it is in.

    Example: zoo data download movielens-1m --dir data
    """
    from zoo.data.download import download, get_archive
    from zoo_cli import state

    archive = get_archive(name, state.registry())
    err = Console(stderr=True)
    fetched = False
    with _progress_bar(err) as bar:
        task = bar.add_task(archive.filename, total=archive.size)

        def progress(done: int, total: int | None) -> None:
            nonlocal fetched
            fetched = True
            bar.update(task, completed=done, total=total)

        folder = download(archive, directory, force=force, progress=progress)
    if not fetched:
        err.print(
            f"{archive.name} is already in {folder} (use --force to download it again)", highlight=False
        )
    typer.echo(str(folder))


@app.command("list")
@handle_errors
def list_command() -> None:
    """List the datasets 'zoo data download' can fetch, with their size and URL.

    Example: zoo data list
    """
    from zoo.data.download import archives, format_size
    from zoo_cli import state

    rows = [(a.name, format_size(a.size), a.download_url) for a in archives(state.registry()).values()]
    if not rows:
        typer.echo("no installed dataset plugin ships a downloadable archive")
        return
    width = max(len(r[0]) for r in rows)
    typer.echo(f"{'name':<{width}}  {'size':>9}  url")
    for name, size, url in rows:
        typer.echo(f"{name:<{width}}  {size:>9}  {url}")
