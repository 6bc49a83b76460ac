"""Exact (brute-force) retrieval with torch: the ground truth every ANN backend is measured against.

Queries are scored in chunks of ``chunk_size`` rows, one matmul and one top-k per chunk, on any torch
device (``cpu``, ``cuda[:N]``, ``mps`` or ``auto``). Ties are broken canonically, whatever the device:
equal scores rank the item indexed first (smaller internal label) first, so the ground truth does
not change between CPU and GPU runs even for duplicate item vectors.
"""

from __future__ import annotations

import contextvars
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from zoo.device import resolve_device
from zoo.errors import ModelFileError, UsageError
from zoo.retrieval.base import Retriever

VECTORS_FILE = "vectors.npy"
DEFAULT_DEVICE = "cpu"
DEFAULT_CHUNK_SIZE = 1024

# Device override for ExactRetriever.load(directory, device=...): read by __init__, which the
# base class's load() calls with the device saved in the header.
_LOAD_DEVICE: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "zoo_exact_load_device", default=None
)


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise UsageError(f"retriever 'exact': {name} must be a positive integer, got {value!r}")
    return int(value)


def _from_numpy(array: np.ndarray) -> torch.Tensor:
    """A CPU tensor over ``array`` (copied only when numpy marks it read-only)."""
    return torch.from_numpy(array if array.flags.writeable else array.copy())


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


class ExactRetriever(Retriever):
    """Brute-force top-k by torch matmul, on any device; ``supports_add``.

    Args:
        metric: ``"ip"`` or ``"cosine"``.
        device: ``"cpu"`` (default), ``"cuda"``, ``"cuda:N"``, ``"mps"`` or ``"auto"``; where the item
            matrix lives and the scoring runs.
        chunk_size: query rows scored per matmul (query parameter; memory is ``chunk_size * count``
            floats per chunk).
    """

    name = "exact"
    build_param_names = ("device",)
    query_param_names = ("chunk_size",)
    supports_add = True

    def __init__(self, metric: str = "ip", **params: Any) -> None:
        override = _LOAD_DEVICE.get()
        if override is not None:
            params["device"] = override
        super().__init__(metric, **params)
        device = self.build_params.get("device", DEFAULT_DEVICE)
        self.device: torch.device = resolve_device(device)
        self.build_params["device"] = str(device)  # keep the header JSON-friendly (torch.device -> str)
        self.query_params.setdefault("chunk_size", DEFAULT_CHUNK_SIZE)
        self._chunk_size = _positive_int("chunk_size", self.query_params["chunk_size"])
        # Rows 0..count-1 of this buffer are the indexed vectors; spare rows make add() amortised O(1).
        self._buffer: torch.Tensor | None = None

    @classmethod
    def load(cls, directory: str | os.PathLike[str], device: Any = None) -> ExactRetriever:
        """Load a saved index; ``device`` overrides the saved one (e.g. a GPU index opened on a laptop)."""
        token = _LOAD_DEVICE.set(None if device is None else str(device))
        try:
            return super().load(directory)  # type: ignore[return-value]
        finally:
            _LOAD_DEVICE.reset(token)

    @classmethod
    def backend_version(cls) -> str:
        return f"torch {torch.__version__}"

    @property
    def item_matrix(self) -> torch.Tensor:
        """The indexed (for cosine: normalised) item vectors, ``[count, dim]`` on :attr:`device`."""
        if self._buffer is None:
            raise UsageError("retriever 'exact' is empty: call fit(item_vectors) first")
        return self._buffer[: self.count]

    def to(self, device: Any) -> ExactRetriever:
        """Move the index to another device (``"cpu"``, ``"cuda"``, ``"auto"``...)."""
        target = resolve_device(device)
        if self._buffer is not None and self._buffer.device != target:
            self._buffer = self.item_matrix.to(target)
        self.device = target
        self.build_params["device"] = str(device)
        return self

    # -- backend primitives ------------------------------------------------------------------
    def _build(self, vectors: np.ndarray) -> None:
        buffer = torch.empty(vectors.shape, dtype=torch.float32, device=self.device)
        buffer.copy_(_from_numpy(vectors))  # never alias the caller's array
        self._buffer = buffer

    def _add(self, vectors: np.ndarray, start: int) -> None:
        assert self._buffer is not None
        end = start + vectors.shape[0]
        if self._buffer.shape[0] < end:
            capacity = max(end, start + start // 2)
            grown = torch.empty((capacity, self._buffer.shape[1]), dtype=torch.float32, device=self.device)
            grown[:start].copy_(self._buffer[:start])
            self._buffer = grown
        self._buffer[start:end].copy_(_from_numpy(vectors))

    @torch.inference_mode()
    def _search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        items_t = self.item_matrix.t()
        n_queries = queries.shape[0]
        chunk = min(self._chunk_size, n_queries)
        labels = np.empty((n_queries, k), dtype=np.int64)
        scores = np.empty((n_queries, k), dtype=np.float32)
        all_queries = _from_numpy(queries)
        # One score buffer reused by every chunk (no re-allocation / page faults per chunk).
        block = torch.empty((chunk, items_t.shape[1]), dtype=torch.float32, device=self.device)
        for start in range(0, n_queries, chunk):
            end = min(start + chunk, n_queries)
            part = all_queries[start:end].to(self.device)
            out = block[: end - start]
            torch.mm(part, items_t, out=out)
            values, indices = canonical_topk(out, k)
            labels[start:end] = indices.cpu().numpy()
            scores[start:end] = values.cpu().numpy()
        return labels, scores

    def _apply_query_params(self) -> None:
        self._chunk_size = _positive_int(
            "chunk_size", self.query_params.get("chunk_size", DEFAULT_CHUNK_SIZE)
        )

    def _save_index(self, directory: Path) -> None:
        np.save(directory / VECTORS_FILE, self.item_matrix.cpu().numpy(), allow_pickle=False)

    def _load_index(self, directory: Path) -> None:
        path = directory / VECTORS_FILE
        try:
            array = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise ModelFileError(f"{path}: unreadable vector file ({exc}); rebuild the index") from exc
        if array.dtype != np.float32 or array.shape != (self.count, self.dim):
            raise ModelFileError(
                f"{path}: holds {array.dtype} {array.shape}, the header says float32 ({self.count}, {self.dim});"
                " rebuild the index"
            )
        self._buffer = torch.from_numpy(np.ascontiguousarray(array)).to(self.device)
