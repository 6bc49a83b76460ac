"""MIND: Multi-Interest Network with Dynamic routing (Li et al., CIKM 2019).

Constructor as in the seed tutorial::

    MIND(user_features, history_features, item_features, neg_item_feature,
         max_length=50, temperature=1.0, interest_num=4)

User tower: the history's behaviour embeddings go through behaviour-to-interest (B2I) dynamic
routing with one bilinear map shared by every interest; each interest capsule is concatenated with
the other user features (the profile) and passed through an MLP; the K outputs are L2-normalised:
``[B, K, D]`` (``[B, D]`` for ``interest_num=1``). Item tower: the mean of the item features'
embeddings (id and side features, as the paper averages them), L2-normalised. Logits are
``score / temperature`` everywhere.

Training reads the interests out with label-aware attention, ``softmax((u_k . e)^p)`` (sign-safe for
any real ``p``, on the temperature-scaled logits; see :func:`zoo.nn.interests.label_aware_attention`).
At inference every interest is queried and the core merges the lists by best score
(``zoo.retrieval.merge``); ``score`` is the max over interests.

Differences from the reference implementation: routing is deterministic (the initial logits are a
buffer drawn once at construction and saved with the weights, not a fresh random draw per call:
the same user gives the same vectors twice, also after save/load); padding never routes; the
temperature is applied; the optional dynamic interest count is implemented (see :class:`MIND`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F

from zoo.errors import UsageError
from zoo.features import Feature
from zoo.models.base import Batch, RecallModel
from zoo.nn import MLP
from zoo.nn.interests import (
    CapsuleRouting,
    InterestInputs,
    active_interests,
    dynamic_interest_count,
    fill_inactive,
    label_aware_attention,
)


class MIND(RecallModel):
    """MIND (see the module docstring).

    Args:
        user_features: user profile features (id, side features); concatenated to every interest. A
            feature named like the history (the seed's mean-pooled ``hist_movie_id``) is the masked mean
            of the history.
        history_features: the behaviour sequence (a ``SequenceFeature``, ``pooling=None``); its
            ``embed_dim`` is the capsule size.
        item_features: the item id first, then side features (same ``embed_dim`` as the history).
        neg_item_feature: the name of the seed's negative-items column (``neg_items``), if any.
        max_length: history positions routed (the most recent ``max_length``).
        temperature: logits are ``cosine / temperature``.
        interest_num: K, the number of interests.
        routing_iterations: dynamic routing rounds.
        power: label-aware attention exponent ``p`` on the temperature-scaled logits, sign-safe:
            ``softmax(sign(s) |s|^p)``; larger is sharper, ``float("inf")`` = hard selection.
        dynamic_interests: use ``K'_u = max(1, min(K, floor(log2 n_u)))`` interests for a user with
            ``n_u`` real behaviours in the window. The tower still returns ``[B, K, D]``: unused slots
            hold a copy of interest 0 (exactly equal), which the core's merge de-duplicates and the
            max-over-interests score ignores; label-aware attention skips them.
        hidden_dims: hidden layers of the MLP applied to ``[capsule, profile]`` (the last layer maps to
            the capsule size and has no activation).
        activation: hidden activation of that MLP.
        dropout: dropout after each hidden layer.
        routing_init_std: standard deviation of the fixed initial routing logits.
        item_side: average the item side features into item vectors (False: item id embedding only).
        recent_history: add the mean of the ``recent_history`` most recent behaviours to the profile
            concatenated to every interest (routing ignores order; this gives the MLP the short-term
            interest; 0 = off).
        embedding_init_std: standard deviation of the embedding initialisation.
    """

    cosine_scores = True  # both towers are L2-normalised

    def __init__(
        self,
        user_features: Sequence[Feature],
        history_features: Sequence[Feature],
        item_features: Sequence[Feature],
        neg_item_feature: Sequence[Feature] | None = None,
        max_length: int = 50,
        temperature: float = 1.0,
        interest_num: int = 4,
        *,
        routing_iterations: int = 3,
        power: float = 1.0,
        dynamic_interests: bool = True,
        hidden_dims: Sequence[int] | None = None,
        activation: str = "relu",
        dropout: float = 0.0,
        routing_init_std: float = 1.0,
        item_side: bool = True,
        recent_history: int = 0,
        embedding_init_std: float = 0.05,
    ) -> None:
        history_features = list(history_features or [])
        if not history_features:
            raise UsageError("MIND: history_features must hold the behaviour sequence (a SequenceFeature)")
        dim = history_features[0].embed_dim
        hidden = [int(d) for d in (hidden_dims if hidden_dims is not None else [4 * dim])]
        power = float(power)
        if not power >= 0:
            raise UsageError(f"MIND: power must be >= 0 (or inf), got {power}")
        if int(interest_num) < 1:
            raise UsageError(f"MIND: interest_num must be >= 1, got {interest_num}")
        super().__init__(
            user_features=user_features,
            item_features=item_features,
            temperature=temperature,
            history_features=history_features,
            neg_item_feature=neg_item_feature,
        )
        self.max_length = int(max_length)
        self.interest_num = int(interest_num)
        self.power = power
        self.dynamic_interests = bool(dynamic_interests)
        self.inputs = InterestInputs(
            self.user_features,
            self.history_features,
            self.item_features,
            max_length=self.max_length,
            item_side=item_side,
            init_std=embedding_init_std,
            recent=int(recent_history),
            owner="MIND",
        )
        self.routing = CapsuleRouting(
            dim,
            dim,
            self.interest_num,
            self.max_length,
            iterations=routing_iterations,
            bilinear="shared",
            init="normal",
            init_std=routing_init_std,
        )
        self.mlp = MLP(dim + self.inputs.profile_dim, [*hidden, dim], activation=activation, dropout=dropout)
        self.output_dim = dim

    @property
    def num_interests(self) -> int:
        return self.interest_num

    # -- towers ---------------------------------------------------------------------------------------
    def interest_mask(self, mask: torch.Tensor) -> torch.Tensor | None:
        """[B, K] active interests for history mask [B, L] (None without dynamic interests)."""
        if not self.dynamic_interests:
            return None
        count = dynamic_interest_count(mask.sum(dim=1), self.interest_num)
        return torch.arange(self.interest_num, device=mask.device).unsqueeze(0) < count.unsqueeze(1)

    def user_tower(self, batch: Batch) -> torch.Tensor:
        values, mask = self.inputs.sequence(batch)
        active = self.interest_mask(mask)
        capsules = self.routing(values, mask, active)  # [B, K, D]
        profile = self.inputs.profile(batch, (values, mask))
        if profile is not None:
            capsules = torch.cat([capsules, profile.unsqueeze(1).expand(-1, self.interest_num, -1)], dim=-1)
        interests = F.normalize(self.mlp(capsules), dim=-1)
        if active is not None:
            interests = fill_inactive(interests, active)
        return interests.squeeze(1) if self.interest_num == 1 else interests

    def item_tower(self, batch: Batch) -> torch.Tensor:
        return F.normalize(self.inputs.items(batch), dim=-1)

    # -- training read-out ------------------------------------------------------------------------------
    def label_aware_weights(
        self, user: torch.Tensor, target: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(read-out [M, D], attention weights [M, K]) of label-aware attention with this model's power
        on its temperature-scaled logits; unused (duplicated) interest slots get weight 0."""
        return label_aware_attention(
            user, target, self.power, scale=1.0 / self.temperature, mask=active_interests(user)
        )

    def select_interest(self, user: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Training: label-aware attention over the interests (``power``). Evaluation (``model.eval()``):
        the best-scoring interest, the rule retrieval and ``score`` use."""
        if user.dim() == 2:
            return user
        if not self.training:
            return super().select_interest(user, target)
        return self.label_aware_weights(user, target)[0]

    # -- construction from a dataset schema ------------------------------------------------------------
    @classmethod
    def from_schema(cls, schema: Any, **params: Any) -> MIND:
        """Build from a dataset schema (``zoo run``): user id and side features as the profile, the raw
        history, the item id (plus side features with ``item_side``), all at ``embed_dim``."""
        embed_dim = int(params.pop("embed_dim", 64))
        use_profile = bool(params.pop("user_side", True))
        user_features: list[Feature] = schema.user_sparse(embed_dim) if use_profile else []
        history = [schema.history(embed_dim, pooling=None)]
        item_features: list[Feature] = schema.item_features(embed_dim)
        params.setdefault("max_length", schema.history_len)
        if not user_features:  # the base contract wants one user feature: the history itself
            user_features = list(history)
        return cls(user_features, history, item_features, **params)


__all__ = ["MIND"]
