"""Losses of the three MatchTrainer modes. Every logit is ``score / temperature``.

Masks mark candidates that must not count as negatives (a sampled id equal to the positive, an
in-batch duplicate of the positive); masked candidates get a logit of -inf in the list-wise losses
and weight 0 in the point-wise and pair-wise ones.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def pointwise_loss(
    pos_logits: torch.Tensor, neg_logits: torch.Tensor | None, neg_mask: torch.Tensor | None = None
) -> torch.Tensor:
    """Binary cross-entropy: positives labelled 1, sampled negatives [M, n] labelled 0."""
    pos = F.binary_cross_entropy_with_logits(pos_logits, torch.ones_like(pos_logits), reduction="sum")
    count = pos_logits.numel()
    if neg_logits is not None and neg_logits.numel():
        weights = None if neg_mask is None else (~neg_mask).to(neg_logits.dtype)
        neg = F.binary_cross_entropy_with_logits(
            neg_logits, torch.zeros_like(neg_logits), weight=weights, reduction="sum"
        )
        count += int(neg_logits.numel() if neg_mask is None else (~neg_mask).sum())
        pos = pos + neg
    return pos / max(count, 1)


def labelled_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy on labelled (user, item) rows (mode 0 with the seed's ``label`` column)."""
    return F.binary_cross_entropy_with_logits(logits, labels.to(logits.dtype))


def pairwise_loss(
    pos_logits: torch.Tensor,
    neg_logits: torch.Tensor,
    neg_mask: torch.Tensor | None = None,
    *,
    kind: str = "bpr",
    margin: float = 1.0,
) -> torch.Tensor:
    """BPR ``-log sigmoid(pos - neg)`` or hinge ``max(0, margin - (pos - neg))`` over [M, n] pairs."""
    diff = pos_logits.unsqueeze(-1) - neg_logits
    losses = -F.logsigmoid(diff) if kind == "bpr" else F.relu(margin - diff)
    if neg_mask is None:
        return losses.mean()
    keep = (~neg_mask).to(losses.dtype)
    return (losses * keep).sum() / keep.sum().clamp_min(1)


def bpr_max_loss(
    pos_logits: torch.Tensor,
    neg_logits: torch.Tensor,
    neg_mask: torch.Tensor | None = None,
    *,
    reg: float = 1.0,
) -> torch.Tensor:
    """BPR-max (Hidasi & Karatzoglou, 2018): ``-log sum_j s_j sigmoid(pos - neg_j) + reg * sum_j s_j neg_j^2``
    with ``s = softmax(neg)`` over the unmasked negatives, so the loss focuses on the hardest ones."""
    masked = neg_logits.masked_fill(neg_mask, float("-inf")) if neg_mask is not None else neg_logits
    weights = torch.softmax(masked, dim=-1)
    weights = torch.nan_to_num(weights)  # a row whose negatives are all masked contributes nothing
    ranking = (weights * torch.sigmoid(pos_logits.unsqueeze(-1) - neg_logits)).sum(-1)
    penalty = (weights * neg_logits.pow(2)).sum(-1)
    has_negative = weights.sum(-1) > 0
    loss = -torch.log(ranking.clamp_min(1e-12)) + reg * penalty
    return loss[has_negative].mean() if bool(has_negative.any()) else loss.sum() * 0


def softmax_loss(
    pos_logits: torch.Tensor, neg_logits: torch.Tensor, neg_mask: torch.Tensor | None = None
) -> torch.Tensor:
    """Cross-entropy of the positive against its negatives: softmax over ``[pos, neg_1..neg_n]``."""
    if neg_mask is not None:
        neg_logits = neg_logits.masked_fill(neg_mask, float("-inf"))
    logits = torch.cat([pos_logits.unsqueeze(-1), neg_logits], dim=-1)
    return (torch.logsumexp(logits, dim=-1) - pos_logits).mean()


def inbatch_softmax_loss(
    user: torch.Tensor,
    items: torch.Tensor,
    pos_ids: torch.Tensor,
    temperature: float,
    *,
    log_q: torch.Tensor | None = None,
    extra_items: torch.Tensor | None = None,
    extra_ids: torch.Tensor | None = None,
    extra_log_q: torch.Tensor | None = None,
) -> torch.Tensor:
    """Softmax over the batch's positives (row i's positive is column i), plus optional extra negatives
    shared by the batch (mixed negative sampling).

    ``log_q`` [M] and ``extra_log_q`` [n] are the log expected number of times each candidate is
    proposed; subtracting them (logQ correction) removes the popularity bias of in-batch sampling.
    In-batch duplicates of a row's positive are masked, so an item is never its own negative.
    """
    logits = user @ items.T / temperature
    if log_q is not None:
        logits = logits - log_q.unsqueeze(0)
    same = pos_ids.unsqueeze(1) == pos_ids.unsqueeze(0)
    same.fill_diagonal_(False)
    logits = logits.masked_fill(same, float("-inf"))
    if extra_items is not None and extra_items.shape[0]:
        extra = user @ extra_items.T / temperature
        if extra_log_q is not None:
            extra = extra - extra_log_q.unsqueeze(0)
        if extra_ids is not None:
            extra = extra.masked_fill(extra_ids.unsqueeze(0) == pos_ids.unsqueeze(1), float("-inf"))
        logits = torch.cat([logits, extra], dim=1)
    target = torch.arange(user.shape[0], device=user.device)
    return F.cross_entropy(logits, target)
