"""Building blocks for sequential recall models (GRU4Rec, SASRec, ...).

Histories arrive as ``[B, L]`` id matrices, LEFT-padded with 0 (the most recent item in the last
column), and :meth:`zoo.nn.EmbeddingBank.sequence` turns them into ``(values [B, L, D], mask [B, L])``.
Everything here takes that pair and never lets a padding position act as history:

* :class:`MaskedGRU`: a GRU that reads only the real items (they are moved to the front, in order),
  returning the output after every real item, in place, and the output after the most recent one.
* :class:`CausalTransformer`: SASRec's stack of causal self-attention blocks with learned positions;
  a query sees only real keys at or before its own position.
* :func:`last_valid` / :func:`compact_order`: index helpers for padding anywhere in a row.
* :class:`ItemTower`: an item vector from the item id embedding (the table the history reads, so input
  and output embeddings can be tied), plus a projection of item side features when there are any.
* :func:`per_position_targets`: the (rows, targets) pairs of per-position training.
* :func:`split_history` / :func:`tied_history`: find the history among a model's features and make
  it read the item id's embedding table.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from zoo.errors import UsageError
from zoo.features import NEXT_ITEM, Feature, SequenceFeature, SparseFeature
from zoo.nn.embedding import EmbeddingBank

Batch = Mapping[str, torch.Tensor]

__all__ = [
    "NEXT_ITEM",
    "CausalTransformer",
    "ItemTower",
    "MaskedGRU",
    "compact_order",
    "last_valid",
    "per_position_targets",
    "split_history",
    "tied_history",
]


def compact_order(mask: torch.Tensor) -> torch.Tensor:
    """For each row, the positions of the real items first (in order), then the padding: [B, L].

    ``values.gather(1, order)`` moves a left- (or anywhere-) padded row's items to the front.
    """
    return torch.argsort((~mask).to(torch.int8), dim=1, stable=True)


def last_valid(mask: torch.Tensor) -> torch.Tensor:
    """Index of the last real position of each row [B] (the most recent item); 0 for an empty row."""
    positions = torch.arange(mask.shape[1], device=mask.device).expand_as(mask)
    return torch.where(mask, positions, torch.zeros_like(positions)).max(dim=1).values


def per_position_targets(
    outputs: torch.Tensor, mask: torch.Tensor, targets: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows of per-position training: ``outputs`` [B, L, D] at every position whose input is real and
    whose next-item target is not padding, with those targets. Returns ``(user [M, D], pos_ids [M])``."""
    targets = targets.long()
    keep = (targets != 0) & mask
    return outputs[keep], targets[keep]


def split_history(
    user_features: Sequence[Feature], history_features: Sequence[Feature] | None, model: str
) -> tuple[list[Feature], SequenceFeature]:
    """(user side features, the history feature) of a sequential model.

    The history is the first ``history_features`` entry, or else the user feature that is a raw
    sequence (``pooling=None``). A user feature with the history's name (the seed lists
    ``hist_movie_id`` both as a mean-pooled user feature and as the raw history) is the history, not
    a side feature: the sequence model reads it.
    """
    candidates = list(history_features or []) or [
        f for f in user_features if isinstance(f, SequenceFeature) and f.pooling is None
    ]
    if not candidates:
        raise UsageError(
            f"{model}: give the behaviour sequence as history_features=[SequenceFeature(name, vocab_size,"
            " embed_dim, pooling=None)]"
        )
    history = candidates[0]
    if not isinstance(history, SequenceFeature):
        raise UsageError(f"{model}: the history feature '{history.name}' must be a SequenceFeature")
    if len(candidates) > 1:
        raise UsageError(
            f"{model}: reads one history sequence, got {len(candidates)}"
            f" ({', '.join(f.name for f in candidates)})"
        )
    side = [f for f in user_features if f.name != history.name]
    for feature in side:
        if isinstance(feature, SequenceFeature) and feature.pooling is None:
            raise UsageError(
                f"{model}: user feature '{feature.name}' is a raw sequence; give it pooling 'mean' or 'sum'"
            )
    return side, history


