"""The one exact top-k: canonical tie order, used by the ground truth (:func:`zoo.evaluate.topk_items`)
and by the ``exact`` retriever plugin, so both rank tied items the same way on every device."""

from __future__ import annotations

import torch

__all__ = ["canonical_topk"]


def canonical_topk(scores: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-``k`` of each row of ``scores`` [q, n], ties broken by the smaller column index.

    ``torch.topk`` alone picks among tied values in a device-dependent order. Here one extra
    candidate tells whether a tie crosses the cut; only those (rare) rows are fully sorted, and
    ties inside the kept ``k`` are reordered by index with two small sorts.
    """
    n = scores.shape[1]
    wanted = min(k + 1, n)
    values, indices = torch.topk(scores, wanted, dim=1, largest=True, sorted=True)
    if wanted > k:
        crossing = values[:, k] == values[:, k - 1]
        values, indices = values[:, :k], indices[:, :k]
        if bool(crossing.any()):
            rows = crossing.nonzero().squeeze(1)
            row_values, row_indices = torch.sort(scores[rows], dim=1, descending=True, stable=True)
            values[rows] = row_values[:, :k]
            indices[rows] = row_indices[:, :k]
    if k > 1 and bool((values[:, 1:] == values[:, :-1]).any()):
        indices, perm = indices.sort(dim=1)
        values = values.gather(1, perm)
        values, perm = values.sort(dim=1, descending=True, stable=True)
        indices = indices.gather(1, perm)
    return values, indices
