"""Filtered retrieval: per-query allow-lists and exclude-lists of item ids.

``Retriever.query(vectors, topk, allow=..., exclude=...)`` takes, for each filter, either

* one list of item ids for every query (a 1-D array or a list of ints: out-of-stock items), or
* one list per query (a list of lists, a 2-D array, or :class:`IdLists`, the compact form: the
  items each user has seen).

``allow`` keeps only the listed ids, ``exclude`` removes them; both together allow ``allow`` minus
``exclude``. Ids the index does not hold are ignored. A query still gets ``topk`` results while
enough items remain; the rest of its row is padded with id ``-1`` / score ``-inf``.

This module owns the filter types and the two generic ways to filter:

* :class:`LabelFilter`: what a backend's ``Retriever._search_filtered`` receives (internal labels,
  sorted and unique per row), for backends that filter inside their search;
* :func:`overfetch_search`: exact filtering over any unfiltered search: ask for more results than
  ``topk`` and drop what the filter forbids. ``Retriever`` uses it for backends without native
  filtering, and :func:`query_excluding` for any object with ``query(vectors, topk)``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from zoo.errors import UsageError

__all__ = [
    "IdLists",
    "LabelFilter",
    "as_id_lists",
    "combine_lists",
    "drop_excluded",
    "overfetch_search",
    "query_excluding",
    "supports_filters",
]

#: rows per over-fetch chunk: rows are grouped by list size, so a few long lists do not make every
#: row of the batch ask for many more results
DEFAULT_CHUNK_SIZE = 2048


# -- per-query id lists ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class IdLists:
    """Item ids per query in compressed rows: query ``i``'s ids are ``ids[indptr[i]:indptr[i + 1]]``.

    With ``shared=True`` there is one list (``indptr == [0, len(ids)]``) that applies to every query.

    Args:
        indptr: int64 ``[rows + 1]``, non-decreasing, from 0 to ``len(ids)``.
        ids: int64 ``[nnz]``, the concatenated lists (repeats allowed).
        shared: one list for every query.
    """

    indptr: np.ndarray
    ids: np.ndarray
    shared: bool = False

    def __post_init__(self) -> None:
        indptr = _int_vector(self.indptr, "indptr")
        ids = _int_vector(self.ids, "ids")
        if indptr.size == 0 or indptr[0] != 0 or indptr[-1] != ids.size or (np.diff(indptr) < 0).any():
            raise UsageError(
                f"IdLists: indptr must rise from 0 to len(ids) = {ids.size}, got {indptr[:5].tolist()}..."
            )
        if self.shared and indptr.size != 2:
            raise UsageError("IdLists: a shared list has exactly one row (indptr [0, len(ids)])")
        object.__setattr__(self, "indptr", indptr)
        object.__setattr__(self, "ids", ids)

    @classmethod
    def from_lists(cls, lists: Any) -> IdLists:
        """One list of ids per query, from any sequence of 1-D integer sequences."""
        rows = [_int_vector(row, "each list") for row in lists]
        sizes = np.fromiter((row.size for row in rows), dtype=np.int64, count=len(rows))
        indptr = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        ids = np.concatenate(rows).astype(np.int64) if rows else np.empty(0, dtype=np.int64)
        return cls(indptr, ids)

    @classmethod
    def one_for_all(cls, ids: Any) -> IdLists:
        """One list that applies to every query."""
        array = _int_vector(ids, "ids")
        return cls(np.array([0, array.size], dtype=np.int64), array, shared=True)

    @property
    def rows(self) -> int:
        """Number of lists (1 for a shared list)."""
        return int(self.indptr.size - 1)

    def row(self, i: int) -> np.ndarray:
        """The ids of query ``i`` (the shared list for every ``i`` when shared)."""
        i = 0 if self.shared else int(i)
        return self.ids[self.indptr[i] : self.indptr[i + 1]]

    def sizes(self, n_queries: int) -> np.ndarray:
        """List length per query, ``[n_queries]``."""
        sizes = np.diff(self.indptr)
        return np.full(n_queries, sizes[0], dtype=np.int64) if self.shared else sizes

    def take(self, rows: np.ndarray) -> IdLists:
        """The lists of queries ``rows`` (in that order); a shared list stays shared."""
        if self.shared:
            return self
        rows = np.asarray(rows, dtype=np.int64)
        sizes = np.diff(self.indptr)[rows]
        indptr = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        gather = np.repeat(self.indptr[rows] - indptr[:-1], sizes) + np.arange(indptr[-1], dtype=np.int64)
        return IdLists(indptr, self.ids[gather])

    def repeat(self, times: int) -> IdLists:
        """Each list repeated ``times`` times in a row (one copy per interest of a user)."""
        if self.shared or times == 1:
            return self
        return self.take(np.repeat(np.arange(self.rows, dtype=np.int64), times))

    def row_of_entries(self) -> np.ndarray:
        """The query row of every entry of :attr:`ids` (0 for a shared list)."""
        return np.repeat(np.arange(self.rows, dtype=np.int64), np.diff(self.indptr))


def _int_vector(value: Any, what: str) -> np.ndarray:
    if hasattr(value, "detach"):  # torch.Tensor without importing torch
        value = value.detach().to("cpu").numpy()
    array = np.asarray(value)
    if array.size == 0:
        return np.empty(0, dtype=np.int64)
    if array.dtype == bool or array.dtype.kind not in "iu":
        raise UsageError(f"{what}: item ids must be integers, got {array.dtype} values")
    if array.ndim != 1:
        raise UsageError(f"{what}: expected a 1-D list of item ids, got shape {array.shape}")
    return array.astype(np.int64, copy=False)


def _is_id_scalar(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def as_id_lists(value: Any, n_queries: int, *, name: str = "filter") -> IdLists:
    """Read an ``allow`` / ``exclude`` argument for ``n_queries`` queries (forms: module docstring).

    Raises:
        UsageError: ids are not integers, or the number of per-query lists differs from ``n_queries``.
    """
    if isinstance(value, IdLists):
        lists = value
    else:
        if hasattr(value, "detach"):
            value = value.detach().to("cpu").numpy()
        if isinstance(value, np.ndarray) and value.dtype != object:
            if value.ndim == 2:
                lists = IdLists.from_lists(list(value)) if value.shape[0] else IdLists.from_lists([])
            else:
                lists = IdLists.one_for_all(_int_vector(value, name))
        elif isinstance(value, (list, tuple, np.ndarray)):
            if all(_is_id_scalar(v) for v in value):
                lists = IdLists.one_for_all(np.asarray(list(value), dtype=np.int64))
            else:
                lists = IdLists.from_lists(value)
        else:
            raise UsageError(
                f"{name} must be a list of item ids (for every query) or one list per query, got"
                f" {type(value).__name__}"
            )
    if not lists.shared and lists.rows != n_queries:
        raise UsageError(f"{name} holds {lists.rows} per-query lists for {n_queries} query vectors")
    return lists


def combine_lists(allow: IdLists, exclude: IdLists, n_queries: int) -> IdLists:
    """Per query, the ids of ``allow`` that ``exclude`` does not list (an allow-list)."""
    if allow.shared and exclude.shared:
        return IdLists.one_for_all(_difference(_sorted_unique(allow.ids), exclude.ids))
    allow_keys, stride = _row_keys(allow, n_queries, other=exclude)
    exclude_keys, _ = _row_keys(exclude, n_queries, other=allow)
    kept = _difference(_sorted_unique(allow_keys), exclude_keys)  # sorted, unique
    return _from_keys(kept, stride, n_queries)


def _row_keys(lists: IdLists, n_queries: int, *, other: IdLists | None = None) -> tuple[np.ndarray, int]:
    """``row * stride + id`` per entry (a shared list expanded to every row), and the stride."""
    largest = max(int(lists.ids.max(initial=-1)), -1 if other is None else int(other.ids.max(initial=-1)))
    stride = largest + 1
    valid = lists.ids >= 0
    if lists.shared:
        ids = lists.ids[valid]
        keys = (np.arange(n_queries, dtype=np.int64)[:, None] * stride + ids[None, :]).reshape(-1)
    else:
        keys = lists.row_of_entries()[valid] * stride + lists.ids[valid]
    return keys, max(stride, 1)


def _sorted_unique(values: np.ndarray) -> np.ndarray:
    """Sorted distinct values (``np.unique`` without its overhead: one sort and a mask)."""
    ordered = np.sort(values)
    if ordered.size > 1:
        keep = np.empty(ordered.size, dtype=bool)
        keep[0] = True
        np.not_equal(ordered[1:], ordered[:-1], out=keep[1:])
        ordered = ordered[keep]
    return ordered


def _difference(ordered: np.ndarray, remove: np.ndarray) -> np.ndarray:
    """The values of sorted ``ordered`` that ``remove`` does not hold."""
    remove = _sorted_unique(remove)
    if not remove.size or not ordered.size:
        return ordered
    position = np.searchsorted(remove, ordered).clip(max=remove.size - 1)
    return ordered[remove[position] != ordered]


def _from_keys(keys: np.ndarray, stride: int, n_queries: int) -> IdLists:
    rows = keys // stride
    indptr = np.searchsorted(rows, np.arange(n_queries + 1, dtype=np.int64)).astype(np.int64)
    return IdLists(indptr, keys % stride)


# -- what a backend's _search_filtered receives -------------------------------------------------------------
@dataclass(frozen=True)
class LabelFilter:
    """A filter in a backend's internal labels (``0..count-1``), sorted and unique per query row.

    ``allow=True``: a row may return only its listed labels; ``allow=False``: never its listed labels.
    ``lists`` is shared (one list for every row) or has one list per query row.
    """

    allow: bool
    lists: IdLists
    count: int
    n_queries: int

    @classmethod
    def from_labels(cls, allow: bool, lists: IdLists, count: int, n_queries: int) -> LabelFilter:
        """Sort and deduplicate every row of ``lists`` (labels already in ``0..count-1``)."""
        if lists.shared:
            return cls(allow, IdLists.one_for_all(_sorted_unique(lists.ids)), count, n_queries)
        keys, stride = _row_keys(lists, n_queries)
        return cls(allow, _from_keys(_sorted_unique(keys), stride, n_queries), count, n_queries)

    @property
    def shared(self) -> bool:
        return self.lists.shared

    def labels(self, row: int) -> np.ndarray:
        """The sorted labels of query ``row``."""
        return self.lists.row(row)

    def sizes(self) -> np.ndarray:
        """Listed labels per query row."""
        return self.lists.sizes(self.n_queries)

    def available(self) -> np.ndarray:
        """How many items each query row may return."""
        sizes = self.sizes()
        return sizes if self.allow else self.count - sizes

    def groups(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """``(rows, labels)`` for each distinct list: every row at once when the list is shared."""
        if self.shared:
            yield np.arange(self.n_queries, dtype=np.int64), self.lists.ids
            return
        seen: dict[bytes, list[int]] = {}
        for row in range(self.n_queries):
            seen.setdefault(self.labels(row).tobytes(), []).append(row)
        for rows in seen.values():
            yield np.asarray(rows, dtype=np.int64), self.labels(rows[0])

    def search_groups(self, queries: np.ndarray, k: int, search: Any) -> tuple[np.ndarray, np.ndarray]:
        """Answer the queries one group of equal lists at a time (one search for a shared list):
        ``search(group_queries, take, listed)`` returns ``[g, take]`` labels and scores, ``take`` being
        ``min(k, items that pass)``; the slots past it hold -1 and -inf."""
        labels = np.full((queries.shape[0], k), -1, dtype=np.int64)
        scores = np.full((queries.shape[0], k), -np.inf, dtype=np.float32)
        available = self.available()
        for rows, listed in self.groups():
            take = min(k, int(available[rows[0]]))
            if take:
                labels[rows, :take], scores[rows, :take] = search(queries[rows], take, listed)
        return labels, scores

    def passing(self, labels: np.ndarray) -> np.ndarray:
        """The sorted labels a row whose list is ``labels`` may return (the list itself if allowed)."""
        return labels if self.allow else _difference(np.arange(self.count, dtype=np.int64), labels)

    def take(self, rows: np.ndarray) -> LabelFilter:
        """The filter of query rows ``rows`` (in that order)."""
        rows = np.asarray(rows, dtype=np.int64)
        return LabelFilter(self.allow, self.lists.take(rows), self.count, int(rows.size))

    def allowed_mask(self) -> np.ndarray:
        """Dense bool ``[n_queries, count]`` (``[1, count]`` shared): True where a label may be returned."""
        rows = 1 if self.shared else self.n_queries
        mask = np.full((rows, self.count), not self.allow, dtype=bool)
        mask[self.lists.row_of_entries(), self.lists.ids] = self.allow
        return mask


# -- generic filtering over an unfiltered search -----------------------------------------------------------
def _listed(ids: np.ndarray, lists: IdLists) -> np.ndarray:
    """bool like ``ids`` [rows, width]: whether each id is in its row's list."""
    if lists.shared:
        return np.isin(ids, lists.ids)
    rows = ids.shape[0]
    stride = int(max(ids.max(initial=0), lists.ids.max(initial=0))) + 2
    listed_keys = np.sort(lists.row_of_entries() * stride + lists.ids)
    keys = np.arange(rows, dtype=np.int64)[:, None] * stride + ids
    if not len(listed_keys):
        return np.zeros_like(ids, dtype=bool)
    position = np.searchsorted(listed_keys, keys).clip(max=len(listed_keys) - 1)
    return listed_keys[position] == keys


