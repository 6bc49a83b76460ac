"""Process-wide CLI state: the registry built from installed plugins and ``--plugin`` paths."""

from __future__ import annotations

from zoo.registry import Registry, default_registry

_PLUGIN_PATHS: list[str] = []


def set_plugin_paths(paths: list[str]) -> None:
    _PLUGIN_PATHS[:] = list(paths)


def plugin_paths() -> list[str]:
    """The ``--plugin`` paths the registry is built with."""
    return list(_PLUGIN_PATHS)


def registry() -> Registry:
    """The registry every command uses (built once, including ``--plugin`` files)."""
    return default_registry(tuple(_PLUGIN_PATHS))
