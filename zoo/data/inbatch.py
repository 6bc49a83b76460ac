"""In-batch negatives as Torch-RecHub's ``utils.match`` spells them: sample negative columns of a batch's
``[B, B]`` score matrix, then gather ``[positive, negatives]`` logits.

::

    scores = user_vectors @ item_vectors.T                      # row i's positive is column i
    neg = inbatch_negative_sampling(scores, neg_ratio=3, generator=torch.Generator().manual_seed(0))
    logits = gather_inbatch_logits(scores, neg)                 # [B, 1 + 3], the positive first

Both are vectorised (one ``topk`` over the batch, no Python loop per row). ``MatchTrainer(in_batch_neg=True)``
trains with them (the ``inbatch-sampled`` negatives of :mod:`zoo.train.negatives`).
"""

from __future__ import annotations

import torch

from zoo.errors import UsageError


def inbatch_negative_sampling(
    scores: torch.Tensor,
    neg_ratio: int | None = None,
    hard_negative: bool = False,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Indices ``[B, neg_ratio]`` of negative columns for each row of the square ``scores`` [B, B].

    Args:
        scores: ``scores[i, j]`` = user i against the positive item of row j.
        neg_ratio: negatives per row; None, <= 0 or more than ``B - 1`` means all ``B - 1`` other rows.
        hard_negative: take the highest-scoring other columns instead of a uniform random choice.
        generator: the random generator of the uniform choice (reproducible sampling).

    Row ``i`` never gets column ``i`` (its own positive); the uniform choice is without replacement.
    """
    if scores.dim() != 2 or scores.shape[0] != scores.shape[1]:
        raise UsageError(
            f"inbatch_negative_sampling takes a square [B, B] score matrix, got {tuple(scores.shape)}"
        )
    batch = scores.shape[0]
    if batch <= 1:
        raise UsageError("in-batch negative sampling needs batches of at least 2 rows")
    most = batch - 1
    count = most if neg_ratio is None or neg_ratio <= 0 or neg_ratio > most else int(neg_ratio)
    if hard_negative:
        keys = scores.detach().clone()
    else:
        device = generator.device if generator is not None else scores.device
        keys = torch.rand((batch, batch), generator=generator, device=device).to(scores.device)
    keys.fill_diagonal_(float("-inf"))
    return torch.topk(keys, k=count, dim=1).indices


def gather_inbatch_logits(scores: torch.Tensor, neg_indices: torch.Tensor) -> torch.Tensor:
    """``[B, 1 + K]`` logits: the diagonal (each row's positive) followed by ``scores[i, neg_indices[i]]``."""
    if neg_indices.dim() != 2 or neg_indices.shape[0] != scores.shape[0]:
        raise UsageError(
            f"neg_indices must be [B, K] with B = {scores.shape[0]} rows, got {tuple(neg_indices.shape)}"
        )
    positive = torch.diagonal(scores).unsqueeze(1)
    return torch.cat([positive, torch.gather(scores, 1, neg_indices.long())], dim=1)
