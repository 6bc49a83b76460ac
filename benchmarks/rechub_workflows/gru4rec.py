"""The seed tutorial's GRU4Rec workflow (序列推荐模型, list-wise), written once for either library.

``layers`` is the number of GRU layers: the tutorial's 2, or 1 to compare at one layer.
"""

from __future__ import annotations

from typing import Any

import torch
from common import Stopwatch, workflow_result
from library import IS_RECHUB, GRU4Rec, MatchTrainer, SequenceFeature, SparseFeature
from listwise import prepare

#: what this workflow changes for Torch-RecHub only, and why
RECHUB_CHANGES = [
    "user_params without num_layers (its MLP rejects the key; its GRU4Rec then builds 2 GRU layers)",
    "history pooling='concat' instead of None (its EmbeddingLayer rejects None)",
    "neg_items SparseFeature with shared_with='movie_id' (otherwise negatives get a table of their own)",
    "item_features [movie_id] only (its item tower stacks every item feature as a candidate column)",
    "user dims [128, 64, 16] instead of [128, 64] (its user vector must match the 16-d item embedding)",
]
#: the extra change at 1 layer
RECHUB_ONE_LAYER = "1 layer: model.gru replaced after construction by a 1-layer nn.GRU of the same sizes"


def run(
    csv: str, workdir: str, *, epochs: int = 1, batch_size: int = 256, layers: int = 2, **_: Any
) -> dict[str, Any]:
    """Prepare, fit and embed (see ``dssm.run`` for what is returned)."""
    watch = Stopwatch()
    data = prepare(csv, watch, batch_size)
    item_num = data["sizes"]["item_num"]
    user_features, item_features = data["user_features"], data["item_features"]
    history_features = [SequenceFeature("hist_movie_id", vocab_size=item_num, embed_dim=16, pooling=None)]
    neg_item_feature = [SparseFeature("neg_items", vocab_size=item_num, embed_dim=16)]
    user_params = {"dims": [128, 64], "num_layers": layers, "dropout": 0.2}
    changes: list[str] = []
    if IS_RECHUB:
        changes = list(RECHUB_CHANGES) + ([RECHUB_ONE_LAYER] if layers != 2 else [])
        user_params = {"dims": [128, 64, 16], "dropout": 0.2}
        history_features = [
            SequenceFeature("hist_movie_id", vocab_size=item_num, embed_dim=16, pooling="concat")
        ]
        neg_item_feature = [
            SparseFeature("neg_items", vocab_size=item_num, embed_dim=16, shared_with="movie_id")
        ]
        item_features = item_features[:1]

    with watch.stage("fit"):
        model = GRU4Rec(
            user_features=user_features,
            history_features=history_features,
            item_features=item_features,
            neg_item_feature=neg_item_feature,
            user_params=user_params,
            temperature=1.0,
        )
        if IS_RECHUB and layers != 2:
            model.gru = torch.nn.GRU(16, 16, num_layers=layers, batch_first=True, bias=False)
        trainer = MatchTrainer(
            model=model,
            mode=2,  # list-wise
            optimizer_params={"lr": 0.001},
            n_epoch=epochs,
            device="cpu",
            model_path=workdir,
        )
        trainer.fit(data["train_dl"])

    with watch.stage("embed"):
        user_embeddings = trainer.inference_embedding(model, "user", data["test_dl"], model_path=workdir)
        item_embeddings = trainer.inference_embedding(model, "item", data["item_dl"], model_path=workdir)

    return workflow_result(
        user_embeddings, item_embeddings, data["x_test"], data["all_item"], watch, data["train_rows"], changes
    )
