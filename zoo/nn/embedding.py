"""One embedding table per (possibly shared) feature, with id checks and padding-aware pooling."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

import torch
from torch import nn

from zoo.errors import DataError, UsageError
from zoo.features import DenseFeature, Feature, SequenceFeature, SparseFeature
from zoo.nn.pooling import masked_mean, masked_sum

Batch = Mapping[str, torch.Tensor]


def _table_of(feature: Feature) -> str | None:
    """The table a feature reads (None for a dense feature, which has none)."""
    return None if isinstance(feature, DenseFeature) else feature.table


def _module_key(name: str) -> str:
    return re.sub(r"[^0-9A-Za-z_]", "_", name)


class EmbeddingBank(nn.Module):
    """Embedding tables for a set of features.

    Features that name the same table through ``shared_with`` (``hist_movie_id`` -> ``movie_id``)
    read one ``nn.Embedding``; its size is the largest vocabulary among them and their embedding
    sizes must agree.

    Args:
        features: every feature a model reads (user, item and history features together).
        init_std: standard deviation of the normal initialisation.
    """

    def __init__(self, features: Sequence[Feature], init_std: float = 0.05) -> None:
        super().__init__()
        self.features: dict[str, Feature] = {}
        for feature in features:
            known = self.features.get(feature.name)
            if known is not None and known != feature:
                raise UsageError(f"feature '{feature.name}' is defined twice with different settings")
            self.features[feature.name] = feature
        sizes: dict[str, tuple[int, int]] = {}
        for feature in self.features.values():
            if isinstance(feature, DenseFeature):
                continue
            vocab, dim = sizes.get(feature.table, (0, feature.embed_dim))
            if dim != feature.embed_dim:
                raise UsageError(
                    f"feature '{feature.name}' shares table '{feature.table}' but has embed_dim"
                    f" {feature.embed_dim}, the table has {dim}; shared features need the same embed_dim"
                )
            sizes[feature.table] = (max(vocab, feature.vocab_size), dim)
        self.table_sizes = sizes
        self.tables = nn.ModuleDict()
        self._table_keys = {table: _module_key(table) for table in sizes}
        for table, (vocab, dim) in sizes.items():
            embedding = nn.Embedding(vocab, dim)
            nn.init.normal_(embedding.weight, std=init_std)
            # A feature's own initializer (Torch-RecHub's ``initializer=``) replaces the default; the
            # first feature on a shared table that names one decides.
            chosen = [f.initializer for f in self.features.values() if _table_of(f) == table]
            chosen = [init for init in chosen if init is not None]
            if chosen:
                with torch.no_grad():
                    chosen[0].init_(embedding.weight)
                if getattr(chosen[0], "freeze", False):  # Pretrained(..., freeze=True)
                    embedding.weight.requires_grad_(False)
            self.tables[self._table_keys[table]] = embedding

    # -- lookups ----------------------------------------------------------------------------------
    def feature(self, name: str) -> Feature:
        try:
            return self.features[name]
        except KeyError:
            raise UsageError(
                f"feature '{name}' is not one of this model's features: {', '.join(self.features)}"
            ) from None

    def table(self, name: str) -> nn.Embedding:
        """The embedding table that feature (or table) ``name`` reads."""
        feature = self.features.get(name)
        table = feature.table if isinstance(feature, SparseFeature) else name
        return self.tables[self._table_keys[table]]  # type: ignore[return-value]

    def _ids(self, batch: Batch, feature: SparseFeature) -> torch.Tensor:
        try:
            ids = batch[feature.name]
        except KeyError:
            raise DataError(
                f"input batch has no column '{feature.name}' (it has: {', '.join(batch)}); the model was"
                " built with it"
            ) from None
        if ids.dtype != torch.long:
            ids = ids.long()
        # Inside a compiled training step the trainer has already checked the batch (check_ids): a
        # data-dependent check here would split the compiled graph at every lookup.
        if ids.device.type == "cpu" and not torch.compiler.is_compiling():
            self._check_range(feature, ids)
        return ids

    def _check_range(self, feature: SparseFeature, ids: torch.Tensor) -> None:
        if ids.numel() == 0:
            return
        low, high = int(ids.min()), int(ids.max())
        vocab = self.table_sizes[feature.table][0]
        if low < 0 or high >= vocab:
            bad = high if high >= vocab else low
            raise DataError(
                f"feature '{feature.name}': id {bad} is outside its vocabulary 0..{vocab - 1}; encode new"
                " data with the training encoder (unknown ids map to 1, out-of-vocabulary) or build the"
                " model with a larger vocab_size"
            )

    def check_ids(self, batch: Batch) -> None:
        """Validate every id column of ``batch`` this bank knows (on CPU, before moving to a device)."""
        for name, value in batch.items():
            feature = self.features.get(name)
            if isinstance(feature, SparseFeature) and isinstance(value, torch.Tensor):
                self._check_range(feature, value.long())

    def sequence(self, batch: Batch, name: str) -> tuple[torch.Tensor, torch.Tensor]:
        """Raw sequence embeddings [B, L, D] and the mask [B, L] of real (non-padding) positions."""
        feature = self.feature(name)
        if not isinstance(feature, SparseFeature):
            raise UsageError(f"feature '{name}' is dense; it has no embedding sequence")
        ids = self._ids(batch, feature)
        if ids.dim() == 1:
            ids = ids.unsqueeze(1)
        values = self.table(name)(ids)
        pad = feature.padding_idx
        mask = ids != pad if pad is not None else torch.ones_like(ids, dtype=torch.bool)
        return values, mask

    def embed(self, batch: Batch, name: str) -> torch.Tensor:
        """One feature's vector [B, D]: sparse lookup, pooled sequence, or the dense values.

        A sequence feature with ``pooling=None`` returns the raw [B, L, D] sequence (use
        :meth:`sequence` to get its mask too).
        """
        feature = self.feature(name)
        if isinstance(feature, DenseFeature):
            value = batch[name].float()
            return value.unsqueeze(-1) if value.dim() == 1 else value
        if isinstance(feature, SequenceFeature):
            values, mask = self.sequence(batch, name)
            if feature.pooling == "mean":
                return masked_mean(values, mask)
            if feature.pooling == "sum":
                return masked_sum(values, mask)
            return values * mask.unsqueeze(-1).to(values.dtype)
        ids = self._ids(batch, feature)
        if ids.dim() == 2:  # a multi-valued attribute declared as SparseFeature: mean over non-padding
            values = self.table(name)(ids)
            mask = ids != (feature.padding_idx if feature.padding_idx is not None else -1)
            return masked_mean(values, mask)
        values = self.table(name)(ids)
        if feature.padding_idx is not None:
            values = values * (ids != feature.padding_idx).unsqueeze(-1).to(values.dtype)
        return values

    def concat(self, batch: Batch, names: Sequence[str]) -> torch.Tensor:
        """Concatenate the pooled vectors of ``names`` into [B, sum of dims]."""
        return torch.cat([self.embed(batch, name) for name in names], dim=-1)

    def output_dim(self, names: Sequence[str]) -> int:
        """Width of :meth:`concat` over ``names``."""
        return sum(self.feature(name).embed_dim for name in names)
