"""Data: interactions, protocol and splits, feature encoding, sequences, negatives and batching.

``from zoo.data import MatchDataGenerator, generate_seq_feature_match, gen_model_input`` gives the
seed tutorial's helpers, and every name of Torch-RecHub's ``utils.data`` / ``utils.match`` its matching
code uses (``docs/migration-torch-rechub.md``); names resolve lazily so that ``import zoo.data`` stays
light.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "Interactions": "zoo.data.interactions",
    "Protocol": "zoo.data.protocol",
    "get_protocol": "zoo.data.protocol",
    "MatchDataGenerator": "zoo.data.seed_compat",
    "generate_seq_feature_match": "zoo.data.seed_compat",
    "gen_model_input": "zoo.data.seed_compat",
    "df_to_dict": "zoo.data.seed_compat",
    "pad_sequences": "zoo.data.seed_compat",
    "negative_sample": "zoo.data.sequences",
    "neg_sample": "zoo.data.sequences",
    "array_replace_with_dict": "zoo.data.sequences",
    "generate_seq_feature": "zoo.data.sequences",
    "create_seq_features": "zoo.data.sequences",
    "inbatch_negative_sampling": "zoo.data.inbatch",
    "gather_inbatch_logits": "zoo.data.inbatch",
    "TorchDataset": "zoo.data.datasets",
    "PredictDataset": "zoo.data.datasets",
    "SeqDataset": "zoo.data.datasets",
    "SequenceDataGenerator": "zoo.data.datasets",
    "get_auto_embedding_dim": "zoo.features",
    "read_movielens": "zoo.data.readers",
    "read_interactions": "zoo.data.readers",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'zoo.data' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
