"""Annoy retrieval (random-projection forest), the seed tutorial's ``Annoy(n_trees=10)``.

Metrics:

* ``cosine``: the base class normalises the vectors; Annoy's ``angular`` distance
  ``d = sqrt(2 - 2 cos)`` is turned back into ``cos = 1 - d^2 / 2``.
* ``ip`` with ``mips="l2"`` (default): the MIPS-to-L2 transform (:mod:`zoo.retrieval.transforms`)
  appends ``sqrt(M^2 - |x|^2)`` to every item and ``0`` to every query, Annoy searches ``euclidean``,
  and the candidates are rescored with the exact inner products (a float32 copy of the vectors is
  kept for that).
* ``ip`` with ``mips="native"``: Annoy's own ``dot`` metric. Its trees split on the raw vectors, so
  when item norms vary a lot the forest is unbalanced and recall drops at the same ``search_k``
  (measured in ``docs/retrievers.md``); it needs no vector copy.

Annoy cannot add items to a built index (``supports_add`` is False). Queries run one vector per
Annoy call (the library has no batch call) on ``num_threads`` threads: Annoy releases the GIL while
it searches. ``num_threads=1`` with a fixed ``seed`` makes the build deterministic.

Saved indexes are Annoy's own file (``annoy.ann``), memory-mapped on load as Annoy does; after
``save`` the live index is memory-mapped from the saved file too.
"""

from __future__ import annotations

import gc
import importlib.metadata
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from itertools import chain
from pathlib import Path
from typing import Any

import annoy
import numpy as np

from zoo.errors import ModelFileError, UsageError
from zoo.retrieval.base import Retriever, as_matrix
from zoo.retrieval.threads import resolve_threads
from zoo.retrieval.transforms import MipsToL2, rescore

INDEX_FILE = "annoy.ann"
VECTORS_FILE = "vectors.npy"
DEFAULTS: dict[str, Any] = {"n_trees": 10, "mips": "l2", "seed": 42, "num_threads": -1, "search_k": -1}
MIPS_MODES = ("l2", "native")
METRIC_ALIASES = {"angular": "cosine", "dot": "ip"}  # the seed's (torch-rechub's) Annoy metric names
RECHUB_DEFAULT_METRIC = "angular"  # Torch-RecHub's Annoy default, used by query(v=..., n=...)
# Bytes before the vector in one Annoy node (annoylib.h): angular {n_descendants, children[2]},
# euclidean {n_descendants, a, children[2]}, dot {n_descendants, children[2], dot_factor}.
_NODE_HEADER = {"angular": 12, "euclidean": 16, "dot": 16}
_PARALLEL_MIN_ROWS = 64


def _int_param(name: str, value: Any, *, minimum: int, allow: tuple[int, ...] = ()) -> int:
    ok = (
        not isinstance(value, bool)
        and isinstance(value, (int, np.integer))
        and (value >= minimum or value in allow)
    )
    if not ok:
        extra = "".join(f" or {a}" for a in allow)
        raise UsageError(f"retriever 'annoy': {name} must be an integer >= {minimum}{extra}, got {value!r}")
    return int(value)


