"""HNSW retrieval with hnswlib (inner-product space).

Defaults (``M=32, ef_construction=200, ef=64``) were tuned on 200k x 64 embedding-like vectors
(:func:`zoo.testing.retrievers.embedding_like`): recall@10 about 0.96 against exact search there.
Queries from a two-tower *user* tower lie away from the item vectors, and a graph index needs a much
larger ``ef`` for them (``docs/retrievers.md`` has the measurements); ``zoo bench`` measures your own.

The base class normalises vectors for ``metric="cosine"``, so the backend always runs hnswlib's
``'ip'`` space, whose distance is ``1 - dot``; scores are converted back to higher-is-better dots.

hnswlib raises when a query cannot collect ``k`` results (``ef`` too small, ``k`` close to the
catalogue size, or parts of the graph unreachable with a small ``M``). Queries therefore search with
``ef = max(ef, k)``; when hnswlib still fails (it fails the whole batch), the rows that cannot reach
``k`` items are found by bisection and answered by brute force over the stored vectors, so a query
never fails and never returns fewer than ``min(k, count)`` results.

Filtered queries (``allow`` / ``exclude``) pass hnswlib's ``filter`` callable to ``knn_query``, one
call per distinct list (one call for a list shared by every query): the graph search skips forbidden
items while it collects results, and rows it cannot fill fall back to brute force over the allowed
items, as above.
"""

from __future__ import annotations

import importlib.metadata
import struct
from pathlib import Path
from typing import Any

import hnswlib
import numpy as np

from zoo.errors import ModelFileError, UsageError
from zoo.retrieval.base import Retriever
from zoo.retrieval.filtering import LabelFilter
from zoo.retrieval.threads import resolve_threads

INDEX_FILE = "hnsw.bin"
DEFAULTS: dict[str, int] = {"M": 32, "ef_construction": 200, "seed": 100, "num_threads": -1, "ef": 64}
_BRUTE_FORCE_CHUNK = 1024
# Start of hnswlib's file header (HierarchicalNSW::saveIndex): offsetLevel0, max_elements,
# cur_element_count, size_data_per_element, label_offset, offsetData (size_t), maxlevel (int), ...
_FILE_HEADER = struct.Struct("<6Qi")


def _int_param(name: str, value: Any, *, minimum: int, allow_all: bool = False) -> int:
    ok = not isinstance(value, bool) and isinstance(value, (int, np.integer))
    if ok and not (value >= minimum or (allow_all and value == -1)):
        ok = False
    if not ok:
        extra = " or -1 (all cores)" if allow_all else ""
        raise UsageError(f"retriever 'hnsw': {name} must be an integer >= {minimum}{extra}, got {value!r}")
    return int(value)


