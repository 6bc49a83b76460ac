"""Feature definitions with the seed tutorial's names and arguments.

::

    SparseFeature("user_id", vocab_size=user_num, embed_dim=16)
    SequenceFeature(
        "hist_movie_id", vocab_size=item_num, embed_dim=16, pooling="mean", shared_with="movie_id"
    )
    DenseFeature("price")

Ids are dense integers; ``0`` is padding for sequence features (never pooled: the mean is taken over
the real items only, unlike the reference implementation, which averaged the padding rows in).
These are plain dataclasses: importing this module does not import torch.

Torch-RecHub's ``initializer=`` argument and its initializer classes (``RandomNormal``, ``RandomUniform``,
``XavierNormal``, ``XavierUniform``, ``Pretrained``) are here too::

    SparseFeature("movie_id", vocab_size=item_num, embed_dim=16, initializer=XavierNormal())

Without one, a table keeps the model's own initialisation (normal, std 0.05), not Torch-RecHub's
``RandomNormal(0, 0.0001)``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass, field
from typing import Any

from zoo.errors import UsageError

POOLINGS = ("mean", "sum", None)

#: batch column of sequence windows holding the item after each input position (0 where none);
#: models trained on every position read their targets from it (see ``zoo.data.match``)
NEXT_ITEM = "next_item_id"
_POOLING_ALIASES = {"concat": None, "none": None, "avg": "mean"}


def auto_embed_dim(vocab_size: int) -> int:
    """The customary default embedding size ``6 * vocab_size ** 0.25`` (at least 1)."""
    return max(1, int(6 * vocab_size**0.25))


def get_auto_embedding_dim(num_classes: int) -> int:
    """Torch-RecHub's name for :func:`auto_embed_dim`: ``floor(6 * num_classes ** 0.25)``."""
    return auto_embed_dim(num_classes)


class Initializer:
    """An embedding initialiser: ``init(vocab_size, embed_dim, padding_idx)`` returns a new
    ``nn.Embedding`` (Torch-RecHub's call) and ``init.init_(weight)`` fills an existing weight in place;
    the padding row, if any, is zero."""

    def init_(self, weight: Any) -> None:
        """Fill ``weight`` [vocab_size, embed_dim] in place."""
        raise NotImplementedError

    def __call__(self, vocab_size: int, embed_dim: int, padding_idx: int | None = None) -> Any:
        import torch

        embedding = torch.nn.Embedding(vocab_size, embed_dim, padding_idx=padding_idx)
        with torch.no_grad():
            self.init_(embedding.weight)
            if padding_idx is not None:
                embedding.weight[padding_idx].zero_()
        return embedding

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in vars(self).items())})"


class RandomNormal(Initializer):
    """Normal ``N(mean, std**2)`` weights."""

    def __init__(self, mean: float = 0.0, std: float = 1.0) -> None:
        self.mean, self.std = mean, std

    def init_(self, weight: Any) -> None:
        import torch

        torch.nn.init.normal_(weight, self.mean, self.std)


class RandomUniform(Initializer):
    """Uniform weights in ``[minval, maxval)``."""

    def __init__(self, minval: float = 0.0, maxval: float = 1.0) -> None:
        self.minval, self.maxval = minval, maxval

    def init_(self, weight: Any) -> None:
        import torch

        torch.nn.init.uniform_(weight, self.minval, self.maxval)


class XavierNormal(Initializer):
    """Glorot normal weights, ``std = gain * sqrt(2 / (vocab_size + embed_dim))``."""

    def __init__(self, gain: float = 1.0) -> None:
        self.gain = gain

    def init_(self, weight: Any) -> None:
        import torch

        torch.nn.init.xavier_normal_(weight, self.gain)


class XavierUniform(Initializer):
    """Glorot uniform weights, bound ``gain * sqrt(6 / (vocab_size + embed_dim))``."""

    def __init__(self, gain: float = 1.0) -> None:
        self.gain = gain

    def init_(self, weight: Any) -> None:
        import torch

        torch.nn.init.xavier_uniform_(weight, self.gain)


