"""Building blocks for multi-interest recall models (MIND, ComiRec-SA, ComiRec-DR).

A multi-interest model turns a behaviour history into ``K`` interest vectors ``[B, K, D]``. Histories
arrive as ``[B, L]`` id matrices padded with 0 (the seed's ``padding="pre"`` puts the most recent item in
the last column); :class:`InterestInputs` embeds them as ``(values [B, L, D], mask [B, L])`` with the
real items right-aligned whatever the padding, and nothing here ever lets a padding position act as
a behaviour:

* :func:`squash`: the capsule non-linearity ``|z|^2 / (1 + |z|^2) * z / |z|``.
* :class:`CapsuleRouting`: behaviour-to-interest dynamic routing (MIND's B2I routing with one shared
  bilinear map, or ComiRec-DR's per-position/per-interest maps), deterministic: the initial routing
  logits are zeros or a fixed buffer drawn once at construction (saved with the weights), never a
  fresh random draw per call, so the same history always gives the same interests.
* :class:`SelfAttentiveInterests`: ComiRec-SA's ``A = softmax(W2 tanh(W1 (E + P)))`` over the real
  positions, ``interests = A E``.
* :func:`label_aware_attention`: MIND's training read-out ``softmax(s^p)`` over interests, in a
  sign-safe form; :func:`hard_interest_selection`: ComiRec's argmax read-out.
* :func:`dynamic_interest_count`, :func:`fill_inactive`, :func:`active_interests`: MIND's per-user
  interest count ``K'_u = max(1, min(K, floor(log2 |history|)))`` and the convention that unused slots
  hold a copy of interest 0 (a duplicate cannot add an item to a merged, de-duplicated top-k list).
* :class:`InterestInputs`: the embedding front-end the three models share (history sequence, user
  profile, item vectors as the mean of the item features' embeddings).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from zoo.errors import UsageError
from zoo.features import DenseFeature, Feature, SequenceFeature, SparseFeature
from zoo.nn.embedding import EmbeddingBank
from zoo.nn.pooling import masked_mean

Batch = Mapping[str, torch.Tensor]

__all__ = [
    "CapsuleRouting",
    "InterestInputs",
    "SelfAttentiveInterests",
    "active_interests",
    "dynamic_interest_count",
    "fill_inactive",
    "hard_interest_selection",
    "label_aware_attention",
    "squash",
]

BILINEAR_KINDS = ("shared", "per_interest", "per_position")
ROUTING_INITS = ("normal", "zeros")


# -- elementary functions -------------------------------------------------------------------------
def squash(z: torch.Tensor, dim: int = -1, eps: float = 1e-9) -> torch.Tensor:
    """Capsule squash ``|z|^2 / (1 + |z|^2) * z / |z|``: keeps the direction, maps the norm into [0, 1).

    A zero vector stays zero (no NaN, and a finite gradient)."""
    norm2 = z.pow(2).sum(dim=dim, keepdim=True)
    return z * (norm2 / (1.0 + norm2) / torch.sqrt(norm2 + eps))


def dynamic_interest_count(lengths: torch.Tensor, max_interests: int) -> torch.Tensor:
    """MIND's per-user interest count ``K'_u = max(1, min(K, floor(log2 n_u)))`` for history lengths
    ``n_u`` [B] (0 or 1 behaviours give one interest)."""
    # floor(log2 n) capped at K, in exact integer arithmetic: how many of 2, 4, ..., 2^K are <= n.
    powers = 2 ** torch.arange(1, int(max_interests) + 1, device=lengths.device)
    count = (lengths.long().unsqueeze(-1) >= powers).sum(dim=-1)
    return count.clamp(min=1)


def fill_inactive(interests: torch.Tensor, active: torch.Tensor) -> torch.Tensor:
    """Replace the inactive slots of ``interests`` [B, K, D] (``active`` [B, K] false) by interest 0.

    A copy of interest 0 retrieves exactly the items interest 0 retrieves, with the same scores, so
    after the core's merge (best score per item, duplicates removed) and under ``score`` (max over
    interests) unused slots add nothing. Slot 0 must be active.
    """
    return torch.where(active.unsqueeze(-1), interests, interests[:, :1].expand_as(interests))


def active_interests(interests: torch.Tensor) -> torch.Tensor:
    """The slots of ``interests`` [B, K, D] that are not an exact copy of interest 0 (slot 0 always
    active): the inverse of :func:`fill_inactive`, for read-outs that only see the vectors."""
    same = (interests == interests[:, :1]).all(dim=-1)
    same[:, 0] = False
    return ~same


def hard_interest_selection(
    interests: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """For each row, the interest [B, K, D] with the largest inner product with ``target`` [B, D]
    (ComiRec's read-out); ``mask`` [B, K] restricts the choice to active interests. Returns [B, D]."""
    if interests.dim() == 2:
        return interests
    scores = (interests * target.unsqueeze(1)).sum(-1)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    best = scores.argmax(dim=-1)
    return interests[torch.arange(interests.shape[0], device=interests.device), best]


def label_aware_attention(
    interests: torch.Tensor,
    target: torch.Tensor,
    power: float = 1.0,
    *,
    scale: float = 1.0,
    mask: torch.Tensor | None = None,
    eps: float = 1e-6,
) -> tuple[torch.Tensor, torch.Tensor]:
    """MIND's label-aware attention: a target-weighted mix of the interests.

    ``s_k = scale * <u_k, e>`` (``scale = 1 / temperature`` gives the model's own logits), then
    ``w = softmax_k(sign(s_k) * |s_k| ** power)`` and the read-out ``sum_k w_k u_k``.

    The paper writes ``softmax(s ** p)``; ``sign(s) |s| ** p`` is the same for odd integer ``p``, is
    defined for any real ``p > 0`` and keeps the ordering of the scores for every ``p`` (``s ** 2``
    would prefer an interest pointing *away* from the target over one orthogonal to it). A small ``p``
    flattens the weights (``p = 0`` keeps only each score's sign); as ``p`` grows they concentrate on
    the interest with the largest score (once that score exceeds 1 in magnitude, which temperature-scaled
    logits of a trained model do), and ``power=float("inf")`` is exactly the hard (argmax) selection.

    Args:
        interests: [B, K, D] (a [B, D] input is returned as is, with weights of ones).
        target: [B, D] the target items' vectors.
        power: the exponent ``p >= 0``.
        scale: multiplies the inner products before the power.
        mask: [B, K] active interests; inactive ones get weight 0.

    Returns:
        ``(readout [B, D], weights [B, K])``; each row of ``weights`` sums to 1.
    """
    if interests.dim() == 2:
        return interests, torch.ones(interests.shape[0], 1, dtype=interests.dtype, device=interests.device)
    power = float(power)
    if not power >= 0:
        raise UsageError(f"label-aware attention power must be >= 0, got {power}")
    scores = scale * (interests * target.unsqueeze(1)).sum(-1)
    if math.isinf(power):
        scores = scores if mask is None else scores.masked_fill(~mask, float("-inf"))
        weights = F.one_hot(scores.argmax(dim=-1), interests.shape[1]).to(interests.dtype)
    else:
        if power != 1.0:
            logits = _signed_power_logits(scores, power, mask, eps)
        else:
            logits = scores if mask is None else scores.masked_fill(~mask, float("-inf"))
        weights = torch.softmax(logits, dim=-1)
    readout = (weights.unsqueeze(-1) * interests).sum(dim=1)
    return readout, weights


def _signed_power_logits(
    scores: torch.Tensor, power: float, mask: torch.Tensor | None, eps: float
) -> torch.Tensor:
    """``sign(s) |s|^p`` shifted so that each row's largest is 0 (the softmax is unchanged), computed
    without overflow: with ``M`` the row's largest ``|s|`` and ``g = sign(s) (|s| / M)^p`` in [-1, 1],
    ``f - max f = M^p (g - max g)``. ``M^p`` is capped at e^60: past it the weights are one-hot to float
    precision anyway, and the cap keeps gradients finite (an infinite factor times a zero weight is NaN)."""
    log_magnitude = torch.log(scores.abs().clamp_min(eps))
    log_top = log_magnitude.max(dim=-1, keepdim=True).values
    relative = torch.sign(scores) * torch.exp(power * (log_magnitude - log_top))  # in [-1, 1]
    if mask is not None:
        relative = relative.masked_fill(~mask, -2.0)  # below every active value
    shifted = relative - relative.max(dim=-1, keepdim=True).values
    logits = torch.exp((power * log_top).clamp(max=60.0)) * shifted
    return logits if mask is None else logits.masked_fill(~mask, float("-inf"))


# -- dynamic routing ------------------------------------------------------------------------------
class CapsuleRouting(nn.Module):
    """Behaviour-to-interest dynamic routing (MIND; ComiRec-DR with other settings).

    Each behaviour ``e_i`` is mapped to a prediction ``u_ij`` for every interest capsule ``j``; for
    ``iterations`` rounds, coupling weights ``w_ij = softmax_j(b_ij)`` (over the interests, padding
    rows set to 0) give capsules ``v_j = squash(sum_i w_ij u_ij)`` and the logits grow by agreement,
    ``b_ij += <u_ij, v_j>``.

    Args:
        input_dim: behaviour embedding size.
        output_dim: capsule size.
        num_interests: K.
        max_length: L, the number of history positions (per-position maps need it).
        iterations: routing rounds (>= 1).
        bilinear: ``shared`` (MIND: one map ``S`` for every interest, ``u_ij = S e_i``),
            ``per_interest`` (one map per capsule), ``per_position`` (ComiRec-DR's official code: one map
            per history position and capsule; every position starts from the same per-interest maps).
        init: initial logits ``b``: ``normal`` (MIND: drawn once from N(0, init_std^2) at construction
            and kept as a persistent buffer, so routing is deterministic and survives save/load; with a
            shared map this is what tells the capsules apart) or ``zeros`` (enough when the maps differ
            per interest).
        init_std: standard deviation of the ``normal`` initial logits.
        detach: compute the logits of the intermediate rounds without gradient (ComiRec's
            ``stop_grad``), so only the last round's weighted sum is differentiated.
    """

    def __init__(
        self,
        input_dim: int,
        output_dim: int,
        num_interests: int,
        max_length: int,
        iterations: int = 3,
        bilinear: str = "shared",
        init: str = "normal",
        init_std: float = 1.0,
        detach: bool = True,
    ) -> None:
        super().__init__()
        if bilinear not in BILINEAR_KINDS:
            raise UsageError(f"bilinear must be one of {', '.join(BILINEAR_KINDS)}, got {bilinear!r}")
        if init not in ROUTING_INITS:
            raise UsageError(f"routing init must be one of {', '.join(ROUTING_INITS)}, got {init!r}")
        if int(iterations) < 1:
            raise UsageError(f"routing iterations must be >= 1, got {iterations}")
        if int(num_interests) < 1 or int(max_length) < 1:
            raise UsageError("num_interests and max_length must be >= 1")
        self.input_dim, self.output_dim = int(input_dim), int(output_dim)
        self.num_interests, self.max_length = int(num_interests), int(max_length)
        self.iterations, self.bilinear, self.detach = int(iterations), bilinear, bool(detach)
        std = 1.0 / math.sqrt(self.input_dim)
        if bilinear == "shared":
            self.weight = nn.Parameter(torch.randn(self.output_dim, self.input_dim) * std)
        elif bilinear == "per_interest":
            self.weight = nn.Parameter(torch.randn(self.num_interests, self.output_dim, self.input_dim) * std)
        else:
            # Every position starts from the same per-interest maps and learns its own deviation: a
            # position-independent start trains far faster than L independent random maps.
            start = torch.randn(self.num_interests, self.output_dim, self.input_dim) * std
            self.weight = nn.Parameter(start.unsqueeze(0).repeat(self.max_length, 1, 1, 1))
        initial = (
            torch.randn(self.num_interests, self.max_length) * float(init_std) if init == "normal" else None
        )
        self.register_buffer(
            "initial_logits",
            initial if initial is not None else torch.zeros(self.num_interests, self.max_length),
        )

    def predictions(self, values: torch.Tensor) -> torch.Tensor:
        """``u`` from behaviours [B, L, D_in]: [B, L, D_out] for ``shared`` (one map for every capsule),
        else [B, K, L, D_out]."""
        if self.bilinear == "shared":
            return values @ self.weight.T
        if self.bilinear == "per_interest":
            return torch.einsum("bli,kdi->bkld", values, self.weight)
        length = values.shape[1]
        weight = self.weight[-length:].reshape(length, self.num_interests * self.output_dim, self.input_dim)
        u = torch.bmm(values.transpose(0, 1), weight.transpose(1, 2))  # [L, B, K * D]
        return u.reshape(length, values.shape[0], self.num_interests, self.output_dim).permute(1, 2, 0, 3)

    def forward(
        self, values: torch.Tensor, mask: torch.Tensor, interest_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Interest capsules [B, K, D_out] from behaviours ``values`` [B, L, D_in] and ``mask`` [B, L]
        (true = real behaviour). Histories longer than ``max_length`` must be cut first (right-aligned:
        the last column is the most recent). ``interest_mask`` [B, K] (false = unused capsule) keeps
        behaviours from routing to unused capsules; those come out as zero vectors."""
        batch, length = mask.shape
        if length > self.max_length:
            raise UsageError(f"history length {length} exceeds the routing's max_length {self.max_length}")
        values = values * mask.unsqueeze(-1).to(values.dtype)
        u = self.predictions(values)  # [B, L, D] (shared) or [B, K, L, D]
        u_iter = u.detach() if self.detach else u
        shared = u.dim() == 3
        logits = self.initial_logits[:, -length:].unsqueeze(0).expand(batch, -1, -1)
        keep = mask.unsqueeze(1).to(values.dtype)  # [B, 1, L]
        if interest_mask is not None:
            closed = ~interest_mask.unsqueeze(-1)
        capsules = values.new_zeros(batch, self.num_interests, self.output_dim)
        for step in range(self.iterations):
            routing = logits if interest_mask is None else logits.masked_fill(closed, float("-inf"))
            weights = torch.softmax(routing, dim=1) * keep  # over interests; padding behaviours weigh 0
            last = step == self.iterations - 1
            source = u if last else u_iter
            # shared: [B, K, L] @ [B, L, D]; per-interest maps: [B, K, 1, L] @ [B, K, L, D]
            summed = weights @ source if shared else (weights.unsqueeze(2) @ source).squeeze(2)
            capsules = squash(summed)
            if not last:  # agreement <u_ij, v_j>
                if shared:
                    delta = capsules @ u_iter.transpose(1, 2)
                else:
                    delta = (u_iter @ capsules.unsqueeze(-1)).squeeze(-1)
                logits = logits + delta
        if interest_mask is not None:
            capsules = capsules * interest_mask.unsqueeze(-1).to(capsules.dtype)
        return capsules


# -- self-attention ---------------------------------------------------------------------------------
class SelfAttentiveInterests(nn.Module):
    """ComiRec-SA's multi-interest extractor: ``A = softmax_L(W2 tanh(W1 (E + P)))`` over the real
    positions, ``interests = A E`` ([B, K, D]).

    Args:
        dim: behaviour embedding size D.
        num_interests: K (the attention heads).
        hidden_dim: the width ``d_a`` of ``W1`` (ComiRec uses ``4 * D``).
        max_length: L, for the learned positional embeddings ``P``.
        positional: add learned positional embeddings before scoring (not to the summed values).
    """

    def __init__(
        self,
        dim: int,
        num_interests: int,
        hidden_dim: int | None = None,
        max_length: int = 50,
        positional: bool = True,
    ) -> None:
        super().__init__()
        self.dim, self.num_interests, self.max_length = int(dim), int(num_interests), int(max_length)
        hidden = int(hidden_dim or 4 * self.dim)
        self.hidden = nn.Linear(self.dim, hidden)
        self.heads = nn.Linear(hidden, self.num_interests)
        self.position = nn.Parameter(torch.randn(self.max_length, self.dim) * 0.02) if positional else None

    def attention(self, values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Attention weights [B, K, L]: each head's distribution over the real positions (rows
        without any real position get all-zero weights)."""
        length = values.shape[1]
        if length > self.max_length:
            raise UsageError(f"history length {length} exceeds max_length {self.max_length}")
        keys = values if self.position is None else values + self.position[-length:]
        scores = self.heads(torch.tanh(self.hidden(keys))).transpose(1, 2)  # [B, K, L]
        scores = scores.masked_fill(~mask.unsqueeze(1), float("-inf"))
        weights = torch.softmax(scores, dim=-1)
        return torch.nan_to_num(weights, nan=0.0)  # empty histories

    def forward(self, values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        values = values * mask.unsqueeze(-1).to(values.dtype)
        return self.attention(values, mask) @ values


# -- embedding front-end ------------------------------------------------------------------------------
class InterestInputs(nn.Module):
    """The embeddings a multi-interest model reads.

    * the **history**: the first history feature's raw sequence, right-aligned and cut to the last
      ``max_length`` positions (left-padded with 0 when shorter), and its mask;
    * the **profile**: the other user features concatenated (a user feature with the history's name,
      as the seed tutorial declares a mean-pooled ``hist_movie_id`` among the user features, is the
      masked mean of the same sequence), optionally with the mean of the most recent behaviours;
    * **item vectors**: the mean of the item features' embeddings (MIND's average pooling of id and
      side-feature embeddings), or the item id embedding alone with ``item_side=False``.

    Args:
        user_features, history_features, item_features: the model's feature lists.
        max_length: history positions kept (the most recent).
        item_side: average the item side features into the item vectors.
        init_std: embedding initialisation.
        use_profile: read the user features at all.
        recent: also put the masked mean of the ``recent`` most recent behaviours in the profile (a
            short-term interest next to the routed or attended window; 0 = off).
    """

    def __init__(
        self,
        user_features: Sequence[Feature],
        history_features: Sequence[Feature],
        item_features: Sequence[Feature],
        *,
        max_length: int,
        item_side: bool = True,
        init_std: float = 0.05,
        use_profile: bool = True,
        recent: int = 0,
        owner: str = "model",
    ) -> None:
        super().__init__()
        if not history_features:
            raise UsageError(
                f"{owner}: history_features must hold the behaviour sequence (a SequenceFeature)"
            )
        history = history_features[0]
        if not isinstance(history, SequenceFeature):
            raise UsageError(f"{owner}: history feature '{history.name}' must be a SequenceFeature")
        if int(max_length) < 1:
            raise UsageError(f"{owner}: max_length must be >= 1, got {max_length}")
        if not 0 <= int(recent) <= int(max_length):
            raise UsageError(
                f"{owner}: recent_history must be between 0 and max_length ({max_length}), got {recent}"
            )
        self.max_length = int(max_length)
        self.recent = int(recent)
        self.history_name = history.name
        self.dim = history.embed_dim
        sparse_items = [f for f in item_features if isinstance(f, SparseFeature)]
        if not sparse_items:
            raise UsageError(f"{owner}: the first item feature must be the item id (a SparseFeature)")
        item_id = sparse_items[0]
        self.item_names = [item_id.name]
        if item_side:
            self.item_names += [f.name for f in item_features if f.name != item_id.name]
        for feature in item_features:
            if feature.name in self.item_names and feature.embed_dim != self.dim:
                raise UsageError(
                    f"{owner}: item feature '{feature.name}' has embed_dim {feature.embed_dim} but the"
                    f" history has {self.dim}; item vectors average the item features' embeddings and live in"
                    " the history's space, so give them the same embed_dim (or drop the side features)"
                )
            if feature.name in self.item_names and isinstance(feature, DenseFeature):
                raise UsageError(
                    f"{owner}: dense item feature '{feature.name}' cannot be averaged into item vectors"
                )
        history_names = {f.name for f in history_features}
        # A user feature named like the history (the seed's pooled hist_movie_id) reads the same ids.
        self.pooled_history = (
            [f.name for f in user_features if f.name in history_names] if use_profile else []
        )
        profile = [f for f in user_features if f.name not in history_names] if use_profile else []
        self.profile_names = [f.name for f in profile]
        self.bank = EmbeddingBank([*profile, history, *item_features], init_std=init_std)

    @property
    def profile_dim(self) -> int:
        """Width of :meth:`profile`."""
        return self.bank.output_dim(self.profile_names) + self.dim * (
            len(self.pooled_history) + bool(self.recent)
        )

    def sequence(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """History embeddings [B, max_length, D] and mask [B, max_length]: real items right-aligned,
        the most recent last, padding rows zero."""
        if self.history_name not in batch:
            self.bank.sequence(batch, self.history_name)  # raises the DataError naming the missing column
        ids = batch[self.history_name]
        ids = ids.unsqueeze(1) if ids.dim() == 1 else ids
        real = ids != self.bank.feature(self.history_name).padding_idx
        if not bool((real[:, 1:] >= real[:, :-1]).all()):  # not left-padded: right-align the ids first
            ids = ids.gather(1, torch.argsort(real.to(torch.int8), dim=1, stable=True))
        values, mask = self.bank.sequence({self.history_name: ids}, self.history_name)
        length = values.shape[1]
        if length > self.max_length:
            values, mask = values[:, -self.max_length :], mask[:, -self.max_length :]
        elif length < self.max_length:
            pad = self.max_length - length
            values = F.pad(values, (0, 0, pad, 0))
            mask = F.pad(mask, (pad, 0), value=False)
        return values * mask.unsqueeze(-1).to(values.dtype), mask

    def profile(
        self, batch: Batch, history: tuple[torch.Tensor, torch.Tensor] | None = None
    ) -> torch.Tensor | None:
        """The other user features concatenated [B, profile_dim], or None when there are none."""
        parts = [self.bank.embed(batch, name) for name in self.profile_names]
        if self.pooled_history or self.recent:
            values, mask = history if history is not None else self.sequence(batch)
            parts += [masked_mean(values, mask)] * len(self.pooled_history)
            if self.recent:  # right-aligned: the last columns are the most recent behaviours
                parts.append(masked_mean(values[:, -self.recent :], mask[:, -self.recent :]))
        return torch.cat(parts, dim=-1) if parts else None

    def items(self, batch: Batch) -> torch.Tensor:
        """Item vectors [N, D] (not normalised): the mean of the item features' embeddings."""
        parts = [self.bank.embed(batch, name) for name in self.item_names]
        return parts[0] if len(parts) == 1 else torch.stack(parts, dim=0).mean(dim=0)
