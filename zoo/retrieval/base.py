"""The Retriever contract every ANN (or exact) backend implements.

A retriever indexes item vectors and answers top-k queries with **higher-is-better** scores:

* ``fit(vectors, ids=None)`` builds the index (``ids`` default to ``0..n-1``);
* ``add(vectors, ids)`` appends, where the backend supports it;
* ``query(vectors, topk) -> (ids int64 [Q, k], scores float32 [Q, k])``, rows sorted by score, padded
  with id ``-1`` / score ``-inf`` when fewer than ``k`` items exist; a single 1-D vector gives 1-D
  results (the seed's ``annoy.query(user_embeddings[0], topk=10)``);
* ``set_query_params(**p)`` changes query-time parameters without rebuilding;
* ``save(dir)`` / ``load(dir)`` with a small JSON header (backend, version, metric, dim, count, params).

Subclasses implement the ``_build``, ``_add``, ``_search``, ``_save_index`` and ``_load_index``
primitives on internal labels ``0..count-1``; this base class validates input, applies the cosine
normalisation, maps labels to the caller's ids and writes files atomically.
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
from zoo.errors import ModelFileError, UsageError
from zoo.io import atomic_dir, commit_dir, file_records, read_json_header, verify_files

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

    def query(self, vectors: Any, topk: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-``topk`` ids and scores per query vector (see module docstring)."""
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
        labels, scores = self._search(self._prepare(matrix), k_eff)
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
        retriever = cls(
            metric=header["metric"], **header.get("build_params", {}), **header.get("query_params", {})
        )
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

    def _apply_query_params(self) -> None:  # noqa: B027 - optional hook, a no-op by default
        """Push ``self.query_params`` into the live index (no rebuild)."""

    @abstractmethod
    def _save_index(self, directory: Path) -> None:
        """Write the backend's own files into ``directory``."""

    @abstractmethod
    def _load_index(self, directory: Path) -> None:
        """Read the backend's own files from ``directory`` (``dim``, ``ids`` and params are set)."""
