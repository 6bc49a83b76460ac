"""Losses of the three MatchTrainer modes. Every logit is ``score / temperature``.

Masks mark candidates that must not count as negatives (a sampled id equal to the positive, an
in-batch duplicate of the positive); masked candidates get a logit of -inf in the list-wise losses
and weight 0 in the point-wise and pair-wise ones.

Torch-RecHub's loss modules (``RegularizationLoss``, ``BPRLoss``, ``HingeLoss``, ``NCELoss``,
``InBatchNCELoss``) are here too, under its names and arguments.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from zoo.errors import UsageError


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


def duplicate_pairs(ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Every ordered pair ``(i, j)``, ``i != j``, with ``ids[i] == ids[j]`` (the in-batch duplicates a
    softmax must mask), found by sorting the ids rather than comparing all ``n * n`` pairs."""
    order = torch.argsort(ids, stable=True)
    _, counts = torch.unique_consecutive(ids[order], return_counts=True)
    empty = ids.new_empty(0, dtype=torch.long)
    if counts.numel() == ids.numel():
        return empty, empty
    starts = torch.cumsum(counts, 0) - counts
    group = torch.repeat_interleave(torch.arange(counts.numel(), device=ids.device), counts)
    size, start = counts[group], starts[group]  # per sorted position: its group's size and start
    shared = size > 1
    position = torch.arange(ids.numel(), device=ids.device)[shared]
    size, start = size[shared], start[shared]
    first = torch.repeat_interleave(position, size)
    offset = torch.arange(first.numel(), device=ids.device) - torch.repeat_interleave(
        torch.cumsum(size, 0) - size, size
    )
    second = torch.repeat_interleave(start, size) + offset
    other = first != second
    return order[first[other]], order[second[other]]


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
    user = user / temperature  # scales the [M, D] rows rather than the [M, M + n] logits
    logits = user @ items.T
    if log_q is not None:
        logits = logits - log_q.unsqueeze(0)
    rows, cols = duplicate_pairs(pos_ids)
    if rows.numel():
        logits = logits.index_put(
            (rows, cols), torch.tensor(float("-inf"), dtype=logits.dtype, device=logits.device)
        )
    if extra_items is not None and extra_items.shape[0]:
        extra = user @ extra_items.T
        if extra_log_q is not None:
            extra = extra - extra_log_q.unsqueeze(0)
        if extra_ids is not None:
            extra = extra.masked_fill(extra_ids.unsqueeze(0) == pos_ids.unsqueeze(1), float("-inf"))
        logits = torch.cat([logits, extra], dim=1)
    target = torch.arange(user.shape[0], device=user.device)
    return F.cross_entropy(logits, target)


# -- Torch-RecHub's loss modules (torch_rechub.basic.loss_func) --------------------------------------------
_NORM_LAYERS = (
    torch.nn.BatchNorm1d,
    torch.nn.BatchNorm2d,
    torch.nn.BatchNorm3d,
    torch.nn.LayerNorm,
    torch.nn.GroupNorm,
    torch.nn.InstanceNorm1d,
    torch.nn.InstanceNorm2d,
    torch.nn.InstanceNorm3d,
)


class RegularizationLoss(torch.nn.Module):
    """L1/L2 penalties on a model's parameters: ``reg = RegularizationLoss(embedding_l2=1e-5)(model)``.

    Embedding parameters are those of ``nn.Embedding`` / ``nn.EmbeddingBag`` modules; every other
    trainable parameter is dense, except normalisation layers' (never penalised). Returns ``0.0`` (a
    float) when every coefficient is 0, else a scalar tensor.
    """

    def __init__(
        self,
        embedding_l1: float = 0.0,
        embedding_l2: float = 0.0,
        dense_l1: float = 0.0,
        dense_l2: float = 0.0,
    ) -> None:
        super().__init__()
        self.embedding_l1, self.embedding_l2 = float(embedding_l1), float(embedding_l2)
        self.dense_l1, self.dense_l2 = float(dense_l1), float(dense_l2)

    def forward(self, model: torch.nn.Module) -> torch.Tensor | float:
        norm = {id(p) for m in model.modules() if isinstance(m, _NORM_LAYERS) for p in m.parameters()}
        embedding = {
            id(p)
            for m in model.modules()
            if isinstance(m, (torch.nn.Embedding, torch.nn.EmbeddingBag))
            for p in m.parameters()
        }
        total: torch.Tensor | float = 0.0
        for param in model.parameters():
            if not param.requires_grad or id(param) in norm:
                continue
            l1, l2 = (
                (self.embedding_l1, self.embedding_l2)
                if id(param) in embedding
                else (self.dense_l1, self.dense_l2)
            )
            if l1 > 0:
                total = total + l1 * param.abs().sum()
            if l2 > 0:
                total = total + l2 * param.pow(2).sum()
        return total


