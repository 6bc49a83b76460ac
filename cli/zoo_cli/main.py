"""The ``zoo`` command line: global options, core commands, and commands added by plugins.

``--plugin PATH`` is read before the app is built, so a local plugin can add commands too. The CLI
only parses options and calls ``zoo``'s Python API; every failure a user can cause ends with a
one-line message and a non-zero exit code.
"""

from __future__ import annotations

import sys
import weakref
from pathlib import Path

import typer

from zoo import __version__
from zoo.errors import ZooError
from zoo_cli import state
from zoo_cli.commands import data, doctor, listing
from zoo_cli.commands import run as run_command
from zoo_cli.output import stderr
from zoo_cli.plugin_commands import register_plugin_commands

CORE_COMMANDS = (
    "run",
    "plugins",
    "models",
    "retrievers",
    "datasets",
    "doctor",
    "data",
    "plugin",
    "bench",
    "report",
    "recommend",
    "export",
    "serve",
)

_WARNED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # registry -> lines already printed


def _warn_plugin_failures() -> None:
    """One warning line on stderr per failed plugin, each once; a hook that raises while the command
    runs is reported when it ends (main's ``finally``)."""
    registry = state.registry()
    printed = _WARNED.setdefault(registry, set())
    for line in registry.manager.warning_lines():
        if line not in printed:
            printed.add(line)
            stderr.print(line, highlight=False, markup=False)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"recall-zoo {__version__}")
        raise typer.Exit()


def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Show the version and exit."
    ),
    plugin: list[Path] = typer.Option(
        [], "--plugin", help="Load a plugin from a local .py file (repeatable)."
    ),
) -> None:
    """recall-zoo: train, evaluate and serve recall models; compare model x retriever x device."""
    paths = [str(p) for p in plugin]
    if paths and paths != [str(Path(p)) for p in state.plugin_paths()]:
        # The app was invoked without main() (build_app() in tests): honour --plugin for specs.
        state.set_plugin_paths(paths)
    _warn_plugin_failures()


def build_app() -> typer.Typer:
    """A fresh Typer app with the core commands and the installed plugins' commands."""
    app = typer.Typer(
        name="zoo",
        help="recall-zoo: a plugin-based model zoo for the recall stage of recommender systems.",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
        rich_markup_mode="rich",
    )
    app.callback()(_root)
    app.command("run")(run_command.run)
    from zoo_cli.commands import bench as bench_command

    app.command("bench")(bench_command.bench)
    app.command("report")(bench_command.report)
    from zoo_cli.commands import export as export_command
    from zoo_cli.commands import recommend as recommend_command

    app.command("recommend")(recommend_command.recommend)
    app.command("export")(export_command.export)
    from zoo_cli.commands import serve as serve_command

    app.command("serve")(serve_command.serve)
    app.command("models")(listing.models)
    app.command("retrievers")(listing.retrievers)
    app.command("datasets")(listing.datasets)
    app.command("plugins")(listing.plugins)
    app.command("doctor")(doctor.doctor)
    app.add_typer(data.app, name="data")
    from zoo_cli.commands import plugin as plugin_command

    app.add_typer(plugin_command.app, name="plugin")
    try:
        manager = state.registry().manager
    except ZooError as exc:  # ZOO_STRICT_PLUGINS with a broken plugin
        stderr.print(f"error: {exc.message}", highlight=False, markup=False)
        raise SystemExit(exc.exit_code) from None
    register_plugin_commands(
        app, manager, CORE_COMMANDS, on_warning=lambda line: stderr.print(line, highlight=False, markup=False)
    )
    return app


def _plugin_paths(argv: list[str]) -> list[str]:
    """``--plugin PATH`` / ``--plugin=PATH`` occurrences before the sub-command name."""
    paths: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--plugin" and i + 1 < len(argv):
            paths.append(argv[i + 1])
            i += 2
            continue
        if arg.startswith("--plugin="):
            paths.append(arg.split("=", 1)[1])
        elif not arg.startswith("-"):
            break
        i += 1
    return paths


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    args = list(sys.argv[1:] if argv is None else argv)
    state.set_plugin_paths(_plugin_paths(args))
    app = build_app()
    try:
        app(args=args, prog_name="zoo")
    finally:
        _warn_plugin_failures()  # `zoo --help` / `zoo --version` exit before the root callback runs


if __name__ == "__main__":  # pragma: no cover
    main()
