"""SDM: Sequential Deep Matching (Lv et al., CIKM 2019), long- and short-term interests fused by a gate.

The history (right-aligned, most recent last) is split in two:

* the **short-term session**: the last ``short_length`` items. Each position's item id embedding and
  the embeddings of the item's side features (genres...) are concatenated and mapped to ``D``
  (``tanh``); an LSTM reads them (padding never enters a state, see :class:`MaskedLSTM`), a block of
  causal multi-head self-attention with LayerNorm runs over the LSTM outputs, and a user attention
  (the query is the user profile vector) pools the positions into ``s``;
* the **long-term behaviour**: the ``long_length`` items before the session. For each kind of side
  information (the item id, then each item side feature) an attention with the user profile vector as
  query pools the long sequence; the pooled vectors are concatenated and mapped to ``D`` (``tanh``):
  ``p``.

The user profile vector ``e_u`` is ``tanh(W [user id, user side features])``. A gate
``G = sigmoid(W_g [p, s, e_u] + b)`` fuses the two: ``o = G * s + (1 - G) * p``, element-wise, so
every coordinate of ``o`` lies between those of ``s`` and ``p`` (:meth:`SDM.fusion` returns the
parts). ``o`` is L2-normalised with ``normalize`` (the default).

Item vectors are the item id embedding (the table the history reads) plus a learned projection of
the item side features (zero at initialisation), L2-normalised with ``normalize``. Logits are
``score / temperature``.

Differences from DeepMatch's SDM: the side features of history items come from the model's item
table (the catalogue's item features) instead of parallel history columns, so the data needs only
the item history; the long and short windows are cut from one history inside the model (no
separate ``short_`` / ``prefer_`` inputs); padding is masked everywhere, including the LSTM.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from zoo.errors import UsageError
from zoo.features import Feature
from zoo.models.base import Batch, RecallModel
from zoo.nn.sequence import CausalTransformer, ItemTower, MaskedGRU, sequence_inputs


class MaskedLSTM(MaskedGRU):
    """:class:`zoo.nn.sequence.MaskedGRU` with an LSTM as the recurrent layer: the same exact handling
    of padding (the real items are moved to the front, outputs put back in place, zero at padding)."""

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, dropout: float = 0.0) -> None:
        super().__init__(input_size, hidden_size, num_layers=num_layers, dropout=dropout)
        # MaskedGRU.forward calls self.gru(front) and keeps the first output: an LSTM fits as is.
        self.gru = nn.LSTM(
            int(input_size),
            self.hidden_size,
            num_layers=int(num_layers),
            batch_first=True,
            dropout=float(dropout) if int(num_layers) > 1 else 0.0,
        )


class AttentionPooling(nn.Module):
    """Attention of a query over a sequence: ``a_t = softmax_t(<W_q q, k_t> / sqrt(D_k))`` over the real
    positions (a bilinear score, as SDM's user attention), returns ``sum_t a_t k_t`` [B, D_k] (zero for a
    row without real position)."""

    def __init__(self, key_dim: int, query_dim: int) -> None:
        super().__init__()
        self.query = nn.Linear(query_dim, key_dim)
        self.scale = float(key_dim) ** -0.5

    def weights(self, keys: torch.Tensor, mask: torch.Tensor, query: torch.Tensor) -> torch.Tensor:
        """Attention weights [B, L] (each row sums to 1 over its real positions, or is all zero)."""
        scores = (keys * self.query(query).unsqueeze(1)).sum(-1) * self.scale
        scores = scores.masked_fill(~mask, float("-inf"))
        return torch.nan_to_num(torch.softmax(scores, dim=-1), nan=0.0)

    def forward(self, keys: torch.Tensor, mask: torch.Tensor, query: torch.Tensor) -> torch.Tensor:
        # padding positions get weight exactly 0, whatever their keys hold
        return (self.weights(keys, mask, query).unsqueeze(-1) * keys).sum(dim=1)


def right_aligned(ids: torch.Tensor, length: int, padding: int = 0) -> torch.Tensor:
    """History ids [B, length]: each row's real ids in order, right-aligned (most recent last), the most
    recent ``length`` kept, left-padded with ``padding``."""
    ids = ids.unsqueeze(1) if ids.dim() == 1 else ids
    real = ids != padding
    if not bool((real[:, 1:] >= real[:, :-1]).all()):  # not left-padded: move the padding to the left
        ids = ids.gather(1, torch.argsort(real.to(torch.int8), dim=1, stable=True))
    if ids.shape[1] >= length:
        return ids[:, ids.shape[1] - length :]
    return F.pad(ids, (length - ids.shape[1], 0), value=padding)


class SDM(RecallModel):
    """SDM (see the module docstring).

    Args:
        user_features: the user id and user side features (the profile); the raw history may be listed
            too (it is read as the sequence, not as a profile feature).
        history_features: ``[SequenceFeature(name, vocab_size, embed_dim, pooling=None)]``, the item
            history, most recent last; its ``embed_dim`` is ``D``, the size of every vector.
        item_features: the item id first, then item side features (same ``embed_dim``).
        neg_item_feature: the seed's negative-items column, if any (only its name is used).
        temperature: logits are ``score / temperature``.
        short_length: items in the short-term session (the most recent).
        long_length: items of long-term behaviour before the session (0 = none).
        rnn_layers: LSTM layers over the session.
        num_heads: heads of the session's self-attention (must divide ``D``).
        dropout: dropout on the session inputs, in the LSTM (between layers) and in the self-attention.
        side_information: read the history items' side features (from the item table) in both branches.
        normalize: L2-normalise user and item vectors (cosine scores; use a small temperature).
        tie_embeddings: the history reads the item id's embedding table.
        embedding_init_std: standard deviation of the embedding initialisation.
    """

    def __init__(
        self,
        user_features: Sequence[Feature],
        history_features: Sequence[Feature] | None,
        item_features: Sequence[Feature],
        neg_item_feature: Sequence[Feature] | None = None,
        temperature: float = 1.0,
        *,
        short_length: int = 5,
        long_length: int = 45,
        rnn_layers: int = 1,
        num_heads: int = 4,
        dropout: float = 0.1,
        side_information: bool = True,
        normalize: bool = True,
        tie_embeddings: bool = True,
        embedding_init_std: float = 0.05,
    ) -> None:
        if int(short_length) < 1:
            raise UsageError(f"SDM: short_length must be >= 1, got {short_length}")
        if int(long_length) < 0:
            raise UsageError(f"SDM: long_length must be >= 0, got {long_length}")
        if not 0.0 <= float(dropout) < 1.0:
            raise UsageError(f"SDM: dropout must be in [0, 1), got {dropout}")
        super().__init__(
            user_features=user_features,
            item_features=item_features,
            temperature=temperature,
            history_features=history_features,
            neg_item_feature=neg_item_feature,
        )
        inputs = sequence_inputs(
            "SDM",
            self.user_features,
            self.history_features,
            self.item_features,
            self.item_id_feature,
            tie_embeddings=bool(tie_embeddings),
            init_std=embedding_init_std,
        )
        self.embedding = inputs.embedding
        self.history_name = inputs.history.name
        self.profile_names = inputs.side_names
        dim = inputs.history.embed_dim
        for name in inputs.item_names:
            if self.embedding.feature(name).embed_dim != dim:
                raise UsageError(
                    f"SDM: item feature '{name}' has embed_dim {self.embedding.feature(name).embed_dim}, the"
                    f" history {dim}; give every item feature the history's embed_dim"
                )
        self.short_length, self.long_length = int(short_length), int(long_length)
        self.side_names = (
            [n for n in inputs.item_names if n != self.item_id_feature] if side_information else []
        )
        self.normalize = bool(normalize)
        self.output_dim = dim
        infos = 1 + len(self.side_names)  # kinds of side information of a history item (id first)

        profile_dim = self.embedding.output_dim(self.profile_names)
        self.profile = nn.Linear(profile_dim, dim) if profile_dim else None
        self.profile_bias = None if profile_dim else nn.Parameter(torch.zeros(dim))
        # short-term session: [id, side...] -> D, LSTM, causal self-attention, user attention
        self.session_input = nn.Linear(infos * dim, dim)
        self.input_dropout = nn.Dropout(float(dropout))
        self.lstm = MaskedLSTM(dim, dim, num_layers=int(rnn_layers), dropout=float(dropout))
        # One position more than the session holds: positions count from the end, so row 0 of the
        # position table is never read and stays the padding row (as in every embedding table here).
        self.self_attention = CausalTransformer(
            dim,
            max_length=self.short_length + 1,
            num_blocks=1,
            num_heads=int(num_heads),
            dropout=float(dropout),
            scale_input=False,
            eps=1e-6,
        )
        self.short_attention = AttentionPooling(dim, dim)
        # long-term behaviour: one user attention per kind of side information, then D
        self.long_attention = nn.ModuleList(AttentionPooling(dim, dim) for _ in range(infos))
        self.long_output = nn.Linear(infos * dim, dim)
        # fusion gate
        self.gate = nn.Linear(3 * dim, dim)
        self.item_net = ItemTower(self.embedding, inputs.item_names, dim)

    # -- parts ----------------------------------------------------------------------------------------
    def user_profile(self, batch: Batch) -> torch.Tensor:
        """``e_u`` [B, D]: ``tanh`` of a linear map of the user features (a learned vector without any)."""
        if self.profile is None:
            rows = batch[self.history_name].shape[0]
            return torch.tanh(self.profile_bias).unsqueeze(0).expand(rows, -1)
        return torch.tanh(self.profile(self.embedding.concat(batch, self.profile_names)))

    def side_tables(self) -> list[torch.Tensor]:
        """For each item side feature, its embedding for every item id [V, D] (through the item table):
        computed once per call for the catalogue, then indexed by the history's ids, which costs far
        less than embedding the side features of every history position."""
        if not self.side_names:
            return []
        device = self.embedding.table(self.item_id_feature).weight.device
        items = self.item_batch(torch.arange(self._item_vocab(), device=device))
        return [self.embedding.embed(items, name) for name in self.side_names]

    def _history_infos(self, ids: torch.Tensor, tables: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """Per kind of side information, the embeddings [B, L, D] of history items ``ids`` [B, L]: the id
        embedding, then each item side feature (``tables`` from :meth:`side_tables`)."""
        values, _ = self.embedding.sequence({self.history_name: ids}, self.history_name)
        return [values, *(table[ids] for table in tables)]

    def windows(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """(long-term ids [B, long_length], short-term ids [B, short_length]), right-aligned, 0 = padding."""
        ids = right_aligned(batch[self.history_name].long(), self.long_length + self.short_length)
        return ids[:, : self.long_length], ids[:, self.long_length :]

    def short_term(
        self, ids: torch.Tensor, query: torch.Tensor, tables: Sequence[torch.Tensor] | None = None
    ) -> torch.Tensor:
        """``s`` [B, D] from the session ids [B, S] and the profile vector ``query`` [B, D]."""
        mask = ids != 0
        tables = self.side_tables() if tables is None else tables
        x = torch.tanh(self.session_input(torch.cat(self._history_infos(ids, tables), dim=-1)))
        outputs, _ = self.lstm(self.input_dropout(x), mask)
        attended = self.self_attention(outputs, mask)
        return self.short_attention(attended, mask, query)

    def long_term(
        self, ids: torch.Tensor, query: torch.Tensor, tables: Sequence[torch.Tensor] | None = None
    ) -> torch.Tensor:
        """``p`` [B, D] from the long-term ids [B, L] and the profile vector ``query`` [B, D]."""
        if ids.shape[1] == 0:
            pooled = [query.new_zeros(query.shape) for _ in self.long_attention]
        else:
            mask = ids != 0
            infos = self._history_infos(ids, self.side_tables() if tables is None else tables)
            pooled = [att(v, mask, query) for att, v in zip(self.long_attention, infos, strict=True)]
        return torch.tanh(self.long_output(torch.cat(pooled, dim=-1)))

    def fusion(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(o, gate, s, p)``, each [B, D]: the fused vector before normalisation, the gate ``G``, the
        short-term and the long-term interest; ``o = G * s + (1 - G) * p``."""
        query = self.user_profile(batch)
        long_ids, short_ids = self.windows(batch)
        tables = self.side_tables()
        short = self.short_term(short_ids, query, tables)
        long = self.long_term(long_ids, query, tables)
        gate = torch.sigmoid(self.gate(torch.cat([long, short, query], dim=-1)))
        return gate * short + (1.0 - gate) * long, gate, short, long

    # -- towers ---------------------------------------------------------------------------------------
    def user_tower(self, batch: Batch) -> torch.Tensor:
        fused = self.fusion(batch)[0]
        return F.normalize(fused, dim=-1) if self.normalize else fused

    def item_tower(self, batch: Batch) -> torch.Tensor:
        items = self.item_net(batch)
        return F.normalize(items, dim=-1) if self.normalize else items

    # -- construction from a dataset schema ------------------------------------------------------------
    @classmethod
    def from_schema(cls, schema: Any, **params: Any) -> SDM:
        """Build from a dataset schema (``zoo run``): the user id and user side features as the profile,
        the history, the item id and item side features, all at ``embed_dim`` (64). ``long_length``
        defaults to the protocol's history length minus ``short_length``."""
        embed_dim = int(params.pop("embed_dim", 64))
        history = schema.history(embed_dim, pooling=None)
        user_features: list[Feature] = [*schema.user_sparse(embed_dim), history]
        if not params.pop("item_side_features", True):
            item_features: list[Feature] = [schema.item_id_feature(embed_dim)]
        else:
            item_features = schema.item_features(embed_dim)
        short = int(params.setdefault("short_length", 5))
        params.setdefault("long_length", max(0, int(schema.history_len) - short))
        return cls(user_features, [history], item_features, **params)


__all__ = ["SDM", "AttentionPooling", "MaskedLSTM", "right_aligned"]