class Pretrained(Initializer):
    """Given weights ``[vocab_size, embed_dim]`` (array, tensor or nested lists); ``freeze`` keeps them fixed
    in the embedding Torch-RecHub's call returns."""

    def __init__(self, embedding_weight: Any, freeze: bool = True) -> None:
        import numpy as np

        self.embedding_weight = np.asarray(
            embedding_weight.detach().cpu() if hasattr(embedding_weight, "detach") else embedding_weight,
            dtype=np.float32,
        )
        if self.embedding_weight.ndim != 2:
            raise UsageError(f"Pretrained needs a 2-D weight, got shape {self.embedding_weight.shape}")
        self.freeze = freeze

    def _check(self, shape: tuple[int, ...]) -> None:
        if tuple(shape) != self.embedding_weight.shape:
            raise UsageError(
                f"Pretrained weight has shape {self.embedding_weight.shape}, the table is {tuple(shape)}"
            )

    def init_(self, weight: Any) -> None:
        import torch

        self._check(tuple(weight.shape))
        with torch.no_grad():
            weight.copy_(torch.from_numpy(self.embedding_weight))

    def __call__(self, vocab_size: int, embed_dim: int, padding_idx: int | None = None) -> Any:
        import torch

        self._check((vocab_size, embed_dim))
        weight = torch.from_numpy(self.embedding_weight.copy())
        return torch.nn.Embedding.from_pretrained(weight, freeze=self.freeze, padding_idx=padding_idx)


def _check_name(kind: str, name: Any) -> None:
    if not isinstance(name, str) or not name:
        raise UsageError(f"{kind} needs a non-empty string name, got {name!r}")


def _check_vocab(kind: str, name: str, vocab_size: Any) -> None:
    if isinstance(vocab_size, bool) or not isinstance(vocab_size, int) or vocab_size < 1:
        # numpy integers are fine too
        try:
            import numbers

            ok = (
                isinstance(vocab_size, numbers.Integral)
                and not isinstance(vocab_size, bool)
                and int(vocab_size) >= 1
            )
        except Exception:  # pragma: no cover
            ok = False
        if not ok:
            raise UsageError(f"{kind} '{name}': vocab_size must be a positive integer, got {vocab_size!r}")


@dataclass
class SparseFeature:
    """A categorical feature looked up in an embedding table.

    Args:
        name: the column name in the input batch.
        vocab_size: number of ids (ids run from 0 to vocab_size - 1).
        embed_dim: embedding size (default ``6 * vocab_size ** 0.25``).
        shared_with: name of another feature whose embedding table this one uses.
        padding_idx: id that means "missing" (its embedding is a fixed zero vector), if any.
        initializer: an :class:`Initializer` (Torch-RecHub's ``RandomNormal(...)`` etc.) for the table;
            None keeps the model's own initialisation. Not saved with the model.
    """

    name: str
    vocab_size: int
    embed_dim: int | None = None
    shared_with: str | None = None
    padding_idx: int | None = None
    initializer: Any = field(default=None, compare=False, repr=False, kw_only=True)

    def __post_init__(self) -> None:
        _check_name(type(self).__name__, self.name)
        _check_vocab(type(self).__name__, self.name, self.vocab_size)
        self.vocab_size = int(self.vocab_size)
        if self.embed_dim is None:
            self.embed_dim = auto_embed_dim(self.vocab_size)
        if isinstance(self.embed_dim, bool) or int(self.embed_dim) < 1:
            raise UsageError(f"{type(self).__name__} '{self.name}': embed_dim must be a positive integer")
        self.embed_dim = int(self.embed_dim)
        if self.padding_idx is not None and not 0 <= int(self.padding_idx) < self.vocab_size:
            raise UsageError(
                f"{type(self).__name__} '{self.name}': padding_idx {self.padding_idx} is outside"
                f" 0..{self.vocab_size - 1}"
            )
        if self.initializer is not None and not callable(self.initializer):
            raise UsageError(
                f"{type(self).__name__} '{self.name}': initializer must be an initializer such as"
                f" RandomNormal(0, 0.01), got {self.initializer!r}"
            )

    @property
    def table(self) -> str:
        """Name of the embedding table this feature reads."""
        return self.shared_with or self.name

    def get_embedding_layer(self) -> Any:
        """Torch-RecHub's method: a new ``nn.Embedding`` of this feature's size from its initializer (a
        normal std 0.05 one without), built once per feature."""
        if getattr(self, "_embedding", None) is None:
            init = self.initializer if self.initializer is not None else RandomNormal(0.0, 0.05)
            object.__setattr__(self, "_embedding", init(self.vocab_size, self.embed_dim, self.padding_idx))
        return self._embedding

    def to_dict(self) -> dict[str, Any]:
        """The feature's settings (the initializer is not saved)."""
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "initializer"}
        return {"type": type(self).__name__, **values}


