"""Shared neural building blocks: embeddings per feature, masked pooling, MLPs."""

from zoo.nn.embedding import EmbeddingBank
from zoo.nn.mlp import MLP, activation_layer
from zoo.nn.pooling import masked_mean, masked_sum

__all__ = ["MLP", "EmbeddingBank", "activation_layer", "masked_mean", "masked_sum"]