def tied_history(history: SequenceFeature, item_id: SparseFeature, tie: bool) -> SequenceFeature:
    """The history feature as the model's embedding bank holds it: reading the item id's table when
    ``tie`` (input and output item embeddings shared), its own table otherwise."""
    if tie:
        if history.embed_dim != item_id.embed_dim:
            raise UsageError(
                f"history '{history.name}' has embed_dim {history.embed_dim} and item id '{item_id.name}'"
                f" {item_id.embed_dim}; tied embeddings need the same size (or tie_embeddings=False)"
            )
        return dataclasses.replace(history, shared_with=item_id.name)
    if history.shared_with == item_id.name or history.shared_with is None:
        return dataclasses.replace(history, shared_with=None)
    return history


@dataclasses.dataclass(frozen=True)
class SequenceInputs:
    """What a sequential model reads: the history feature (as the embedding bank holds it), the
    names of the user side features and of the item features, and one embedding bank over them all."""

    history: SequenceFeature
    side_names: list[str]
    item_names: list[str]
    embedding: EmbeddingBank


def sequence_inputs(
    model: str,
    user_features: Sequence[Feature],
    history_features: Sequence[Feature] | None,
    item_features: Sequence[Feature],
    item_id_feature: str,
    *,
    tie_embeddings: bool,
    init_std: float,
) -> SequenceInputs:
    """Split the history from the side features, tie it to the item id table when asked, and build
    the embedding bank (see :func:`split_history`, :func:`tied_history`)."""
    side, history = split_history(user_features, history_features, model)
    item_id = next(f for f in item_features if f.name == item_id_feature)
    history = tied_history(history, item_id, bool(tie_embeddings))
    embedding = EmbeddingBank([*side, history, *item_features], init_std=init_std)
    return SequenceInputs(history, [f.name for f in side], [f.name for f in item_features], embedding)


