"""``zoo recommend RUN_DIR --user ID``: top-K items for known users of a run (zoo.serving.Recommender)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from zoo.errors import UsageError
from zoo_cli import state
from zoo_cli.output import OutputFormat, handle_errors, print_json, stderr, stdout, table


@handle_errors
def recommend(
    run_dir: Path = typer.Argument(..., help="A run folder (zoo run --out)."),
    user: list[str] = typer.Option([], "--user", "-u", help="Original user id (repeatable)."),
    k: int = typer.Option(10, "--k", help="Items per user."),
    exclude_seen: bool | None = typer.Option(
        None,
        "--exclude-seen/--include-seen",
        help="Leave out the items the user already has (default: yes; with --as-evaluated, as the run did).",
    ),
    as_evaluated: bool = typer.Option(
        False,
        "--as-evaluated",
        help="Answer from the history zoo run evaluated the user on (before the test item).",
    ),
    exact: bool = typer.Option(False, "--exact", help="Exact full ranking instead of the run's index."),
    device: str = typer.Option("cpu", "--device", help="cpu, auto, cuda, cuda:N or mps."),
    output_format: OutputFormat = typer.Option(OutputFormat.human, "--format", help="human or json."),
) -> None:
    """Recommend items for known users of RUN_DIR, by their original ids.

    Example: zoo recommend runs/my-run --user 42 --user 7 --k 20 --format json
    """
    from zoo.serving import Recommender

    if not user:
        raise UsageError("give at least one --user ID (an original user id of the run's data)")
    recommender = Recommender.load(run_dir, device=device, registry=state.registry())
    recs = recommender.recommend(user, k, exclude_seen=exclude_seen, as_evaluated=as_evaluated, exact=exact)
    if output_format is OutputFormat.json:
        print_json([rec.to_dict() for rec in recs])
        return
    for rec in recs:
        render(rec)


def render(rec: Any) -> None:
    """One user's recommendations as a table: rank, item id, score, then the item's side values."""
    columns = list(dict.fromkeys(key for meta in rec.metadata for key in meta))
    rows = [
        [rank, item, f"{score:.4f}", *(meta.get(c) for c in columns)]
        for rank, (item, score, meta) in enumerate(zip(rec.items, rec.scores, rec.metadata, strict=True), 1)
    ]
    stdout.print(table(f"user {rec.user}", ["rank", "item", "score", *columns], rows))
    for note in rec.notes:
        stderr.print(f"note: {note}", highlight=False, markup=False)
