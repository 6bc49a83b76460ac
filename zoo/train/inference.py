"""Embedding users and items in batches, and ranking a task's users over the catalogue."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import torch

from zoo.data.match import RankingTask
from zoo.models.base import RecallModel

Batch = Mapping[str, torch.Tensor]


def to_tensor_batch(batch: Any) -> dict[str, torch.Tensor]:
    """Accept the seed's ``x_dict`` (or an ``(x_dict, y)`` pair) with numpy or torch values."""
    label = None
    if isinstance(batch, (tuple, list)) and len(batch) == 2 and isinstance(batch[0], Mapping):
        batch, label = batch
    out = {k: v if isinstance(v, torch.Tensor) else torch.as_tensor(np.asarray(v)) for k, v in batch.items()}
    if label is not None:
        out["label"] = label if isinstance(label, torch.Tensor) else torch.as_tensor(np.asarray(label))
    return out


def to_device(batch: Batch, device: torch.device) -> dict[str, torch.Tensor]:
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}


def slice_batch(batch: Batch, start: int, stop: int) -> dict[str, torch.Tensor]:
    return {k: v[start:stop] for k, v in batch.items()}


def batch_rows(batch: Batch) -> int:
    return int(next(iter(batch.values())).shape[0])


@torch.no_grad()
def embed_batches(
    model: RecallModel,
    batches: Iterable[Any],
    tower: str,
    device: torch.device,
    on_rows: Callable[[int], None] | None = None,
) -> torch.Tensor:
    """Run ``model.user_tower`` or ``model.item_tower`` over ``batches``; returns a CPU tensor.
    ``on_rows`` is told how many rows each batch held (a progress bar)."""
    was_training = model.training
    model.eval()
    fn = model.user_tower if tower == "user" else model.item_tower
    outputs = []
    for batch in batches:
        outputs.append(fn(to_device(to_tensor_batch(batch), device)).float().cpu())
        if on_rows is not None:
            on_rows(outputs[-1].shape[0])
    model.train(was_training)
    if not outputs:
        return torch.empty(0)
    return torch.cat(outputs, dim=0)


def embed_users(
    model: RecallModel,
    users: Batch,
    device: torch.device,
    batch_size: int = 4096,
    on_rows: Callable[[int], None] | None = None,
) -> torch.Tensor:
    """User vectors [U, D] (or [U, K, D]) for a batch of user rows, computed in chunks."""
    n = batch_rows(users)
    chunks = (slice_batch(users, s, s + batch_size) for s in range(0, n, batch_size))
    return embed_batches(model, chunks, "user", device, on_rows)


def embed_items(
    model: RecallModel,
    ids: torch.Tensor,
    device: torch.device,
    batch_size: int = 8192,
    on_rows: Callable[[int], None] | None = None,
) -> torch.Tensor:
    """Item vectors [N, D] for item ids, with side features from the model's item table."""
    starts = range(0, ids.shape[0], batch_size)
    chunks = (model.item_batch(ids[s : s + batch_size].to(device)) for s in starts)
    return embed_batches(model, chunks, "item", device, on_rows)


def rank_task(
    model: RecallModel,
    task: RankingTask,
    k: int,
    device: torch.device,
    *,
    user_vectors: torch.Tensor | None = None,
    item_vectors: torch.Tensor | None = None,
) -> np.ndarray:
    """Top-``k`` catalogue item ids per task user (exact full ranking, masking applied); -1 pads."""
    from zoo.evaluate import topk_items

    if user_vectors is None:
        user_vectors = embed_users(model, task.users, device)
    if item_vectors is None:
        item_vectors = embed_items(model, task.catalogue, device)
    rows, _ = topk_items(
        user_vectors.to(device), item_vectors.to(device), k, exclude=task.exclude, device=device
    )
    rows = rows.numpy()
    catalogue = task.catalogue.numpy()
    return np.where(rows >= 0, catalogue[np.clip(rows, 0, None)], -1)


def evaluate_task(
    model: RecallModel, task: RankingTask, ks: Sequence[int], device: torch.device, **vectors: Any
) -> dict[str, float]:
    """Ranking metrics @ks of ``model`` on ``task``."""
    from zoo.evaluate import ranking_metrics

    top = rank_task(model, task, max(ks), device, **vectors)
    return ranking_metrics(top, task.targets, ks=tuple(ks))
