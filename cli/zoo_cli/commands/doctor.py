"""``zoo doctor``: versions, devices, data folders and every plugin, with tracebacks of failures."""

from __future__ import annotations

import os

from zoo_cli import state
from zoo_cli.output import handle_errors, stdout, table


@handle_errors
def doctor() -> None:
    """Check the installation: versions, devices, data folders, plugins (with tracebacks).

    Example: zoo doctor
    """
    from zoo.data.locate import cache_dir
    from zoo.environment import summary

    env = summary()
    stdout.print(table("versions", ["package", "version"], env["versions"].items()))
    stdout.print(f"devices: {', '.join(env['devices'])}  (cpu cores: {env['cpu_count']})", highlight=False)
    stdout.print(
        f"ZOO_DATA_DIR: {os.environ.get('ZOO_DATA_DIR') or '(not set)'}   download cache: {cache_dir()}",
        highlight=False,
    )
    registry = state.registry()
    for kind in ("model", "retriever", "dataset"):
        registry.specs(kind)
    rows = [
        [r.name, r.dist or r.source, r.version, r.display_status, r.problem] for r in registry.manager.records
    ]
    stdout.print(table("plugins", ["plugin", "distribution", "version", "status", "reason"], rows))
    for kind in ("model", "retriever", "dataset"):
        for spec in registry.specs(kind):
            if not spec.available:
                stdout.print(
                    f"{kind} '{spec.name}' is unavailable: {spec.install_hint()}",
                    highlight=False,
                    markup=False,
                )
    for record in registry.manager.failures:
        stdout.rule(f"{record.name}: {record.display_status}")
        stdout.print(record.problem, highlight=False, markup=False, soft_wrap=True)
        if record.traceback:
            stdout.print(record.traceback, highlight=False, markup=False)
    if not registry.manager.failures:
        stdout.print("all plugins loaded", highlight=False)
