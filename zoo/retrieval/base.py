"""The Retriever contract every ANN (or exact) backend implements.

A retriever indexes item vectors and answers top-k queries with **higher-is-better** scores:

* ``fit(vectors, ids=None)`` builds the index (``ids`` default to ``0..n-1``);
* ``add(vectors, ids)`` appends, where the backend supports it;
* ``query(vectors, topk) -> (ids int64 [Q, k], scores float32 [Q, k])``, rows sorted by score, padded
  with id ``-1`` / score ``-inf`` when fewer than ``k`` items exist; a single 1-D vector gives 1-D
  results (the seed's ``annoy.query(user_embeddings[0], topk=10)``);
* ``query(vectors, topk, allow=..., exclude=...)``: filtered retrieval, per query an allow-list or an
  exclude-list of item ids, or one list for every query (forms: :mod:`zoo.retrieval.filtering`);
  ``k`` results still come back while enough items remain;
* ``set_query_params(**p)`` changes query-time parameters without rebuilding;
* ``save(dir)`` / ``load(dir)`` with a small JSON header (backend, version, metric, dim, count, params).

Subclasses implement the ``_build``, ``_add``, ``_search``, ``_save_index`` and ``_load_index``
primitives on internal labels ``0..count-1``; this base class validates input, applies the cosine
normalisation, maps labels to the caller's ids and writes files atomically. Filtered queries reach
``_search_filtered`` with a :class:`~zoo.retrieval.filtering.LabelFilter` (labels, sorted and unique
per row); a backend that can filter inside its search overrides it and sets ``native_filters``, and
every other backend gets the exact fallback: over-fetch ``_search`` and drop what the filter forbids.
"""

from __future__ import annotations

import json
import os
import shutil
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from zoo._version import __version__
from zoo.errors import ModelFileError, UsageError, one_line
from zoo.io import atomic_dir, commit_dir, file_records, read_json_header, verify_files
from zoo.retrieval.filtering import (
    DEFAULT_CHUNK_SIZE,
    IdLists,
    LabelFilter,
    as_id_lists,
    combine_lists,
    overfetch_search,
)

HEADER_FILE = "index.json"
IDS_FILE = "ids.npy"
FORMAT_NAME = "recall-zoo-index"
FORMAT_VERSION = 1


def as_matrix(vectors: Any, *, what: str = "vectors") -> tuple[np.ndarray, bool]:
    """Convert a numpy array / torch tensor / list to C-contiguous float32 [n, d].

    Returns the matrix and whether the input was a single 1-D vector.
    """
    if hasattr(vectors, "detach"):  # torch.Tensor without importing torch
        vectors = vectors.detach().to("cpu").numpy()
    array = np.asarray(vectors, dtype=np.float32)
    single = array.ndim == 1
    if single:
        array = array[None, :]
    if array.ndim != 2:
        raise UsageError(f"{what} must be a 2-D array [n, dim] (or one 1-D vector), got shape {array.shape}")
    if not np.isfinite(array).all():
        raise UsageError(f"{what} contain NaN or infinite values; check the model's embeddings")
    return np.ascontiguousarray(array), single


