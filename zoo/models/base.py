"""The RecallModel contract every model plugin implements.

A recall model is two functions into one vector space:

* ``user_tower(batch) -> [B, D]`` (or ``[B, K, D]`` for K interests),
* ``item_tower(batch) -> [N, D]``,

scored by the dot product (the max over interests for K vectors) and divided by ``temperature``
wherever logits are formed. Batches are dicts of tensors keyed by feature name, exactly the seed's
``x_dict``.

The model also keeps an *item table*: for every item id, the values of the other item features
(category, genres...). Negatives are sampled as ids; the table turns them into full item batches, so
sampled negatives get the same side features as positives. The pipeline fills it from the catalogue;
with the seed's loaders the trainer fills it from the training batches as they pass.
"""

from __future__ import annotations

import contextlib
import copy
import copyreg
import dataclasses
import functools
import inspect
import json
import math
import os
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import nn

from zoo._version import __version__
from zoo.errors import ModelFileError, UsageError
from zoo.features import (
    DenseFeature,
    Feature,
    SequenceFeature,
    SparseFeature,
    features_from_dicts,
    features_to_dicts,
)
from zoo.io import atomic_dir, commit_dir, file_records, read_json_header, verify_files

if TYPE_CHECKING:  # pragma: no cover - typing only
    from zoo.specs import ModelSpec

Batch = Mapping[str, torch.Tensor]

MODEL_FILE = "model.json"
WEIGHTS_FILE = "weights.safetensors"
FORMAT_NAME = "recall-zoo-model"
FORMAT_VERSION = 1
FEATURE_ARGS = ("user_features", "item_features", "history_features", "neg_item_feature")
_TABLE_PREFIX = "item_table__"
_ARGUMENTS = "_init_arguments"  # instance attribute: the most derived constructor's bound arguments
#: model class -> [(spec, class bound to it)], see RecallModel.bind_spec
_BOUND: weakref.WeakKeyDictionary[type, list[tuple[Any, type]]] = weakref.WeakKeyDictionary()


def _capture_arguments(init: Callable[..., None]) -> Callable[..., None]:
    """Wrap a subclass ``__init__`` so that the instance records the arguments it was built with.

    Only the outermost (most derived) constructor records them: ``from_config`` calls that one. Values
    are deep-copied, so a caller mutating its dict afterwards does not change what ``save`` writes;
    feature lists are not recorded (they are saved from the model's attributes).
    """
    signature = inspect.signature(init)

    @functools.wraps(init)
    def __init__(self: RecallModel, *args: Any, **kwargs: Any) -> None:
        if _ARGUMENTS not in self.__dict__:
            try:
                bound = signature.bind(self, *args, **kwargs)
            except TypeError:
                bound = None  # the call itself raises the same error, with the constructor's message
            if bound is not None:
                bound.apply_defaults()
                arguments = dict(list(bound.arguments.items())[1:])  # without self
                for name, value in arguments.items():
                    if name not in FEATURE_ARGS:
                        with contextlib.suppress(Exception):  # kept as is: save() reports it if unwritable
                            arguments[name] = copy.deepcopy(value)
                object.__setattr__(self, _ARGUMENTS, (signature, arguments))
        init(self, *args, **kwargs)

    __init__._captures_arguments = True  # type: ignore[attr-defined]
    return __init__


