"""Test kit for recall-zoo plugin authors (opt-in; nothing here is imported by ``import zoo``).

Three layers, use what you need:

* **Helpers** (this module, no pytest needed): :func:`fresh_manager` / :func:`fresh_registry` build a
  plugin manager with the installed third-party plugins switched off, :func:`register_plugin`
  registers a plugin object (your hookimpl module) for the length of a ``with`` block,
  :func:`use_registry` makes a registry the process default (so ``zoo.registry.create_model`` and the
  ``zoo`` command line see it), :func:`tiny_interactions` is a small synthetic log.
* **The pytest plugin** :mod:`zoo.testing.plugin`, switched on with ``-p zoo.testing.plugin`` (or
  ``addopts = "-p zoo.testing.plugin"`` in your ``[tool.pytest.ini_options]``): fixtures
  ``zoo_registry``, ``zoo_plugin_manager``, ``register_plugin``, ``zoo_cli``, ``tiny_interactions``,
  ``zoo_devices`` and the parametrised ``zoo_device``, and the ``slow`` marker.
* **Conformance suites** an author subclasses (the built-ins run the very same ones):
  :class:`~zoo.testing.models.ModelConformance`, :class:`~zoo.testing.retrievers.RetrieverConformance`,
  :class:`~zoo.testing.datasets.DatasetConformance`.

This package imports neither torch nor pytest at import time; the suites are loaded on first use
(``from zoo.testing import ModelConformance`` imports pytest and torch then).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover - typing only
    from zoo.data.interactions import Interactions
    from zoo.plugins import PluginManager, PluginRecord
    from zoo.registry import Registry

__all__ = [
    "DatasetConformance",
    "ModelConformance",
    "RetrieverConformance",
    "TINY_DATA",
    "fresh_manager",
    "fresh_registry",
    "register_plugin",
    "suite_registry",
    "tiny_interactions",
    "use_registry",
]

#: options of the built-in ``synthetic`` dataset behind :func:`tiny_interactions` (300 users, 120 items)
TINY_DATA: Mapping[str, Any] = {"users": 300, "items": 120, "categories": 6, "mean_length": 18, "seed": 7}

_LAZY = {
    "ModelConformance": "zoo.testing.models",
    "RetrieverConformance": "zoo.testing.retrievers",
    "DatasetConformance": "zoo.testing.datasets",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'zoo.testing' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)


def fresh_manager(*, builtins: bool = True, strict: bool = False) -> PluginManager:
    """A new plugin manager that ignores the installed third-party plugins and every ``ZOO_*`` variable.

    Args:
        builtins: load recall-zoo's own plugins (``dssm``, ``exact``, ``synthetic``...); ``False``
            gives an empty manager.
        strict: make any plugin failure fatal (like ``ZOO_STRICT_PLUGINS=1``).
    """
    from zoo.plugins import PluginManager

    if not builtins:
        return PluginManager(entry_points=False, env={}, strict=strict)
    # An empty allow-list skips every third-party distribution; built-ins always load.
    return PluginManager(env={"ZOO_LOAD_PLUGINS": ""}, strict=strict)


def fresh_registry(*plugins: object, builtins: bool = True) -> Registry:
    """A :class:`~zoo.registry.Registry` over :func:`fresh_manager` plus ``plugins`` (objects or modules
    with ``@zoo.hookimpl`` functions), each registered under its ``__name__``.

    Raises :class:`zoo.errors.PluginError` when one of ``plugins`` does not load.
    """
    from zoo.registry import Registry

    registry = Registry(fresh_manager(builtins=builtins))
    for plugin in plugins:
        _check(registry.manager, registry.manager.register(plugin))
    return registry


_SUITE_REGISTRIES: dict[type, Registry] = {}


def suite_registry(suite: type) -> Registry:
    """The registry a conformance suite class resolves names in: the default registry when its
    ``plugin`` is None, else recall-zoo's built-ins plus that plugin (built once per class)."""
    plugin = getattr(suite, "plugin", None)
    if plugin is None:
        from zoo.registry import default_registry

        return default_registry()
    if suite not in _SUITE_REGISTRIES:
        _SUITE_REGISTRIES[suite] = fresh_registry(plugin)
    return _SUITE_REGISTRIES[suite]


def _check(manager: PluginManager, record: PluginRecord) -> None:
    """Raise PluginError when ``record`` failed to load or one of its registration hooks raised."""
    from zoo.errors import PluginError
    from zoo.plugins import LOADED

    if record.status != LOADED:
        raise PluginError(f"plugin {record.name} did not load ({record.status}): {record.reason}")
    for kind in ("model", "retriever", "dataset"):
        manager.collect(kind)
    if record.hook_errors:
        raise PluginError(f"plugin {record.name}: {record.problem}")


@contextlib.contextmanager
def register_plugin(
    plugin: object,
    name: str | None = None,
    *,
    registry: Registry | None = None,
    dist: str = "",
    version: str = "",
    check: bool = True,
) -> Iterator[PluginRecord]:
    """Register ``plugin`` (a module or object with ``@zoo.hookimpl`` functions) inside a ``with`` block.

    Yields the plugin's :class:`~zoo.plugins.PluginRecord`; the plugin is unregistered afterwards.

    Args:
        registry: where to register (default: the process default registry, the one
            ``zoo.registry.create_model`` and the CLI use; the ``register_plugin`` *fixture* uses the
            isolated ``zoo_registry`` instead).
        name, dist, version: shown by ``zoo plugins``; ``dist:name`` picks your spec in a name clash.
        check: raise :class:`zoo.errors.PluginError` when the plugin is rejected (misspelt hook,
            bad signature) or a registration hook raises; ``False`` yields the failed record instead.
    """
    from zoo.registry import default_registry

    registry = registry if registry is not None else default_registry()
    manager = registry.manager
    record = manager.register(plugin, name=name, dist=dist, version=version)
    try:
        if check:
            _check(manager, record)
        yield record
    finally:
        manager.unregister(record.name)
        if record in manager.records:  # a rejected plugin is not registered, only recorded
            manager.records.remove(record)


@contextlib.contextmanager
def use_registry(registry: Registry) -> Iterator[Registry]:
    """Make ``registry`` the process default (what ``zoo.registry.create_model``, ``load_model`` and the
    ``zoo`` CLI use) inside a ``with`` block; the previous default comes back afterwards."""
    from zoo.registry import set_default_registry

    previous = set_default_registry(registry)
    try:
        yield registry
    finally:
        set_default_registry(previous)


def tiny_interactions(registry: Registry | None = None, **options: Any) -> Interactions:
    """A small seeded log from the built-in ``synthetic`` dataset (:data:`TINY_DATA`, overridable),
    with user and item side features; learnable, so a model can beat popularity on it."""
    registry = registry if registry is not None else fresh_registry()
    return registry.load_dataset("synthetic", **{**TINY_DATA, **options})