def normalize_rows(array: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(array, axis=1, keepdims=True)
    return array / np.maximum(norms, 1e-12)


def _verify_files(directory: Path, header: dict[str, Any]) -> None:
    """Reject a truncated or corrupted index before any backend library parses it (which may crash)."""
    verify_files(directory, header.get("files"), header=directory / HEADER_FILE, what="rebuild the index")


def _check_header(path: Path, header: dict[str, Any]) -> None:
    """The header's fields have the types :meth:`Retriever.load` relies on (an edited file is refused)."""
    header.setdefault("build_params", {})
    header.setdefault("query_params", {})
    expected = {"metric": str, "dim": int, "count": int, "build_params": dict, "query_params": dict}
    for key, kind in expected.items():
        value = header.get(key)
        if not isinstance(value, kind) or isinstance(value, bool) or (kind is int and value < 0):
            raise ModelFileError(
                f"{path}: field '{key}' is {value!r}; the header is damaged, rebuild the index"
            )


class Retriever(ABC):
    """Base class of every retrieval backend (see module docstring for the contract).

    Args:
        metric: ``"ip"`` (inner product) or ``"cosine"``.
        **params: the backend's build and query parameters (see its ``RetrieverSpec``).
    """

    name: ClassVar[str] = ""
    build_param_names: ClassVar[tuple[str, ...]] = ()
    query_param_names: ClassVar[tuple[str, ...]] = ()
    supports_add: ClassVar[bool] = False
    #: ``query`` takes ``allow=`` / ``exclude=`` (always: the base class filters when the backend cannot)
    supports_filters: ClassVar[bool] = True
    #: the backend filters inside its search (``_search_filtered`` overridden); False: over-fetch and drop
    native_filters: ClassVar[bool] = False
    #: query rows per over-fetch call of the fallback filter
    filter_chunk_size: ClassVar[int] = DEFAULT_CHUNK_SIZE
    #: a native backend gets batches of more per-query exclude-lists than this over-fetched (one
    #: batched search per chunk instead of one search per list; see :meth:`_filtered_search`)
    filter_batch_rows: ClassVar[int] = 32
    #: the most results one ``_search`` call may ask for (a database's limit); over-fetching stays below
    max_search_k: ClassVar[int] = 2**62

    def __init__(self, metric: str = "ip", **params: Any) -> None:
        if metric not in ("ip", "cosine"):
            raise UsageError(f"metric must be 'ip' or 'cosine', got {metric!r}")
        unknown = sorted(set(params) - set(self.build_param_names) - set(self.query_param_names))
        if unknown:
            raise UsageError(
                f"retriever '{self.name}' has no parameter {', '.join(map(repr, unknown))};"
                f" its parameters are {', '.join(self.build_param_names + self.query_param_names) or 'none'}"
            )
        self.metric = metric
        self.build_params: dict[str, Any] = {k: v for k, v in params.items() if k in self.build_param_names}
        self.query_params: dict[str, Any] = {k: v for k, v in params.items() if k in self.query_param_names}
        self.dim: int | None = None
        self._ids: np.ndarray = np.empty(0, dtype=np.int64)
        self._positional_ids: tuple[np.ndarray, bool] | None = None  # (ids array, ids == arange(count))
        self._id_order: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None  # (ids, argsort, sorted)

    # -- public API ---------------------------------------------------------------------------
    @property
    def count(self) -> int:
        """Number of indexed vectors."""
        return int(self._ids.shape[0])

    def __len__(self) -> int:
        return self.count

    @property
    def ids(self) -> np.ndarray:
        return self._ids

    def fit(self, vectors: Any, ids: Any = None) -> Retriever:
        """Build the index over ``vectors`` [n, d]; ``ids`` (int64, unique) default to ``0..n-1``."""
        matrix, _ = as_matrix(vectors, what="item vectors")
        if matrix.shape[0] == 0:
            raise UsageError("cannot build an index over zero item vectors")
        id_array = self._check_ids(ids, matrix.shape[0], existing=None)
        self.dim = int(matrix.shape[1])
        self._ids = id_array
        self._build(self._prepare(matrix))
        return self

    def add(self, vectors: Any, ids: Any) -> Retriever:
        """Append vectors with new unique ``ids`` to a fitted index."""
        if not self.supports_add:
            raise UsageError(
                f"retriever '{self.name}' cannot add to a built index; call fit() with all vectors"
            )
        if self.dim is None:
            return self.fit(vectors, ids)
        matrix, _ = as_matrix(vectors, what="item vectors")
        self._check_dim(matrix, "item vectors")
        id_array = self._check_ids(ids, matrix.shape[0], existing=self._ids)
        start = self.count
        self._ids = np.concatenate([self._ids, id_array])
        self._add(self._prepare(matrix), start)
        return self

    def query(
        self, vectors: Any, topk: int, *, allow: Any = None, exclude: Any = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-``topk`` ids and scores per query vector (see module docstring).

        Args:
            vectors: ``[Q, D]`` query vectors, or one ``[D]`` vector (1-D results).
            topk: results per query.
            allow: only these item ids may be returned: one list for every query or one per query
                (:mod:`zoo.retrieval.filtering` lists the forms); ids not in the index are ignored.
            exclude: these item ids are never returned (same forms). With ``allow``: ``allow``
                minus ``exclude``.

        Returns:
            ``(ids int64 [Q, topk], scores float32 [Q, topk])``, best first; a row holds ``topk``
            results while enough items pass its filter, then ``-1`` / ``-inf`` padding.
        """
        if self.dim is None:
            raise UsageError(f"retriever '{self.name}' is empty: call fit(item_vectors) before query()")
        if isinstance(topk, bool) or not isinstance(topk, (int, np.integer)) or topk <= 0:
            raise UsageError(f"topk must be a positive integer, got {topk!r}")
        matrix, single = as_matrix(vectors, what="query vectors")
        if matrix.shape[0] == 0:
            raise UsageError("query() got zero query vectors; pass at least one")
        self._check_dim(matrix, "query vectors")
        k = int(topk)
        k_eff = min(k, self.count)
        label_filter = self._label_filter(allow, exclude, matrix.shape[0])
        if label_filter is None:
            labels, scores = self._search(self._prepare(matrix), k_eff)
        else:
            labels, scores = self._filtered_search(self._prepare(matrix), k_eff, label_filter)
        labels = np.asarray(labels, dtype=np.int64)
        scores = np.asarray(scores, dtype=np.float32)
        if labels.size and labels.min() >= 0:  # every slot answered (the common case: no masking)
            ids = labels if self._ids_are_positions() else self._ids[labels]
        else:
            valid = labels >= 0
            ids = np.where(valid, self._ids[np.where(valid, labels, 0)], -1)
            scores = np.where(valid, scores, -np.inf).astype(np.float32)
        if k_eff < k:
            pad = k - k_eff
            ids = np.pad(ids, ((0, 0), (0, pad)), constant_values=-1)
            scores = np.pad(scores, ((0, 0), (0, pad)), constant_values=-np.inf)
        if single:
            return ids[0], scores[0]
        return ids, scores

    def labels_of(self, ids: Any) -> tuple[np.ndarray, np.ndarray]:
        """Internal labels of item ``ids`` (any shape): ``(labels, found)``, label 0 where not found."""
        ids = np.asarray(ids, dtype=np.int64)
        if self._ids_are_positions():
            found = (ids >= 0) & (ids < self.count)
            return np.where(found, ids, 0), found
        cached = self._id_order
        if cached is None or cached[0] is not self._ids:
            order = np.argsort(self._ids, kind="stable")
            cached = self._id_order = (self._ids, order, self._ids[order])
        _, order, sorted_ids = cached
        position = np.searchsorted(sorted_ids, ids).clip(max=max(self.count - 1, 0))
        found = sorted_ids[position] == ids if self.count else np.zeros(ids.shape, dtype=bool)
        return np.where(found, order[position], 0), found

    def _label_filter(self, allow: Any, exclude: Any, n_queries: int) -> LabelFilter | None:
        """The ``allow`` / ``exclude`` arguments as one filter on labels (None: no filter)."""
        if allow is None and exclude is None:
            return None
        allowed = None if allow is None else as_id_lists(allow, n_queries, name="allow")
        excluded = None if exclude is None else as_id_lists(exclude, n_queries, name="exclude")
        if allowed is not None and excluded is not None:
            allowed, excluded = combine_lists(allowed, excluded, n_queries), None
        lists = allowed if allowed is not None else excluded
        assert lists is not None
        labels, found = self.labels_of(lists.ids)
        if not found.all():  # ids the index does not hold are ignored
            row = lists.row_of_entries()[found]
            labels = labels[found]
            sizes = np.bincount(row, minlength=lists.rows)
            lists = IdLists(np.concatenate([[0], np.cumsum(sizes)]), labels, shared=lists.shared)
        else:
            lists = IdLists(lists.indptr, labels, shared=lists.shared)
        return LabelFilter.from_labels(allowed is not None, lists, self.count, n_queries)

    def set_query_params(self, **params: Any) -> Retriever:
        """Change query-time parameters (no rebuild)."""
        unknown = sorted(set(params) - set(self.query_param_names))
        if unknown:
            raise UsageError(
                f"retriever '{self.name}' has no query parameter {', '.join(map(repr, unknown))};"
                f" its query parameters are {', '.join(self.query_param_names) or 'none'}"
            )
        previous = dict(self.query_params)
        self.query_params.update(params)
        try:
            self._apply_query_params()
        except BaseException:  # a rejected value must not linger (save() would write it to the header)
            self.query_params = previous
            raise
        return self

    def header(self) -> dict[str, Any]:
        return {
            "format": FORMAT_NAME,
            "format_version": FORMAT_VERSION,
            "backend": self.name,
            "backend_version": self.backend_version(),
            "zoo_version": __version__,
            "metric": self.metric,
            "dim": self.dim,
            "count": self.count,
            "build_params": dict(self.build_params),
            "query_params": dict(self.query_params),
        }

    def save(self, directory: str | os.PathLike[str]) -> Path:
        """Write the index to ``directory`` atomically (a crash leaves no half-written index)."""
        if self.dim is None:
            raise UsageError(f"retriever '{self.name}' is empty: nothing to save")
        target = Path(directory)
        tmp = atomic_dir(target)
        try:
            np.save(tmp / IDS_FILE, self._ids, allow_pickle=False)
            self._save_index(tmp)
            header = self.header()
            header["files"] = file_records(tmp)
            (tmp / HEADER_FILE).write_text(json.dumps(header, indent=2, sort_keys=True) + "\n")
            commit_dir(tmp, target)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return target

    @classmethod
    def read_header(cls, directory: str | os.PathLike[str]) -> dict[str, Any]:
        """The index's ``index.json`` header, checked for format and version."""
        return read_json_header(
            Path(directory) / HEADER_FILE,
            format_name=FORMAT_NAME,
            format_version=FORMAT_VERSION,
            what="an index",
        )

    @classmethod
    def load(cls, directory: str | os.PathLike[str]) -> Retriever:
        """Load an index written by :meth:`save` (the caller picks the class from the header's backend)."""
        header = cls.read_header(directory)
        if cls.name and header.get("backend") != cls.name:
            raise ModelFileError(
                f"{directory}: index was built by backend '{header.get('backend')}', not '{cls.name}'"
            )
        _verify_files(Path(directory), header)
        _check_header(Path(directory) / HEADER_FILE, header)
        try:
            retriever = cls(metric=header["metric"], **header["build_params"], **header["query_params"])
        except (TypeError, ValueError, UsageError) as exc:
            raise ModelFileError(
                f"{Path(directory) / HEADER_FILE}: its settings do not build the index ({one_line(exc)});"
                " rebuild the index"
            ) from None
        try:
            ids = np.load(Path(directory) / IDS_FILE, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise ModelFileError(f"{Path(directory) / IDS_FILE}: unreadable id file ({exc})") from exc
        if ids.dtype != np.int64 or ids.ndim != 1 or ids.shape[0] != header.get("count"):
            raise ModelFileError(
                f"{Path(directory) / IDS_FILE}: id file does not match the header (count"
                f" {header.get('count')})"
            )
        retriever.dim = int(header["dim"])
        retriever._ids = ids
        retriever._load_index(Path(directory))
        retriever._apply_query_params()
        return retriever

    # -- helpers ---------------------------------------------------------------------------------
    def _ids_are_positions(self) -> bool:
        """Whether item ids equal internal labels (``fit`` without ids): answers then need no id lookup.
        Cached per ids array (``fit``, ``add`` and ``load`` each assign a new one)."""
        ids = self._ids
        cached = self._positional_ids
        if cached is None or cached[0] is not ids:
            positional = ids.size == 0 or (
                int(ids[-1]) == ids.size - 1 and np.array_equal(ids, np.arange(ids.size))
            )
            cached = self._positional_ids = (ids, bool(positional))
        return cached[1]

    def _prepare(self, matrix: np.ndarray) -> np.ndarray:
        return normalize_rows(matrix) if self.metric == "cosine" else matrix

    def _check_dim(self, matrix: np.ndarray, what: str) -> None:
        if matrix.shape[1] != self.dim:
            raise UsageError(
                f"{what} have dimension {matrix.shape[1]}, but the index holds dimension {self.dim}"
            )

    @staticmethod
    def _check_ids(ids: Any, n: int, existing: np.ndarray | None) -> np.ndarray:
        if ids is None:
            start = 0 if existing is None or existing.size == 0 else int(existing.max()) + 1
            return np.arange(start, start + n, dtype=np.int64)
        if hasattr(ids, "detach"):
            ids = ids.detach().to("cpu").numpy()
        array = np.asarray(ids)
        if array.ndim != 1 or array.shape[0] != n:
            raise UsageError(f"ids must be a 1-D array with one id per vector ({n}), got shape {array.shape}")
        if not np.issubdtype(array.dtype, np.integer):
            raise UsageError(f"ids must be integers, got dtype {array.dtype}")
        array = array.astype(np.int64)
        if (array < 0).any():
            raise UsageError("ids must be non-negative (-1 marks padding in results)")
        combined = array if existing is None else np.concatenate([existing, array])
        if np.unique(combined).shape[0] != combined.shape[0]:
            raise UsageError("ids must be unique (an id may be indexed once)")
        return array

    @classmethod
    def backend_version(cls) -> str:
        """Version of the library behind the backend (shown in headers and reports)."""
        return ""

    # -- backend primitives ---------------------------------------------------------------------
    @abstractmethod
    def _build(self, vectors: np.ndarray) -> None:
        """Index ``vectors`` as labels ``0..n-1`` (already normalised for cosine)."""

    def _add(self, vectors: np.ndarray, start: int) -> None:
        """Append ``vectors`` as labels ``start..start+n-1``."""
        raise NotImplementedError

    @abstractmethod
    def _search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Return (labels [q, k] with -1 for missing, scores [q, k]) for ``k <= count``, best first.

        Return new arrays (not views of the index's own buffers): they may be handed to the caller."""

    def _filtered_search(
        self, queries: np.ndarray, k: int, label_filter: LabelFilter
    ) -> tuple[np.ndarray, np.ndarray]:
        """Route a filtered query: native where it pays, over-fetching where that is cheaper.

        A native backend searches once per distinct list, which suits a shared list, allow-lists and
        small batches (a serving request). A batch of more than :attr:`filter_batch_rows` per-query
        exclude-lists (an evaluation over every user) is cheaper as batched searches for ``k`` plus
        each list's length, dropping the excluded items: rows whose over-fetch would ask for more
        than half the catalogue (or :attr:`max_search_k`) stay native. Both are exact with respect to
        the backend's own search."""
        if (
            not self.native_filters
            or label_filter.allow
            or label_filter.shared
            or label_filter.n_queries <= self.filter_batch_rows
        ):
            return self._search_filtered(queries, k, label_filter)
        light = k + label_filter.sizes() <= min(self.count // 2, self.max_search_k)
        if light.all():
            return Retriever._search_filtered(self, queries, k, label_filter)
        if not light.any():
            return self._search_filtered(queries, k, label_filter)
        labels = np.full((queries.shape[0], k), -1, dtype=np.int64)
        scores = np.full((queries.shape[0], k), -np.inf, dtype=np.float32)
        over, native = np.flatnonzero(light), np.flatnonzero(~light)
        labels[over], scores[over] = Retriever._search_filtered(
            self, queries[over], k, label_filter.take(over)
        )
        labels[native], scores[native] = self._search_filtered(queries[native], k, label_filter.take(native))
        return labels, scores

    def _search_filtered(
        self, queries: np.ndarray, k: int, label_filter: LabelFilter
    ) -> tuple[np.ndarray, np.ndarray]:
        """Like :meth:`_search`, each row restricted by ``label_filter``: at most ``k`` labels, best first,
        ``-1`` / ``-inf`` in the slots beyond what the row's filter lets through.

        The default is exact with respect to :meth:`_search`'s ranking: it asks :meth:`_search` for more
        than ``k`` results (``k`` plus the exclude-list's length; for an allow-list, enough to expect
        ``k`` allowed ones, more for rows still short) and drops what the filter forbids. A backend
        that can filter inside its search overrides this and sets ``native_filters = True``."""
        return overfetch_search(
            self._search,
            queries,
            k,
            self.count,
            label_filter.lists,
            allow=label_filter.allow,
            chunk_size=self.filter_chunk_size,
        )

    def _apply_query_params(self) -> None:  # noqa: B027 - optional hook, a no-op by default
        """Push ``self.query_params`` into the live index (no rebuild)."""

    @abstractmethod
    def _save_index(self, directory: Path) -> None:
        """Write the backend's own files into ``directory``."""

    @abstractmethod
    def _load_index(self, directory: Path) -> None:
        """Read the backend's own files from ``directory`` (``dim``, ``ids`` and params are set)."""
