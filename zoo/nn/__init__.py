"""Shared neural building blocks: embeddings per feature, masked pooling, MLPs."""

from zoo.nn.embedding import EmbeddingBank
from zoo.nn.mlp import MLP, activation_layer
from zoo.nn.pooling import masked_mean, masked_sum

__all__ = ["MLP", "EmbeddingBank", "activation_layer", "masked_mean", "masked_sum"]

from zoo.nn.sequence import CausalTransformer, ItemTower, MaskedGRU  # noqa: E402  (sequential models)

__all__ += ["CausalTransformer", "ItemTower", "MaskedGRU"]

from zoo.nn.interests import (  # noqa: E402  (multi-interest models)
    CapsuleRouting,
    InterestInputs,
    SelfAttentiveInterests,
    label_aware_attention,
    squash,
)

__all__ += ["CapsuleRouting", "InterestInputs", "SelfAttentiveInterests", "label_aware_attention", "squash"]
