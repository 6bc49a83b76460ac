"""STAMP: the session's general interest (attentive memory) times its current interest (last click).

Liu, Zeng, Mokhosi and Zhang, STAMP: Short-Term Attention/Memory Priority Model for Session-based
Recommendation, KDD 2018. Constructor as Torch-RecHub's::

    STAMP(item_history_feature, weight_std, emb_std, item_feature=None)

At the session's position ``t`` (the most recent real item for the user vector; every position when
trained on sequence windows), with ``x_j`` the item embeddings:

* ``m_s``: the mean of the real items up to ``t``; ``x_t``: the item at ``t`` (the last click);
* attention over the real items ``j <= t``: ``a_j = softmax_j(w_0' sigmoid(W_1 x_j + W_2 x_t + W_3 m_s
  + b_a))`` (the weights sum to one, padding weighs 0), ``m_a = sum_j a_j x_j + m_s``;
* ``h_s = tanh(W_s m_a + b_s)``, ``h_t = tanh(W_t x_t + b_t)``; the user vector is ``h_s * h_t``
  (element-wise) and the item vector the item embedding (the table the session reads), so the score
  is the paper's trilinear product ``<h_s, h_t, x_i>``.

Differences from Torch-RecHub's class, on purpose: ``h_s`` and ``h_t`` apply ``tanh`` after the linear
map, as the paper's ``f(W m + b)`` (Torch-RecHub applies it before); the last click is found from the
mask, so left padding (``zoo``'s) and right padding (Torch-RecHub's examples) read the same; trained
on sequence windows every position is a training sample; ``normalize`` / ``temperature`` give cosine
scores and ``dropout`` drops item embeddings (the paper uses none).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from zoo.errors import UsageError
from zoo.features import SparseFeature
from zoo.nn.session import SessionModel, at_positions, causal_keys, masked_attention


class STAMP(SessionModel):
    """STAMP (see the module docstring).

    Args:
        item_history_feature: ``SequenceFeature(name, vocab_size, embed_dim)``, the session's item ids
            (0 = padding, left or right); its pooling is ignored.
        weight_std: standard deviation of the normal initialisation of every weight matrix (biases
            start at 0).
        emb_std: standard deviation of the normal initialisation of the item embeddings.
        item_feature: the item id, ``SparseFeature(name, vocab_size, embed_dim)`` with the history's
            embedding size (default ``item_id`` with the history's vocabulary); the history reads its
            table.
        temperature: logits are ``score / temperature``.
        normalize: L2-normalise session and item vectors (cosine scores; use a small temperature).
        dropout: dropout on the item embeddings the session reads.
    """

    def __init__(
        self,
        item_history_feature: Any,
        weight_std: float = 0.05,
        emb_std: float = 0.002,
        item_feature: SparseFeature | None = None,
        *,
        temperature: float = 1.0,
        normalize: bool = False,
        dropout: float = 0.0,
    ) -> None:
        settings = {"weight_std": float(weight_std), "emb_std": float(emb_std), "dropout": float(dropout)}
        for key in ("weight_std", "emb_std"):
            if not settings[key] > 0:
                raise UsageError(f"STAMP {key} must be a positive number, got {settings[key]}")
        if not 0.0 <= settings["dropout"] < 1.0:
            raise UsageError(f"STAMP dropout must be in [0, 1), got {settings['dropout']}")
        self._setup_session(
            item_history_feature,
            item_feature,
            temperature=temperature,
            normalize=normalize,
            init_std=settings["emb_std"],
            settings=settings,
        )
        dim = self.embed_dim
        self.dropout = nn.Dropout(settings["dropout"])
        self.w_0 = nn.Linear(dim, 1, bias=False)
        self.w_1 = nn.Linear(dim, dim, bias=False)  # the items x_j
        self.w_2 = nn.Linear(dim, dim, bias=False)  # the last click x_t
        self.w_3 = nn.Linear(dim, dim)  # the session mean m_s; its bias is b_a
        self.f_s = nn.Linear(dim, dim)
        self.f_t = nn.Linear(dim, dim)
        for layer in (self.w_0, self.w_1, self.w_2, self.w_3, self.f_s, self.f_t):
            nn.init.normal_(layer.weight, std=settings["weight_std"])
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)
        self.output_dim = dim

    def attention(
        self,
        values: torch.Tensor,
        mask: torch.Tensor,
        positions: torch.Tensor,
        last: torch.Tensor,
        mean: torch.Tensor,
    ) -> torch.Tensor:
        """Weights ``a_j`` [B, Q, L] of the queries at ``positions`` [B, Q] (last click ``last`` and
        session mean ``mean``, [B, Q, D]) over the items ``values`` [B, L, D]."""
        query = (self.w_2(last) + self.w_3(mean)).unsqueeze(2)  # [B, Q, 1, D]
        scores = self.w_0(torch.sigmoid(self.w_1(values).unsqueeze(1) + query)).squeeze(-1)
        return masked_attention(scores, causal_keys(mask, positions))

    def session_vectors(
        self, values: torch.Tensor, mask: torch.Tensor, positions: torch.Tensor
    ) -> torch.Tensor:
        values = self.dropout(values)
        counts = at_positions(mask.to(values.dtype).cumsum(dim=1), positions).clamp_min(1).unsqueeze(-1)
        mean = at_positions(values.cumsum(dim=1), positions) / counts  # m_s: the items up to t
        last = at_positions(values, positions)  # x_t (zero for an empty row: padding reads 0)
        memory = self.attention(values, mask, positions, last, mean) @ values + mean
        return torch.tanh(self.f_s(memory)) * torch.tanh(self.f_t(last))

    @classmethod
    def from_schema(
        cls,
        schema: Any,
        *,
        embed_dim: int = 64,
        weight_std: float = 0.05,
        emb_std: float = 0.002,
        temperature: float = 1.0,
        normalize: bool = False,
        dropout: float = 0.0,
    ) -> STAMP:
        """Build from a dataset schema (``zoo run``): the history reads the item id's table; the
        protocol's history length is the session length. Keys as the constructor's, plus
        ``embed_dim`` (the item embedding size)."""
        history, item = cls.schema_features(schema, int(embed_dim))
        return cls(
            history,
            weight_std,
            emb_std,
            item,
            temperature=temperature,
            normalize=normalize,
            dropout=dropout,
        )


__all__ = ["STAMP"]
