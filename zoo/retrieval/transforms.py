"""Vector transforms shared by retrieval backends.

**MIPS to L2** (Bachrach et al., 2014, "Speeding up the Xbox recommender system using a Euclidean
transformation for inner-product spaces"). A backend that only knows Euclidean (or angular) distance
can still answer maximum-inner-product queries exactly in rank: append one coordinate to every item,
``x' = [x, sqrt(M^2 - |x|^2)]`` with ``M`` the largest item norm, and a zero to every query,
``q' = [q, 0]``. Then ``|q' - x'|^2 = |q|^2 + M^2 - 2 q.x``: for a fixed query the nearest augmented
item is the one with the largest inner product. All augmented items have norm ``M``, so the angular
distance ranks them the same way too.

Scores should not be recovered from the distance (``q.x = (|q|^2 + M^2 - d^2) / 2`` cancels
catastrophically when ``M^2`` dwarfs the inner products); backends that use the transform rescore
their candidates with the original vectors (:func:`rescore`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["MipsToL2", "rescore"]


@dataclass(frozen=True)
class MipsToL2:
    """The MIPS-to-L2 augmentation for items whose norms are at most ``max_norm``."""

    max_norm: float

    @classmethod
    def fit(cls, items: np.ndarray) -> MipsToL2:
        """The transform for ``items`` [n, d] (``max_norm`` = their largest norm)."""
        norms = np.linalg.norm(np.asarray(items, dtype=np.float32), axis=1)
        return cls(float(norms.max(initial=0.0)))

    def covers(self, items: np.ndarray) -> bool:
        """Whether every row of ``items`` has norm <= ``max_norm`` (else the transform must be refitted)."""
        norms = np.linalg.norm(np.asarray(items, dtype=np.float32), axis=1)
        return bool(norms.max(initial=0.0) <= self.max_norm * (1 + 1e-6))

    def items(self, items: np.ndarray) -> np.ndarray:
        """Items [n, d] -> [n, d + 1] float32, every row of norm ``max_norm``."""
        items = np.asarray(items, dtype=np.float32)
        squared = np.einsum("ij,ij->i", items.astype(np.float64), items.astype(np.float64))
        extra = np.sqrt(np.maximum(self.max_norm**2 - squared, 0.0)).astype(np.float32)
        return np.ascontiguousarray(np.hstack([items, extra[:, None]]), dtype=np.float32)

    def queries(self, queries: np.ndarray) -> np.ndarray:
        """Queries [q, d] -> [q, d + 1] float32 (a zero appended)."""
        queries = np.asarray(queries, dtype=np.float32)
        return np.ascontiguousarray(np.hstack([queries, np.zeros((queries.shape[0], 1), np.float32)]))


def rescore(
    items: np.ndarray, queries: np.ndarray, labels: np.ndarray, k: int, *, chunk: int = 4096
) -> tuple[np.ndarray, np.ndarray]:
    """Exact inner products of candidate ``labels`` [q, c] (``-1`` = none), then the best ``k`` per row.

    Returns ``(labels [q, k] int64, scores [q, k] float32)`` sorted by score descending (ties: smaller
    label first), ``-1`` / ``-inf`` where a row has fewer than ``k`` distinct candidates.
    """
    labels = np.asarray(labels, dtype=np.int64)
    n_queries, width = labels.shape
    out_labels = np.full((n_queries, k), -1, dtype=np.int64)
    out_scores = np.full((n_queries, k), -np.inf, dtype=np.float32)
    if width == 0:
        return out_labels, out_scores
    step = max(1, chunk * 16 // max(width, 1))
    for start in range(0, n_queries, step):
        rows = labels[start : start + step]
        valid = rows >= 0
        gathered = items[np.where(valid, rows, 0)]  # [r, c, d]
        scores = np.einsum("rcd,rd->rc", gathered, queries[start : start + step], dtype=np.float32)
        scores = np.where(valid, scores, -np.inf).astype(np.float32)
        # Duplicated candidates (a backend may return one twice) keep one copy.
        order = np.argsort(rows, axis=1, kind="stable")
        sorted_rows = np.take_along_axis(rows, order, axis=1)
        duplicate = np.zeros_like(valid)
        duplicate[:, 1:] = (sorted_rows[:, 1:] == sorted_rows[:, :-1]) & (sorted_rows[:, 1:] >= 0)
        dup_mask = np.empty_like(duplicate)
        np.put_along_axis(dup_mask, order, duplicate, axis=1)
        scores = np.where(dup_mask, -np.inf, scores)
        rows = np.where(dup_mask | ~valid, -1, rows)
        # Best first; ties by label (invalid slots last).
        key_label = np.where(rows >= 0, rows, np.iinfo(np.int64).max)
        best = np.lexsort((key_label, -scores.astype(np.float64)), axis=1)[:, :k]
        top_rows = np.take_along_axis(rows, best, axis=1)
        top_scores = np.take_along_axis(scores, best, axis=1)
        top_scores = np.where(top_rows >= 0, top_scores, -np.inf)
        out_labels[start : start + step, : top_rows.shape[1]] = top_rows
        out_scores[start : start + step, : top_rows.shape[1]] = top_scores
    return out_labels, out_scores
