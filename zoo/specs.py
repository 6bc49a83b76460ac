"""Spec objects that plugins return from their registration hooks.

A spec describes one model, retriever or dataset without importing it: its ``factory`` is a
``"package.module:attribute"`` string resolved only when the thing is actually created. Listing
plugins therefore never imports torch or an ANN backend.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, ClassVar

from zoo.errors import PluginError

NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
MODEL_FAMILIES = ("two_tower", "sequential", "multi_interest")
TRAIN_MODES = (0, 1, 2)
RETRIEVER_METRICS = ("ip", "cosine")

Factory = str | Callable[..., Any]


def _frozen_mapping(value: Mapping[str, Any] | None) -> Mapping[str, Any]:
    return MappingProxyType(dict(value or {}))


@dataclass(frozen=True)
class Spec:
    """Fields shared by every kind of spec.

    Attributes:
        name: registry name, lowercase ``^[a-z0-9][a-z0-9_-]*$``.
        factory: ``"module:attr"`` (resolved lazily) or a callable.
        description: one line shown by ``zoo models`` and friends.
        requires: importable module names the factory needs (checked without importing them).
        extra: the ``pip install "recall-zoo[EXTRA]"`` extra that provides ``requires``.
        plugin: filled in by the loader: the plugin (entry-point name) that provided the spec.
        dist: filled in by the loader: the distribution that provided the spec.
    """

    kind: ClassVar[str] = "spec"

    name: str
    factory: Factory
    description: str = ""
    requires: tuple[str, ...] = ()
    extra: str | None = None
    plugin: str = ""
    dist: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not NAME_PATTERN.fullmatch(self.name):
            raise PluginError(
                f"{self.kind} name {self.name!r} is invalid: use lowercase letters, digits, '-' or '_'"
                " and start with a letter or digit."
            )
        if isinstance(self.factory, str):
            module, _, attr = self.factory.partition(":")
            if not module or not attr:
                raise PluginError(
                    f"{self.kind} '{self.name}': factory {self.factory!r} must look like 'package.module:attribute'."
                )
        elif not callable(self.factory):
            raise PluginError(f"{self.kind} '{self.name}': factory must be a 'module:attr' string or a callable.")
        object.__setattr__(self, "requires", tuple(self.requires))

    @property
    def qualified_name(self) -> str:
        """``dist:name``, the form that picks one provider when two share a name."""
        return f"{self.dist}:{self.name}" if self.dist else self.name

    def missing_requirements(self) -> list[str]:
        """Modules in ``requires`` that are not installed (found without importing them)."""
        missing = []
        for module in self.requires:
            try:
                found = importlib.util.find_spec(module) is not None
            except (ImportError, ValueError):
                found = False
            if not found:
                missing.append(module)
        return missing

    @property
    def available(self) -> bool:
        return not self.missing_requirements()

    def install_hint(self) -> str:
        if self.extra:
            return f'pip install "recall-zoo[{self.extra}]"'
        return "pip install " + " ".join(self.missing_requirements() or self.requires)

    def load(self) -> Any:
        """Import and return the factory object. Raises PluginError with an install hint."""
        if callable(self.factory):
            return self.factory
        missing = self.missing_requirements()
        if missing:
            raise PluginError(
                f"{self.kind} '{self.name}' needs {', '.join(missing)}, which is not installed: {self.install_hint()}."
            )
        module_name, _, attr = self.factory.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise PluginError(
                f"{self.kind} '{self.name}' from {self.dist or self.plugin or 'a plugin'} could not import"
                f" {module_name}: {exc}. Try: {self.install_hint()}."
            ) from exc
        obj: Any = module
        for part in attr.split("."):
            try:
                obj = getattr(obj, part)
            except AttributeError as exc:
                raise PluginError(
                    f"{self.kind} '{self.name}': {module_name} has no attribute {attr!r} (factory {self.factory!r})."
                ) from exc
        return obj

    def with_provider(self, plugin: str, dist: str) -> Spec:
        return dataclasses.replace(self, plugin=plugin, dist=dist)

    def summary(self) -> dict[str, Any]:
        """JSON-friendly description used by the listing commands."""
        out: dict[str, Any] = {
            "name": self.name,
            "description": self.description,
            "plugin": self.plugin,
            "dist": self.dist,
            "available": self.available,
        }
        if not self.available:
            out["install"] = self.install_hint()
        return out


@dataclass(frozen=True)
class ModelSpec(Spec):
    """A recall model.

    Attributes:
        family: ``two_tower`` | ``sequential`` | ``multi_interest``.
        train_modes: MatchTrainer modes the model supports (0 point-wise, 1 pair-wise, 2 list-wise).
        defaults: the preset hyper-parameters ``zoo run MODEL`` uses with no options (shown by
            ``zoo models --json``): trainer keys (``mode``, ``epochs``, ``lr``, ``batch_size``...) and
            model keys (``embed_dim``, ``temperature``...).
    """

    kind: ClassVar[str] = "model"

    family: str = "two_tower"
    train_modes: tuple[int, ...] = (0, 1, 2)
    defaults: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.family not in MODEL_FAMILIES:
            raise PluginError(f"model '{self.name}': family {self.family!r} must be one of {', '.join(MODEL_FAMILIES)}.")
        modes = tuple(self.train_modes)
        if not modes or any(m not in TRAIN_MODES for m in modes):
            raise PluginError(f"model '{self.name}': train_modes {modes!r} must be a non-empty subset of (0, 1, 2).")
        object.__setattr__(self, "train_modes", modes)
        object.__setattr__(self, "defaults", _frozen_mapping(self.defaults))

    def summary(self) -> dict[str, Any]:
        out = super().summary()
        out.update(family=self.family, train_modes=list(self.train_modes), defaults=dict(self.defaults))
        return out


@dataclass(frozen=True)
class RetrieverSpec(Spec):
    """An ANN (or exact) retrieval backend.

    Attributes:
        metrics: similarity metrics supported (``ip``, ``cosine``).
        build_params: index-build parameters with their defaults (changing one rebuilds the index).
        query_params: query-time parameters with their defaults (changed without rebuilding).
        supports_add: whether ``add`` works after ``fit``.
        supports_gpu: whether the backend can run on a CUDA device.
    """

    kind: ClassVar[str] = "retriever"

    metrics: tuple[str, ...] = RETRIEVER_METRICS
    build_params: Mapping[str, Any] = field(default_factory=dict)
    query_params: Mapping[str, Any] = field(default_factory=dict)
    supports_add: bool = False
    supports_gpu: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        metrics = tuple(self.metrics)
        if not metrics or any(m not in RETRIEVER_METRICS for m in metrics):
            raise PluginError(f"retriever '{self.name}': metrics {metrics!r} must be a subset of {RETRIEVER_METRICS}.")
        overlap = set(self.build_params) & set(self.query_params)
        if overlap:
            raise PluginError(
                f"retriever '{self.name}': {sorted(overlap)} cannot be both a build and a query parameter."
            )
        object.__setattr__(self, "metrics", metrics)
        object.__setattr__(self, "build_params", _frozen_mapping(self.build_params))
        object.__setattr__(self, "query_params", _frozen_mapping(self.query_params))

    def summary(self) -> dict[str, Any]:
        out = super().summary()
        out.update(
            metrics=list(self.metrics),
            build_params=dict(self.build_params),
            query_params=dict(self.query_params),
            supports_add=self.supports_add,
            supports_gpu=self.supports_gpu,
        )
        return out


@dataclass(frozen=True)
class DatasetSpec(Spec):
    """A dataset: its factory returns :class:`zoo.data.Interactions`.

    Attributes:
        needs_path: whether the dataset reads a local folder (``--data PATH`` or ``ZOO_DATA_DIR``).
        data_dir_name: folder name looked up under ``ZOO_DATA_DIR`` when no path is given.
        download: name understood by ``zoo data download`` that fetches this dataset, if any.
        default_protocol: the evaluation protocol preset used when none is given.
        options: loader options with their defaults (``--param key=value`` on the command line).
    """

    kind: ClassVar[str] = "dataset"

    needs_path: bool = False
    data_dir_name: str | None = None
    download: str | None = None
    default_protocol: str = "loo"
    options: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "options", _frozen_mapping(self.options))

    def summary(self) -> dict[str, Any]:
        out = super().summary()
        out.update(
            needs_path=self.needs_path,
            download=self.download,
            default_protocol=self.default_protocol,
            options=dict(self.options),
        )
        return out


SPEC_KINDS: dict[str, type[Spec]] = {"model": ModelSpec, "retriever": RetrieverSpec, "dataset": DatasetSpec}
