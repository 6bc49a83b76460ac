"""SASRec: causal self-attention over the user's item sequence, trained on every position.

Constructor in the seed tutorial's style::

    SASRec(user_features, history_features, item_features, neg_item_feature=None,
           max_length=200, num_blocks=2, num_heads=1, dropout=0.2, temperature=1.0)

* Learned positional embeddings (``max_length`` of them, counted from the most recent item), then
  ``num_blocks`` blocks of multi-head causal self-attention and a point-wise feed-forward network,
  each with LayerNorm, dropout and a residual connection (:class:`zoo.nn.sequence.CausalTransformer`).
* Padding is masked in attention: a query never attends to a padded key, and an all-padding row
  gives a finite vector (never NaN).
* The item vector is the item id embedding, the same table the history reads (input and output
  embeddings tied), plus a projection of item side features when there are any.
* The user vector is the encoder's output at the most recent history item. Trained on every position
  (``next_item_id`` windows from ``MatchData.sequence_batch``) with full softmax (the "SASRec+"
  recipe) or sampled softmax; per-sample rows (the seed's loaders) train as they are.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from zoo.features import Feature, SparseFeature
from zoo.models.base import Batch, RecallModel, TrainOutputs
from zoo.nn.sequence import (
    NEXT_ITEM,
    CausalTransformer,
    ItemTower,
    last_valid,
    per_position_targets,
    sequence_inputs,
)


class SASRec(RecallModel):
    """SASRec (see the module docstring).

    Args:
        user_features: user-side features. The raw history may be listed here too (the encoder reads
            it); any others (user id, demographics) are added to every position's output through a
            learned projection.
        history_features: ``[SequenceFeature(name, vocab_size, embed_dim, pooling=None)]``, the item
            sequence, LEFT-padded with 0, most recent item last.
        item_features: the item id first (its embedding size is the model width), then optional item
            side features.
        neg_item_feature: the seed's negative-items column; only its name is used.
        max_length: learned positions; longer histories keep their most recent ``max_length`` items
            (``zoo run`` uses the protocol's history length).
        num_blocks: self-attention blocks.
        num_heads: attention heads (must divide the embedding size).
        dropout: dropout on the input embeddings, the attention weights and after each sub-layer.
        temperature: logits are ``score / temperature``.
        ffn_dim: feed-forward hidden size (default: the embedding size, as in SASRec).
        activation: feed-forward activation, ``relu`` (SASRec) or ``gelu``.
        scale_input: multiply input item embeddings by ``sqrt(embed_dim)`` (SASRec does).
        tie_embeddings: the history reads the item id's table (input = output embeddings).
        normalize: L2-normalise user and item vectors (cosine scores; use a small temperature).
        embedding_init_std: standard deviation of the embedding initialisation.
    """

    def __init__(
        self,
        user_features: Sequence[Feature],
        history_features: Sequence[Feature] | None,
        item_features: Sequence[Feature],
        neg_item_feature: Sequence[Feature] | None = None,
        max_length: int = 200,
        num_blocks: int = 2,
        num_heads: int = 1,
        dropout: float = 0.2,
        temperature: float = 1.0,
        *,
        ffn_dim: int | None = None,
        activation: str = "relu",
        scale_input: bool = True,
        tie_embeddings: bool = True,
        normalize: bool = False,
        embedding_init_std: float = 0.05,
    ) -> None:
        super().__init__(
            user_features=user_features,
            item_features=item_features,
            temperature=temperature,
            history_features=history_features,
            neg_item_feature=neg_item_feature,
        )
        inputs = sequence_inputs(
            "SASRec",
            self.user_features,
            self.history_features,
            self.item_features,
            self.item_id_feature,
            tie_embeddings=bool(tie_embeddings),
            init_std=embedding_init_std,
        )
        history = inputs.history
        self.history_name = history.name
        self._side_names, self._item_names, self.embedding = (
            inputs.side_names,
            inputs.item_names,
            inputs.embedding,
        )
        self.normalize = bool(normalize)
        self.output_dim = history.embed_dim
        self.encoder = CausalTransformer(
            history.embed_dim,
            max_length=max_length,
            num_blocks=num_blocks,
            num_heads=num_heads,
            dropout=dropout,
            ffn_dim=ffn_dim,
            activation=activation,
            scale_input=scale_input,
        )
        self.side = (
            nn.Linear(self.embedding.output_dim(self._side_names), self.output_dim, bias=False)
            if self._side_names
            else None
        )
        self.item_net = ItemTower(self.embedding, self._item_names, self.output_dim)

    # -- towers ---------------------------------------------------------------------------------
    def _encode(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        values, mask = self.embedding.sequence(batch, self.history_name)
        max_length = self.encoder.max_length
        if values.shape[1] > max_length:
            values, mask = values[:, -max_length:], mask[:, -max_length:]
        return self.encoder(values, mask), mask

    def _finish(self, states: torch.Tensor, batch: Batch) -> torch.Tensor:
        if self.side is not None:
            side = self.side(self.embedding.concat(batch, self._side_names))
            states = states + (side.unsqueeze(1) if states.dim() == 3 else side)
        return F.normalize(states, dim=-1) if self.normalize else states

    def user_tower(self, batch: Batch) -> torch.Tensor:
        """User vectors [B, D]: the encoder output at the most recent history item."""
        states, mask = self._encode(batch)
        last = states[torch.arange(states.shape[0], device=states.device), last_valid(mask)]
        return self._finish(last, batch)

    def sequence_outputs(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """User vectors after every position [B, L, D] and the mask of real positions [B, L] (the
        vector at ``t`` depends on the items at positions ``<= t`` only)."""
        states, mask = self._encode(batch)
        return self._finish(states, batch), mask

    def item_tower(self, batch: Batch) -> torch.Tensor:
        items = self.item_net(batch)
        return F.normalize(items, dim=-1) if self.normalize else items

    # -- training ---------------------------------------------------------------------------------
    def train_outputs(self, batch: Batch) -> TrainOutputs:
        """Per-position rows for sequence windows (``next_item_id`` in the batch), per-sample rows
        otherwise (one row per real input position with a next item)."""
        if NEXT_ITEM not in batch:
            return super().train_outputs(batch)
        users, mask = self.sequence_outputs(batch)
        targets = batch[NEXT_ITEM]
        if targets.shape[1] > mask.shape[1]:
            targets = targets[:, -mask.shape[1] :]
        user, pos_ids = per_position_targets(users, mask, targets)
        valid = torch.ones(pos_ids.shape, dtype=torch.bool, device=pos_ids.device)
        return TrainOutputs(user=user, pos_ids=pos_ids, pos_item=self.item_vectors(pos_ids), valid=valid)

    # -- construction from a dataset --------------------------------------------------------------
    @classmethod
    def from_schema(cls, schema: Any, **params: Any) -> SASRec:
        """Build from a dataset schema (``zoo run``).

        Keys: ``embed_dim`` (64), ``num_blocks`` (2), ``num_heads`` (1), ``dropout`` (0.2),
        ``max_length`` (default the protocol's history length, ``schema.history_len``),
        ``user_features`` (False: history only; True adds the user id and user side features),
        ``item_side_features`` (False: item id only), and the constructor's keyword options
        (``temperature``, ``ffn_dim``, ``activation``, ``scale_input``, ``normalize``,
        ``tie_embeddings``, ``embedding_init_std``).
        """
        embed_dim = int(params.pop("embed_dim", 64))
        params.setdefault("max_length", schema.history_len)
        history = schema.history(embed_dim, pooling=None)
        user_features: list[Feature] = [history]
        if params.pop("user_features", False):
            user_features = [*schema.user_sparse(embed_dim), history]
        if params.pop("item_side_features", False):
            item_features = schema.item_features(embed_dim)
        else:
            item_features = [schema.item_id_feature(embed_dim)]
        return cls(user_features, [history], item_features, **params)


__all__ = ["SASRec", "SparseFeature"]
