"""Multi-interest retrieval: query every interest vector of a user, then merge into one top-k list.

A multi-interest model (MIND, ComiRec...) gives each user ``K`` vectors. Its recall list is the
top-k items by the user's *best* interest score (the max over interests, the same rule as
``RecallModel.score``). Querying each interest for its own top-k and merging the ``K * k``
candidates by best score without duplicates gives exactly that list when the retriever is exact:
an item in the global top-k by max score is in the top-k of the interest that scores it best.

This is the one place in recall-zoo where interests are merged; every retriever backend and the
evaluator use it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from zoo.errors import UsageError
from zoo.retrieval.filtering import as_id_lists, combine_lists, overfetch_search, supports_filters


def _to_numpy(array: Any) -> np.ndarray:
    if hasattr(array, "detach"):  # torch.Tensor, without importing torch
        array = array.detach().to("cpu").numpy()
    return np.asarray(array)


def _check_topk(topk: Any) -> int:
    if isinstance(topk, bool) or not isinstance(topk, (int, np.integer)) or topk <= 0:
        raise UsageError(f"topk must be a positive integer, got {topk!r}")
    return int(topk)


def merge_interest_results(ids: Any, scores: Any, topk: int) -> tuple[np.ndarray, np.ndarray]:
    """Merge per-interest candidates into one top-``topk`` list per user.

    Args:
        ids: int [U, M] candidate ids per user (typically ``M = K * k``: the ``k`` results of each of
            ``K`` interests side by side); ``-1`` marks padding and is ignored.
        scores: float [U, M] the candidates' scores, higher is better.
        topk: length of each merged list.

    Returns:
        ``(ids int64 [U, topk], scores float32 [U, topk])``: per user the distinct candidate ids,
        each with its best score, sorted by score descending (ties: smaller id first), padded with
        id ``-1`` / score ``-inf`` when fewer than ``topk`` distinct candidates exist.
    """
    k = _check_topk(topk)
    id_array = _to_numpy(ids)
    score_array = _to_numpy(scores)
    if id_array.ndim != 2 or score_array.shape != id_array.shape:
        raise UsageError(
            f"ids and scores must be 2-D arrays of the same shape [users, candidates], got {id_array.shape}"
            f" and {score_array.shape}"
        )
    if id_array.size and not np.issubdtype(id_array.dtype, np.integer):
        raise UsageError(f"ids must be integers, got dtype {id_array.dtype}")
    id_array = id_array.astype(np.int64, copy=False)
    score_array = score_array.astype(np.float32, copy=False)
    users, width = id_array.shape

    if width:
        # 1. group equal ids, best score first inside each group (lexsort: last key is primary).
        order = np.lexsort((-score_array, id_array), axis=1)
        sorted_ids = np.take_along_axis(id_array, order, axis=1)
        sorted_scores = np.take_along_axis(score_array, order, axis=1)
        # 2. keep the first (best) occurrence of each id; drop padding.
        keep = sorted_ids >= 0
        keep[:, 1:] &= sorted_ids[:, 1:] != sorted_ids[:, :-1]
        # 3. rank the kept candidates: kept before dropped, score descending, id ascending.
        order = np.lexsort((sorted_ids, -sorted_scores, ~keep), axis=1)[:, :k]
        out_keep = np.take_along_axis(keep, order, axis=1)
        out_ids = np.where(out_keep, np.take_along_axis(sorted_ids, order, axis=1), -1)
        out_scores = np.where(out_keep, np.take_along_axis(sorted_scores, order, axis=1), -np.inf)
    else:
        out_ids = np.empty((users, 0), dtype=np.int64)
        out_scores = np.empty((users, 0), dtype=np.float32)

    if out_ids.shape[1] < k:
        pad = k - out_ids.shape[1]
        out_ids = np.pad(out_ids, ((0, 0), (0, pad)), constant_values=-1)
        out_scores = np.pad(out_scores, ((0, 0), (0, pad)), constant_values=-np.inf)
    return out_ids.astype(np.int64, copy=False), out_scores.astype(np.float32, copy=False)


def query_interests(
    retriever: Any, vectors: Any, topk: int, *, allow: Any = None, exclude: Any = None
) -> tuple[np.ndarray, np.ndarray]:
    """Query ``retriever`` with plain or multi-interest user vectors.

    Args:
        retriever: a fitted :class:`zoo.retrieval.Retriever` (anything with ``query(vectors, topk)``).
        vectors: numpy array or torch tensor, ``[U, D]`` (one vector per user, or one ``[D]`` vector)
            or ``[U, K, D]`` (``K`` interests per user).
        topk: number of results per user.
        allow, exclude: per-user (or shared) id lists, as ``Retriever.query`` takes them
            (:mod:`zoo.retrieval.filtering`); a user's lists apply to each of its interests. A
            retriever whose ``query`` takes no filters is filtered here by over-fetching.

    Returns:
        ``(ids int64 [U, topk], scores float32 [U, topk])``. For ``[U, K, D]`` all ``U * K`` vectors
        are sent in one query of ``topk`` each, and the ``K`` lists of every user are merged by
        :func:`merge_interest_results` (best score per item, no duplicates).
    """
    k = _check_topk(topk)
    array = _to_numpy(vectors)
    if array.ndim in (1, 2):
        return _query(retriever, array, k, allow, exclude)
    if array.ndim != 3:
        raise UsageError(
            f"user vectors must be [users, dim] or [users, interests, dim], got shape {array.shape}"
        )
    users, interests, dim = array.shape
    if users == 0 or interests == 0:
        raise UsageError(f"query_interests() got no query vectors (shape {array.shape}); pass at least one")
    if allow is not None:
        allow = as_id_lists(allow, users, name="allow").repeat(interests)
    if exclude is not None:
        exclude = as_id_lists(exclude, users, name="exclude").repeat(interests)
    ids, scores = _query(retriever, array.reshape(users * interests, dim), k, allow, exclude)
    width = interests * k
    return merge_interest_results(ids.reshape(users, width), scores.reshape(users, width), k)


def _query(
    retriever: Any, array: np.ndarray, k: int, allow: Any, exclude: Any
) -> tuple[np.ndarray, np.ndarray]:
    """``retriever.query`` with the filters it takes; over-fetching for a retriever without filters."""
    if allow is None and exclude is None:
        return retriever.query(array, k)
    if supports_filters(retriever):
        return retriever.query(array, k, allow=allow, exclude=exclude)
    single = array.ndim == 1
    rows = array[None, :] if single else array
    n = rows.shape[0]
    lists = as_id_lists(
        allow if allow is not None else exclude, n, name="allow" if allow is not None else "exclude"
    )
    if allow is not None and exclude is not None:
        lists = combine_lists(lists, as_id_lists(exclude, n, name="exclude"), n)
    ids, scores = overfetch_search(retriever.query, rows, k, len(retriever), lists, allow=allow is not None)
    return (ids[0], scores[0]) if single else (ids, scores)
