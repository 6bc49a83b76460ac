"""``zoo serve RUN_DIR``: the run's recommendations over HTTP (zoo.serving.app), on 127.0.0.1 by default."""

from __future__ import annotations

from pathlib import Path

import typer

from zoo.errors import UsageError
from zoo_cli.output import handle_errors, stderr


@handle_errors
def serve(
    run_dir: Path = typer.Argument(..., help="A run folder (zoo run --out)."),
    host: str = typer.Option(
        "127.0.0.1", "--host", help="Address to listen on (127.0.0.1: this machine only)."
    ),
    port: int = typer.Option(8000, "--port", min=1, max=65535, help="TCP port."),
    retriever: str | None = typer.Option(
        None, "--retriever", "-r", help="Answer through this retriever instead of the run's index."
    ),
    batching: bool = typer.Option(
        True,
        "--batching/--no-batching",
        help="Share tower calls and index queries between concurrent requests.",
    ),
    window_ms: float = typer.Option(
        2.0, "--batch-window-ms", min=0.0, help="How long a batch waits for more."
    ),
    max_batch: int = typer.Option(64, "--max-batch", min=1, help="Requests per batch at most."),
    threads: int | None = typer.Option(
        None, "--threads", min=1, help="Torch threads for the towers and exact search (default: cores - 1)."
    ),
) -> None:
    """Serve RUN_DIR's recommendations over HTTP: POST /recommend, GET /items/{id}/similar, GET /healthz,
    GET /metadata, OpenAPI docs at /docs.

    Example: zoo serve runs/my-run --port 8000, then
    curl -s localhost:8000/recommend -H 'content-type: application/json' -d '{"user_id": "42", "k": 10}'
    """
    try:
        from zoo.serving.app import serve as run_server
    except ImportError as exc:
        raise UsageError(
            f'zoo serve needs FastAPI and uvicorn ({exc.name} is missing): pip install "recall-zoo[serve]"'
        ) from None
    stderr.print(f"serving {run_dir} on http://{host}:{port} (docs at /docs); Ctrl-C stops", highlight=False)
    run_server(str(run_dir), host=host, port=port, retriever=retriever, batching=batching,
               window_ms=window_ms, max_batch=max_batch, threads=threads)  # fmt: skip