class MaskedGRU(nn.Module):
    """A (multi-layer) GRU that reads only the real items of each sequence.

    The real items of every row are moved to the front (keeping their order) and the GRU runs over
    that: the output at front position ``i`` has read exactly the row's first ``i + 1`` items, as a
    packed sequence would give, so no state is ever computed over padding, wherever the padding is
    (what the GRU computes after the items, over the moved padding, is discarded). This is exact, and
    unlike ``pack_padded_sequence`` it keeps the dense GRU kernels (the packed backward pass was about
    twice as slow on CPU). The outputs are put back at the positions of the items that
    produced them.

    Args:
        input_size: size of each input vector.
        hidden_size: GRU state size.
        num_layers: stacked GRU layers.
        dropout: dropout between stacked layers (``nn.GRU``'s own; ignored for one layer).
        bias: GRU biases.

    ``forward(values [B, L, E], mask [B, L]) -> (outputs [B, L, H], last [B, H])``: ``outputs[b, t]``
    is the top layer's output after reading the real items of row ``b`` up to and including position
    ``t`` (zero at padding positions); ``last[b]`` is the output after the row's most recent item. A
    row without any item reads one zero vector, so its ``last`` is finite and the same for every
    empty row.
    """

    def __init__(
        self, input_size: int, hidden_size: int, num_layers: int = 1, dropout: float = 0.0, bias: bool = True
    ) -> None:
        super().__init__()
        if int(num_layers) < 1:
            raise UsageError(f"GRU num_layers must be >= 1, got {num_layers}")
        if not 0.0 <= float(dropout) < 1.0:
            raise UsageError(f"GRU dropout must be in [0, 1), got {dropout}")
        self.hidden_size = int(hidden_size)
        self.gru = nn.GRU(
            int(input_size),
            self.hidden_size,
            num_layers=int(num_layers),
            batch_first=True,
            bias=bias,
            dropout=float(dropout) if int(num_layers) > 1 else 0.0,
        )

    def forward(self, values: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mask = mask.bool()
        length = values.shape[1]
        lengths = mask.sum(dim=1)
        order = compact_order(mask)
        front = values.gather(1, order.unsqueeze(-1).expand_as(values))
        present = torch.arange(length, device=values.device).unsqueeze(0) < lengths.unsqueeze(1)
        front = front * present.unsqueeze(-1).to(front.dtype)  # the moved padding reads zero vectors
        out, _ = self.gru(front)
        rows = torch.arange(values.shape[0], device=values.device)
        last = out[rows, (lengths - 1).clamp_min(0)]
        outputs = torch.zeros_like(out).scatter(1, order.unsqueeze(-1).expand_as(out), out)
        outputs = outputs * mask.unsqueeze(-1).to(outputs.dtype)
        return outputs, last


class _CausalSelfAttention(nn.Module):
    def __init__(self, dim: int, num_heads: int, dropout: float) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)
        self.dropout = dropout

    def forward(self, x: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
        batch, length, dim = x.shape
        q, k, v = (
            self.qkv(x).view(batch, length, 3, self.num_heads, dim // self.num_heads).permute(2, 0, 3, 1, 4)
        )
        attended = F.scaled_dot_product_attention(
            q, k, v, attn_mask=allowed, dropout_p=self.dropout if self.training else 0.0
        )
        return self.out(attended.transpose(1, 2).reshape(batch, length, dim))


class _Block(nn.Module):
    """Pre-LayerNorm transformer block: ``x + attn(LN(x))`` then ``x + FFN(LN(x))``."""

    def __init__(
        self, dim: int, num_heads: int, dropout: float, ffn_dim: int, activation: str, eps: float
    ) -> None:
        super().__init__()
        self.attn_norm = nn.LayerNorm(dim, eps=eps)
        self.attn = _CausalSelfAttention(dim, num_heads, dropout)
        self.ffn_norm = nn.LayerNorm(dim, eps=eps)
        act: nn.Module = nn.GELU() if activation == "gelu" else nn.ReLU()
        self.ffn = nn.Sequential(nn.Linear(dim, ffn_dim), act, nn.Dropout(dropout), nn.Linear(ffn_dim, dim))
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
        x = x + self.drop(self.attn(self.attn_norm(x), allowed))
        return x + self.drop(self.ffn(self.ffn_norm(x)))


class CausalTransformer(nn.Module):
    """SASRec's encoder: learned positions, ``num_blocks`` causal self-attention blocks, final LayerNorm.

    Args:
        dim: model width (the item embedding size).
        max_length: number of learned positions; longer inputs keep their last ``max_length`` items.
        num_blocks: stacked blocks (multi-head causal attention + point-wise feed-forward, each with
            pre-LayerNorm, dropout and a residual connection).
        num_heads: attention heads (must divide ``dim``).
        dropout: dropout on the input embeddings, the attention weights and after each sub-layer.
        ffn_dim: feed-forward hidden size (default ``dim``, as in SASRec).
        activation: ``relu`` (SASRec) or ``gelu``.
        scale_input: multiply the input item vectors by ``sqrt(dim)`` (SASRec does).
        eps: LayerNorm epsilon.

    Positions are counted from the END of the padded input: the last column (the most recent item of a
    left-padded history) always gets position ``max_length - 1``, whatever the input length.

    ``forward(values [B, L, D], mask [B, L]) -> [B, L, D]``: the output at position ``t`` depends only
    on the real items at positions ``<= t`` (padding is masked out as a key; a padding query attends
    only to itself, so no row yields NaN). Outputs at padding positions carry no meaning.
    """

    def __init__(
        self,
        dim: int,
        max_length: int = 200,
        num_blocks: int = 2,
        num_heads: int = 1,
        dropout: float = 0.2,
        ffn_dim: int | None = None,
        activation: str = "relu",
        scale_input: bool = True,
        eps: float = 1e-8,
    ) -> None:
        super().__init__()
        dim, max_length, num_blocks, num_heads = int(dim), int(max_length), int(num_blocks), int(num_heads)
        if max_length < 1:
            raise UsageError(f"max_length must be >= 1, got {max_length}")
        if num_blocks < 1:
            raise UsageError(f"num_blocks must be >= 1, got {num_blocks}")
        if num_heads < 1 or dim % num_heads:
            raise UsageError(
                f"num_heads ({num_heads}) must be a positive divisor of the embedding size ({dim})"
            )
        if not 0.0 <= float(dropout) < 1.0:
            raise UsageError(f"dropout must be in [0, 1), got {dropout}")
        if activation not in ("relu", "gelu"):
            raise UsageError(f"activation must be 'relu' or 'gelu', got {activation!r}")
        self.dim = dim
        self.max_length = max_length
        self.scale = math.sqrt(dim) if scale_input else 1.0
        self.positions = nn.Embedding(max_length, dim)
        nn.init.normal_(self.positions.weight, std=0.02)
        self.input_dropout = nn.Dropout(float(dropout))
        self.blocks = nn.ModuleList(
            _Block(dim, num_heads, float(dropout), int(ffn_dim or dim), activation, eps)
            for _ in range(num_blocks)
        )
        self.final_norm = nn.LayerNorm(dim, eps=eps)

    @staticmethod
    def attention_mask(mask: torch.Tensor) -> torch.Tensor:
        """Boolean [B, 1, L, L]: query ``i`` may attend key ``j`` when ``j <= i`` and ``j`` is real,
        and always itself."""
        length = mask.shape[1]
        causal = torch.ones(length, length, dtype=torch.bool, device=mask.device).tril()
        eye = torch.eye(length, dtype=torch.bool, device=mask.device)
        return ((causal & mask[:, None, :]) | eye).unsqueeze(1)

    def forward(self, values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        mask = mask.bool()
        if values.shape[1] > self.max_length:
            values, mask = values[:, -self.max_length :], mask[:, -self.max_length :]
        length = values.shape[1]
        positions = self.positions.weight[self.max_length - length :]
        x = (values * self.scale + positions.unsqueeze(0)) * mask.unsqueeze(-1).to(values.dtype)
        x = self.input_dropout(x)
        allowed = self.attention_mask(mask)
        for block in self.blocks:
            x = block(x, allowed)
        return self.final_norm(x)


class ItemTower(nn.Module):
    """Item vectors from the item id embedding, plus item side features when given.

    With only the id (and ``output_dim`` equal to its embedding size) the item vector IS the id's
    embedding row, so a history that reads the same table ties input and output embeddings. Side
    features (category, genres...) add a learned projection of their embeddings (zero at
    initialisation, so training starts from the id embedding). When the id embedding size differs
    from ``output_dim``, one linear map takes every item feature to ``output_dim``.

    Args:
        bank: the model's :class:`~zoo.nn.EmbeddingBank`.
        names: item feature names, the item id first.
        output_dim: size of the vectors (the user vector size).
    """

    def __init__(self, bank: nn.Module, names: Sequence[str], output_dim: int) -> None:
        super().__init__()
        self.bank = [bank]  # a plain list: the bank is registered by the model, not twice here
        self.id_name = names[0]
        self.side_names = list(names[1:])
        id_dim = bank.output_dim([self.id_name])
        self.output_dim = int(output_dim)
        self.direct = id_dim == self.output_dim
        if self.direct:
            self.side = (
                nn.Linear(bank.output_dim(self.side_names), self.output_dim, bias=False)
                if self.side_names
                else None
            )
            if self.side is not None:
                nn.init.zeros_(self.side.weight)
            self.project = None
        else:
            self.side = None
            self.project = nn.Linear(bank.output_dim(list(names)), self.output_dim)

    def forward(self, batch: Batch) -> torch.Tensor:
        bank = self.bank[0]
        if self.project is not None:
            return self.project(bank.concat(batch, [self.id_name, *self.side_names]))
        vectors = bank.embed(batch, self.id_name)
        if self.side is not None:
            vectors = vectors + self.side(bank.concat(batch, self.side_names))
        return vectors