def _keep_first(
    ids: np.ndarray, scores: np.ndarray, drop: np.ndarray, topk: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The first ``topk`` kept results of every ranked row, padded; and how many were kept per row."""
    drop = drop | (ids < 0)
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
    return kept_ids, kept_scores, (~kept_drop).sum(axis=1)


def drop_excluded(
    ids: np.ndarray, scores: np.ndarray, exclude: tuple[np.ndarray, np.ndarray] | IdLists, topk: int
) -> tuple[np.ndarray, np.ndarray]:
    """Remove each row's excluded ids (CSR of ids) from ranked results and keep the first ``topk``.

    Vectorised: a (row, id) key per candidate is looked up in the sorted excluded keys.
    """
    lists = exclude if isinstance(exclude, IdLists) else IdLists(*exclude)
    ids = np.asarray(ids, dtype=np.int64)
    kept_ids, kept_scores, _ = _keep_first(ids, np.asarray(scores), _listed(ids, lists), topk)
    return kept_ids, kept_scores


def overfetch_search(
    search: Callable[[Any, int], tuple[np.ndarray, np.ndarray]],
    queries: Any,
    topk: int,
    total: int,
    lists: IdLists,
    *,
    allow: bool,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> tuple[np.ndarray, np.ndarray]:
    """Filter an unfiltered ``search(queries, k) -> (ids, scores)`` by asking for more than ``topk``.

    Exact with respect to ``search``'s ranking: the result is its ranking with the forbidden ids
    removed. Rows are processed in chunks grouped by list length. An exclude-list of ``m`` ids asks
    for ``topk + m`` results (enough, unless the backend returns short rows); an allow-list asks for
    ``topk * total / len(allow)`` results, four times more for the rows still short of ``topk``
    allowed items, up to ``total`` (every item).

    Args:
        search: the unfiltered search; ``queries[rows]`` are passed to it, with ``k <= total``.
        queries: array whose first axis is the query rows (``[Q, D]`` or ``[Q, K, D]``).
        topk: results per row.
        total: how many items the index holds (the most ``search`` can return).
        lists: the allowed or excluded ids (in ``search``'s id space) per row, or shared.
        allow: ``lists`` are allow-lists (else exclude-lists).
        chunk_size: rows per call of ``search``.

    Returns:
        ``(ids int64 [Q, topk], scores float32 [Q, topk])``, padded with ``-1`` / ``-inf``.
    """
    n_queries = int(queries.shape[0])
    sizes = lists.sizes(n_queries)
    total = max(int(total), 1)
    out_ids = np.full((n_queries, topk), -1, dtype=np.int64)
    out_scores = np.full((n_queries, topk), -np.inf, dtype=np.float32)
    order = np.argsort(-sizes if allow else sizes, kind="stable")
    for start in range(0, n_queries, chunk_size):
        chunk = order[start : start + chunk_size]
        sub_lists = lists.take(chunk)
        if allow:
            smallest = max(int(sizes[chunk].min(initial=0)), 1)
            k_query = min(max(topk, -(-topk * total // smallest)), total)
            need = np.minimum(sizes[chunk], topk)
        else:
            k_query = int(min(topk + sizes[chunk].max(initial=0), total))
            need = np.zeros(chunk.size, dtype=np.int64)  # topk + m results always suffice
        pending = np.arange(chunk.size, dtype=np.int64)
        while pending.size:
            ids, scores = search(queries[chunk[pending]], max(k_query, 1))
            ids = np.asarray(ids, dtype=np.int64)
            pending_lists = sub_lists.take(pending)
            listed = _listed(ids, pending_lists)
            kept_ids, kept_scores, kept = _keep_first(
                ids, np.asarray(scores), ~listed if allow else listed, topk
            )
            out_ids[chunk[pending]] = kept_ids
            out_scores[chunk[pending]] = kept_scores
            if k_query >= total:
                break
            pending = pending[kept < need[pending]]
            k_query = min(k_query * 4, total)
    return out_ids, out_scores


def supports_filters(retriever: Any) -> bool:
    """Whether ``retriever.query`` takes ``allow=`` / ``exclude=`` (every ``zoo.retrieval.Retriever``)."""
    return bool(getattr(retriever, "supports_filters", False))


def query_excluding(
    retriever: Any,
    vectors: Any,
    topk: int,
    exclude: tuple[np.ndarray, np.ndarray] | IdLists | None = None,
    *,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> tuple[np.ndarray, np.ndarray]:
    """Top-``topk`` per user from ``retriever`` with each user's ``exclude`` ids (CSR) removed.

    A :class:`zoo.retrieval.Retriever` filters through its ``query(..., exclude=...)`` (natively where
    the backend can, else exactly by over-fetching). Any other object with ``query(vectors, topk)``
    and ``len()`` is over-fetched here: users are processed in chunks ordered by how many items they
    exclude, and a chunk asks for ``topk`` plus its largest exclusion count. Works for single vectors
    [U, D] and K interests [U, K, D] (merged by best score in the core).
    """
    from zoo.retrieval.merge import _to_numpy, query_interests

    if exclude is None:
        return query_interests(retriever, vectors, topk)
    lists = exclude if isinstance(exclude, IdLists) else IdLists(*exclude)
    if supports_filters(retriever):
        return query_interests(retriever, vectors, topk, exclude=lists)
    return overfetch_search(
        lambda rows, k: query_interests(retriever, rows, k),
        _to_numpy(vectors),
        topk,
        len(retriever),
        lists,
        allow=False,
        chunk_size=chunk_size,
    )