def _jsonable(value: Any, where: str) -> Any:
    """``value`` as JSON (mappings, sequences, numbers, strings, None); non-finite floats become
    ``"inf"`` / ``"-inf"`` / ``"nan"`` (``float()`` reads them back). Raises UsageError otherwise."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v, f"{where}[{k!r}]") for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v, f"{where}[{i}]") for i, v in enumerate(value)]
    item = getattr(value, "item", None)  # numpy / torch scalars
    if callable(item) and getattr(value, "ndim", None) == 0:
        return _jsonable(item(), where)
    raise UsageError(
        f"{where} = {value!r} cannot be written to {MODEL_FILE}: constructor arguments must be JSON values"
        " (numbers, strings, booleans, None, lists, dicts) or feature lists"
    )


def _new_bound_model(factory: type, spec_fields: dict[str, Any]) -> RecallModel:
    """Unpickling / deep-copy helper: a bare instance of ``factory`` bound to the spec that
    ``spec_fields`` describe."""
    from zoo.specs import ModelSpec

    cls = factory.bind_spec(ModelSpec(**spec_fields))
    return cls.__new__(cls)


@dataclass
class TrainOutputs:
    """What a model hands the trainer for one batch.

    Attributes:
        user: query vectors, [M, D] or [M, K, D] (M = B for two-tower models, more for models
            trained on every position of a sequence).
        pos_ids: the positive item id of each of the M rows.
        pos_item: the positives' item vectors [M, D] if the model already computed them (else the
            trainer calls ``item_vectors(pos_ids)`` or ``item_tower(batch)``).
        valid: optional bool mask [M] of rows that count (padding positions excluded).
    """

    user: torch.Tensor
    pos_ids: torch.Tensor
    pos_item: torch.Tensor | None = None
    valid: torch.Tensor | None = None


class RecallModel(nn.Module):
    """Base class of every recall model (see the module docstring for the contract).

    Subclasses implement :meth:`user_tower` and :meth:`item_tower` and call ``super().__init__`` with
    their feature lists and temperature. Each constructor argument is written once, as a parameter:
    the arguments a model was built with are recorded automatically (the most derived ``__init__``,
    bound to its signature) and :meth:`save` writes them, so :meth:`load` calls the constructor again
    with the same values. They must therefore be JSON values (or feature lists).

    Registry metadata (name, family, train modes, training data) lives in the plugin's
    :class:`~zoo.specs.ModelSpec` only: ``ModelSpec.load()`` returns the class bound to its spec
    (:meth:`bind_spec`) and the read-only properties below read it.
    """

    #: the ModelSpec this class is bound to (set on the classes ``ModelSpec.load()`` returns)
    spec: ClassVar[ModelSpec | None] = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        init = cls.__dict__.get("__init__")
        if init is not None and not getattr(init, "_captures_arguments", False):
            cls.__init__ = _capture_arguments(init)  # type: ignore[method-assign]

    def __init__(
        self,
        *,
        user_features: Sequence[Feature],
        item_features: Sequence[Feature],
        temperature: float = 1.0,
        history_features: Sequence[Feature] | None = None,
        neg_item_feature: Sequence[Feature] | None = None,
        config: Mapping[str, Any] | None = None,
    ) -> None:
        """``config`` is optional: what :meth:`save` writes besides the features and temperature. By
        default it is the recorded constructor arguments; pass it only for a constructor whose arguments
        cannot be JSON values."""
        super().__init__()
        if not user_features:
            raise UsageError(f"{type(self).__name__}: user_features must name at least one feature")
        if not item_features:
            raise UsageError(f"{type(self).__name__}: item_features must name at least one feature")
        try:
            temperature = float(temperature)
        except (TypeError, ValueError):
            raise UsageError(f"temperature must be a positive number, got {temperature!r}") from None
        if not temperature > 0:
            raise UsageError(f"temperature must be a positive number, got {temperature}")
        self.user_features = list(user_features)
        self.item_features = list(item_features)
        self.history_features = list(history_features or [])
        self.neg_item_feature = list(neg_item_feature or [])
        self.temperature = temperature
        self.mode: str | None = None  # seed compatibility: "user" | "item" | None
        id_features = [
            f
            for f in self.item_features
            if isinstance(f, SparseFeature) and not isinstance(f, SequenceFeature)
        ]
        if not id_features:
            raise UsageError(
                f"{type(self).__name__}: the first item feature must be the item id (a SparseFeature)"
            )
        self.item_id_feature = id_features[0].name
        self.neg_items_key = self.neg_item_feature[0].name if self.neg_item_feature else "neg_items"
        self._config = None if config is None else dict(config)
        self._table_names: list[str] = []
        self.item_table_complete = False  # True once set_item_table() installed the whole catalogue

    @property
    def cosine_scores(self) -> bool:
        """Whether scores are cosine similarities (both towers L2-normalised): logits then stay within
        ``±1 / temperature``, and the trainer warns once when the temperature keeps them nearly flat.
        A model with a ``normalize`` switch answers with it; one that always normalises sets the class
        attribute ``cosine_scores = True``."""
        return bool(getattr(self, "normalize", False))

    # -- registry metadata (owned by the ModelSpec) ------------------------------------------------
    @classmethod
    def bind_spec(cls, spec: ModelSpec) -> type[RecallModel]:
        """This class bound to ``spec``: a subclass with the same name and module whose ``spec`` is
        ``spec``, created once per distinct spec (an equal spec gives the very same class)."""
        factory = cls.unbound_class()
        entries = _BOUND.setdefault(factory, [])
        for known, bound in entries:
            if known == spec:
                return bound
        namespace = {
            "spec": spec,
            "__module__": factory.__module__,
            "__qualname__": factory.__qualname__,
            "__doc__": factory.__doc__,
        }
        bound = type(factory.__name__, (factory,), namespace)
        entries.append((spec, bound))
        return bound

    @classmethod
    def unbound_class(cls) -> type[RecallModel]:
        """The model class itself, without the spec binding of :meth:`bind_spec`."""
        while "spec" in cls.__dict__ and cls.__dict__["spec"] is not None:
            cls = cls.__mro__[1]
        return cls

    @classmethod
    def model_spec(cls) -> ModelSpec | None:
        """The class's spec: the one it is bound to, else the first installed spec whose factory is
        this class (a class imported directly from its module), else None."""
        if cls.spec is not None:
            return cls.spec
        factory = cls.unbound_class()
        target = f"{factory.__module__}:{factory.__qualname__}"
        try:
            from zoo.registry import default_registry

            specs = default_registry().specs("model")
        except Exception:  # noqa: BLE001 - no registry: neutral defaults
            return None
        for spec in specs:
            if spec.factory is factory or spec.factory == target:
                return spec  # type: ignore[return-value]
        return None

    @property
    def registry_name(self) -> str:
        """The registry name of the model's spec ("" for a class no spec registers)."""
        spec = self.model_spec()
        return spec.name if spec is not None else ""

    @property
    def family(self) -> str:
        """``two_tower`` | ``sequential`` | ``multi_interest``, from the spec (default ``two_tower``)."""
        spec = self.model_spec()
        return spec.family if spec is not None else "two_tower"

    @property
    def train_modes(self) -> tuple[int, ...]:
        """MatchTrainer modes the model supports, from the spec (default all three)."""
        spec = self.model_spec()
        return spec.train_modes if spec is not None else (0, 1, 2)

    @property
    def training_data(self) -> str:
        """``samples`` or ``sequences`` (``ModelSpec.training_data``), from the spec (default ``samples``)."""
        spec = self.model_spec()
        return spec.training_data if spec is not None else "samples"

    def __reduce_ex__(self, protocol: Any) -> Any:
        """Pickle a model of a bound class by its factory class and its spec's fields (the bound class
        is not importable by name)."""
        reduced = super().__reduce_ex__(protocol)
        cls = type(self)
        if cls.spec is None or "spec" not in cls.__dict__ or not isinstance(reduced, tuple):
            return reduced
        func, args, *rest = reduced
        if func is not copyreg.__newobj__ or not args or args[0] is not cls or len(args) > 1:
            return reduced
        fields = {
            f.name: (dict(value) if isinstance(value, Mapping) else value)
            for f in dataclasses.fields(cls.spec)
            if f.init and f.name != "defaults"
            for value in [getattr(cls.spec, f.name)]
        }
        return (_new_bound_model, (cls.unbound_class(), fields), *rest)

    # -- the contract -----------------------------------------------------------------------------
    def user_tower(self, batch: Batch) -> torch.Tensor:
        """User (query) vectors, [B, D] or [B, K, D]."""
        raise NotImplementedError

    def item_tower(self, batch: Batch) -> torch.Tensor:
        """Item vectors [N, D] from a batch of item features."""
        raise NotImplementedError

    @property
    def num_interests(self) -> int:
        """K for multi-interest models, 1 otherwise."""
        return 1

    def score(self, user: torch.Tensor, item: torch.Tensor) -> torch.Tensor:
        """Row-wise dot product of user [B, D] (or [B, K, D], max over K) and item [B, D] vectors."""
        if user.dim() == 3:
            return (user * item.unsqueeze(1)).sum(-1).max(dim=-1).values
        return (user * item).sum(-1)

    def forward(self, batch: Batch) -> torch.Tensor:
        """Seed-compatible forward: ``model.mode = "user" | "item"`` gives that tower's vectors;
        otherwise the predicted probability ``sigmoid(score / temperature)`` of each (user, item) row."""
        if self.mode == "user":
            return self.user_tower(batch)
        if self.mode == "item":
            return self.item_tower(batch)
        return torch.sigmoid(self.score(self.user_tower(batch), self.item_tower(batch)) / self.temperature)

    # -- training hooks -------------------------------------------------------------------------
    def train_outputs(self, batch: Batch) -> TrainOutputs:
        """User vectors and positive ids for one training batch (override for per-position training)."""
        return TrainOutputs(user=self.user_tower(batch), pos_ids=batch[self.item_id_feature].long())

    def select_interest(self, user: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Reduce K interests [M, K, D] to one vector per row given the target items [M, D].

        Default: the interest that scores the target highest (hard attention); multi-interest models
        override this with label-aware attention.
        """
        if user.dim() == 2:
            return user
        best = (user * target.unsqueeze(1)).sum(-1).argmax(dim=-1)
        return user[torch.arange(user.shape[0], device=user.device), best]

    def regularization_groups(self) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
        """(embedding parameters, dense parameters) for ``embedding_l2`` / ``dense_l2``."""
        embedding_ids = {id(m.weight) for m in self.modules() if isinstance(m, nn.Embedding)}
        embeddings, dense = [], []
        for parameter in self.parameters():
            if id(parameter) in embedding_ids:
                embeddings.append(parameter)
            elif parameter.dim() > 1:  # weights, not biases / norms / PReLU slopes
                dense.append(parameter)
        return embeddings, dense

    # -- item table -----------------------------------------------------------------------------
    def _side_features(self) -> list[Feature]:
        return [f for f in self.item_features if f.name != self.item_id_feature]

    def _table(self, name: str) -> torch.Tensor | None:
        return getattr(self, _TABLE_PREFIX + name, None) if name in self._table_names else None

    def _set_table(self, name: str, values: torch.Tensor) -> None:
        key = _TABLE_PREFIX + name
        if name in self._table_names:
            setattr(self, key, values)
        else:
            self.register_buffer(key, values, persistent=False)
            self._table_names.append(name)

    def set_item_table(self, table: Mapping[str, torch.Tensor]) -> None:
        """Install the full item table: ``{feature: tensor indexed by item id}`` for each side feature."""
        for feature in self._side_features():
            if feature.name in table:
                values = torch.as_tensor(table[feature.name])
                device = next(self.parameters()).device
                self._set_table(feature.name, values.to(device))
        self.item_table_complete = True

    def item_table(self) -> dict[str, torch.Tensor]:
        return {name: getattr(self, _TABLE_PREFIX + name) for name in self._table_names}

    @torch.no_grad()
    def remember_items(self, batch: Batch) -> None:
        """Record the side features of the items in ``batch`` (seed loaders: negatives get them too)."""
        if self.item_table_complete or self.item_id_feature not in batch:
            return
        ids = batch[self.item_id_feature].long().reshape(-1)
        vocab = self._item_vocab()
        for feature in self._side_features():
            if feature.name not in batch:
                continue
            values = batch[feature.name]
            values = (
                values.reshape(ids.shape[0], *values.shape[ids.dim() :])
                if values.dim() > 1
                else values.reshape(-1)
            )
            table = self._table(feature.name)
            if table is None or table.shape[1:] != values.shape[1:]:
                shape = (vocab, *values.shape[1:])
                dtype = values.dtype if isinstance(feature, DenseFeature) else torch.long
                table = torch.zeros(shape, dtype=dtype, device=values.device)
                self._set_table(feature.name, table)
            table[ids.to(table.device)] = values.to(table.device, table.dtype)

    def _item_vocab(self) -> int:
        feature = next(f for f in self.item_features if f.name == self.item_id_feature)
        assert isinstance(feature, SparseFeature)
        return feature.vocab_size

    def item_batch(self, ids: torch.Tensor) -> dict[str, torch.Tensor]:
        """A full item batch for ``ids`` (any shape) from the item table; unknown side values are 0
        (padding)."""
        ids = ids.long()
        batch: dict[str, torch.Tensor] = {self.item_id_feature: ids}
        for feature in self._side_features():
            table = self._table(feature.name)
            if table is not None:
                batch[feature.name] = table[ids.to(table.device)].to(ids.device)
            elif isinstance(feature, DenseFeature):
                batch[feature.name] = torch.zeros(ids.shape, dtype=torch.float32, device=ids.device)
            elif isinstance(feature, SequenceFeature):
                batch[feature.name] = torch.zeros((*ids.shape, 1), dtype=torch.long, device=ids.device)
            else:
                batch[feature.name] = torch.zeros_like(ids)
        return batch

    def item_vectors(self, ids: torch.Tensor) -> torch.Tensor:
        """Item vectors for ``ids`` of any shape: [..., D]."""
        flat = ids.reshape(-1)
        vectors = self.item_tower(self.item_batch(flat))
        return vectors.reshape(*ids.shape, vectors.shape[-1])

    # -- persistence ----------------------------------------------------------------------------
    def get_config(self) -> dict[str, Any]:
        """Everything the constructor needs, JSON-serialisable (features as dicts): the features and
        temperature from the model, then the recorded constructor arguments (or ``config``)."""
        recorded = self.__dict__.get(_ARGUMENTS)
        config: dict[str, Any] = {
            "user_features": features_to_dicts(self.user_features),
            "item_features": features_to_dicts(self.item_features),
        }
        if self._config is not None or recorded is None:
            config["temperature"] = self.temperature
        if self.history_features:
            config["history_features"] = features_to_dicts(self.history_features)
        if self.neg_item_feature:
            config["neg_item_feature"] = features_to_dicts(self.neg_item_feature)
        if self._config is not None:
            config.update(self._config)
        elif recorded is not None:
            config.update(self._recorded_config(*recorded))
        return config

    def _recorded_config(self, signature: inspect.Signature, arguments: Mapping[str, Any]) -> dict[str, Any]:
        """The recorded constructor arguments as ``from_config`` keywords (feature lists excluded)."""
        owner = type(self).__name__
        config: dict[str, Any] = {}
        for name, value in arguments.items():
            kind = signature.parameters[name].kind
            if kind is inspect.Parameter.VAR_POSITIONAL:
                if value:
                    raise UsageError(f"{owner}: positional *{name} arguments cannot be saved; take keywords")
                continue
            items = value.items() if kind is inspect.Parameter.VAR_KEYWORD else [(name, value)]
            for key, item in items:
                if key not in FEATURE_ARGS:
                    config[key] = _jsonable(item, f"{owner}({key}=...)")
        return config

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> RecallModel:
        kwargs = dict(config)
        for key in FEATURE_ARGS:
            if key in kwargs:
                kwargs[key] = features_from_dicts(kwargs[key])
        return cls(**kwargs)

    def save(
        self,
        directory: str | os.PathLike[str],
        *,
        extra: Mapping[str, Any] | None = None,
        extra_files: Mapping[str, bytes] | None = None,
    ) -> Path:
        """Write ``model.json`` (name, config, the size and sha256 of every file) and
        ``weights.safetensors`` atomically, plus ``extra_files`` (e.g. the vocabularies) beside them;
        never pickles. :meth:`load` checks the files against ``model.json``."""
        from safetensors.torch import save

        target = Path(directory)
        tmp = atomic_dir(target)
        try:
            tensors = {k: v.detach().to("cpu").contiguous() for k, v in self.state_dict().items()}
            for name, table in self.item_table().items():
                tensors[_TABLE_PREFIX + name] = table.detach().to("cpu").contiguous()
            (tmp / WEIGHTS_FILE).write_bytes(save(tensors, metadata={"format": FORMAT_NAME}))
            for name, content in (extra_files or {}).items():
                (tmp / name).write_bytes(content)
            meta = {
                "format": FORMAT_NAME,
                "format_version": FORMAT_VERSION,
                "model": self.registry_name or type(self).__name__.lower(),
                "class": f"{type(self).__module__}:{type(self).__qualname__}",
                "zoo_version": __version__,
                "family": self.family,
                "config": self.get_config(),
                "item_tables": list(self._table_names),
            }
            if extra:
                meta.update(extra)
            meta["files"] = file_records(tmp)
            (tmp / MODEL_FILE).write_text(json.dumps(meta, indent=2) + "\n")
            commit_dir(tmp, target)
        except BaseException:
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return target

    @staticmethod
    def read_meta(directory: str | os.PathLike[str]) -> dict[str, Any]:
        """The saved model's ``model.json`` (name, config), checked for format and version."""
        return read_json_header(
            Path(directory) / MODEL_FILE,
            format_name=FORMAT_NAME,
            format_version=FORMAT_VERSION,
            what="a model",
        )

    @classmethod
    def load(
        cls, directory: str | os.PathLike[str], *, map_location: str | torch.device = "cpu"
    ) -> RecallModel:
        """Rebuild a model saved by :meth:`save` (called on the right class, see
        ``zoo.models.load_model``)."""
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        meta = cls.read_meta(directory)
        if "files" in meta:  # folders saved before checksums were recorded have none to check
            verify_files(
                Path(directory),
                meta["files"],
                header=Path(directory) / MODEL_FILE,
                what="save the model again",
            )
        try:
            model = cls.from_config(meta["config"])
        except (KeyError, TypeError, ValueError, AttributeError, UsageError) as exc:
            reason = exc.message if isinstance(exc, UsageError) else f"{type(exc).__name__}: {exc}"
            raise ModelFileError(
                f"{Path(directory) / MODEL_FILE}: its config does not build {cls.__name__} ({reason}); save"
                " the model again"
            ) from None
        path = Path(directory) / WEIGHTS_FILE
        try:
            tensors = load_file(str(path), device=str(map_location))
        except (FileNotFoundError, SafetensorError, OSError) as exc:
            raise ModelFileError(f"{path}: unreadable weights ({exc}); save the model again") from None
        tables = {k[len(_TABLE_PREFIX) :]: v for k, v in tensors.items() if k.startswith(_TABLE_PREFIX)}
        state = {k: v for k, v in tensors.items() if not k.startswith(_TABLE_PREFIX)}
        try:
            model.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            first = str(exc).strip().splitlines()[0]
            raise ModelFileError(f"{path}: weights do not fit the saved config ({first})") from None
        model.to(map_location)
        for name, table in tables.items():
            model._set_table(name, table.to(map_location))
        return model
