"""``zoo plugins``, ``zoo models``, ``zoo retrievers``, ``zoo datasets``: what is installed.

Listing reads specs only: it never imports torch or an ANN backend.
"""

from __future__ import annotations

from typing import Any

import typer

from zoo_cli import state
from zoo_cli.output import handle_errors, print_json, stdout, table

PATTERN = typer.Argument("*", help="Shell-style filter on names, e.g. '*rec*'.")
JSON = typer.Option(False, "--json", help="Machine-readable output.")


def _list(kind: str, pattern: str, as_json: bool, columns: list[str], row: Any) -> None:
    registry = state.registry()
    specs = registry.list(kind, pattern)
    if as_json:
        print_json([s.summary() for s in specs])
        return
    if not specs:
        stdout.print(f"no {kind}s match '{pattern}'")
        return
    stdout.print(table(None, columns, [row(s) for s in specs]))
    conflicts = registry.conflicts(kind)
    for name, providers in conflicts.items():
        choices = ", ".join(p.qualified_name for p in providers)
        stdout.print(f"note: '{name}' is provided by several plugins; pick one as {choices}", highlight=False)


def _availability(spec: Any) -> str:
    return "yes" if spec.available else f"no: {spec.install_hint()}"


@handle_errors
def models(pattern: str = PATTERN, as_json: bool = JSON) -> None:
    """List the installed models (with their family, train modes and presets).

    Example: zoo models '*rec*' --json
    """
    _list(
        "model",
        pattern,
        as_json,
        ["name", "family", "modes", "provider", "description"],
        lambda s: [s.name, s.family, ",".join(map(str, s.train_modes)), s.dist, s.description],
    )


@handle_errors
def retrievers(pattern: str = PATTERN, as_json: bool = JSON) -> None:
    """List the installed retrieval backends (build and query parameters, availability).

    Example: zoo retrievers --json
    """
    _list(
        "retriever",
        pattern,
        as_json,
        ["name", "build params", "query params", "available", "provider"],
        lambda s: [
            s.name,
            " ".join(f"{k}={v}" for k, v in s.build_params.items()),
            " ".join(f"{k}={v}" for k, v in s.query_params.items()),
            _availability(s),
            s.dist,
        ],
    )


@handle_errors
def datasets(pattern: str = PATTERN, as_json: bool = JSON) -> None:
    """List the installed datasets (whether they read a local folder, their default protocol).

    Example: zoo datasets 'movielens*'
    """
    _list(
        "dataset",
        pattern,
        as_json,
        ["name", "reads", "protocol", "provider", "description"],
        lambda s: [
            s.name,
            "--data PATH" if s.needs_path else "generated",
            s.default_protocol,
            s.dist,
            s.description,
        ],
    )


@handle_errors
def plugins(as_json: bool = JSON) -> None:
    """List every plugin with its status, version and what it provides (failures say why).

    Example: zoo plugins --json
    """
    registry = state.registry()
    for kind in ("model", "retriever", "dataset"):
        registry.specs(kind)  # collect, so that hook failures are recorded
    records = registry.manager.records
    if as_json:
        print_json([r.to_dict() for r in records])
        return
    rows = []
    for r in records:
        provides = "; ".join(f"{k}: {', '.join(v)}" for k, v in r.provides.items())
        rows.append([r.name, r.dist or r.source, r.version, r.display_status, provides or r.problem])
    stdout.print(table(None, ["plugin", "distribution", "version", "status", "provides / reason"], rows))
