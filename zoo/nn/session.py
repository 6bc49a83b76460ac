"""What the session models (NARM, STAMP) share: Torch-RecHub's constructor form, one item table that
the session reads and is scored against, causal per-position read-outs and masked attention.

A session model turns the items of a session (the history, LEFT- or right-padded with 0) into one
vector at a position ``t`` that depends only on the real items at positions ``<= t``. The subclass
implements that read-out once, :meth:`SessionModel.session_vectors`, for ``Q`` query positions per row
(a ``[B, Q]`` grid: attention runs as batched products, with no per-query copy of the row); this base
class asks it for:

* ``user_tower``: the most recent real item of each row (padding anywhere in the row is skipped);
* ``train_outputs`` on sequence windows (``next_item_id`` in the batch, ``zoo run``): every real
  position that has a next item, so a window of 50 trains up to 50 prefixes of the session at the cost
  of one encoder pass (RecBole trains each prefix as its own sample);
* ``train_outputs`` on per-sample rows: the batch's item id column as the target or, in Torch-RecHub's
  session examples (``run_sbr.py``: ``(x_dict, y)`` batches), ``y`` (the trainer's ``label``) as the
  next item;
* ``forward`` with neither ``mode`` set nor an item column: the scores of every item id (padding id 0
  scored ``-inf``), which is what ``run_sbr.py`` ranks with ``torch.topk``.

Torch-RecHub's form is ``Model(item_history_feature, ..., item_feature=None)``: without an item
feature the item id is ``SparseFeature("item_id", ...)`` with the history's vocabulary and size, and the
history reads its table either way (input and output embeddings tied, as both papers do).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F

from zoo.errors import UsageError
from zoo.features import Feature, SequenceFeature, SparseFeature, feature_from_dict
from zoo.models.base import Batch, RecallModel, TrainOutputs
from zoo.nn.sequence import NEXT_ITEM, ItemTower, last_valid, sequence_inputs

__all__ = ["DEFAULT_ITEM_ID", "SessionModel", "at_positions", "causal_keys", "masked_attention"]

#: the item id's name when Torch-RecHub's form gives no ``item_feature``
DEFAULT_ITEM_ID = "item_id"
_FEATURE_KEYS = ("item_history_feature", "item_feature")


def causal_keys(mask: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """The keys each query may attend to: ``[B, Q, L]``, true at the real positions of row ``b`` at or
    before the query's position ``positions[b, q]``."""
    before = torch.arange(mask.shape[1], device=mask.device) <= positions.unsqueeze(-1)
    return mask.unsqueeze(1) & before


