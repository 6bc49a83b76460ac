"""The import switch: the seed tutorial's names from ``torch_rechub`` or from ``zoo``.

The workflows import everything library-specific from here, so the same user code runs against either
library. ``RECALL_WORKFLOW_LIBRARY`` chooses (``zoo``, the default, or ``torch_rechub``); the parent
(``benchmarks/rechub_side_by_side.py``) sets it in each child process.
"""

from __future__ import annotations

import os

#: which library this process runs the workflows against
LIBRARY = os.environ.get("RECALL_WORKFLOW_LIBRARY", "zoo")
#: True under Torch-RecHub (the workflows apply their few Torch-RecHub-only changes when set)
IS_RECHUB = LIBRARY == "torch_rechub"

if IS_RECHUB:
    from torch_rechub.basic.features import SequenceFeature, SparseFeature
    from torch_rechub.models.matching import DSSM, MIND, GRU4Rec
    from torch_rechub.trainers import MatchTrainer
    from torch_rechub.utils.data import MatchDataGenerator, df_to_dict
    from torch_rechub.utils.match import gen_model_input, generate_seq_feature_match
elif LIBRARY == "zoo":
    from zoo.data import MatchDataGenerator, df_to_dict, gen_model_input, generate_seq_feature_match
    from zoo.features import SequenceFeature, SparseFeature
    from zoo.models import DSSM, MIND, GRU4Rec
    from zoo.train import MatchTrainer
else:
    raise SystemExit(f"RECALL_WORKFLOW_LIBRARY={LIBRARY!r}: use zoo or torch_rechub")

__all__ = [
    "DSSM",
    "GRU4Rec",
    "IS_RECHUB",
    "LIBRARY",
    "MIND",
    "MatchDataGenerator",
    "MatchTrainer",
    "SequenceFeature",
    "SparseFeature",
    "df_to_dict",
    "gen_model_input",
    "generate_seq_feature_match",
]
