"""DSSM: the two-tower model (user MLP and item MLP over feature embeddings, L2-normalised).

Constructor as in the seed tutorial::

    DSSM(user_features, item_features, temperature=0.02,
         user_params={"dims": [256, 128, 64], "activation": "prelu"},
         item_params={"dims": [256, 128, 64], "activation": "prelu"})

Differences from the reference implementation: the temperature divides every logit (it was stored
and never applied), history padding is never pooled, and the last tower layer is linear so that the
normalised vectors can point anywhere on the sphere.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F

from zoo.errors import UsageError
from zoo.features import Feature, SequenceFeature, SparseFeature
from zoo.models.base import Batch, RecallModel
from zoo.nn import MLP, EmbeddingBank, masked_mean

_TOWER_KEYS = ("dims", "activation", "dropout", "batch_norm")


def _tower_params(params: Mapping[str, Any] | None, which: str) -> dict[str, Any]:
    params = dict(params or {})
    unknown = sorted(set(params) - set(_TOWER_KEYS))
    if unknown:
        raise UsageError(f"{which}: unknown key(s) {', '.join(unknown)}; use {', '.join(_TOWER_KEYS)}")
    params.setdefault("dims", [])
    params.setdefault("activation", "relu")
    return params


class DSSM(RecallModel):
    """Two-tower DSSM (see module docstring).

    Args:
        user_features: user-side features (ids, side features, pooled histories).
        item_features: item-side features; the first is the item id.
        temperature: logits are ``cosine / temperature`` in every training mode.
        user_params / item_params: tower MLPs: ``dims`` (the last is the output size; both towers must
            end at the same size; empty = no MLP, the concatenated embeddings are used), ``activation``,
            ``dropout``, ``batch_norm``.
        embedding_init_std: standard deviation of the embedding initialisation.
        recent_history: also feed the user tower the mean of the ``recent_history`` most recent items
            of each pooled history feature over the item table (a short-term interest next to the
            long-term mean); histories must be left-padded (the seed's default ``padding="pre"``).
    """

    cosine_scores = True  # both towers are L2-normalised

    def __init__(
        self,
        user_features: Sequence[Feature],
        item_features: Sequence[Feature],
        temperature: float = 1.0,
        user_params: Mapping[str, Any] | None = None,
        item_params: Mapping[str, Any] | None = None,
        embedding_init_std: float = 0.05,
        recent_history: int = 0,
    ) -> None:
        user_params = _tower_params(user_params, "user_params")
        item_params = _tower_params(item_params, "item_params")
        super().__init__(
            user_features=user_features,
            item_features=item_features,
            temperature=temperature,
        )
        if int(recent_history) < 0:
            raise UsageError(f"DSSM: recent_history must be >= 0, got {recent_history}")
        for feature in [*self.user_features, *self.item_features]:
            if isinstance(feature, SequenceFeature) and feature.pooling is None:
                raise UsageError(
                    f"DSSM: sequence feature '{feature.name}' needs pooling 'mean' or 'sum' (got None)"
                )
        self.embedding = EmbeddingBank(
            [*self.user_features, *self.item_features], init_std=embedding_init_std
        )
        self._user_names = [f.name for f in self.user_features]
        self._item_names = [f.name for f in self.item_features]
        self.recent_history = int(recent_history)
        self._recent_names = (
            [
                f.name
                for f in self.user_features
                if isinstance(f, SequenceFeature) and f.table == self.item_id_feature
            ]
            if self.recent_history
            else []
        )
        user_input = self.embedding.output_dim(self._user_names) + self.embedding.output_dim(
            self._recent_names
        )
        self.user_mlp = MLP(user_input, **user_params)
        self.item_mlp = MLP(self.embedding.output_dim(self._item_names), **item_params)
        if self.user_mlp.output_dim != self.item_mlp.output_dim:
            raise UsageError(
                f"DSSM: the user tower ends at {self.user_mlp.output_dim} dims and the item tower at"
                f" {self.item_mlp.output_dim}; make the last entries of user_params['dims'] and"
                " item_params['dims'] equal"
            )
        self.output_dim = self.user_mlp.output_dim

    def user_tower(self, batch: Batch) -> torch.Tensor:
        inputs = self.embedding.concat(batch, self._user_names)
        if self._recent_names:
            recent = []
            for name in self._recent_names:
                values, mask = self.embedding.sequence(batch, name)
                recent.append(masked_mean(values[:, -self.recent_history :], mask[:, -self.recent_history :]))
            inputs = torch.cat([inputs, *recent], dim=-1)
        return F.normalize(self.user_mlp(inputs), dim=-1)

    def item_tower(self, batch: Batch) -> torch.Tensor:
        return F.normalize(self.item_mlp(self.embedding.concat(batch, self._item_names)), dim=-1)

    @classmethod
    def from_schema(cls, schema: Any, **params: Any) -> DSSM:
        """Build from a dataset schema (used by ``zoo run``): user side features + pooled history -> user
        tower, item id + item side features -> item tower."""
        embed_dim = int(params.pop("embed_dim", 32))
        dims = params.pop("dims", [128, 64])
        activation = params.pop("activation", "relu")
        dropout = float(params.pop("dropout", 0.0))
        user_features: list[Feature] = schema.user_sparse(embed_dim)
        user_features.append(schema.history(embed_dim, pooling=params.pop("history_pooling", "mean")))
        item_features: list[Feature] = schema.item_features(embed_dim)
        tower = {"dims": list(dims), "activation": activation, "dropout": dropout}
        return cls(user_features, item_features, user_params=tower, item_params=dict(tower), **params)


__all__ = ["DSSM", "SparseFeature"]