@contextmanager
def _no_cyclic_gc() -> Iterator[None]:
    """Pause Python's cyclic garbage collector around the query loop.

    Each query returns fresh lists (three GC-tracked objects), so a batch of 5,000 queries triggers
    about 20 collections, each scanning the young objects, and in a process holding many objects the
    older generations too. The answers form no reference cycles, so those passes find nothing; on
    200k items they cost the plugin 3-7% against a bare loop. The previous state is restored: GC stays
    off if the caller had turned it off, and with concurrent queries the query that turned it off
    turns it back on when it leaves (a later one then runs with GC on: slower, never wrong).
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


class AnnoyRetriever(Retriever):
    """Approximate top-k with an Annoy forest.

    Args:
        metric: ``"ip"`` (default) or ``"cosine"``; the seed's names ``"dot"`` and ``"angular"`` are
            accepted as aliases.
        n_trees: trees in the forest (build; more = better recall, bigger index, slower build).
        mips: how ``ip`` is answered: ``"l2"`` (MIPS-to-L2 transform, default) or ``"native"``
            (Annoy's ``dot`` metric). Ignored for ``cosine``.
        seed: random seed of the tree construction (build).
        num_threads: threads for building and querying, ``-1`` = all cores; ``1`` makes the build
            deterministic.
        search_k: nodes inspected per query (query parameter); ``-1`` = ``n_trees * k`` (Annoy's default).

    Two query forms (docs/retrievers.md):

    * ``query(vectors, topk)``: ours, ids and inner-product (or cosine) scores, best (highest) first;
    * ``query(v=vector, n=10)``: Torch-RecHub's, ``(ids, distances)`` as lists in Annoy's convention for
      Torch-RecHub's metric, nearest first: ``angular`` (Torch-RecHub's default, also when no metric was
      given) ``sqrt(2 - 2 cos)`` ascending, ``dot`` the inner products descending. On an index built
      for inner product without a metric, the first such query builds a cosine index over the same
      vectors to answer it.

    ::

        annoy = Annoy(n_trees=10)
        annoy.fit(item_embeddings)
        ids, scores = annoy.query(user_embeddings[0], topk=10)  # ours
        ids, distances = annoy.query(v=user_embeddings[0], n=10)  # Torch-RecHub's
    """

    name = "annoy"
    build_param_names = ("n_trees", "mips", "seed", "num_threads")
    query_param_names = ("search_k",)
    supports_add = False

    def __init__(self, metric: str | None = None, **params: Any) -> None:
        if metric in ("euclidean", "manhattan", "hamming"):
            raise UsageError(
                f"retriever 'annoy': metric {metric!r} is not supported; use 'angular' (cosine) or 'dot' (ip)"
            )
        #: the metric as given (None: not given); Torch-RecHub's query form reads it
        self.given_metric = metric
        metric = "ip" if metric is None else metric
        super().__init__(METRIC_ALIASES.get(metric, metric), **params)
        for key in self.build_param_names:
            self.build_params.setdefault(key, DEFAULTS[key])
        self.query_params.setdefault("search_k", DEFAULTS["search_k"])
        self._n_trees = _int_param("n_trees", self.build_params["n_trees"], minimum=1)
        self._seed = _int_param("seed", self.build_params["seed"], minimum=0)
        self._threads = _int_param("num_threads", self.build_params["num_threads"], minimum=1, allow=(-1,))
        if self.build_params["mips"] not in MIPS_MODES:
            raise UsageError(
                f"retriever 'annoy': mips must be one of {', '.join(MIPS_MODES)}, got"
                f" {self.build_params['mips']!r}"
            )
        self._search_k = _int_param("search_k", self.query_params["search_k"], minimum=1, allow=(-1,))
        self._index: Any = None
        self._vectors: np.ndarray | None = None  # float32 copy for exact rescoring (mips="l2" only)
        self._transform: MipsToL2 | None = None
        self._file_bytes: int | None = None
        self._rechub_index: AnnoyRetriever | None = None  # cosine index for query(v=, n=) on an ip index

    # -- seed compatibility ------------------------------------------------------------------------
    def set_query_arguments(self, search_k: int) -> AnnoyRetriever:
        """torch-rechub's name for ``set_query_params(search_k=...)``."""
        return self.set_query_params(search_k=search_k)

    def query(  # type: ignore[override]
        self,
        vectors: Any = None,
        topk: Any = None,
        *,
        v: Any = None,
        n: Any = None,
        allow: Any = None,
        exclude: Any = None,
    ) -> tuple[Any, Any]:
        """``query(vectors, topk)``: ours (see :meth:`Retriever.query`); ``query(v=vector, n=k)``:
        Torch-RecHub's ``(ids, distances)`` lists, nearest first (see the class docstring)."""
        if v is None and n is None:
            return super().query(vectors, topk, allow=allow, exclude=exclude)
        if vectors is not None or topk is not None or allow is not None or exclude is not None:
            raise UsageError("query takes either (vectors, topk) or Torch-RecHub's (v=..., n=...), not both")
        matrix, single = as_matrix(v, what="query vector v")
        if not single:
            raise UsageError(
                f"query(v=..., n=...) takes one vector (Torch-RecHub's form), got shape {matrix.shape}"
            )
        wanted = METRIC_ALIASES.get(self.given_metric or RECHUB_DEFAULT_METRIC, "ip")
        index = self if wanted == self.metric else self._cosine_index()
        ids, scores = Retriever.query(index, matrix[0], n)
        found = ids >= 0
        ids, scores = ids[found], scores[found].astype(np.float64)
        distances = np.sqrt(np.maximum(2.0 - 2.0 * scores, 0.0)) if wanted == "cosine" else scores
        return ids.tolist(), distances.tolist()

    def _cosine_index(self) -> AnnoyRetriever:
        """A cosine twin of this inner-product index (same vectors, ids and parameters), built once."""
        if self.dim is None:
            raise UsageError("retriever 'annoy' is empty: call fit(item_vectors) before query()")
        if self._rechub_index is None:
            vectors = self._vectors
            if vectors is None:  # mips="native": Annoy's dot index keeps the vectors themselves
                vectors = np.array([self._index.get_item_vector(i)[: self.dim] for i in range(self.count)])
            params = {k: v for k, v in self.build_params.items() if k != "mips"}
            self._rechub_index = AnnoyRetriever("cosine", **params).fit(vectors, ids=self._ids)
        self._rechub_index.set_query_params(search_k=self._search_k)
        return self._rechub_index

    @classmethod
    def backend_version(cls) -> str:
        try:
            return f"annoy {importlib.metadata.version('annoy')}"
        except importlib.metadata.PackageNotFoundError:  # pragma: no cover
            return "annoy"

    # -- layout ------------------------------------------------------------------------------------------
    @property
    def annoy_metric(self) -> str:
        """The Annoy metric actually searched."""
        if self.metric == "cosine":
            return "angular"
        return "euclidean" if self.build_params["mips"] == "l2" else "dot"

    @property
    def _transformed(self) -> bool:
        return self.annoy_metric == "euclidean"

    @property
    def _annoy_dim(self) -> int:
        return int(self.dim or 0) + (1 if self._transformed else 0)

    @property
    def threads(self) -> int:
        return resolve_threads(self._threads)

    def memory_bytes(self) -> int | None:
        """Bytes held by the index: Annoy's node array (known once saved or loaded) plus the vector copy."""
        if self._file_bytes is None:
            return None
        return self._file_bytes + (0 if self._vectors is None else int(self._vectors.nbytes))

    # -- backend primitives ------------------------------------------------------------------------
    def _build(self, vectors: np.ndarray) -> None:
        self._rechub_index = None
        data = vectors
        if self._transformed:
            self._vectors = np.array(vectors, dtype=np.float32, copy=True)
            self._transform = MipsToL2.fit(vectors)
            data = self._transform.items(vectors)
        else:
            self._vectors = None
            self._transform = None
        index = annoy.AnnoyIndex(data.shape[1], self.annoy_metric)
        index.set_seed(self._seed)
        rows = data.tolist()  # one list per row: faster for Annoy than numpy rows
        for label, row in enumerate(rows):
            index.add_item(label, row)
        index.build(self._n_trees, n_jobs=self._threads)
        self._index = index
        self._file_bytes = None

    def _search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        data = self._transform.queries(queries) if self._transform is not None else queries
        rows = data.tolist()
        n_queries = len(rows)
        search_k = self._search_k
        get = self._index.get_nns_by_vector
        # With the transform, scores come from exact rescoring: Annoy's distances are not needed, and
        # not building them saves about 6% of the query time.
        distances_wanted = self._transform is None

        def work(bounds: tuple[int, int]) -> list[Any]:
            return [get(row, k, search_k, distances_wanted) for row in rows[bounds[0] : bounds[1]]]

        threads = min(self.threads, max(1, n_queries // _PARALLEL_MIN_ROWS))
        with _no_cyclic_gc():
            if threads <= 1:
                results = work((0, n_queries))
            else:  # Annoy releases the GIL while it searches
                edges = np.linspace(0, n_queries, threads * 4 + 1).astype(int).tolist()
                with ThreadPoolExecutor(max_workers=threads) as pool:
                    parts = pool.map(work, zip(edges[:-1], edges[1:], strict=True))
                    results = [pair for part in parts for pair in part]
        found_lists = [f for f, _ in results] if distances_wanted else results
        total = n_queries * k
        try:  # every row holds k results (rows never hold more): flatten without per-row numpy calls
            labels = np.fromiter(chain.from_iterable(found_lists), np.int64, total).reshape(n_queries, k)
            distances = (
                np.fromiter(chain.from_iterable(d for _, d in results), np.float32, total).reshape(
                    n_queries, k
                )
                if distances_wanted
                else None
            )
        except ValueError:  # some rows are short
            labels, distances = self._fill_short_rows(rows, results, k, distances_wanted)
        if self._transform is not None:
            assert self._vectors is not None
            return rescore(self._vectors, queries, labels, k)
        assert distances is not None
        if self.annoy_metric == "angular":
            scores = 1.0 - distances.astype(np.float64) ** 2 / 2.0
        else:  # "dot": Annoy reports the inner product itself
            scores = distances
        scores = np.where(labels >= 0, scores, -np.inf).astype(np.float32)
        return labels, scores

    def _fill_short_rows(
        self, rows: list[list[float]], results: list[Any], k: int, distances_wanted: bool
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Labels (and distances) [n, k] padded with -1 where the forest offered fewer than k candidates
        (tiny ``search_k``): such a row is searched again over every node."""
        get = self._index.get_nns_by_vector
        labels = np.full((len(rows), k), -1, dtype=np.int64)
        distances = np.zeros((len(rows), k), dtype=np.float32) if distances_wanted else None
        exhaustive = min(self._n_trees * max(self.count, 1) * 2, 2**31 - 1)  # Annoy's search_k is a C int
        for r, answer in enumerate(results):
            found = answer[0] if distances_wanted else answer
            if len(found) < k:
                answer = get(rows[r], k, exhaustive, distances_wanted)
                found = answer[0] if distances_wanted else answer
            labels[r, : len(found)] = found
            if distances is not None:
                distances[r, : len(found)] = answer[1]
        return labels, distances

    def _apply_query_params(self) -> None:
        self._search_k = _int_param("search_k", self.query_params.get("search_k", -1), minimum=1, allow=(-1,))

    def _save_index(self, directory: Path) -> None:
        path = directory / INDEX_FILE
        if not self._index.save(str(path)):  # pragma: no cover - annoy raises on I/O errors itself
            raise ModelFileError(f"{path}: annoy could not write the index")
        self._file_bytes = path.stat().st_size
        if self._vectors is not None:
            np.save(directory / VECTORS_FILE, self._vectors, allow_pickle=False)

    def _load_index(self, directory: Path) -> None:
        path = directory / INDEX_FILE
        size = path.stat().st_size
        node_bytes = _NODE_HEADER[self.annoy_metric] + 4 * self._annoy_dim
        if size == 0 or size % node_bytes:
            raise ModelFileError(
                f"{path}: {size} bytes is not a whole number of {self.annoy_metric} nodes of dimension"
                f" {self._annoy_dim}; the header does not match the index, rebuild it"
            )
        index = annoy.AnnoyIndex(self._annoy_dim, self.annoy_metric)
        try:
            index.load(str(path))
        except (OSError, RuntimeError, ValueError) as exc:
            raise ModelFileError(f"{path}: annoy cannot read the index ({exc}); rebuild it") from exc
        if index.get_n_items() != self.count:
            raise ModelFileError(
                f"{path}: holds {index.get_n_items()} items, the header says {self.count}; rebuild the index"
            )
        self._index = index
        self._file_bytes = size
        if self._transformed:
            vectors_path = directory / VECTORS_FILE
            try:
                vectors = np.load(vectors_path, allow_pickle=False)
            except (OSError, ValueError) as exc:
                raise ModelFileError(
                    f"{vectors_path}: unreadable vector file ({exc}); rebuild the index"
                ) from exc
            if vectors.dtype != np.float32 or vectors.shape != (self.count, self.dim):
                raise ModelFileError(
                    f"{vectors_path}: holds {vectors.dtype} {vectors.shape}, the header says float32"
                    f" ({self.count}, {self.dim}); rebuild the index"
                )
            self._vectors = np.ascontiguousarray(vectors)
            self._transform = MipsToL2.fit(self._vectors)
