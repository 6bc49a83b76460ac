"""Faiss retrieval: any index built from a factory string, inner product or cosine.

``index`` is a faiss index-factory string (``"Flat"``, ``"IVF1024,Flat"``, ``"IVF1024,PQ16"``,
``"HNSW32"``, ``"IVF4096_HNSW32,SQ8"``...) or one of the shorthands, sized from the catalogue when
the index is built:

=============  =====================================================================================
``"Flat"``     exact brute force (``IndexFlatIP``)
``"IVF"``      ``IVF{nlist},Flat`` with ``nlist = 4 sqrt(n)`` (at most ``n / 39``, so every list has
               enough training points)
``"IVF-PQ"``   ``IVF{nlist},PQ{m}x{bits}`` with ``m`` the divisor of the dimension closest to
               ``dim / 4`` and 8-bit codes (``m`` bytes per vector; fewer bits below 10k vectors,
               so that every PQ centroid has 39 training points)
``"HNSW"``     ``HNSW32`` (flat storage)
=============  =====================================================================================

IVF (and PQ) indexes are trained on the vectors they index, with ``seed`` for k-means. When the
catalogue has fewer vectors than the index needs to train (fewer than ``nlist`` lists, or fewer than
the 256 PQ centroids), the retriever falls back to an exact ``Flat`` index and says so in
:attr:`FaissRetriever.index_description` and the saved header.

Query parameters (changed without rebuilding): ``nprobe`` (IVF lists visited), ``efSearch`` (HNSW
candidate list, raised to the number of candidates asked for), ``k_factor`` (with rescoring, fetch
``k * k_factor`` candidates and keep the exact best ``k``). A parameter the index does not use is
ignored.

Inner product is native in faiss (``mips="native"``). ``mips="l2"`` applies the MIPS-to-L2 transform
instead (an L2 index over ``[x, sqrt(M^2 - |x|^2)]``), which often suits graph indexes better.
Scores are exact inner products: lossless indexes (``Flat`` storage) report faiss's own, and lossy
encodings (PQ, SQ) or the L2 transform are rescored from a float32 copy of the vectors
(``rescore="auto"``; ``rescore=False`` keeps faiss's approximate scores and saves that memory).

Filtered queries (``allow`` / ``exclude``) search with an ``IDSelectorBatch`` (or its ``IDSelectorNot``)
in the index's ``SearchParameters`` (IVF, HNSW or plain), one search per distinct list; rows the
index cannot fill are searched exhaustively, then by brute force over the allowed items. A list that
lets fewer items pass than an unfiltered query compares (the probed IVF lists, a multiple of
``efSearch``) is answered by scoring exactly those items.

``num_threads`` (``-1`` = all cores) is used for building and querying; ``1`` makes a build
deterministic. Batched queries run in parallel inside faiss (OpenMP).
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from zoo.errors import ModelFileError, UsageError
from zoo.retrieval.base import Retriever, as_matrix
from zoo.retrieval.filtering import LabelFilter
from zoo.retrieval.threads import resolve_threads
from zoo.retrieval.transforms import MipsToL2, rescore

INDEX_FILE = "faiss.index"
VECTORS_FILE = "vectors.npy"
DEFAULTS: dict[str, Any] = {
    "index": "HNSW",
    "mips": "native",
    "rescore": "auto",
    "seed": 1234,
    "num_threads": -1,
    "nprobe": 32,
    "efSearch": 128,
    "k_factor": 1,
}
MIPS_MODES = ("native", "l2")
SHORTHANDS = ("Flat", "IVF", "IVF-PQ", "HNSW")
_LOSSLESS = ("IndexFlat", "IndexFlatIP", "IndexFlatL2", "IndexIVFFlat", "IndexHNSWFlat", "IndexIVFFlatDedup")


RECHUB_ARGS = ("dim", "index_type", "nlist", "m")


def _rechub_params(
    args: tuple[Any, ...], params: dict[str, Any]
) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """Torch-RecHub's ``Faiss(dim, index_type="flat", nlist=100, m=32, metric="l2")`` as ``(our metric,
    our parameters, {"dim", "metric"})``."""
    names = ("dim", "index_type", "nlist", "m", "metric")
    if len(args) > len(names):
        raise UsageError("Faiss takes (dim, index_type, nlist, m, metric)")
    given = dict(zip(names, args, strict=False))
    for key in names:
        if key in params:
            if key in given:
                raise UsageError(f"Faiss got {key} twice")
            given[key] = params.pop(key)
    dim = given.get("dim")
    metric = str(given.get("metric", "l2")).lower()
    index_type = str(given.get("index_type", "flat")).lower()
    nlist = _int_param("nlist", given.get("nlist", 100), minimum=1)
    m = _int_param("m", given.get("m", 32), minimum=2)
    if metric not in ("l2", "ip"):
        raise UsageError(f"Faiss: metric must be 'l2' or 'ip' (Torch-RecHub's), got {metric!r}")
    factories = {"flat": "Flat", "ivf": f"IVF{nlist},Flat", "hnsw": f"HNSW{m}"}
    if index_type not in factories:
        raise UsageError(f"Faiss: index_type must be flat, ivf or hnsw (Torch-RecHub's), got {index_type!r}")
    if dim is not None:
        dim = _int_param("dim", dim, minimum=1)
    params.setdefault("index", factories[index_type])
    if index_type == "ivf":  # Torch-RecHub probes a quarter of the lists
        params.setdefault("nprobe", min(nlist, max(1, nlist // 4)))
    return "ip", params, {"dim": dim, "metric": metric}


@contextlib.contextmanager
def omp_threads(threads: int) -> Iterator[None]:
    """Run faiss with ``threads`` OpenMP threads, restoring the previous setting afterwards."""
    previous = faiss.omp_get_max_threads()
    if threads != previous:
        faiss.omp_set_num_threads(threads)
    try:
        yield
    finally:
        if threads != previous:
            faiss.omp_set_num_threads(previous)


def _int_param(name: str, value: Any, *, minimum: int, allow: tuple[int, ...] = ()) -> int:
    ok = (
        not isinstance(value, bool)
        and isinstance(value, (int, np.integer))
        and (value >= minimum or value in allow)
    )
    if not ok:
        extra = "".join(f" or {a}" for a in allow)
        raise UsageError(f"retriever 'faiss': {name} must be an integer >= {minimum}{extra}, got {value!r}")
    return int(value)


def auto_nlist(n: int) -> int:
    """IVF lists for ``n`` vectors: ``4 sqrt(n)``, at most ``n / 39`` (faiss's minimum points per list)."""
    return max(1, min(int(round(4 * math.sqrt(n))), n // 39))


def pq_subquantizers(dim: int) -> int:
    """The divisor of ``dim`` closest to ``dim / 4`` (each sub-quantizer codes about 4 dimensions)."""
    divisors = [m for m in range(1, dim + 1) if dim % m == 0]
    return min(divisors, key=lambda m: (abs(m - dim / 4), -m))


def pq_bits(n: int) -> int:
    """Bits per PQ code for ``n`` training vectors: 8, or fewer so that every centroid gets 39 points."""
    return int(min(8, max(1, math.floor(math.log2(max(n, 2) / 39))))) if n >= 78 else 1


def resolve_factory(index: str, n: int, dim: int) -> str:
    """A faiss factory string for ``index`` (a shorthand or a factory string) over ``n`` x ``dim``."""
    key = index.strip()
    if key.lower() == "flat":
        return "Flat"
    if key.upper() == "IVF":
        return f"IVF{auto_nlist(n)},Flat"
    if key.upper() in ("IVF-PQ", "IVFPQ"):
        return f"IVF{auto_nlist(n)},PQ{pq_subquantizers(dim)}x{pq_bits(n)}"
    if key.upper() == "HNSW":
        return "HNSW32"
    return key


class FaissRetriever(Retriever):
    """Approximate (or exact) top-k with a faiss index; ``supports_add``.

    Args:
        metric: ``"ip"`` or ``"cosine"``.
        index: factory string or shorthand (``Flat``, ``IVF``, ``IVF-PQ``, ``HNSW``); build parameter.
        mips: ``"native"`` (faiss inner product) or ``"l2"`` (MIPS-to-L2 transform); build parameter.
        rescore: ``"auto"``, ``True`` or ``False``: keep a float32 copy and rescore candidates exactly
            (``auto``: for lossy encodings and the L2 transform); build parameter.
        seed: k-means seed for IVF / PQ training; build parameter.
        num_threads: OpenMP threads for building and querying, ``-1`` = all cores.
        nprobe, efSearch, k_factor: query parameters (see module docstring).

    Torch-RecHub's constructor ``Faiss(dim, index_type="flat", nlist=100, m=32, metric="l2")`` is
    accepted too (a first argument that is an integer, or any of ``dim``, ``index_type``, ``nlist``,
    ``m``, or ``metric="l2"``, selects it): ``flat`` / ``ivf`` / ``hnsw`` become ``Flat`` /
    ``IVF{nlist},Flat`` / ``HNSW{m}``. Its ``l2`` metric is answered by inner product over items
    ``[x, -|x|^2 / 2]`` and queries ``[q, 1]`` (the same ranking as squared L2); our ``query(vectors,
    topk)`` then scores ``-|q - x|^2``. ``query(v=..., n=...)`` returns Torch-RecHub's ``(indices,
    distances)`` as nested lists ``[Q][n]``: squared L2 distances ascending, or inner products
    descending with ``metric="ip"``.
    """

    name = "faiss"
    build_param_names = ("index", "mips", "rescore", "seed", "num_threads")
    query_param_names = ("nprobe", "efSearch", "k_factor")
    supports_add = True
    native_filters = True

    def __init__(self, *args: Any, **params: Any) -> None:
        first = args[0] if args else params.get("metric", "ip")
        rechub = len(args) > 1 or not isinstance(first, str) or first == "l2"
        rechub = rechub or bool(set(params) & set(RECHUB_ARGS))
        #: Torch-RecHub's ``(dim, metric)`` when built with its constructor, else None
        self.rechub: dict[str, Any] | None = None
        if rechub:
            metric, params, self.rechub = _rechub_params(args, params)
        else:
            metric = first
            params.pop("metric", None)
        super().__init__(metric, **params)
        for key in self.build_param_names:
            self.build_params.setdefault(key, DEFAULTS[key])
        for key in self.query_param_names:
            self.query_params.setdefault(key, DEFAULTS[key])
        if not isinstance(self.build_params["index"], str) or not self.build_params["index"].strip():
            raise UsageError(
                f"retriever 'faiss': index must be a faiss factory string or one of {', '.join(SHORTHANDS)},"
                f" got {self.build_params['index']!r}"
            )
        if self.build_params["mips"] not in MIPS_MODES:
            raise UsageError(
                f"retriever 'faiss': mips must be one of {', '.join(MIPS_MODES)}, got"
                f" {self.build_params['mips']!r}"
            )
        if self.build_params["rescore"] not in ("auto", True, False):
            raise UsageError(
                "retriever 'faiss': rescore must be 'auto', true or false, got"
                f" {self.build_params['rescore']!r}"
            )
        self._seed = _int_param("seed", self.build_params["seed"], minimum=0)
        self._threads = _int_param("num_threads", self.build_params["num_threads"], minimum=1, allow=(-1,))
        self._check_query_params()
        self._index: Any = None
        self._vectors: np.ndarray | None = None  # float32 copy (original space) when rescoring
        self._transform: MipsToL2 | None = None
        self.index_description = ""

    @classmethod
    def backend_version(cls) -> str:
        try:
            return f"faiss {importlib.metadata.version('faiss-cpu')}"
        except importlib.metadata.PackageNotFoundError:  # pragma: no cover - faiss-gpu or a conda build
            return f"faiss {getattr(faiss, '__version__', '')}".strip()

    # -- properties ------------------------------------------------------------------------------------
    @property
    def _l2(self) -> bool:
        return self.build_params["mips"] == "l2"

    @property
    def threads(self) -> int:
        return resolve_threads(self._threads)

    @property
    def faiss_index(self) -> Any:
        """The underlying faiss index (for inspection; do not modify it)."""
        return self._index

    def header(self) -> dict[str, Any]:
        header = super().header()
        header["index_description"] = self.index_description
        return header

    def memory_bytes(self) -> int | None:
        """Bytes held by the index (faiss's serialised size) plus the rescoring copy, if any."""
        if self._index is None:
            return None
        size = int(faiss.serialize_index(self._index).nbytes)
        return size + (0 if self._vectors is None else int(self._vectors.nbytes))

    def _check_query_params(self) -> None:
        self._nprobe = _int_param("nprobe", self.query_params["nprobe"], minimum=1)
        self._ef_search = _int_param("efSearch", self.query_params["efSearch"], minimum=1)
        self._k_factor = _int_param("k_factor", self.query_params["k_factor"], minimum=1)

    # -- building ----------------------------------------------------------------------------------------
    def _space(self, vectors: np.ndarray) -> np.ndarray:
        return self._transform.items(vectors) if self._transform is not None else vectors

    def _new_index(self, data: np.ndarray) -> tuple[Any, str, bool]:
        """(untrained index, its description, whether it stores vectors losslessly)."""
        n, dim = data.shape
        description = resolve_factory(str(self.build_params["index"]), n, dim)
        metric = faiss.METRIC_L2 if self._l2 else faiss.METRIC_INNER_PRODUCT
        try:
            index = faiss.index_factory(dim, description, metric)
        except RuntimeError as exc:
            reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else "invalid"
            raise UsageError(
                f"retriever 'faiss': index {description!r} is not a faiss factory string for dimension {dim}"
                f" ({reason}); try Flat, IVF, IVF-PQ, HNSW or e.g. 'IVF1024,PQ16'"
            ) from None
        needed = self._training_size(index)
        if needed > n:
            index = faiss.IndexFlat(dim, metric)
            description = (
                f"Flat (exact: {n} vectors are too few to train {description!r}, which needs {needed})"
            )
        lossless = type(faiss.downcast_index(index)).__name__ in _LOSSLESS
        return index, description, lossless

    def _training_size(self, index: Any) -> int:
        """Fewest vectors ``index`` can be trained on (0 when it needs no training); sets the k-means
        seeds."""
        if index.is_trained:
            return 0
        needed = 1
        try:
            ivf = faiss.downcast_index(faiss.extract_index_ivf(index))
        except RuntimeError:
            ivf = None
        if ivf is not None:
            needed = max(needed, int(ivf.nlist))
            ivf.cp.seed = self._seed
        encoder = ivf if ivf is not None else faiss.downcast_index(index)
        if getattr(encoder, "do_polysemous_training", False):
            # The factory enables polysemous training for PQ ("np" disables it): slow, and only used by
            # Hamming-filtered search, which this retriever never turns on.
            encoder.do_polysemous_training = False
        pq = getattr(encoder, "pq", None)
        if pq is not None:
            needed = max(needed, int(pq.ksub))
            pq.cp.seed = self._seed
        return needed

    def _build(self, vectors: np.ndarray) -> None:
        self._transform = MipsToL2.fit(vectors) if self._l2 else None
        data = self._space(vectors)
        index, description, lossless = self._new_index(data)
        rescoring = self._l2 or (
            not lossless if self.build_params["rescore"] == "auto" else bool(self.build_params["rescore"])
        )
        with omp_threads(self.threads):
            if not index.is_trained:
                index.train(data)
            index.add(data)
        self._index = index
        self.index_description = description
        self._vectors = np.array(vectors, dtype=np.float32, copy=True) if rescoring else None
        self._apply_query_params()

    def _add(self, vectors: np.ndarray, start: int) -> None:
        if self._transform is not None and not self._transform.covers(vectors):
            # A longer vector than any indexed one breaks the transform: rebuild over everything.
            assert self._vectors is not None
            self._build(np.vstack([self._vectors, vectors]))
            return
        with omp_threads(self.threads):
            self._index.add(self._space(vectors))
        if self._vectors is not None:
            self._vectors = np.vstack([self._vectors, np.asarray(vectors, dtype=np.float32)])

    # -- Torch-RecHub's form -------------------------------------------------------------------------------
    @property
    def _l2_space(self) -> bool:
        return self.rechub is not None and self.rechub["metric"] == "l2"

    def fit(self, vectors: Any, ids: Any = None) -> FaissRetriever:
        """Build the index (see :meth:`Retriever.fit`); Torch-RecHub's ``l2`` indexes the items as
        ``[x, -|x|^2 / 2]``."""
        if self.rechub is not None:
            matrix, _ = as_matrix(vectors, what="item vectors")
            if self.rechub["dim"] is not None and matrix.shape[1] != self.rechub["dim"]:
                raise UsageError(
                    f"Faiss(dim={self.rechub['dim']}) got item vectors of dimension {matrix.shape[1]}"
                )
            if self._l2_space:
                vectors = np.hstack([matrix, -0.5 * np.square(matrix).sum(axis=1, keepdims=True)])
        super().fit(vectors, ids)
        return self

    def query(  # type: ignore[override]
        self, vectors: Any = None, topk: Any = None, *, v: Any = None, n: Any = None, **filters: Any
    ) -> tuple[Any, Any]:
        """``query(vectors, topk)``: ours (:meth:`Retriever.query`); ``query(v=vectors, n=k)``:
        Torch-RecHub's ``(indices, distances)`` nested lists (see the class docstring)."""
        rechub_form = v is not None or n is not None
        if rechub_form and (vectors is not None or topk is not None or filters):
            raise UsageError("query takes either (vectors, topk) or Torch-RecHub's (v=..., n=...), not both")
        matrix, single = as_matrix(v if rechub_form else vectors, what="query vectors")
        if self._l2_space:
            squared = np.square(matrix.astype(np.float64)).sum(axis=1, keepdims=True)
            ids, scores = super().query(
                np.hstack([matrix, np.ones_like(matrix[:, :1])]), n if rechub_form else topk, **filters
            )
            ids, scores = (np.atleast_2d(ids), np.atleast_2d(scores))
            distances = np.where(ids >= 0, squared - 2.0 * scores, np.inf)
            if rechub_form:
                return ids.tolist(), distances.tolist()
            ids, scores = ids, (-distances).astype(np.float32)
            return (ids[0], scores[0]) if single else (ids, scores)
        if not rechub_form:
            return super().query(vectors, topk, **filters)
        ids, scores = super().query(matrix, n)
        return ids.tolist(), scores.astype(np.float64).tolist()

    def set_query_arguments(self, nprobe: int | None = None, efSearch: int | None = None) -> FaissRetriever:
        """Torch-RecHub's name for ``set_query_params(nprobe=..., efSearch=...)``."""
        params = {k: v for k, v in (("nprobe", nprobe), ("efSearch", efSearch)) if v is not None}
        return self.set_query_params(**params) if params else self

    # -- searching -----------------------------------------------------------------------------------------
    def _ivf(self) -> Any:
        try:
            return faiss.extract_index_ivf(self._index)
        except RuntimeError:
            return None

    def _hnsw_indexes(self) -> list[Any]:
        found = []
        top = faiss.downcast_index(self._index)
        if hasattr(top, "hnsw"):
            found.append(top)
        ivf = self._ivf()
        if ivf is not None:
            quantizer = faiss.downcast_index(ivf.quantizer)
            if hasattr(quantizer, "hnsw"):
                found.append(quantizer)
        return found

    def _set_search_params(self, wanted: int, exhaustive: bool = False) -> None:
        ivf = self._ivf()
        if ivf is not None:
            ivf.nprobe = int(ivf.nlist) if exhaustive else min(self._nprobe, int(ivf.nlist))
        for index in self._hnsw_indexes():
            index.hnsw.efSearch = max(self.count, wanted) if exhaustive else max(self._ef_search, wanted)

    def _raw_search(self, data: np.ndarray, wanted: int) -> tuple[np.ndarray, np.ndarray]:
        with omp_threads(self.threads):
            distances, labels = self._index.search(data, wanted)
        return labels.astype(np.int64, copy=False), distances

    def _search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        rescoring = self._vectors is not None
        wanted = min(k * self._k_factor, self.count) if rescoring else k
        data = self._transform.queries(queries) if self._transform is not None else queries
        self._set_search_params(wanted)
        labels, distances = self._raw_search(data, wanted)
        short = np.flatnonzero((labels[:, :k] < 0).any(axis=1))
        if short.size:
            # Too few candidates (small nprobe or efSearch, or k close to the catalogue size): search those
            # rows exhaustively, then by brute force if the index still cannot offer k items.
            self._set_search_params(wanted, exhaustive=True)
            try:
                labels[short], distances[short] = self._raw_search(data[short], wanted)
            finally:
                self._set_search_params(wanted)
            still = short[(labels[short, :k] < 0).any(axis=1)]
            if still.size:
                labels[still], distances[still] = self._brute_force(queries[still], wanted)
        if rescoring:
            assert self._vectors is not None
            return rescore(self._vectors, queries, labels, k)
        scores = np.where(labels >= 0, distances, -np.inf).astype(np.float32)
        return labels[:, :k], scores[:, :k]

    def _search_filtered(
        self, queries: np.ndarray, k: int, label_filter: LabelFilter
    ) -> tuple[np.ndarray, np.ndarray]:
        """faiss ``IDSelector``s in ``SearchParameters``, one search per distinct list (one for a shared
        list); rows still short are searched exhaustively, then by brute force over the allowed items.
        An index that takes no search parameters is filtered by the base class's over-fetch."""
        n_queries = queries.shape[0]
        labels = np.full((n_queries, k), -1, dtype=np.int64)
        scores = np.full((n_queries, k), -np.inf, dtype=np.float32)
        rescoring = self._vectors is not None
        data = self._transform.queries(queries) if self._transform is not None else queries
        available = label_filter.available()
        for rows, listed in label_filter.groups():
            room = int(available[rows[0]])
            take = min(k, room)
            if take == 0:
                continue
            if room <= self._scan_budget():  # few items pass: scoring them is exact and no slower
                passing = label_filter.passing(listed)
                found, exact = self._brute_force(queries[rows], take, passing)
                labels[rows, :take], scores[rows, :take] = found, exact
                continue
            batch = faiss.IDSelectorBatch(listed)
            selector = batch if label_filter.allow else faiss.IDSelectorNot(batch)
            wanted = min(take * self._k_factor, room) if rescoring else take
            try:
                found, distances = self._selected_search(data[rows], wanted, selector, exhaustive=False)
            except RuntimeError:  # this index type takes no search parameters
                return super()._search_filtered(queries, k, label_filter)
            short = np.flatnonzero((found[:, :take] < 0).any(axis=1))
            if short.size:
                found[short], distances[short] = self._selected_search(
                    data[rows[short]], wanted, selector, exhaustive=True
                )
                still = short[(found[short, :take] < 0).any(axis=1)]
                if still.size:
                    allowed = label_filter.passing(listed)
                    found[still], distances[still] = self._brute_force(queries[rows[still]], wanted, allowed)
            if rescoring:
                assert self._vectors is not None
                found, row_scores = rescore(self._vectors, queries[rows], found, take)
            else:
                row_scores = np.where(found >= 0, distances, -np.inf).astype(np.float32)[:, :take]
                found = found[:, :take]
            labels[rows, :take], scores[rows, :take] = found, row_scores
        return labels, scores

    def _scan_budget(self) -> int:
        """Vectors an unfiltered query compares: a filter letting fewer pass is answered by scoring them
        (IVF: the probed share of the catalogue; HNSW: a multiple of ``efSearch``)."""
        ivf = self._ivf()
        if ivf is not None:
            return -(-self.count * min(self._nprobe, int(ivf.nlist)) // max(int(ivf.nlist), 1))
        if hasattr(faiss.downcast_index(self._index), "hnsw"):
            return 16 * self._ef_search
        return self.count

    def _selected_search(
        self, data: np.ndarray, wanted: int, selector: Any, *, exhaustive: bool
    ) -> tuple[np.ndarray, np.ndarray]:
        """One search restricted to ``selector``, with this index's query parameters (all lists and
        ``efSearch = count`` when ``exhaustive``)."""
        ef = max(self.count, wanted) if exhaustive else max(self._ef_search, wanted)
        ivf = self._ivf()
        if ivf is not None:
            nprobe = int(ivf.nlist) if exhaustive else min(self._nprobe, int(ivf.nlist))
            params = faiss.SearchParametersIVF(sel=selector, nprobe=nprobe)
            if hasattr(faiss.downcast_index(ivf.quantizer), "hnsw"):
                params.quantizer_params = faiss.SearchParametersHNSW(efSearch=ef)
        elif hasattr(faiss.downcast_index(self._index), "hnsw"):
            params = faiss.SearchParametersHNSW(sel=selector, efSearch=ef)
        else:
            params = faiss.SearchParameters(sel=selector)
        with omp_threads(self.threads):
            distances, labels = self._index.search(data, wanted, params=params)
        return labels.astype(np.int64, copy=False), distances

    def _brute_force(
        self, queries: np.ndarray, k: int, allowed: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Exact top-k inner products over the (stored or reconstructed) vectors, or over the sorted
        ``allowed`` labels only."""
        candidates = np.arange(self.count) if allowed is None else np.asarray(allowed, dtype=np.int64)
        if self._vectors is not None:
            items = self._vectors[candidates]
        else:
            ivf = self._ivf()
            if ivf is not None:
                ivf.make_direct_map()
            if allowed is None:
                items = self._index.reconstruct_n(0, self.count)
            else:
                items = self._index.reconstruct_batch(candidates)
        scores = queries @ items.T
        top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
        return candidates[top].astype(np.int64), np.take_along_axis(scores, top, axis=1)

    def _apply_query_params(self) -> None:
        self._check_query_params()
        if self._index is not None:
            self._set_search_params(1)

    # -- files -----------------------------------------------------------------------------------------------
    def _save_index(self, directory: Path) -> None:
        faiss.write_index(self._index, str(directory / INDEX_FILE))
        if self._vectors is not None:
            np.save(directory / VECTORS_FILE, self._vectors, allow_pickle=False)

    def _load_index(self, directory: Path) -> None:
        path = directory / INDEX_FILE
        try:
            index = faiss.read_index(str(path))
        except (RuntimeError, OSError, MemoryError) as exc:
            reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
            raise ModelFileError(f"{path}: faiss cannot read the index ({reason}); rebuild it") from None
        expected_dim = int(self.dim or 0) + (1 if self._l2 else 0)
        if index.d != expected_dim or index.ntotal != self.count:
            raise ModelFileError(
                f"{path}: holds {index.ntotal} vectors of dimension {index.d}, the header says {self.count}"
                f" of dimension {expected_dim}; rebuild the index"
            )
        self._index = index
        header = self.read_header(directory)
        self.index_description = str(header.get("index_description", ""))
        vectors_path = directory / VECTORS_FILE
        if vectors_path.exists():
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
        elif self._l2:
            raise ModelFileError(
                f"{vectors_path}: missing; an index with mips='l2' needs it, rebuild the index"
            )
        if self._l2:
            assert self._vectors is not None
            self._transform = MipsToL2.fit(self._vectors)
