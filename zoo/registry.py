"""Name -> spec lookup over everything the plugins registered, with wildcards and did-you-mean.

``Registry`` is the one place that turns a user's name (``dssm``, ``hnsw``, ``movielens-1m`` or the
qualified ``dist:name``) into a spec. Listing only touches specs, so it never imports torch.
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Sequence
from typing import Any

from zoo.errors import UnknownNameError, UsageError
from zoo.plugins import PluginManager, normalize_dist
from zoo.specs import DatasetSpec, ModelSpec, RetrieverSpec, Spec

KINDS = ("model", "retriever", "dataset")


class Registry:
    """Specs of every kind, collected from a :class:`PluginManager`."""

    def __init__(self, manager: PluginManager) -> None:
        self.manager = manager

    # -- listing ------------------------------------------------------------------------------
    def specs(self, kind: str) -> list[Spec]:
        if kind not in KINDS:
            raise UsageError(f"unknown kind '{kind}'; use one of {', '.join(KINDS)}")
        return self.manager.collect(kind)

    def names(self, kind: str) -> list[str]:
        return sorted({s.name for s in self.specs(kind)})

    def list(self, kind: str, pattern: str = "*") -> list[Spec]:
        """Specs whose name (or ``dist:name``) matches the shell-style ``pattern``, sorted by name."""
        pattern = pattern or "*"
        found = [
            s
            for s in self.specs(kind)
            if fnmatch.fnmatch(s.name, pattern) or fnmatch.fnmatch(s.qualified_name, pattern)
        ]
        return sorted(found, key=lambda s: (s.name, s.dist))

    def conflicts(self, kind: str) -> dict[str, list[Spec]]:
        """Names provided by more than one plugin."""
        by_name: dict[str, list[Spec]] = {}
        for spec in self.specs(kind):
            by_name.setdefault(spec.name, []).append(spec)
        return {name: specs for name, specs in by_name.items() if len(specs) > 1}

    # -- lookup -------------------------------------------------------------------------------
    def get(self, kind: str, name: str) -> Spec:
        """The spec called ``name`` (or ``dist:name``); exits 2 with did-you-mean when unknown."""
        specs = self.specs(kind)
        dist, sep, bare = name.rpartition(":")
        if sep:
            wanted = normalize_dist(dist)
            matches = [
                s
                for s in specs
                if s.name == bare and wanted in (normalize_dist(s.dist), normalize_dist(s.plugin))
            ]
            if not matches:
                raise UnknownNameError(kind, name, [s.qualified_name for s in specs])
            return matches[0]
        matches = [s for s in specs if s.name == name]
        if not matches:
            raise UnknownNameError(kind, name, [s.name for s in specs], hint=self._failed_hint())
        if len(matches) > 1:
            providers = " and ".join(f"{s.dist} (plugin {s.plugin})" for s in matches)
            choices = ", ".join(f"'{s.qualified_name}'" for s in matches)
            raise UsageError(f"{kind} '{name}' is provided by both {providers}; pick one as {choices}")
        return matches[0]

    def _failed_hint(self) -> str:
        failed = self.manager.failures
        if not failed:
            return ""
        return f"{len(failed)} plugin(s) failed to load; run 'zoo plugins' to see why."

    def model(self, name: str) -> ModelSpec:
        return self.get("model", name)  # type: ignore[return-value]

    def retriever(self, name: str) -> RetrieverSpec:
        return self.get("retriever", name)  # type: ignore[return-value]

    def dataset(self, name: str) -> DatasetSpec:
        return self.get("dataset", name)  # type: ignore[return-value]

    # -- creation -------------------------------------------------------------------------------
    def model_class(self, name: str) -> Any:
        """The model class registered as ``name`` (imports it)."""
        return self.model(name).load()

    def create_retriever(self, name: str, *, metric: str = "ip", **params: Any) -> Any:
        """Instantiate retriever ``name`` with its default build and query parameters overridden by
        ``params``."""
        spec = self.retriever(name)
        if metric not in spec.metrics:
            raise UsageError(
                f"retriever '{name}' does not support metric '{metric}'; it supports"
                f" {', '.join(spec.metrics)}"
            )
        known = set(spec.build_params) | set(spec.query_params)
        unknown = sorted(set(params) - known)
        if unknown:
            raise UsageError(
                f"retriever '{name}' has no parameter {', '.join(repr(u) for u in unknown)};"
                f" its parameters are {', '.join(sorted(known)) or 'none'}"
            )
        merged = {**spec.build_params, **spec.query_params, **params}
        return spec.load()(metric=metric, **merged)

    def load_dataset(self, name: str, path: str | os.PathLike[str] | None = None, **options: Any) -> Any:
        """Load dataset ``name`` as :class:`zoo.data.Interactions` (``path`` for folder-based datasets)."""
        from zoo.data.locate import resolve_data_path

        spec = self.dataset(name)
        unknown = sorted(set(options) - set(spec.options))
        if unknown:
            raise UsageError(
                f"dataset '{name}' has no option {', '.join(repr(u) for u in unknown)};"
                f" its options are {', '.join(sorted(spec.options)) or 'none'}"
            )
        merged = {**spec.options, **options}
        loader = spec.load()
        if spec.needs_path:
            return loader(resolve_data_path(spec, path), **merged)
        if path is not None:
            merged["path"] = path
        return loader(**merged)


_DEFAULT: dict[tuple[str, ...], Registry] = {}


def default_registry(plugin_paths: Sequence[str | os.PathLike[str]] = ()) -> Registry:
    """The process-wide registry over installed plugins (plus ``plugin_paths``), built once."""
    key = tuple(str(p) for p in plugin_paths)
    if key not in _DEFAULT:
        _DEFAULT[key] = Registry(PluginManager(paths=plugin_paths))
    return _DEFAULT[key]


def set_default_registry(
    registry: Registry | None, plugin_paths: Sequence[str | os.PathLike[str]] = ()
) -> Registry | None:
    """Make ``registry`` the process default for ``plugin_paths`` (None forgets it); returns the previous
    one."""
    key = tuple(str(p) for p in plugin_paths)
    previous = _DEFAULT.get(key)
    if registry is None:
        _DEFAULT.pop(key, None)
    else:
        _DEFAULT[key] = registry
    return previous


def reset_default_registry() -> None:
    """Forget cached registries (tests that install or remove plugins call this)."""
    _DEFAULT.clear()


def list_models(pattern: str = "*") -> list[str]:
    """Names of installed models matching ``pattern`` (timm-style), e.g. ``list_models("*rec*")``."""
    return [s.name for s in default_registry().list("model", pattern)]


def list_retrievers(pattern: str = "*") -> list[str]:
    """Names of installed retrievers matching ``pattern``."""
    return [s.name for s in default_registry().list("retriever", pattern)]


def list_datasets(pattern: str = "*") -> list[str]:
    """Names of installed datasets matching ``pattern``."""
    return [s.name for s in default_registry().list("dataset", pattern)]


def create_model(name: str, **kwargs: Any) -> Any:
    """Instantiate model ``name`` with the seed-style constructor arguments ``kwargs``."""
    return default_registry().model_class(name)(**kwargs)


def create_retriever(name: str, **params: Any) -> Any:
    """Instantiate retriever ``name`` (``metric="ip"`` by default) with ``params`` over its defaults."""
    return default_registry().create_retriever(name, **params)


def load_dataset(name: str, path: str | os.PathLike[str] | None = None, **options: Any) -> Any:
    """Load dataset ``name`` as :class:`zoo.data.Interactions`."""
    return default_registry().load_dataset(name, path, **options)
