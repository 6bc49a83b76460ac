"""GRU4Rec: a GRU over the user's item sequence, trained to predict the next item at every position.

Constructor as in the seed tutorial::

    GRU4Rec(user_features, history_features, item_features, neg_item_feature=neg_item_feature,
            user_params={"dims": [128, 64], "num_layers": 2, "dropout": 0.2}, temperature=1.0)

* The GRU reads the history with its padding removed (real items packed, see
  :class:`zoo.nn.sequence.MaskedGRU`): the user vector is the output after the MOST RECENT item,
  never a state computed over padding (the reference implementation summed the outputs over the
  wrong axis, padding included).
* User side features (user id, demographics), if any, are concatenated to the GRU output; the
  ``dims`` MLP maps that to the user vector, whose size must equal the item vector size.
* The item vector is the item id embedding, the same table the history reads when
  ``tie_embeddings`` (the default), plus a projection of item side features when there are any.
* Trained on every position: given sequence windows (``next_item_id`` in the batch, from
  ``MatchData.sequence_batch``), :meth:`GRU4Rec.train_outputs` returns one row per real position with
  its next item as the target; the trainer then applies the loss (full softmax, sampled softmax with
  shared popularity negatives and logQ correction, BPR-max...). Given the seed's per-sample rows
  (history, target item, ``neg_items``) it trains on the rows as they are.
* ``temperature`` divides every logit (the trainer applies ``model.temperature``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from zoo.errors import UsageError
from zoo.features import Feature, SparseFeature
from zoo.models.base import Batch, RecallModel, TrainOutputs
from zoo.nn import MLP
from zoo.nn.sequence import NEXT_ITEM, ItemTower, MaskedGRU, per_position_targets, sequence_inputs

_USER_KEYS = ("dims", "num_layers", "dropout", "hidden_size", "activation")


def _user_params(params: Mapping[str, Any] | None) -> dict[str, Any]:
    params = dict(params or {})
    unknown = sorted(set(params) - set(_USER_KEYS))
    if unknown:
        raise UsageError(
            f"GRU4Rec user_params: unknown key(s) {', '.join(unknown)}; use {', '.join(_USER_KEYS)}"
        )
    params.setdefault("dims", [])
    params.setdefault("num_layers", 1)
    params.setdefault("dropout", 0.0)
    params.setdefault("hidden_size", None)
    params.setdefault("activation", "relu")
    params["dims"] = [int(d) for d in params["dims"]]
    return params


class GRU4Rec(RecallModel):
    """GRU4Rec (see the module docstring).

    Args:
        user_features: user-side features. The raw history may be listed here too (it is read by the
            GRU, not pooled); the others (user id, gender...) are concatenated to the GRU output.
        history_features: ``[SequenceFeature(name, vocab_size, embed_dim, pooling=None)]``, the item
            sequence, LEFT-padded with 0, most recent item last (``gen_model_input``'s default).
        item_features: the item id first, then optional item side features.
        neg_item_feature: the seed's negative-items column (``[SparseFeature("neg_items", ...)]``);
            only its name is used (``neg_items`` by default).
        user_params: ``dims`` (MLP from the GRU output to the user vector; its last entry is the output
            size, which must equal the item vector size; empty = the GRU output itself),
            ``num_layers`` (GRU layers), ``dropout`` (on the input embeddings, between GRU layers and in
            the MLP), ``hidden_size`` (GRU state size, default the history embedding size),
            ``activation`` (MLP hidden activation).
        temperature: logits are ``score / temperature``.
        tie_embeddings: the history reads the item id's embedding table (input = output embeddings).
        normalize: L2-normalise user and item vectors (cosine scores; use a small temperature).
        embedding_init_std: standard deviation of the embedding initialisation.
    """

    def __init__(
        self,
        user_features: Sequence[Feature],
        history_features: Sequence[Feature] | None,
        item_features: Sequence[Feature],
        neg_item_feature: Sequence[Feature] | None = None,
        user_params: Mapping[str, Any] | None = None,
        temperature: float = 1.0,
        *,
        tie_embeddings: bool = True,
        normalize: bool = False,
        embedding_init_std: float = 0.05,
    ) -> None:
        params = _user_params(user_params)
        super().__init__(
            user_features=user_features,
            item_features=item_features,
            temperature=temperature,
            history_features=history_features,
            neg_item_feature=neg_item_feature,
        )
        inputs = sequence_inputs(
            "GRU4Rec",
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
        dropout = float(params["dropout"])
        hidden = int(params["hidden_size"] or history.embed_dim)
        self.input_dropout = nn.Dropout(dropout)
        self.gru = MaskedGRU(history.embed_dim, hidden, num_layers=int(params["num_layers"]), dropout=dropout)
        side_dim = self.embedding.output_dim(self._side_names)
        self.user_mlp = MLP(
            hidden + side_dim, params["dims"], activation=params["activation"], dropout=dropout
        )
        self.output_dim = self.user_mlp.output_dim
        self.item_net = ItemTower(self.embedding, self._item_names, self.output_dim)

    # -- towers ---------------------------------------------------------------------------------
    def _head(self, states: torch.Tensor, batch: Batch) -> torch.Tensor:
        """GRU outputs [B, H] or [B, L, H] (+ user side features) -> user vectors."""
        if self._side_names:
            side = self.embedding.concat(batch, self._side_names)
            if states.dim() == 3:
                side = side.unsqueeze(1).expand(-1, states.shape[1], -1)
            states = torch.cat([states, side], dim=-1)
        user = self.user_mlp(states)
        return F.normalize(user, dim=-1) if self.normalize else user

    def _read(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        values, mask = self.embedding.sequence(batch, self.history_name)
        return self.gru(self.input_dropout(values), mask) + (mask,)

    def user_tower(self, batch: Batch) -> torch.Tensor:
        """User vectors [B, D]: the GRU output after the most recent history item, through the MLP."""
        _, last, _ = self._read(batch)
        return self._head(last, batch)

    def sequence_outputs(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """User vectors after every history position [B, L, D] and the mask [B, L] of real positions
        (the vector at position ``t`` depends on the items at positions ``<= t`` only)."""
        outputs, _, mask = self._read(batch)
        return self._head(outputs, batch), mask

    def item_tower(self, batch: Batch) -> torch.Tensor:
        items = self.item_net(batch)
        return F.normalize(items, dim=-1) if self.normalize else items

    # -- training ---------------------------------------------------------------------------------
    def train_outputs(self, batch: Batch) -> TrainOutputs:
        """Per-position rows for sequence windows (``next_item_id`` in the batch): one row per real
        input position with a next item, that item as the target. Per-sample rows otherwise (the
        history predicts the batch's item id column)."""
        if NEXT_ITEM not in batch:
            return super().train_outputs(batch)
        users, mask = self.sequence_outputs(batch)
        user, pos_ids = per_position_targets(users, mask, batch[NEXT_ITEM])
        valid = torch.ones(pos_ids.shape, dtype=torch.bool, device=pos_ids.device)
        return TrainOutputs(user=user, pos_ids=pos_ids, pos_item=self.item_vectors(pos_ids), valid=valid)

    # -- construction from a dataset --------------------------------------------------------------
    @classmethod
    def from_schema(cls, schema: Any, **params: Any) -> GRU4Rec:
        """Build from a dataset schema (``zoo run``).

        Keys: ``embed_dim`` (64), ``hidden_size`` (GRU state, default ``embed_dim``), ``num_layers``
        (1), ``dropout`` (0.2), ``dims`` (MLP to the user vector, default ``[embed_dim]``),
        ``activation``, ``user_features`` (False: history only, as GRU4Rec is usually run; True adds
        the user id and user side features), ``item_side_features`` (False: item id only),
        ``temperature``, ``normalize``, ``tie_embeddings``, ``embedding_init_std``. The history
        length is the protocol's (``schema.history_len``).
        """
        embed_dim = int(params.pop("embed_dim", 64))
        user_params = {
            "dims": list(params.pop("dims", [embed_dim])),
            "num_layers": int(params.pop("num_layers", 1)),
            "dropout": float(params.pop("dropout", 0.2)),
            "hidden_size": params.pop("hidden_size", None),
            "activation": params.pop("activation", "relu"),
        }
        history = schema.history(embed_dim, pooling=None)
        user_features: list[Feature] = [history]
        if params.pop("user_features", False):
            user_features = [*schema.user_sparse(embed_dim), history]
        if params.pop("item_side_features", False):
            item_features = schema.item_features(embed_dim)
        else:
            item_features = [schema.item_id_feature(embed_dim)]
        return cls(user_features, [history], item_features, user_params=user_params, **params)


__all__ = ["GRU4Rec", "SparseFeature"]
