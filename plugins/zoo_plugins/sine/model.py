"""SINE: Sparse-Interest Network for sequential recommendation (Tan et al., WSDM 2021).

Constructor as in Torch-RecHub (feature names as strings, the vocabulary and sizes given)::

    SINE(history_features, item_features, neg_item_features, num_items, embedding_dim, hidden_dim,
         num_concept, num_intention, seq_max_len, num_heads=1, temperature=1.0)

and, as every recall-zoo model, with feature objects (``from_schema`` does that).

User tower, for the history embeddings ``x_t`` (right-aligned, padding never read):

1. **concept activation**: a self-attentive pooling of the history gives ``z_u``; its inner products
   with a pool of ``num_concept`` learned prototypes ``C`` pick the top ``L = num_intention`` of them,
   ``c_k = sigmoid(s_k) C_{i_k}`` (exactly ``L`` prototypes are active for each user);
2. **intention assignment**: ``P(k | t) = softmax_k(cos(W3 x_t, c_k) / assignment_temperature)``;
3. **attention per interest**: ``P(t | k)``, a self-attention head per interest over the real
   positions (learned positions in the scores);
4. **interests**: ``phi_k = sum_t P(k | t) P(t | k) x_t`` (L2-normalised);
5. **interest aggregation**: the intention-aware input ``x^_t = sum_k P(k | t) c_k`` is pooled by a
   self-attention into the predicted next intention ``c_apt``; ``e_k = softmax_k(<c_apt, phi_k> /
   aggregation_temperature)`` and ``v_u = sum_k e_k phi_k``.

``readout="aggregate"`` (SINE's own and Torch-RecHub's) returns ``v_u`` [B, D];
``readout="interests"`` returns the ``L`` interests ``phi_k`` [B, L, D], retrieved like MIND's and
ComiRec's (each interest queried, the lists merged by best score) and trained with the interest that
scores the positive highest. Item vectors: the mean of the item features' embeddings (the table the
history reads), L2-normalised. Logits are ``score / temperature``.

Differences from Torch-RecHub's SINE: vectors are L2-normalised and ``temperature`` divides the
logits (Torch-RecHub uses it only in the aggregation softmax; here that is
``aggregation_temperature``, by default the same value); the intention assignment divides the cosine
by a temperature (without one the assignment is almost uniform: cosines lie in [-1, 1]); the concept
pool is a parameter, not an embedding table, and padding is masked everywhere (Torch-RecHub adds
the position embeddings to padding rows).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from zoo.errors import UsageError
from zoo.features import Feature, SequenceFeature, SparseFeature
from zoo.models.base import Batch, RecallModel
from zoo.nn.interests import InterestInputs, SelfAttentiveInterests

READOUTS = ("aggregate", "interests")


def _named_features(
    history: Sequence[Any],
    items: Sequence[Any],
    negatives: Sequence[Any] | None,
    num_items: int | None,
    embedding_dim: int | None,
) -> tuple[list[Feature], list[Feature], list[Feature]]:
    """Feature objects for Torch-RecHub's string form (names only, sizes from ``num_items`` and
    ``embedding_dim``); feature objects pass through. The history and negatives read the item table."""
    needs_sizes = any(isinstance(f, str) for f in [*history, *items, *(negatives or [])])
    if needs_sizes and (num_items is None or embedding_dim is None):
        raise UsageError(
            "SINE: features given by name need num_items and embedding_dim (Torch-RecHub's form:"
            " SINE(history_features, item_features, neg_item_features, num_items, embedding_dim, ...))"
        )
    if not items:
        raise UsageError("SINE: item_features must name the item id")
    item_list = [
        SparseFeature(f, int(num_items), int(embedding_dim)) if isinstance(f, str) else f  # type: ignore[arg-type]
        for f in items
    ]
    item_id = item_list[0].name

    def sequence(name: str) -> SequenceFeature:
        return SequenceFeature(name, int(num_items), int(embedding_dim), pooling=None, shared_with=item_id)  # type: ignore[arg-type]

    history_list = [sequence(f) if isinstance(f, str) else f for f in history]
    negative_list = [sequence(f) if isinstance(f, str) else f for f in (negatives or [])]
    return history_list, item_list, negative_list


class SINE(RecallModel):
    """SINE (see the module docstring).

    Args:
        history_features: the behaviour sequence: a name (Torch-RecHub) or a ``SequenceFeature``
            (``pooling=None``); its ``embed_dim`` is D.
        item_features: the item id first (a name or a ``SparseFeature``), then optional side features.
        neg_item_features: the negative-items column, if the data has one (only its name is used).
        num_items: item vocabulary (needed for features given by name).
        embedding_dim: D (needed for features given by name).
        hidden_dim: width of the self-attentions' hidden layer (default ``4 * D``).
        num_concept: size of the prototype pool.
        num_intention: L, prototypes activated per user (the number of interests).
        seq_max_len: history positions read (the most recent).
        num_heads: heads of the concept and aggregation self-attentions (averaged).
        temperature: logits are ``score / temperature``.
        user_features: user features; SINE reads only the history (default: the history feature).
        readout: ``aggregate`` (one vector ``v_u``) or ``interests`` (the L interests).
        aggregation_temperature: temperature of ``e_k`` (default ``temperature``).
        assignment_temperature: temperature of ``P(k | t)``.
        item_side: average the item side features into the item vectors.
        embedding_init_std: standard deviation of the embedding initialisation.
    """

    cosine_scores = True  # user and item vectors are L2-normalised

    def __init__(
        self,
        history_features: Sequence[Any],
        item_features: Sequence[Any],
        neg_item_features: Sequence[Any] | None = None,
        num_items: int | None = None,
        embedding_dim: int | None = None,
        hidden_dim: int | None = None,
        num_concept: int = 10,
        num_intention: int = 2,
        seq_max_len: int = 50,
        num_heads: int = 1,
        temperature: float = 1.0,
        *,
        user_features: Sequence[Feature] | None = None,
        readout: str = "aggregate",
        aggregation_temperature: float | None = None,
        assignment_temperature: float = 0.1,
        item_side: bool = True,
        embedding_init_std: float = 0.05,
    ) -> None:
        history, items, negatives = _named_features(
            list(history_features or []),
            list(item_features or []),
            neg_item_features,
            num_items,
            embedding_dim,
        )
        if not history:
            raise UsageError("SINE: history_features must hold the behaviour sequence")
        if readout not in READOUTS:
            raise UsageError(f"SINE: readout must be one of {', '.join(READOUTS)}, got {readout!r}")
        if not 1 <= int(num_intention) <= int(num_concept):
            raise UsageError(
                f"SINE: num_intention must be between 1 and num_concept ({num_concept}), got {num_intention}"
            )
        if int(num_heads) < 1:
            raise UsageError(f"SINE: num_heads must be >= 1, got {num_heads}")
        for name, value in (("assignment_temperature", assignment_temperature),):
            if not float(value) > 0:
                raise UsageError(f"SINE: {name} must be > 0, got {value}")
        super().__init__(
            user_features=list(user_features or history),
            item_features=items,
            temperature=temperature,
            history_features=history,
        )
        if negatives:  # only the column name is read (the trainer's batch negatives)
            self.neg_items_key = negatives[0].name
        dim = history[0].embed_dim
        hidden = int(hidden_dim or 4 * dim)
        self.max_length = int(seq_max_len)
        self.num_concept, self.num_intention = int(num_concept), int(num_intention)
        self.readout = readout
        self.aggregation_temperature = float(aggregation_temperature or self.temperature)
        if not self.aggregation_temperature > 0:
            raise UsageError(f"SINE: aggregation_temperature must be > 0, got {aggregation_temperature}")
        self.assignment_temperature = float(assignment_temperature)
        self.inputs = InterestInputs(
            self.user_features,
            self.history_features,
            self.item_features,
            max_length=self.max_length,
            item_side=item_side,
            init_std=embedding_init_std,
            use_profile=False,
            owner="SINE",
        )
        self.concepts = nn.Parameter(torch.randn(self.num_concept, dim) * embedding_init_std)
        self.num_heads = int(num_heads)
        # One self-attention over the history: its first num_heads heads pool z_u (concept activation),
        # the next num_intention heads are P(t | k), the attention of each interest.
        self.sequence_attention = SelfAttentiveInterests(
            dim, self.num_heads + self.num_intention, hidden, self.max_length
        )
        self.assignment = nn.Linear(dim, dim, bias=False)
        self.aggregation_attention = SelfAttentiveInterests(dim, self.num_heads, hidden, self.max_length)
        self.output_dim = dim

    @property
    def num_interests(self) -> int:
        return self.num_intention if self.readout == "interests" else 1

    # -- the steps --------------------------------------------------------------------------------------
    def active_concepts(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(indices [B, L] of the prototypes activated by the pooled history ``z`` [B, D], their gated
        vectors ``c_k = sigmoid(<z, C_i>) C_i`` [B, L, D])."""
        scores, indices = (z @ self.concepts.T).topk(self.num_intention, dim=-1)
        return indices, torch.sigmoid(scores).unsqueeze(-1) * self.concepts[indices]

    def encode(self, batch: Batch) -> dict[str, torch.Tensor]:
        """Every intermediate of the user tower: ``concepts`` (indices [B, L]), ``assignment`` P(k|t)
        [B, T, L], ``interests`` phi [B, L, D] (normalised), ``weights`` e [B, L], ``user`` v_u [B, D]."""
        values, mask = self.inputs.sequence(batch)  # [B, T, D], padding rows zero
        heads = self.sequence_attention.attention(values, mask)  # [B, H + L, T], zero at padding
        z = (heads[:, : self.num_heads] @ values).mean(dim=1)  # [B, D]
        attention = heads[:, self.num_heads :]  # P(t | k) [B, L, T]
        indices, concepts = self.active_concepts(z)
        keys = F.normalize(self.assignment(values), dim=-1)
        assignment = torch.softmax(
            keys @ F.normalize(concepts, dim=-1).transpose(1, 2) / self.assignment_temperature, dim=-1
        )  # [B, T, L]
        interests = F.normalize((assignment.transpose(1, 2) * attention) @ values, dim=-1)  # [B, L, D]
        intentions = (assignment @ concepts) * mask.unsqueeze(-1).to(values.dtype)  # [B, T, D]
        next_intention = F.normalize(self.aggregation_attention(intentions, mask).mean(dim=1), dim=-1)
        weights = torch.softmax(
            (interests @ next_intention.unsqueeze(-1)).squeeze(-1) / self.aggregation_temperature, dim=-1
        )
        user = F.normalize((weights.unsqueeze(-1) * interests).sum(dim=1), dim=-1)
        return {
            "concepts": indices,
            "assignment": assignment,
            "interests": interests,
            "weights": weights,
            "user": user,
        }

    # -- towers ---------------------------------------------------------------------------------------
    def user_tower(self, batch: Batch) -> torch.Tensor:
        parts = self.encode(batch)
        if self.readout == "aggregate":
            return parts["user"]
        interests = parts["interests"]
        return interests.squeeze(1) if self.num_intention == 1 else interests

    def item_tower(self, batch: Batch) -> torch.Tensor:
        return F.normalize(self.inputs.items(batch), dim=-1)

    # -- construction from a dataset schema ------------------------------------------------------------
    @classmethod
    def from_schema(cls, schema: Any, **params: Any) -> SINE:
        """Build from a dataset schema (``zoo run``): the raw history and the item id (plus the item side
        features with ``item_side``), at ``embed_dim`` (64); ``seq_max_len`` is the protocol's history
        length."""
        embed_dim = int(params.pop("embed_dim", 64))
        history = [schema.history(embed_dim, pooling=None)]
        items = (
            schema.item_features(embed_dim)
            if params.get("item_side", True)
            else [schema.item_id_feature(embed_dim)]
        )
        params.setdefault("seq_max_len", schema.history_len)
        return cls(history, items, **params)


__all__ = ["SINE"]
