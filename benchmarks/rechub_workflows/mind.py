"""The seed tutorial's MIND workflow (多兴趣模型, list-wise), written once for either library."""

from __future__ import annotations

from typing import Any

from common import Stopwatch, workflow_result
from library import IS_RECHUB, MIND, MatchTrainer, SequenceFeature, SparseFeature
from listwise import prepare

#: what this workflow changes for Torch-RecHub only, and why
RECHUB_CHANGES = [
    "history pooling='concat' instead of None (its EmbeddingLayer rejects None)",
    "neg_items SparseFeature with shared_with='movie_id' (otherwise negatives get a table of their own)",
    "item_features [movie_id] only (its item tower stacks every item feature as a candidate column)",
]


def run(csv: str, workdir: str, *, epochs: int = 1, batch_size: int = 256, **_: Any) -> dict[str, Any]:
    """Prepare, fit and embed (see ``dssm.run`` for what is returned); user vectors are [U, K, D]."""
    watch = Stopwatch()
    data = prepare(csv, watch, batch_size)
    item_num = data["sizes"]["item_num"]
    user_features, item_features = data["user_features"], data["item_features"]
    # The GRU4Rec section's history and negatives features, which the MIND section reuses.
    history_features = [SequenceFeature("hist_movie_id", vocab_size=item_num, embed_dim=16, pooling=None)]
    neg_item_feature = [SparseFeature("neg_items", vocab_size=item_num, embed_dim=16)]
    changes: list[str] = []
    if IS_RECHUB:
        changes = list(RECHUB_CHANGES)
        history_features = [
            SequenceFeature("hist_movie_id", vocab_size=item_num, embed_dim=16, pooling="concat")
        ]
        neg_item_feature = [
            SparseFeature("neg_items", vocab_size=item_num, embed_dim=16, shared_with="movie_id")
        ]
        item_features = item_features[:1]

    with watch.stage("fit"):
        model = MIND(
            user_features=user_features,
            history_features=history_features,
            item_features=item_features,
            neg_item_feature=neg_item_feature,
            max_length=50,
            temperature=1.0,
            interest_num=4,
        )
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
