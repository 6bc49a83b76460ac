"""ComiRec-DR: the dynamic-routing multi-interest model of ComiRec (Cen et al., KDD 2020).

Constructor in the seed's style (as MIND)::

    ComirecDR(user_features, history_features, item_features, neg_item_feature,
              max_length=50, temperature=1.0, interest_num=4)

User tower: dynamic routing as in ComiRec's code: each behaviour has its own bilinear map per
history position and interest (``bilinear="per_position"``; ``per_interest`` or MIND's ``shared`` are
options), the routing logits start at zero (the maps differ per interest, so nothing else is needed to
tell the capsules apart, and inference is deterministic), couplings are a softmax over the
interests, the intermediate rounds run without gradient, capsules are squashed; the K interests are
L2-normalised: ``[B, K, D]`` (``[B, D]`` for ``interest_num=1``). Item tower: the mean of the item
features' embeddings, L2-normalised.
Training reads out the interest that scores the positive highest (hard, argmax), as ComiRec does.
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
from zoo.nn.interests import CapsuleRouting, InterestInputs


class ComirecDR(RecallModel):
    """ComiRec-DR (see the module docstring).

    Args:
        user_features: user features; read only with ``profile=True``.
        history_features: the behaviour sequence (a ``SequenceFeature``); its ``embed_dim`` is D.
        item_features: the item id first, then side features (same ``embed_dim``).
        neg_item_feature: the seed's negative-items column, if any.
        max_length: history positions routed (the most recent).
        temperature: logits are ``cosine / temperature``.
        interest_num: K.
        routing_iterations: routing rounds (ComiRec: 3).
        bilinear: ``per_position`` (ComiRec's code), ``per_interest`` or ``shared``.
        routing_init: ``zeros`` (ComiRec) or ``normal`` (a fixed buffer, needed with ``shared``).
        profile: concatenate the user features to each interest and map back to D with an MLP.
        profile_dims: hidden layers of that MLP.
        recent_history: with ``profile``, also add the mean of the ``recent_history`` most recent
            behaviours to the profile (a short-term signal; 0: off).
        item_side: average the item side features into item vectors.
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
        bilinear: str = "per_position",
        routing_init: str = "zeros",
        profile: bool = False,
        profile_dims: Sequence[int] = (),
        recent_history: int = 0,
        item_side: bool = True,
        embedding_init_std: float = 0.05,
    ) -> None:
        history_features = list(history_features or [])
        if not history_features:
            raise UsageError(
                "ComirecDR: history_features must hold the behaviour sequence (a SequenceFeature)"
            )
        if int(interest_num) < 1:
            raise UsageError(f"ComirecDR: interest_num must be >= 1, got {interest_num}")
        if bilinear == "shared" and routing_init == "zeros" and int(interest_num) > 1:
            raise UsageError(
                "ComirecDR: a shared bilinear map with zero initial logits makes every interest identical;"
                " use routing_init='normal' or bilinear='per_position'"
            )
        dim = history_features[0].embed_dim
        super().__init__(
            user_features=user_features,
            item_features=item_features,
            temperature=temperature,
            history_features=history_features,
            neg_item_feature=neg_item_feature,
        )
        self.max_length = int(max_length)
        self.interest_num = int(interest_num)
        self.inputs = InterestInputs(
            self.user_features,
            self.history_features,
            self.item_features,
            max_length=self.max_length,
            item_side=item_side,
            init_std=embedding_init_std,
            use_profile=profile,
            recent=int(recent_history),
            owner="ComirecDR",
        )
        self.routing = CapsuleRouting(
            dim,
            dim,
            self.interest_num,
            self.max_length,
            iterations=routing_iterations,
            bilinear=bilinear,
            init=routing_init,
        )
        self.profile_mlp = (
            MLP(dim + self.inputs.profile_dim, [*[int(d) for d in profile_dims], dim]) if profile else None
        )
        self.output_dim = dim

    @property
    def num_interests(self) -> int:
        return self.interest_num

    def user_tower(self, batch: Batch) -> torch.Tensor:
        values, mask = self.inputs.sequence(batch)
        interests = self.routing(values, mask)  # [B, K, D]
        if self.profile_mlp is not None:
            profile = self.inputs.profile(batch, (values, mask))
            if profile is not None:
                interests = torch.cat(
                    [interests, profile.unsqueeze(1).expand(-1, self.interest_num, -1)], dim=-1
                )
            interests = self.profile_mlp(interests)
        interests = F.normalize(interests, dim=-1)
        return interests.squeeze(1) if self.interest_num == 1 else interests

    def item_tower(self, batch: Batch) -> torch.Tensor:
        return F.normalize(self.inputs.items(batch), dim=-1)

    @classmethod
    def from_schema(cls, schema: Any, **params: Any) -> ComirecDR:
        """Build from a dataset schema (``zoo run``), as :meth:`ComirecSA.from_schema`."""
        embed_dim = int(params.pop("embed_dim", 64))
        history = [schema.history(embed_dim, pooling=None)]
        params.setdefault("max_length", schema.history_len)
        return cls(schema.user_sparse(embed_dim), history, schema.item_features(embed_dim), **params)


__all__ = ["ComirecDR"]
