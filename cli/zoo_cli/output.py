"""Terminal and JSON output for the CLI (all printing lives here and in the commands)."""

from __future__ import annotations

import contextlib
import enum
import functools
import json
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from zoo.errors import ZooError

stdout = Console(soft_wrap=True)
stderr = Console(stderr=True, soft_wrap=True)

F = TypeVar("F", bound=Callable[..., Any])


def fail(message: str, code: int) -> typer.Exit:
    """Print a one-line error on stderr and return the Exit to raise."""
    stderr.print(f"[bold red]error:[/] {message}", highlight=False, markup=True)
    return typer.Exit(code)


class OutputFormat(str, enum.Enum):
    """``--format``: the choices every command shows in its help."""

    human = "human"
    json = "json"


def protocol_option() -> Any:
    """``--protocol``: its help lists the protocol presets (``zoo.data.protocol.PROTOCOLS``, a light
    import) and the shell completes them; a typo is a one-line did-you-mean error, exit 2, before any
    work, like every other name option."""
    from zoo.data.protocol import PROTOCOLS

    names = list(PROTOCOLS)
    return typer.Option(
        None,
        "--protocol",
        metavar="[" + "|".join(names) + "]",
        help="Evaluation protocol (default: the dataset's).",
        autocompletion=lambda incomplete: [n for n in names if n.startswith(incomplete)],
    )


def handle_errors(fn: F) -> F:
    """Turn a ZooError into a one-line message and its exit code (no traceback)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except ZooError as exc:
            raise fail(_escape(exc.message), exc.exit_code) from None
        except KeyboardInterrupt:
            raise fail("interrupted", 130) from None

    return wrapper  # type: ignore[return-value]


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
    sys.stdout.flush()


def table(title: str | None, columns: Iterable[str], rows: Iterable[Iterable[Any]]) -> Table:
    t = Table(title=title, title_justify="left", show_lines=False)
    for column in columns:
        t.add_column(column)
    for row in rows:
        t.add_row(*["" if v is None else _escape(str(v)) for v in row])
    return t


def fmt(value: Any, digits: int = 4) -> str:
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def metric_table(
    metrics: Mapping[str, Mapping[str, float]], columns: Mapping[str, str], ks: Iterable[int]
) -> Table:
    """Rows metric@K, one column per evaluator (``columns`` maps key -> header)."""
    names = ("hitrate", "recall", "ndcg", "mrr", "precision")
    t = Table(show_lines=False)
    t.add_column("metric")
    for header in columns.values():
        t.add_column(header, justify="right")
    for k in ks:
        for name in names:
            key = f"{name}@{k}"
            if name == "recall" and all(
                metrics[c].get(key) == metrics[c].get(f"hitrate@{k}") for c in columns
            ):
                continue  # one target per user: recall equals hit rate, show it once
            t.add_row(key, *[fmt(metrics[c].get(key, float("nan"))) for c in columns])
    return t


@contextlib.contextmanager
def task_bar(name: str, total: int | None) -> Iterator[Callable[[int], None]]:
    """A transient progress line on stderr for one long step: a bar with done/total and the time left,
    or, when ``total`` is None, a spinner with the elapsed time (an index build reports no progress)."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns: list[Any] = [SpinnerColumn(), TextColumn("[bold]{task.description}")]
    if total is not None:
        columns += [BarColumn(), MofNCompleteColumn(), TimeRemainingColumn()]
    columns.append(TimeElapsedColumn())
    with Progress(*columns, console=stderr, transient=True) as bar:
        task = bar.add_task(name, total=total)
        yield lambda done: bar.advance(task, done)