def at_positions(values: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """``values`` [B, L, ...] at ``positions`` [B, Q]: [B, Q, ...]."""
    rows = torch.arange(values.shape[0], device=values.device).unsqueeze(1)
    return values[rows, positions]


def masked_attention(scores: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
    """Softmax of ``scores`` [..., L] over the ``allowed`` keys: every other key weighs exactly 0, and a
    row with no allowed key gets all-zero weights (never NaN)."""
    scores = scores.masked_fill(~allowed, torch.finfo(scores.dtype).min)
    return torch.softmax(scores, dim=-1) * allowed.to(scores.dtype)


def _as_feature(value: Any) -> Feature | None:
    """One feature from a feature, a one-element list of it (our models' list form) or its dict."""
    if isinstance(value, (list, tuple)) and len(value) == 1:
        value = value[0]
    if isinstance(value, Mapping):
        return feature_from_dict(dict(value))
    return value


class SessionModel(RecallModel):
    """Base class of the session models (see the module docstring).

    Subclasses call :meth:`_setup_session` from ``__init__`` (instead of ``RecallModel.__init__``)
    with their other constructor arguments as JSON values (``settings``: what ``save`` writes besides
    the features, ``temperature`` and ``normalize``) and implement :meth:`session_vectors`.
    """

    def _setup_session(
        self,
        item_history_feature: Any,
        item_feature: Any,
        *,
        temperature: float,
        normalize: bool,
        init_std: float,
        settings: Mapping[str, Any],
    ) -> None:
        """Check the features, tie the history to the item id table, build the embedding bank."""
        name = type(self).__name__
        history = _as_feature(item_history_feature)
        if not isinstance(history, SequenceFeature):
            raise UsageError(
                f"{name}: item_history_feature must be a SequenceFeature (the session's item ids), got"
                f" {item_history_feature!r}"
            )
        item = _as_feature(item_feature)
        if item is None:
            item = SparseFeature(DEFAULT_ITEM_ID, history.vocab_size, history.embed_dim)
        if isinstance(item, SequenceFeature) or not isinstance(item, SparseFeature):
            raise UsageError(f"{name}: item_feature must be the item id, a SparseFeature, got {item!r}")
        if item.name == history.name:
            raise UsageError(f"{name}: item_feature and item_history_feature are both named '{item.name}'")
        history = dataclasses.replace(history, pooling=None)
        super().__init__(
            user_features=[history],
            item_features=[item],
            temperature=temperature,
            history_features=[history],
        )
        inputs = sequence_inputs(
            name, [history], [history], [item], item.name, tie_embeddings=True, init_std=init_std
        )
        self.history_name = inputs.history.name
        self.embedding = inputs.embedding
        self.embed_dim = int(item.embed_dim)
        self.item_net = ItemTower(self.embedding, inputs.item_names, self.embed_dim)
        self.normalize = bool(normalize)
        self._settings = dict(settings)
        # Torch-RecHub's attribute names, for code that reads them
        self.item_history_feature = history
        self.item_feature = item

    # -- the read-out subclasses implement ----------------------------------------------------------
    def session_vectors(
        self, values: torch.Tensor, mask: torch.Tensor, positions: torch.Tensor
    ) -> torch.Tensor:
        """Session vectors [B, Q, D] of each row read up to each of its positions ``positions`` [B, Q],
        from the history's embeddings ``values`` [B, L, D] (zero at padding) and its mask of real items
        [B, L]."""
        raise NotImplementedError

    # -- towers ---------------------------------------------------------------------------------------
    def _read(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        values, mask = self.embedding.sequence(batch, self.history_name)
        return values * mask.unsqueeze(-1).to(values.dtype), mask

    def _finish(self, vectors: torch.Tensor) -> torch.Tensor:
        return F.normalize(vectors, dim=-1) if self.normalize else vectors

    def user_tower(self, batch: Batch) -> torch.Tensor:
        """Session vectors [B, D] after each row's most recent real item."""
        values, mask = self._read(batch)
        return self._finish(self.session_vectors(values, mask, last_valid(mask).unsqueeze(1)).squeeze(1))

    def item_tower(self, batch: Batch) -> torch.Tensor:
        """Item vectors [N, D]: the item id's embedding (the table the session reads)."""
        return self._finish(self.item_net(batch))

    def forward(self, batch: Batch) -> torch.Tensor:
        """``mode`` ``"user"`` / ``"item"``: that tower. Otherwise, with the item id in the batch, the
        probability of each (session, item) row; without it, the logits of every item id [B, vocab]
        (id 0, padding, is ``-inf``), as Torch-RecHub's session models return."""
        if self.mode is not None or self.item_id_feature in batch:
            return super().forward(batch)
        ids = torch.arange(
            self._item_vocab(), device=self.embedding.table(self.item_id_feature).weight.device
        )
        logits = self.user_tower(batch) @ self.item_vectors(ids).T / self.temperature
        return logits.index_fill(1, ids[:1], float("-inf"))

    # -- training ---------------------------------------------------------------------------------------
    def train_outputs(self, batch: Batch) -> TrainOutputs:
        """One row per real position with a next item for sequence windows (``next_item_id``); else one
        row per sample, its target the item id column or, without one, the ``label`` (Torch-RecHub's
        ``y``, the next item's id)."""
        if NEXT_ITEM in batch:
            values, mask = self._read(batch)
            targets = batch[NEXT_ITEM].long()
            trained = (targets != 0) & mask
            # The columns holding a target (a window's last ``window_stride``), read for every row.
            columns = trained.any(dim=0).nonzero().squeeze(1)
            positions = columns.unsqueeze(0).expand(values.shape[0], -1)
            keep = trained[:, columns]
            user = self._finish(self.session_vectors(values, mask, positions)[keep])
            pos_ids = targets[:, columns][keep]
        elif self.item_id_feature in batch:
            return super().train_outputs(batch)
        elif "label" in batch and not batch["label"].is_floating_point():
            user, pos_ids = self.user_tower(batch), batch["label"].reshape(-1).long()
        else:
            raise UsageError(
                f"{type(self).__name__}: a training batch needs the target item: an '{self.item_id_feature}'"
                " column, next_item_id windows, or (x, y) pairs whose y is the next item's id"
            )
        valid = torch.ones(pos_ids.shape, dtype=torch.bool, device=pos_ids.device)
        return TrainOutputs(user=user, pos_ids=pos_ids, pos_item=self.item_vectors(pos_ids), valid=valid)

    # -- persistence --------------------------------------------------------------------------------------
    def get_config(self) -> dict[str, Any]:
        """The constructor's arguments as JSON: both features as dicts, then the model's settings."""
        return {
            "item_history_feature": self.item_history_feature.to_dict(),
            "item_feature": self.item_feature.to_dict(),
            **self._settings,
            "temperature": self.temperature,
            "normalize": self.normalize,
        }

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> RecallModel:
        kwargs = dict(config)
        for key in _FEATURE_KEYS:
            if isinstance(kwargs.get(key), Mapping):
                kwargs[key] = feature_from_dict(dict(kwargs[key]))
        return cls(**kwargs)

    @classmethod
    def schema_features(cls, schema: Any, embed_dim: int) -> tuple[SequenceFeature, SparseFeature]:
        """The history and item id features of a dataset schema (``from_schema``)."""
        return schema.history(embed_dim, pooling=None), schema.item_id_feature(embed_dim)
