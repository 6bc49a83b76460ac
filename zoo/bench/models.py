"""The bench's model cache: each model is trained and embedded once per bench folder.

A trained model's test vectors, task and exact top-K lists are kept in
``models/<name>/embeddings.npz`` (with the model itself in ``models/<name>/model``), so a rerun of
the bench measures new cells without training again.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from zoo.pipeline import Embedded, Ranking, RunConfig

MODELS_DIR = "models"
EMBEDDINGS_FILE = "embeddings.npz"


@dataclass
class ModelData:
    """A trained (or reloaded) model's test vectors and exact top-K lists."""

    embedded: Embedded
    exact: Ranking  # masked as the protocol says: the reference of the task metrics through an index
    exact_raw: np.ndarray  # [U, max_k] exact top item ids without masking: the reference of search recall


def train_model(
    config: RunConfig, folder: Path, *, registry: Any, progress: Any
) -> tuple[ModelData, dict[str, Any]]:
    """Train ``config.model``, embed the test users and the catalogue, rank them exactly (masked and
    not), cache all of it in ``folder`` and return it with the model's bench record."""
    from zoo.pipeline import embed, evaluate_exact, evaluate_popularity, prepare, train

    ks = config.resolved_ks()
    prepared = prepare(config, registry=registry, progress=progress)
    for line in prepared.warnings:
        progress.warning(line)
    trained = train(prepared, progress=progress)
    progress.stage("embed", f"{config.model}: test users and catalogue, exact top-{max(ks)}")
    embedded = embed(trained)
    exact = evaluate_exact(embedded, ks)
    raw = evaluate_exact(embedded, ks, masked=False)
    data = ModelData(embedded=embedded, exact=exact, exact_raw=raw.top)
    vectors = embedded.user_matrix()
    info: dict[str, Any] = {
        "status": "done",
        "error": None,
        "family": prepared.model_spec.family,
        "train_s": trained.timings.get("train_s"),
        "training": {k: v for k, v in trained.training_summary().items() if k != "history"},
        "history": trained.history,
        "timings": {
            **prepared.timings,
            **trained.timings,
            **embedded.timings,
            "exact_search_s": exact.seconds,
        },
        "data": {**prepared.dataset_stats, **trained.data.summary()},
        "protocol": trained.data.card,
        "model_params": trained.settings.model,
        "trainer": trained.settings.trainer.to_dict(),
        "users": embedded.num_users,
        "items": int(len(embedded.catalogue)),
        "dim": int(vectors.shape[-1]),
        "interests": int(vectors.shape[1]) if vectors.ndim == 3 else 1,
        "metrics": {"exact": exact.metrics, "popularity": evaluate_popularity(embedded, ks).metrics},
        "artifacts": f"{MODELS_DIR}/{config.model}",
    }
    _save(folder, trained, data, progress)
    return data, info


def _save(folder: Path, trained: Any, data: ModelData, progress: Any) -> None:
    from zoo.errors import one_line
    from zoo.io import atomic_dir, commit_dir
    from zoo.pipeline import save_model

    embedded = data.embedded
    tmp = atomic_dir(folder)
    try:
        arrays = {
            "user_vectors": embedded.user_matrix(),
            "item_vectors": embedded.item_matrix(),
            "catalogue": np.asarray(embedded.catalogue, dtype=np.int64),
            "targets": np.asarray(embedded.task.targets),
            "exact_top": np.asarray(data.exact.top, dtype=np.int64),
            "exact_raw": np.asarray(data.exact_raw, dtype=np.int64),
        }
        if embedded.task.exclude is not None:
            arrays["exclude_indptr"] = embedded.task.exclude[0].numpy().astype(np.int64)
            arrays["exclude_rows"] = embedded.task.exclude[1].numpy().astype(np.int64)
        np.savez(tmp / EMBEDDINGS_FILE, **arrays)
        try:
            save_model(tmp / "model", trained)
        except Exception as exc:  # a model plugin without save(): the embeddings are what the bench needs
            shutil.rmtree(tmp / "model", ignore_errors=True)
            progress.warning(
                f"warning: model '{folder.name}' could not be saved ({one_line(exc)}); its embeddings were"
                " kept"
            )
        commit_dir(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def load_model_data(folder: Path) -> ModelData:
    """The test task, vectors and exact lists cached by an earlier run (no retraining, no unpickling)."""
    import torch

    from zoo.data.match import RankingTask

    with np.load(folder / EMBEDDINGS_FILE, allow_pickle=False) as stored:
        arrays = {name: stored[name] for name in stored.files}
    exclude = None
    if "exclude_indptr" in arrays:
        exclude = (torch.from_numpy(arrays["exclude_indptr"]), torch.from_numpy(arrays["exclude_rows"]))
    task = RankingTask(
        users={},
        targets=arrays["targets"],
        catalogue=torch.from_numpy(arrays["catalogue"]),
        exclude=exclude,
        name="test",
    )
    embedded = Embedded(
        task=task,
        user_vectors=torch.from_numpy(arrays["user_vectors"]),
        item_vectors=torch.from_numpy(arrays["item_vectors"]),
    )
    exact = Ranking(top=arrays["exact_top"], metrics={}, seconds=float("nan"), users_per_s=float("nan"))
    return ModelData(embedded=embedded, exact=exact, exact_raw=arrays["exact_raw"])


__all__ = ["EMBEDDINGS_FILE", "MODELS_DIR", "ModelData", "load_model_data", "train_model"]
