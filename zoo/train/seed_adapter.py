"""The seed tutorial's side of the trainer: a validation DataLoader of the seed's batches (dicts of
numpy or torch columns, or ``(x, y)`` pairs, read by :func:`~zoo.train.inference.to_tensor_batch`)
turned into a ranking task, ``evaluate``'s AUC, ``predict``, and Torch-RecHub's trainer keywords mapped
onto TrainerConfig settings."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch

from zoo.data.match import RankingTask
from zoo.data.negatives import UniformSampler
from zoo.errors import UsageError
from zoo.evaluate import auc_score
from zoo.models.base import RecallModel
from zoo.train.inference import to_device, to_tensor_batch
from zoo.train.negatives import positive_vectors


def as_ranking_task(model: RecallModel, val: Any) -> RankingTask:
    """Validation as a ranking task: a RankingTask as is, or the positive rows of a seed loader ranked
    against every item id the model knows."""
    if isinstance(val, RankingTask):
        return val
    rows: dict[str, list[torch.Tensor]] = {}
    for raw in val:
        for key, value in to_tensor_batch(raw).items():
            rows.setdefault(key, []).append(value)
    if not rows:
        raise UsageError("the validation data loader produced no batches")
    batch = {k: torch.cat(v) for k, v in rows.items()}
    if "label" in batch:
        positive = batch.pop("label").reshape(-1) > 0
        batch = {k: v[positive] for k, v in batch.items()}
    item_key = model.item_id_feature
    if item_key not in batch:
        raise UsageError(f"validation data has no '{item_key}' column to use as the target item")
    targets = batch[item_key].long().numpy()
    catalogue = torch.arange(1, model._item_vocab(), dtype=torch.long)
    return RankingTask(users=batch, targets=targets, catalogue=catalogue, exclude=None, name="valid")


@torch.no_grad()
def auc(
    model: RecallModel, data_loader: Iterable[Any], device: torch.device, negatives: UniformSampler, seed: int
) -> float:
    """AUC on ``data_loader``: rows labelled 0 and 1 use their labels; otherwise (rows that are all
    positives) each positive is scored against its ``neg_items`` or against one id drawn from
    ``negatives`` (with a generator seeded by ``seed``), never against itself."""
    model.eval()
    labelled: list[tuple[torch.Tensor, torch.Tensor]] = []  # (scores, labels) of labelled rows
    pairs: list[tuple[torch.Tensor, torch.Tensor]] = []  # (positive scores, negative scores)
    generator = torch.Generator().manual_seed(seed)
    for raw in data_loader:
        batch = to_device(to_tensor_batch(raw), device)
        pos_ids = batch[model.item_id_feature].long()
        user = model.user_tower(batch)
        pos_item = positive_vectors(model, batch, pos_ids)
        label = batch.get("label")
        if label is not None:
            labelled.append((model.score(user, pos_item).float().cpu(), label.float().reshape(-1).cpu()))
        key = model.neg_items_key
        if key in batch:
            neg_ids = batch[key].long()
            neg_ids = neg_ids.unsqueeze(1) if neg_ids.dim() == 1 else neg_ids
        else:
            neg_ids = negatives.sample(pos_ids.cpu(), 1, generator).to(pos_ids.device)
        query = model.select_interest(user, pos_item)
        neg_scores = (query.unsqueeze(1) * model.item_vectors(neg_ids)).sum(-1)
        keep = neg_ids != pos_ids.unsqueeze(1)
        positive = label.reshape(-1) > 0 if label is not None else torch.ones_like(pos_ids, dtype=torch.bool)
        pos_scores = (query * pos_item).sum(-1)
        negative_scores = neg_scores[positive.unsqueeze(1) & keep]
        pairs.append((pos_scores[positive].float().cpu(), negative_scores.float().cpu()))
    model.train()
    if not pairs:
        raise UsageError("evaluate() got an empty data loader")
    if labelled:
        scores, labels = (torch.cat(parts) for parts in zip(*labelled, strict=True))
        if bool((labels > 0).any()) and bool((labels <= 0).any()):
            return auc_score(labels.numpy(), scores.numpy())
    # Positives only (the seed's test_dl, or pair/list-wise data): each positive against negatives.
    pos, neg = (torch.cat(parts) for parts in zip(*pairs, strict=True))
    scores = torch.cat([pos, neg]).numpy()
    labels = torch.cat([torch.ones(pos.shape[0]), torch.zeros(neg.shape[0])]).numpy()
    return auc_score(labels, scores)


def in_batch_settings(
    in_batch_neg: bool, in_batch_neg_ratio: int | None, hard_negative: bool, sampler_seed: int | None
) -> dict[str, tuple[str, Any]]:
    """Torch-RecHub's ``MatchTrainer`` in-batch keywords as TrainerConfig settings ``{key: (argument,
    value)}``: ``in_batch_neg`` -> ``negatives="inbatch-sampled"``, ``in_batch_neg_ratio`` ->
    ``num_negatives`` (None or <= 0: every other row), ``hard_negative`` -> ``hard_negatives``,
    ``sampler_seed`` -> ``seed`` (which seeds the sampler together with the trainer's other generators)."""
    out: dict[str, tuple[str, Any]] = {}
    if in_batch_neg:
        out["negatives"] = ("in_batch_neg", "inbatch-sampled")
        if in_batch_neg_ratio is not None and in_batch_neg_ratio > 0:
            out["num_negatives"] = ("in_batch_neg_ratio", in_batch_neg_ratio)
        if hard_negative:
            out["hard_negatives"] = ("hard_negative", True)
    elif in_batch_neg_ratio is not None or hard_negative:
        raise UsageError("in_batch_neg_ratio and hard_negative need in_batch_neg=True")
    if sampler_seed is not None:
        out["seed"] = ("sampler_seed", sampler_seed)
    return out


def l2_regularization(params: dict[str, Any]) -> dict[str, Any]:
    """``regularization_params`` without Torch-RecHub's L1 keys when they are 0 (its defaults); the
    trainer applies L2 only: a non-zero L1 coefficient or an unknown key is a UsageError."""
    out = dict(params)
    for key in ("embedding_l1", "dense_l1"):
        if key in out and not out.pop(key):
            continue
        if key in params:
            raise UsageError(
                f"regularization_params: {key} is not supported by the trainer (L2 only: embedding_l2,"
                " dense_l2); add RegularizationLoss from zoo.train.losses to a custom loss for L1"
            )
    unknown = sorted(set(out) - {"embedding_l2", "dense_l2"})
    if unknown:
        raise UsageError(
            f"regularization_params: unknown key(s) {', '.join(unknown)}; use embedding_l2, dense_l2"
        )
    return out


@torch.no_grad()
def predict(model: RecallModel, data_loader: Iterable[Any], device: torch.device) -> list[float]:
    """``model(batch)`` for every batch of ``data_loader`` (each row's ``sigmoid(score / temperature)``),
    concatenated into one list; the model is left in training mode afterwards."""
    model.eval()
    out: list[float] = []
    try:
        for raw in data_loader:
            batch = to_device(to_tensor_batch(raw), device)
            user = model.user_tower(batch)
            item = positive_vectors(model, batch, batch[model.item_id_feature].long())
            out.extend(torch.sigmoid(model.score(user, item) / model.temperature).reshape(-1).cpu().tolist())
    finally:
        model.train()
    return out