def _as_rows(pos_score: torch.Tensor, neg_score: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Positives [M] and negatives [M, n] (a 1-D ``neg_score`` is one negative per row)."""
    pos = pos_score.reshape(-1)
    neg = neg_score.unsqueeze(-1) if neg_score.dim() == 1 else neg_score.reshape(pos.shape[0], -1)
    return pos, neg


class BPRLoss(torch.nn.Module):
    """Torch-RecHub's ``BPRLoss``: ``mean(-log sigmoid(pos - neg))`` over every (positive, negative) pair;
    ``neg_score`` is [M] or [M, n]. Computed with ``logsigmoid``, so large margins give 0, never ``inf``."""

    def forward(
        self, pos_score: torch.Tensor, neg_score: torch.Tensor, in_batch_neg: bool = False
    ) -> torch.Tensor:
        return pairwise_loss(*_as_rows(pos_score, neg_score), kind="bpr")


class HingeLoss(torch.nn.Module):
    """Torch-RecHub's ``HingeLoss``: ``max(0, margin + max_j neg_j - pos)`` per row, averaged; with
    ``num_items`` each row is weighted by ``log(1 + num_items * share of negatives within the margin)``
    (WARP-style rank weighting)."""

    def __init__(self, margin: float = 2, num_items: int | None = None) -> None:
        super().__init__()
        self.margin = margin
        self.n_items = num_items

    def forward(
        self, pos_score: torch.Tensor, neg_score: torch.Tensor, in_batch_neg: bool = False
    ) -> torch.Tensor:
        pos, neg = _as_rows(pos_score, neg_score)
        loss = F.relu(neg.max(dim=-1).values - pos + self.margin)
        if self.n_items is None:
            return loss.mean()
        impostors = (neg - pos.unsqueeze(-1) + self.margin > 0).to(neg.dtype)
        rank = impostors.mean(-1) * self.n_items
        return (loss * torch.log(rank + 1)).mean()


def _reduce(loss: torch.Tensor, reduction: str) -> torch.Tensor:
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    return loss


class NCELoss(torch.nn.Module):
    """Torch-RecHub's ``NCELoss``: softmax cross-entropy of ``logits / temperature`` [B, V] against
    ``targets`` [B]; rows whose target is ``ignore_index`` are left out (unless every row is).

    ``reduction``: ``"mean"``, ``"sum"`` or ``"none"``.
    """

    def __init__(self, temperature: float = 1.0, ignore_index: int = 0, reduction: str = "mean") -> None:
        super().__init__()
        if reduction not in ("mean", "sum", "none"):
            raise UsageError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
        self.temperature = temperature
        self.ignore_index = ignore_index
        self.reduction = reduction

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        loss = F.cross_entropy(logits / self.temperature, targets.long(), reduction="none")
        keep = targets != self.ignore_index
        if bool(keep.any()):
            loss = loss[keep]
        return _reduce(loss, self.reduction)


class InBatchNCELoss(NCELoss):
    """Torch-RecHub's ``InBatchNCELoss``: :class:`NCELoss` over the logits ``embeddings [B, D] @
    item_embeddings [V, D].T`` (default temperature 0.1)."""

    def __init__(self, temperature: float = 0.1, ignore_index: int = 0, reduction: str = "mean") -> None:
        super().__init__(temperature, ignore_index, reduction)

    def forward(  # type: ignore[override]
        self, embeddings: torch.Tensor, item_embeddings: torch.Tensor, targets: torch.Tensor
    ) -> torch.Tensor:
        return super().forward(embeddings @ item_embeddings.T, targets)