class HnswRetriever(Retriever):
    """Approximate top-k with an hnswlib HNSW graph; ``supports_add``.

    Args:
        metric: ``"ip"`` or ``"cosine"``.
        M: graph degree (build; more = better recall, more memory).
        ef_construction: candidate list size while building (build).
        seed: random seed of the level generator (build).
        num_threads: threads for building and querying, ``-1`` = all cores; ``1`` makes the build
            deterministic.
        ef: candidate list size while querying (query parameter; raised to ``k`` when smaller).
    """

    name = "hnsw"
    build_param_names = ("M", "ef_construction", "seed", "num_threads")
    query_param_names = ("ef",)
    supports_add = True
    native_filters = True

    def __init__(self, metric: str = "ip", **params: Any) -> None:
        super().__init__(metric, **params)
        for key in self.build_param_names:
            self.build_params.setdefault(key, DEFAULTS[key])
        self.query_params.setdefault("ef", DEFAULTS["ef"])
        self._m = _int_param("M", self.build_params["M"], minimum=2)
        self._ef_construction = _int_param("ef_construction", self.build_params["ef_construction"], minimum=1)
        self._seed = _int_param("seed", self.build_params["seed"], minimum=0)
        # hnswlib runs a query batch on one thread when given -1 as its default: resolve -1 here.
        self._threads = resolve_threads(
            _int_param("num_threads", self.build_params["num_threads"], minimum=1, allow_all=True)
        )
        self._ef = _int_param("ef", self.query_params["ef"], minimum=1)
        self._index: Any = None

    @classmethod
    def backend_version(cls) -> str:
        try:
            return f"hnswlib {importlib.metadata.version('hnswlib')}"
        except importlib.metadata.PackageNotFoundError:  # pragma: no cover - e.g. a vendored build
            return "hnswlib"

    def memory_bytes(self) -> int | None:
        """Bytes of the graph and vectors (hnswlib's serialised size, which mirrors its memory layout)."""
        return None if self._index is None else int(self._index.index_file_size())

    # -- backend primitives ------------------------------------------------------------------
    def _new_index(self) -> Any:
        index = hnswlib.Index(space="ip", dim=int(self.dim or 0))
        return index

    def _build(self, vectors: np.ndarray) -> None:
        n = vectors.shape[0]
        index = self._new_index()
        index.init_index(
            max_elements=n, M=self._m, ef_construction=self._ef_construction, random_seed=self._seed
        )
        index.set_num_threads(self._threads)
        index.add_items(vectors, np.arange(n, dtype=np.int64), num_threads=self._threads)
        index.set_ef(self._ef)
        self._index = index

    def _add(self, vectors: np.ndarray, start: int) -> None:
        end = start + vectors.shape[0]
        capacity = self._index.get_max_elements()
        if capacity < end:
            self._index.resize_index(max(end, start + start // 2))
        self._index.add_items(vectors, np.arange(start, end, dtype=np.int64), num_threads=self._threads)

    def _knn(self, queries: np.ndarray, k: int, ef: int, keep: Any = None) -> tuple[np.ndarray, np.ndarray]:
        self._index.set_ef(ef)
        try:
            labels, distances = self._index.knn_query(queries, k=k, num_threads=self._threads, filter=keep)
        finally:
            self._index.set_ef(self._ef)
        # hnswlib's 'ip' distance is 1 - dot: convert back to a higher-is-better score.
        return labels.astype(np.int64, copy=False), (1.0 - distances).astype(np.float32, copy=False)

    def _search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        return self._search_rows(queries, k)

    def _search_filtered(
        self, queries: np.ndarray, k: int, label_filter: LabelFilter
    ) -> tuple[np.ndarray, np.ndarray]:
        """hnswlib's ``filter`` callable, one ``knn_query`` per distinct list (one for a shared list)."""

        def search(group: np.ndarray, take: int, listed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            members = frozenset(listed.tolist())
            if label_filter.allow:
                keep = members.__contains__
            else:

                def keep(label: int) -> bool:
                    return label not in members

            return self._search_rows(group, take, keep, lambda: label_filter.passing(listed))

        return label_filter.search_groups(queries, k, search)

    def _search_rows(
        self, queries: np.ndarray, k: int, keep: Any = None, allowed: Any = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Graph search of every row (restricted to labels where ``keep(label)``); rows the graph cannot
        answer with ``k`` items are answered by brute force (over ``allowed()`` labels when filtered)."""
        ef = max(self._ef, k)
        try:
            return self._knn(queries, k, ef, keep)
        except RuntimeError:  # "Cannot return the results in a contiguous 2D array": a row found < k
            pass
        # hnswlib fails the whole batch. A larger ef cannot help: with fewer than ef results found the
        # search has already visited every node it can reach. Bisect to find the failing rows (the
        # others keep their graph answers), then answer those rows exactly, in one batch.
        n_queries = queries.shape[0]
        labels = np.empty((n_queries, k), dtype=np.int64)
        scores = np.empty((n_queries, k), dtype=np.float32)
        failed: list[int] = []
        pending = [(0, n_queries // 2), (n_queries // 2, n_queries)]
        while pending:
            lo, hi = pending.pop()
            if lo == hi:
                continue
            try:
                labels[lo:hi], scores[lo:hi] = self._knn(queries[lo:hi], k, ef, keep)
            except RuntimeError:
                if hi - lo == 1:
                    failed.append(lo)
                else:
                    mid = (lo + hi) // 2
                    pending += [(lo, mid), (mid, hi)]
        if failed:
            rows = np.asarray(failed, dtype=np.int64)
            labels[rows], scores[rows] = self._brute_force(
                queries[rows], k, None if allowed is None else allowed()
            )
        return labels, scores

    def _brute_force(
        self, queries: np.ndarray, k: int, allowed: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Exact top-k over the stored vectors, or over the sorted ``allowed`` labels (``k`` of them at
        least); the last resort when the graph cannot reach k items."""
        candidates = np.arange(self.count) if allowed is None else np.asarray(allowed, dtype=np.int64)
        items = np.asarray(self._index.get_items(candidates, return_type="numpy"), dtype=np.float32)
        n_queries = queries.shape[0]
        labels = np.empty((n_queries, k), dtype=np.int64)
        scores = np.empty((n_queries, k), dtype=np.float32)
        for start in range(0, n_queries, _BRUTE_FORCE_CHUNK):
            block = queries[start : start + _BRUTE_FORCE_CHUNK] @ items.T
            if k < block.shape[1]:
                top = np.argpartition(-block, k - 1, axis=1)[:, :k]
            else:
                top = np.broadcast_to(np.arange(block.shape[1]), block.shape)
            top_scores = np.take_along_axis(block, top, axis=1)
            order = np.lexsort((top, -top_scores), axis=1)
            labels[start : start + block.shape[0]] = candidates[np.take_along_axis(top, order, axis=1)]
            scores[start : start + block.shape[0]] = np.take_along_axis(top_scores, order, axis=1)
        return labels, scores

    def _apply_query_params(self) -> None:
        self._ef = _int_param("ef", self.query_params.get("ef", DEFAULTS["ef"]), minimum=1)
        if self._index is not None:
            self._index.set_ef(self._ef)

    def _save_index(self, directory: Path) -> None:
        self._index.save_index(str(directory / INDEX_FILE))

    def _check_file_header(self, path: Path) -> None:
        """Check count and dimension in hnswlib's own header against ours before hnswlib parses the file.

        The JSON header is not covered by the checksums: an edited ``dim`` would make hnswlib read
        vectors of the wrong size (out of bounds) instead of failing.
        """
        with path.open("rb") as fh:
            raw = fh.read(_FILE_HEADER.size)
        if len(raw) < _FILE_HEADER.size:
            raise ModelFileError(f"{path}: too short for an hnswlib index; rebuild it")
        _, _, count, per_element, label_offset, data_offset, _ = _FILE_HEADER.unpack(raw)
        vector_bytes = label_offset - data_offset
        if count != self.count or vector_bytes != 4 * int(self.dim or 0) or per_element != label_offset + 8:
            raise ModelFileError(
                f"{path}: holds {count} vectors of {vector_bytes // 4 if vector_bytes > 0 else '?'} floats,"
                f" the header says {self.count} of dimension {self.dim}; rebuild the index"
            )

    def _load_index(self, directory: Path) -> None:
        path = directory / INDEX_FILE
        self._check_file_header(path)
        index = self._new_index()
        try:
            index.load_index(str(path), max_elements=self.count)
        except (RuntimeError, OSError, ValueError, MemoryError) as exc:
            raise ModelFileError(f"{path}: hnswlib cannot read the index ({exc}); rebuild it") from exc
        if index.get_current_count() != self.count or index.dim != self.dim:
            raise ModelFileError(
                f"{path}: holds {index.get_current_count()} vectors of dimension {index.dim}, the header says"
                f" {self.count} of dimension {self.dim}; rebuild the index"
            )
        index.set_num_threads(self._threads)
        index.set_ef(self._ef)
        self._index = index
