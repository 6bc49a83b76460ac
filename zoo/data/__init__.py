"""Data: interactions, protocol and splits, feature encoding, sequences, negatives and batching.

``from zoo.data import MatchDataGenerator, generate_seq_feature_match, gen_model_input`` gives the
seed tutorial's helpers; names resolve lazily so that ``import zoo.data`` stays light.
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
    "read_movielens": "zoo.data.readers",
    "read_interactions": "zoo.data.readers",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'zoo.data' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
