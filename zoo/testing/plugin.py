"""The opt-in pytest plugin for recall-zoo plugin authors.

Switch it on in your package's ``pyproject.toml``::

    [tool.pytest.ini_options]
    addopts = "-p zoo.testing.plugin"

(or ``pytest -p zoo.testing.plugin``, or ``pytest_plugins = ["zoo.testing.plugin"]`` in your
top-level ``conftest.py``). Fixtures:

``zoo_registry``
    A :class:`~zoo.registry.Registry` with recall-zoo's built-ins and *no* installed third-party
    plugin (yours included: register it explicitly), installed as the process default for the test,
    so ``zoo.registry.create_model``, ``zoo.models.load_model`` and the ``zoo`` CLI see exactly it.
``zoo_plugin_manager``
    That registry's :class:`~zoo.plugins.PluginManager` (``.records``, ``.failures``...).
``register_plugin``
    ``with register_plugin(my_module) as record:`` registers a plugin object into ``zoo_registry``
    for the block and checks that it loaded (see :func:`zoo.testing.register_plugin`).
``zoo_cli``
    ``zoo_cli("models", "--json")`` runs the ``zoo`` command line in-process over ``zoo_registry``
    and returns a ``typer.testing`` result (``exit_code``, ``stdout``, ``stderr``).
``tiny_interactions``
    A small synthetic :class:`~zoo.data.Interactions` (session-scoped; do not modify it).
``zoo_devices`` / ``zoo_device``
    The devices usable here (``["cpu", "cuda:0", ...]``); a test that takes ``zoo_device`` runs once
    per device.

It also registers the ``slow`` marker (``ModelConformance`` subclasses with ``slow = True`` use it).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import Any

import pytest

from zoo import testing


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slow: long-running test (model quality checks, end-to-end training)")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """``zoo_device``: one test per available device (torch is imported only when a test asks)."""
    if "zoo_device" in metafunc.fixturenames:
        from zoo.device import available_devices

        metafunc.parametrize("zoo_device", available_devices())


@pytest.fixture
def zoo_registry() -> Iterator[Any]:
    """Built-ins only (installed third-party plugins switched off), the process default for the test."""
    from zoo_cli import state

    registry = testing.fresh_registry()
    saved_paths = state.plugin_paths()
    state.set_plugin_paths([])
    try:
        with testing.use_registry(registry):
            yield registry
    finally:
        state.set_plugin_paths(saved_paths)


@pytest.fixture
def zoo_plugin_manager(zoo_registry: Any) -> Any:
    """The plugin manager behind ``zoo_registry``."""
    return zoo_registry.manager


@pytest.fixture
def register_plugin(zoo_registry: Any) -> Callable[..., AbstractContextManager[Any]]:
    """``with register_plugin(obj, name=None, dist="", version="", check=True) as record:``."""

    def _register(plugin: object, name: str | None = None, **kwargs: Any) -> AbstractContextManager[Any]:
        return testing.register_plugin(plugin, name, registry=zoo_registry, **kwargs)

    return _register


@pytest.fixture
def zoo_cli(zoo_registry: Any) -> Callable[..., Any]:
    """``zoo_cli(*args, input=None, env=None)`` -> result of ``zoo ARGS`` run in-process."""
    from typer.testing import CliRunner

    from zoo_cli.main import build_app

    runner = CliRunner()

    def _invoke(*args: str, input: str | None = None, env: dict[str, str] | None = None) -> Any:
        return runner.invoke(build_app(), [str(a) for a in args], input=input, env=env)

    return _invoke


@pytest.fixture(scope="session")
def tiny_interactions() -> Any:
    """A small synthetic log (:data:`zoo.testing.TINY_DATA`: 300 users, 120 items, side features)."""
    return testing.tiny_interactions()


@pytest.fixture(scope="session")
def zoo_devices() -> list[str]:
    """Devices usable in this process, e.g. ``["cpu", "cuda:0"]``."""
    from zoo.device import available_devices

    return available_devices()
