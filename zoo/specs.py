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
                    f"{self.kind} '{self.name}': factory {self.factory!r} must look like"
                    " 'package.module:attribute'."
                )
        elif not callable(self.factory):
            raise PluginError(
                f"{self.kind} '{self.name}': factory must be a 'module:attr' string or a callable."
            )
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
                f"{self.kind} '{self.name}' needs {', '.join(missing)}, which is not installed:"
                f" {self.install_hint()}."
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
                    f"{self.kind} '{self.name}': {module_name} has no attribute {attr!r} (factory"
                    f" {self.factory!r})."
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

    The spec is the one owner of the model's registry metadata and preset: model classes do not restate
    them (:meth:`load` returns the class bound to its spec, whose instances read them from it).

    Attributes:
        family: ``two_tower`` | ``sequential`` | ``multi_interest``.
        train_modes: MatchTrainer modes the model supports (0 point-wise, 1 pair-wise, 2 list-wise).
        model_defaults: the preset's keyword arguments of the class's ``from_schema`` (``embed_dim``,
            ``temperature``...).
        trainer_defaults: the preset's trainer settings, keys of ``zoo.train.config.TrainerConfig``
            (``mode``, ``negatives``, ``epochs``, ``lr``...).
        training_data: ``samples`` (one target per row: the history before it) or ``sequences``
            (windows of a user's sequence with a target at every position, ``MatchData.sequence_batch``).
        data_defaults: the preset's training-data settings: only ``window_stride`` (sequence windows).
        defaults: (read-only) the three preset groups merged, as ``zoo models --json`` shows them.
    """

    kind: ClassVar[str] = "model"
    #: accepted values of ``training_data``
    TRAINING_DATA: ClassVar[tuple[str, ...]] = ("samples", "sequences")
    #: accepted keys of ``data_defaults``
    DATA_KEYS: ClassVar[tuple[str, ...]] = ("window_stride",)
    family: str = "two_tower"
    train_modes: tuple[int, ...] = (0, 1, 2)
    model_defaults: Mapping[str, Any] = field(default_factory=dict)
    trainer_defaults: Mapping[str, Any] = field(default_factory=dict)
    training_data: str = "samples"
    data_defaults: Mapping[str, Any] = field(default_factory=dict)

    @property
    def defaults(self) -> Mapping[str, Any]:
        """The whole preset: trainer, model and data keys merged (read-only)."""
        return MappingProxyType({**self.trainer_defaults, **self.model_defaults, **self.data_defaults})

    @staticmethod
    def trainer_keys() -> frozenset[str]:
        """``TrainerConfig``'s field names (its module imports no torch)."""
        from zoo.train.config import TrainerConfig

        return frozenset(TrainerConfig.keys())

    @classmethod
    def split(cls, params: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
        """(model, trainer, data) parts of a flat parameter mapping, routed by name: ``TrainerConfig``
        keys go to the trainer, :attr:`DATA_KEYS` to the training data, every other key to the model."""
        trainer_keys = cls.trainer_keys()
        model: dict[str, Any] = {}
        trainer: dict[str, Any] = {}
        data: dict[str, Any] = {}
        for key, value in params.items():
            target = trainer if key in trainer_keys else data if key in cls.DATA_KEYS else model
            target[key] = value
        return model, trainer, data

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.family not in MODEL_FAMILIES:
            raise PluginError(
                f"model '{self.name}': family {self.family!r} must be one of {', '.join(MODEL_FAMILIES)}."
            )
        modes = tuple(self.train_modes)
        if not modes or any(m not in TRAIN_MODES for m in modes):
            raise PluginError(
                f"model '{self.name}': train_modes {modes!r} must be a non-empty subset of (0, 1, 2)."
            )
        object.__setattr__(self, "train_modes", modes)
        if self.training_data not in self.TRAINING_DATA:
            raise PluginError(
                f"model '{self.name}': training_data {self.training_data!r} must be one of"
                f" {', '.join(self.TRAINING_DATA)}."
            )
        model, trainer, data = (
            dict(g or {}) for g in (self.model_defaults, self.trainer_defaults, self.data_defaults)
        )
        self._check_preset(model, trainer, data)
        object.__setattr__(self, "model_defaults", _frozen_mapping(model))
        object.__setattr__(self, "trainer_defaults", _frozen_mapping(trainer))
        object.__setattr__(self, "data_defaults", _frozen_mapping(data))

    def _check_preset(self, model: dict[str, Any], trainer: dict[str, Any], data: dict[str, Any]) -> None:
        from zoo.errors import UsageError
        from zoo.train.config import TrainerConfig

        try:
            TrainerConfig.from_dict(trainer)  # unknown keys (with did-you-mean), types and ranges
        except UsageError as exc:
            raise PluginError(f"model '{self.name}': trainer_defaults: {exc}") from None
        misplaced = sorted(set(model) & self.trainer_keys())
        if misplaced:
            raise PluginError(
                f"model '{self.name}': {', '.join(misplaced)} in model_defaults are trainer settings;"
                " move them to trainer_defaults."
            )
        unknown = sorted(set(data) - set(self.DATA_KEYS))
        if unknown:
            raise PluginError(
                f"model '{self.name}': data_defaults accepts {', '.join(self.DATA_KEYS)},"
                f" not {', '.join(unknown)}."
            )
        misplaced = sorted(set(model) & set(self.DATA_KEYS))
        if misplaced:
            raise PluginError(
                f"model '{self.name}': move {', '.join(misplaced)} from model_defaults to data_defaults."
            )
        if "window_stride" in data and self.training_data != "sequences":
            raise PluginError(
                f"model '{self.name}': window_stride applies to sequence windows;"
                " set training_data='sequences' or drop it."
            )
        mode = trainer.get("mode")
        if mode is not None and mode not in self.train_modes:
            raise PluginError(
                f"model '{self.name}': the preset's mode {mode!r} is not one of train_modes"
                f" {list(self.train_modes)}."
            )

    def load(self) -> Any:
        """Import the factory; a model class comes back bound to this spec (``cls.spec``, see
        ``RecallModel.bind_spec``), so its instances know their name, family, modes and training data."""
        obj = super().load()
        bind = getattr(obj, "bind_spec", None)
        if isinstance(obj, type) and callable(bind):
            return bind(self)
        return obj

    def summary(self) -> dict[str, Any]:
        out = super().summary()
        out.update(
            family=self.family,
            train_modes=list(self.train_modes),
            training_data=self.training_data,
            model_defaults=dict(self.model_defaults),
            trainer_defaults=dict(self.trainer_defaults),
            data_defaults=dict(self.data_defaults),
            defaults=dict(self.defaults),
        )
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
        aliases: class names ``zoo.retrieval`` resolves to this retriever (``from zoo.retrieval
            import Annoy``); each a Python identifier starting with an uppercase letter.
        bench_grid: the default ``zoo bench`` grid: a ``{"build": {...}, "query": {...}}`` table of
            parameter -> values, or a list of them (one per build group); None measures the
            retriever once at its defaults. Checked against ``build_params`` / ``query_params`` here
            and kept as a tuple of :class:`zoo.bench.grid.BuildGroup`.
    """

    kind: ClassVar[str] = "retriever"

    metrics: tuple[str, ...] = RETRIEVER_METRICS
    build_params: Mapping[str, Any] = field(default_factory=dict)
    query_params: Mapping[str, Any] = field(default_factory=dict)
    supports_add: bool = False
    supports_gpu: bool = False
    aliases: tuple[str, ...] = ()
    bench_grid: Any = None

    def __post_init__(self) -> None:
        super().__post_init__()
        metrics = tuple(self.metrics)
        if not metrics or any(m not in RETRIEVER_METRICS for m in metrics):
            raise PluginError(
                f"retriever '{self.name}': metrics {metrics!r} must be a subset of {RETRIEVER_METRICS}."
            )
        overlap = set(self.build_params) & set(self.query_params)
        if overlap:
            raise PluginError(
                f"retriever '{self.name}': {sorted(overlap)} cannot be both a build and a query parameter."
            )
        object.__setattr__(self, "metrics", metrics)
        object.__setattr__(self, "build_params", _frozen_mapping(self.build_params))
        object.__setattr__(self, "query_params", _frozen_mapping(self.query_params))
        aliases = (self.aliases,) if isinstance(self.aliases, str) else tuple(self.aliases)
        bad = [a for a in aliases if not (isinstance(a, str) and a.isidentifier() and a[:1].isupper())]
        if bad:
            raise PluginError(
                f"retriever '{self.name}': aliases {bad!r} must be class names (identifiers starting with"
                " an uppercase letter)."
            )
        object.__setattr__(self, "aliases", aliases)
        if self.bench_grid is not None:
            from zoo.bench.grid import parse_groups
            from zoo.errors import UsageError

            where = f"retriever '{self.name}' bench_grid"
            try:
                groups = parse_groups(self.name, self.bench_grid, where=where, spec=self)
            except UsageError as exc:
                raise PluginError(exc.message) from None
            object.__setattr__(self, "bench_grid", tuple(groups))

    def summary(self) -> dict[str, Any]:
        out = super().summary()
        out.update(
            metrics=list(self.metrics),
            build_params=dict(self.build_params),
            query_params=dict(self.query_params),
            supports_add=self.supports_add,
            supports_gpu=self.supports_gpu,
            aliases=list(self.aliases),
            bench_grid=None
            if self.bench_grid is None
            else [{"build": g.build, "query": g.query} for g in self.bench_grid],
        )
        return out


@dataclass(frozen=True)
class DatasetSpec(Spec):
    """A dataset: its factory returns :class:`zoo.data.Interactions`.

    Attributes:
        needs_path: whether the dataset reads a local folder (``--data PATH`` or ``ZOO_DATA_DIR``).
        data_dir_name: folder name looked up under ``ZOO_DATA_DIR`` and the download cache when no
            path is given; defaults to the archive's folder.
        download: name understood by ``zoo data download`` that fetches this dataset, if any;
            the dataset's own name when it ships an ``archive``, else another dataset's name.
        default_protocol: the evaluation protocol preset used when none is given.
        options: loader options with their defaults (``--param key=value`` on the command line).
        archive: the :class:`zoo.data.archive.Archive` (URL, folder, checksum, size) that
            ``zoo data download NAME`` fetches for this dataset, or None; its ``name`` is filled in
            with the dataset's name.
    """

    kind: ClassVar[str] = "dataset"

    needs_path: bool = False
    data_dir_name: str | None = None
    download: str | None = None
    default_protocol: str = "loo"
    options: Mapping[str, Any] = field(default_factory=dict)
    archive: Any = None

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "options", _frozen_mapping(self.options))
        if self.archive is not None:
            self._check_archive()

    def _check_archive(self) -> None:
        from zoo.data.archive import Archive

        archive = self.archive
        if not isinstance(archive, Archive):
            raise PluginError(
                f"dataset '{self.name}': archive must be a zoo.data.archive.Archive, got {archive!r}."
            )
        if not self.needs_path:
            raise PluginError(
                f"dataset '{self.name}': a dataset with an archive reads files: set needs_path=True."
            )
        if self.data_dir_name not in (None, archive.folder):
            raise PluginError(
                f"dataset '{self.name}': data_dir_name {self.data_dir_name!r} differs from the archive's"
                f" folder {archive.folder!r}; leave data_dir_name out (it defaults to the archive's folder)."
            )
        if self.download not in (None, self.name):
            raise PluginError(
                f"dataset '{self.name}': download={self.download!r} names another archive, but this dataset"
                " ships its own; leave download out."
            )
        object.__setattr__(self, "data_dir_name", archive.folder)
        object.__setattr__(self, "download", self.name)
        object.__setattr__(self, "archive", dataclasses.replace(archive, name=self.name))

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
