"""NARM: a GRU over the session with a global and a local (attentive) encoder and a bilinear decoder.

Li, Ren, Chen, Ren, Lian and Ma, Neural Attentive Session-based Recommendation, CIKM 2017. Constructor
as Torch-RecHub's::

    NARM(item_history_feature, hidden_dim, emb_dropout_p, session_rep_dropout_p, item_feature=None)

At the session's position ``t`` (the most recent real item for the user vector; every position when
trained on sequence windows):

* the GRU (:class:`zoo.nn.sequence.MaskedGRU`, reading only the real items, embedding dropout first)
  gives ``h_1 .. h_t``;
* global encoder: ``c_g = h_t``;
* local encoder: ``c_l = sum_j a_tj h_j`` over the real items ``j <= t``, with
  ``a_tj = softmax_j(v' sigmoid(A_1 h_t + A_2 h_j))``: the weights sum to one and padding weighs 0;
* bilinear decoder: the score of item ``i`` is ``emb_i' B [c_g; c_l]`` (session dropout on
  ``[c_g; c_l]``), so the user vector is ``B [c_g; c_l]`` and the item vector is the item embedding,
  the same table the GRU reads.

Differences from Torch-RecHub's class, on purpose: ``A_1``, ``A_2``, ``v`` and ``B`` are initialised like
linear layers, not from ``N(0, 1)``; padding anywhere in a row (left, as ``zoo`` pads, or right, as
Torch-RecHub's examples pad) reads the same; trained on sequence windows every position is a training
sample; ``normalize`` / ``temperature`` give cosine scores.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from zoo.errors import UsageError
from zoo.features import SparseFeature
from zoo.nn.sequence import MaskedGRU
from zoo.nn.session import SessionModel, at_positions, causal_keys, masked_attention


def _dropout(value: Any, name: str) -> float:
    value = float(value)
    if not 0.0 <= value < 1.0:
        raise UsageError(f"NARM {name} must be in [0, 1), got {value}")
    return value


class NARM(SessionModel):
    """NARM (see the module docstring).

    Args:
        item_history_feature: ``SequenceFeature(name, vocab_size, embed_dim)``, the session's item ids
            (0 = padding, left or right); its pooling is ignored (the GRU reads the raw sequence).
        hidden_dim: GRU state size (the encoders' size; the session vector ``[c_g; c_l]`` is twice it).
        emb_dropout_p: dropout on the item embeddings the GRU reads.
        session_rep_dropout_p: dropout on ``[c_g; c_l]`` before the bilinear decoder.
        item_feature: the item id, ``SparseFeature(name, vocab_size, embed_dim)`` with the history's
            embedding size (default ``item_id`` with the history's vocabulary); the history reads its
            table.
        temperature: logits are ``score / temperature``.
        normalize: L2-normalise session and item vectors (cosine scores; use a small temperature).
        num_layers: GRU layers.
        embedding_init_std: standard deviation of the embedding initialisation.
    """

    def __init__(
        self,
        item_history_feature: Any,
        hidden_dim: int = 100,
        emb_dropout_p: float = 0.25,
        session_rep_dropout_p: float = 0.5,
        item_feature: SparseFeature | None = None,
        *,
        temperature: float = 1.0,
        normalize: bool = False,
        num_layers: int = 1,
        embedding_init_std: float = 0.05,
    ) -> None:
        hidden_dim = int(hidden_dim)
        if hidden_dim < 1:
            raise UsageError(f"NARM hidden_dim must be a positive integer, got {hidden_dim}")
        settings = {
            "hidden_dim": hidden_dim,
            "emb_dropout_p": _dropout(emb_dropout_p, "emb_dropout_p"),
            "session_rep_dropout_p": _dropout(session_rep_dropout_p, "session_rep_dropout_p"),
            "num_layers": int(num_layers),
            "embedding_init_std": float(embedding_init_std),
        }
        self._setup_session(
            item_history_feature,
            item_feature,
            temperature=temperature,
            normalize=normalize,
            init_std=settings["embedding_init_std"],
            settings=settings,
        )
        self.hidden_dim = hidden_dim
        self.emb_dropout = nn.Dropout(settings["emb_dropout_p"])
        self.gru = MaskedGRU(self.embed_dim, hidden_dim, num_layers=settings["num_layers"])
        self.a_1 = nn.Linear(hidden_dim, hidden_dim, bias=False)  # the query h_t
        self.a_2 = nn.Linear(hidden_dim, hidden_dim, bias=False)  # the keys h_j
        self.v = nn.Linear(hidden_dim, 1, bias=False)
        self.session_rep_dropout = nn.Dropout(settings["session_rep_dropout_p"])
        self.b = nn.Linear(2 * hidden_dim, self.embed_dim, bias=False)  # the bilinear decoder
        self.output_dim = self.embed_dim

    def attention(self, states: torch.Tensor, mask: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """The local encoder's weights ``a_tj`` [B, Q, L] of the queries at ``positions`` [B, Q] over the
        GRU outputs ``states`` [B, L, H] (zero at every key after ``t`` or on padding)."""
        keys = self.a_2(states).unsqueeze(1)  # [B, 1, L, H]
        query = self.a_1(at_positions(states, positions)).unsqueeze(2)  # [B, Q, 1, H]
        scores = self.v(torch.sigmoid(query + keys)).squeeze(-1)
        return masked_attention(scores, causal_keys(mask, positions))

    def session_vectors(
        self, values: torch.Tensor, mask: torch.Tensor, positions: torch.Tensor
    ) -> torch.Tensor:
        states, last = self.gru(self.emb_dropout(values), mask)
        global_ = at_positions(states, positions)
        # A row without any real item has no GRU output in place: its global state is the GRU's
        # output after one zero input, the same for every empty row.
        empty = ~at_positions(mask, positions)
        global_ = torch.where(empty.unsqueeze(-1), last.unsqueeze(1), global_)
        local = self.attention(states, mask, positions) @ states  # [B, Q, H]
        return self.b(self.session_rep_dropout(torch.cat([global_, local], dim=-1)))

    @classmethod
    def from_schema(
        cls,
        schema: Any,
        *,
        embed_dim: int = 64,
        hidden_dim: int = 128,
        emb_dropout_p: float = 0.25,
        session_rep_dropout_p: float = 0.5,
        temperature: float = 1.0,
        normalize: bool = False,
        num_layers: int = 1,
        embedding_init_std: float = 0.05,
    ) -> NARM:
        """Build from a dataset schema (``zoo run``): the history reads the item id's table; the
        protocol's history length is the session length. Keys as the constructor's, plus
        ``embed_dim`` (the item embedding size)."""
        history, item = cls.schema_features(schema, int(embed_dim))
        return cls(
            history,
            hidden_dim,
            emb_dropout_p,
            session_rep_dropout_p,
            item,
            temperature=temperature,
            normalize=normalize,
            num_layers=num_layers,
            embedding_init_std=embedding_init_std,
        )


__all__ = ["NARM"]
