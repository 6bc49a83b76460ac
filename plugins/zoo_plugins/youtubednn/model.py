"""YoutubeDNN: the candidate-generation network of Covington et al. (RecSys 2016).

Constructor in the seed's (Torch-RecHub's) style::

    YoutubeDNN(user_features, item_features, neg_item_feature,
               user_params={"dims": [128, 64]}, temperature=1.0)

User tower: an MLP over the concatenated user feature embeddings, among them the watch history
mean-pooled over its real items (``SequenceFeature(..., pooling="mean", shared_with=<item id>)``; padding
is never pooled). Item tower: the item id embedding, the very table the history reads (the softmax
weights of the paper), optionally averaged with the item side features' embeddings. Both sides are
L2-normalised and logits are ``cosine / temperature``; the paper's training is a sampled softmax over
the catalogue: mode 2 with in-batch (logQ-corrected), sampled or mixed negatives.

Differences from the reference implementation: the temperature is applied, padding is not averaged
into the history, the last MLP layer is linear (its output is normalised, a ReLU would confine it to
one orthant), and several item features work (averaged) instead of breaking the tower's shape.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F

from zoo.errors import UsageError
from zoo.features import DenseFeature, Feature, SequenceFeature, SparseFeature
from zoo.models.base import Batch, RecallModel
from zoo.nn import MLP, EmbeddingBank, masked_mean

_USER_KEYS = ("dims", "activation", "dropout", "batch_norm")


class YoutubeDNN(RecallModel):
    """YoutubeDNN (see the module docstring).

    Args:
        user_features: user id, side features and the mean-pooled history (shared with the item id).
        item_features: the item id first, then optional side features (same ``embed_dim``).
        neg_item_feature: the seed's negative-items column, if any.
        user_params: the user MLP: ``dims`` (the last must equal the item embedding size; default
            ``[4 * D, D]``), ``activation`` (relu), ``dropout``, ``batch_norm``.
        temperature: logits are ``cosine / temperature``.
        item_side: average the item side features into item vectors (False: the item id embedding).
        recent_history: also feed the MLP the mean of the ``recent_history`` most recent items of each
            pooled history (0 = off); histories padded anywhere, the most recent item last.
        embedding_init_std: standard deviation of the embedding initialisation.
    """

    cosine_scores = True  # both towers are L2-normalised

    def __init__(
        self,
        user_features: Sequence[Feature],
        item_features: Sequence[Feature],
        neg_item_feature: Sequence[Feature] | None = None,
        user_params: Mapping[str, Any] | None = None,
        temperature: float = 1.0,
        *,
        item_side: bool = True,
        recent_history: int = 0,
        embedding_init_std: float = 0.05,
    ) -> None:
        params = dict(user_params or {})
        unknown = sorted(set(params) - set(_USER_KEYS))
        if unknown:
            raise UsageError(f"user_params: unknown key(s) {', '.join(unknown)}; use {', '.join(_USER_KEYS)}")
        item_list = list(item_features or [])
        ids = [f for f in item_list if isinstance(f, SparseFeature) and not isinstance(f, SequenceFeature)]
        if not ids:
            raise UsageError("YoutubeDNN: the first item feature must be the item id (a SparseFeature)")
        dim = ids[0].embed_dim
        params.setdefault("dims", [4 * dim, dim])
        params.setdefault("activation", "relu")
        params["dims"] = [int(d) for d in params["dims"]]
        if int(recent_history) < 0:
            raise UsageError(f"YoutubeDNN: recent_history must be >= 0, got {recent_history}")
        super().__init__(
            user_features=user_features,
            item_features=item_features,
            temperature=temperature,
            neg_item_feature=neg_item_feature,
        )
        for feature in self.user_features:
            if isinstance(feature, SequenceFeature) and feature.pooling is None:
                raise UsageError(
                    f"YoutubeDNN: user feature '{feature.name}' needs pooling 'mean' or 'sum' (got None):"
                    " the user tower is an MLP over pooled embeddings"
                )
        self._item_names = [self.item_id_feature]
        if item_side:
            self._item_names += [f.name for f in self.item_features if f.name != self.item_id_feature]
        for feature in self.item_features:
            if feature.name in self._item_names and (
                isinstance(feature, DenseFeature) or feature.embed_dim != dim
            ):
                raise UsageError(
                    f"YoutubeDNN: item feature '{feature.name}' must be sparse with embed_dim {dim} (the item"
                    " id's) to be averaged into the item vector; pass item_side=False to use the item id"
                    " alone"
                )
        if params["dims"][-1] != dim:
            raise UsageError(
                f"YoutubeDNN: user_params['dims'] ends at {params['dims'][-1]} but item vectors are the item"
                f" id embedding ({dim}); make the last entry {dim}"
            )
        self.embedding = EmbeddingBank(
            [*self.user_features, *self.item_features], init_std=embedding_init_std
        )
        self._user_names = [f.name for f in self.user_features]
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
        width = self.embedding.output_dim(self._user_names) + self.embedding.output_dim(self._recent_names)
        self.user_mlp = MLP(width, **params)
        self.output_dim = dim

    def _recent(self, batch: Batch, name: str) -> torch.Tensor:
        values, mask = self.embedding.sequence(batch, name)
        order = torch.argsort(mask.to(torch.int8), dim=1, stable=True)[:, -self.recent_history :]
        values = values.gather(1, order.unsqueeze(-1).expand(-1, -1, values.shape[-1]))
        return masked_mean(values, mask.gather(1, order))

    def user_tower(self, batch: Batch) -> torch.Tensor:
        inputs = self.embedding.concat(batch, self._user_names)
        if self._recent_names:
            inputs = torch.cat([inputs, *[self._recent(batch, name) for name in self._recent_names]], dim=-1)
        return F.normalize(self.user_mlp(inputs), dim=-1)

    def item_tower(self, batch: Batch) -> torch.Tensor:
        parts = [self.embedding.embed(batch, name) for name in self._item_names]
        vectors = parts[0] if len(parts) == 1 else torch.stack(parts).mean(dim=0)
        return F.normalize(vectors, dim=-1)

    @classmethod
    def from_schema(cls, schema: Any, **params: Any) -> YoutubeDNN:
        """Build from a dataset schema (``zoo run``): user id and side features plus the mean-pooled history
        (shared with the item id) -> MLP (``hidden_dims`` then ``embed_dim``, or the full ``dims``); the item
        id (plus side features with ``item_side``)."""
        embed_dim = int(params.pop("embed_dim", 64))
        hidden = [int(d) for d in params.pop("hidden_dims", [4 * embed_dim])]
        dims = params.pop("dims", [*hidden, embed_dim])
        user_params = {
            "dims": [int(d) for d in dims],
            "activation": params.pop("activation", "relu"),
            "dropout": float(params.pop("dropout", 0.0)),
        }
        user_features: list[Feature] = schema.user_sparse(embed_dim)
        user_features.append(schema.history(embed_dim, pooling=params.pop("history_pooling", "mean")))
        return cls(user_features, schema.item_features(embed_dim), user_params=user_params, **params)


__all__ = ["YoutubeDNN"]