@dataclass
class SequenceFeature(SparseFeature):
    """A variable-length list of ids (a behaviour history, or a multi-valued attribute such as genres).

    Args:
        pooling: ``"mean"`` or ``"sum"`` over the non-padding ids, or ``None`` (alias ``"concat"``) to
            hand the model the raw ``[batch, length, embed_dim]`` sequence (GRU4Rec, MIND).
        padding_idx: id used for padding (default 0); padding is masked out of every pooling.
    """

    pooling: str | None = "mean"
    padding_idx: int | None = 0

    def __post_init__(self) -> None:
        if isinstance(self.pooling, str):
            self.pooling = _POOLING_ALIASES.get(self.pooling.lower(), self.pooling.lower())
        if self.pooling not in POOLINGS:
            raise UsageError(
                f"SequenceFeature '{self.name}': pooling {self.pooling!r} must be 'mean', 'sum' or None (raw"
                " sequence)"
            )
        if self.padding_idx is None:
            self.padding_idx = 0
        super().__post_init__()


@dataclass
class DenseFeature:
    """A real-valued feature used as it is (``[batch]`` or ``[batch, embed_dim]`` floats)."""

    name: str
    embed_dim: int = 1

    def __post_init__(self) -> None:
        _check_name("DenseFeature", self.name)
        if isinstance(self.embed_dim, bool) or int(self.embed_dim) < 1:
            raise UsageError(f"DenseFeature '{self.name}': embed_dim must be a positive integer")
        self.embed_dim = int(self.embed_dim)

    def to_dict(self) -> dict[str, Any]:
        return {"type": "DenseFeature", **asdict(self)}


Feature = SparseFeature | SequenceFeature | DenseFeature
_TYPES = {"SparseFeature": SparseFeature, "SequenceFeature": SequenceFeature, "DenseFeature": DenseFeature}


def feature_from_dict(data: dict[str, Any]) -> Feature:
    """Inverse of ``feature.to_dict()`` (used when loading a saved model)."""
    data = dict(data)
    kind = data.pop("type", None)
    if kind not in _TYPES:
        raise UsageError(f"unknown feature type {kind!r}")
    return _TYPES[kind](**data)


def features_to_dicts(features: list[Feature] | None) -> list[dict[str, Any]] | None:
    return None if features is None else [f.to_dict() for f in features]


def features_from_dicts(data: list[dict[str, Any]] | None) -> list[Feature] | None:
    return None if data is None else [feature_from_dict(d) for d in data]


@dataclass
class Schema:
    """What an encoded dataset offers a model: vocabulary sizes of ids and side features.

    ``zoo run`` hands it to a model's ``from_schema`` so that every model plugin can build its own
    feature list from any dataset. Column names in batches: ``user_id``, ``item_id``, the history
    ``hist_item_id`` (left-padded with 0, most recent item last), and the side-feature columns.
    """

    user_vocab: int
    item_vocab: int
    user_side: dict[str, int]
    item_side: dict[str, int]
    item_multivalue: tuple[str, ...] = ()
    history_len: int = 50
    user_id: str = "user_id"
    item_id: str = "item_id"
    history_name: str = "hist_item_id"

    def user_sparse(self, embed_dim: int) -> list[Feature]:
        """The user id and every user side feature as SparseFeatures."""
        features: list[Feature] = [SparseFeature(self.user_id, self.user_vocab, embed_dim)]
        features += [SparseFeature(name, vocab, embed_dim) for name, vocab in self.user_side.items()]
        return features

    def history(self, embed_dim: int, pooling: str | None = "mean") -> SequenceFeature:
        """The history sequence, sharing the item id's embedding table."""
        return SequenceFeature(
            self.history_name, self.item_vocab, embed_dim, pooling=pooling, shared_with=self.item_id
        )

    def item_id_feature(self, embed_dim: int) -> SparseFeature:
        return SparseFeature(self.item_id, self.item_vocab, embed_dim)

    def item_features(self, embed_dim: int) -> list[Feature]:
        """The item id followed by the item side features (multi-valued ones mean-pooled)."""
        features: list[Feature] = [self.item_id_feature(embed_dim)]
        for name, vocab in self.item_side.items():
            if name in self.item_multivalue:
                features.append(SequenceFeature(name, vocab, embed_dim, pooling="mean"))
            else:
                features.append(SparseFeature(name, vocab, embed_dim))
        return features

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
