"""Querying a retriever while excluding items per user (the user's already-seen items)."""

from __future__ import annotations

from typing import Any

import numpy as np

from zoo.retrieval.merge import query_interests


def drop_excluded(
    ids: np.ndarray, scores: np.ndarray, exclude: tuple[np.ndarray, np.ndarray], topk: int
) -> tuple[np.ndarray, np.ndarray]:
    """Remove each row's excluded ids (CSR of ids) from ranked results and keep the first ``topk``.

    Vectorised: a (row, id) key per candidate is looked up in the sorted excluded keys.
    """
    indptr, excluded = (np.asarray(a, dtype=np.int64) for a in exclude)
    rows = ids.shape[0]
    stride = int(max(ids.max(initial=0), excluded.max(initial=0))) + 2
    owner = np.repeat(np.arange(rows, dtype=np.int64), np.diff(indptr))
    excluded_keys = np.sort(owner * stride + excluded)
    keys = np.arange(rows, dtype=np.int64)[:, None] * stride + ids
    position = np.searchsorted(excluded_keys, keys).clip(max=max(len(excluded_keys) - 1, 0))
    drop = (ids < 0) | (
        (excluded_keys[position] == keys) if len(excluded_keys) else np.zeros_like(ids, dtype=bool)
    )
    order = np.argsort(drop, axis=1, kind="stable")[:, :topk]
    kept_ids = np.take_along_axis(ids, order, axis=1)
    kept_scores = np.take_along_axis(scores, order, axis=1)
    kept_drop = np.take_along_axis(drop, order, axis=1)
    kept_ids = np.where(kept_drop, -1, kept_ids)
    kept_scores = np.where(kept_drop, -np.inf, kept_scores).astype(np.float32)
    if kept_ids.shape[1] < topk:
        pad = topk - kept_ids.shape[1]
        kept_ids = np.pad(kept_ids, ((0, 0), (0, pad)), constant_values=-1)
        kept_scores = np.pad(kept_scores, ((0, 0), (0, pad)), constant_values=-np.inf)
    return kept_ids, kept_scores


def query_excluding(
    retriever: Any,
    vectors: Any,
    topk: int,
    exclude: tuple[np.ndarray, np.ndarray] | None = None,
    *,
    chunk_size: int = 2048,
) -> tuple[np.ndarray, np.ndarray]:
    """Top-``topk`` per user from ``retriever`` with each user's ``exclude`` ids (CSR) removed.

    Users are processed in chunks ordered by how many items they exclude; a chunk asks the index for
    ``topk`` plus its largest exclusion count, so a few heavy users do not inflate everyone's query.
    Works for single vectors [U, D] and K interests [U, K, D] (merged by best score in the core).
    """
    if exclude is None:
        return query_interests(retriever, vectors, topk)
    vectors = vectors.detach().cpu().numpy() if hasattr(vectors, "detach") else np.asarray(vectors)
    indptr, excluded = (np.asarray(a, dtype=np.int64) for a in exclude)
    counts = np.diff(indptr)
    users = vectors.shape[0]
    out_ids = np.full((users, topk), -1, dtype=np.int64)
    out_scores = np.full((users, topk), -np.inf, dtype=np.float32)
    order = np.argsort(counts, kind="stable")
    for start in range(0, users, chunk_size):
        chunk = order[start : start + chunk_size]
        k_query = int(min(topk + counts[chunk].max(initial=0), max(len(retriever), 1)))
        ids, scores = query_interests(retriever, vectors[chunk], max(k_query, 1))
        sub_counts = counts[chunk]
        sub_indptr = np.concatenate([[0], np.cumsum(sub_counts)])
        gather = np.repeat(indptr[chunk] - sub_indptr[:-1], sub_counts) + np.arange(sub_indptr[-1])
        sub_excluded = excluded[gather]
        kept_ids, kept_scores = drop_excluded(ids, scores, (sub_indptr, sub_excluded), topk)
        out_ids[chunk] = kept_ids
        out_scores[chunk] = kept_scores
    return out_ids, out_scores
