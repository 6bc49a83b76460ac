"""Exact (brute-force) retrieval with torch: the ground truth every ANN backend is measured against.

Ties are broken canonically, whatever the device: equal scores rank the item indexed first (smaller
internal label) first, so the ground truth does not change between CPU and GPU runs even for
duplicate item vectors.

Three search paths give the same answers:

* **plain** (small catalogues, or ``k`` close to the catalogue size): per chunk of ``chunk_size``
  queries, one matmul over every item and one top-k.
* **grouped** (catalogues of at least :attr:`ExactRetriever.grouped_min_items` items and 800 items
  per requested result): a bare
  ``matmul + topk`` spends as much time selecting the top-k of every full score row as it spends
  multiplying (the selection reads a ``chunk x count`` matrix that does not fit in cache). Instead,
  items are cut into groups of ``g`` consecutive rows; per cache-sized block of items the scores are
  computed transposed (``items_block @ queries.T``, the faster layout for a short inner dimension)
  and immediately reduced to each group's maximum, which is a vertical SIMD max over ``g`` rows. The
  top ``k + 1`` groups by maximum contain the exact top-k (an item in the top-k lies in a group whose
  maximum is at least the k-th score, and at most ``k`` groups can hold such items), so only their
  ``(k + 1) g`` items are rescored (gathered dot products) and ranked canonically. A row where the
  best excluded group could still tie the k-th score (duplicates, or within float32 rounding of it)
  is answered by the plain path, so results stay exact.

  This **blocked** form suits a CPU, where the scores of a block are reduced while in cache.
* **scored** (the grouped search on a GPU): a GPU has the memory bandwidth to keep the whole
  ``chunk x count`` score matrix, but gathering ``(k + 1) g`` item vectors per query to rescore them
  costs more than the selection it saves (on an H200 the blocked form ran at 0.85x a bare
  ``matmul + topk`` at ``k = 100``; docs/retrievers.md has the scored form's figures). So the scores
  are computed once by one matmul, reduced to group maxima by a strided ``amax``, the top ``k + 1``
  groups are chosen as above and the scores of their items are gathered from the matrix itself. The
  candidates' scores are the very numbers the plain path would rank, so no rounding slack is needed:
  a row is handed to the plain top-k (over the same matrix) only when the best excluded group ties
  the k-th score.

Filtered queries (``allow`` / ``exclude``) take the plain path with the forbidden items' scores
masked to ``-inf`` (a shared allow-list is scored alone), so they stay exact with canonical ties.

On CPU this answers 200k x 64 top-10 queries several times faster than a bare ``matmul + topk``
(measurements: ``docs/retrievers.md``, ``benchmarks/test_bench_retrievers.py``).
"""

from __future__ import annotations

import contextvars
import math
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from zoo.device import resolve_device
from zoo.errors import ModelFileError, UsageError
from zoo.retrieval.base import Retriever
from zoo.retrieval.filtering import LabelFilter
from zoo.retrieval.topk import canonical_topk

VECTORS_FILE = "vectors.npy"
DEFAULT_DEVICE = "cpu"
DEFAULT_CHUNK_SIZE = "auto"
#: query rows per chunk with ``chunk_size="auto"``: a CPU cache-sized block, or a large GPU batch
AUTO_CHUNK = {"cpu": 256, "other": 4096}
#: bytes of scores per item block (on CPU the block is reduced while it is still in cache)
_BLOCK_BYTES = {"cpu": 2 << 20, "other": 256 << 20}
#: bytes of group maxima kept per super-block of items (bounds memory on huge catalogues)
_GROUP_BUFFER_BYTES = {"cpu": 64 << 20, "other": 1 << 30}
#: bytes of scores per query chunk on a GPU with ``chunk_size="auto"`` (the plain and scored paths
#: hold the ``chunk x count`` score matrix; huge catalogues get smaller chunks)
_GPU_SCORE_BYTES = 2 << 30

# Device override for ExactRetriever.load(directory, device=...): read by __init__, which the
# base class's load() calls with the device saved in the header.
_LOAD_DEVICE: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "zoo_exact_load_device", default=None
)


def _chunk_size(value: Any) -> int | None:
    """``chunk_size``: a positive integer, or ``"auto"`` (None: chosen per device)."""
    if value == "auto":
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise UsageError(f"retriever 'exact': chunk_size must be a positive integer or 'auto', got {value!r}")
    return int(value)


def group_size(count: int, k: int, dim: int) -> int:
    """Items per group: balances the top-k over ``count / g`` group maxima against rescoring ``k g``
    candidates of ``dim`` floats (``g ~ sqrt(count / (k dim))``), a power of two in [4, 64]."""
    return _power_of_two_near(math.sqrt(max(count, 1) / max(k * dim, 1)), 4, 64)


def scored_group_size(count: int, k: int) -> int:
    """Items per group of the scored (GPU) search: balances the top-k over ``count / g`` group maxima
    against ranking ``(k + 1) g`` gathered scores (``g ~ sqrt(count / k)``), a power of two in [4, 256]."""
    return _power_of_two_near(math.sqrt(max(count, 1) / max(k + 1, 1)), 4, 256)


def _power_of_two_near(value: float, low: int, high: int) -> int:
    """The power of two nearest ``value`` (on a log scale), clamped to [low, high]."""
    return int(min(high, max(low, 2 ** round(math.log2(max(value, 1.0))))))


def _parallel_chunks(run: Any, starts: list[int], workers: int) -> None:
    """Run ``run(start)`` for every chunk on ``workers`` threads, each with single-threaded torch ops.

    Chunks are independent, so threads never wait for each other: unlike torch's own intra-op
    parallelism (a fork and a join per operation, hundreds per query batch), a thread that the OS
    pauses on a busy machine delays only its own chunk. torch's thread setting is per OS thread
    for OpenMP and MKL; the process-wide default is restored before returning.
    """
    previous = torch.get_num_threads()

    def single_threaded(start: int) -> None:
        if torch.get_num_threads() != 1:
            torch.set_num_threads(1)
        with torch.inference_mode():
            run(start)

    try:
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="zoo-exact") as pool:
            list(pool.map(single_threaded, starts))
    finally:
        torch.set_num_threads(previous)


def _max_norm(vectors: np.ndarray) -> float:
    return float(np.sqrt(np.einsum("ij,ij->i", vectors, vectors, dtype=np.float64).max(initial=0.0)))


def _from_numpy(array: np.ndarray) -> torch.Tensor:
    """A CPU tensor over ``array`` (copied only when numpy marks it read-only)."""
    return torch.from_numpy(array if array.flags.writeable else array.copy())


class ExactRetriever(Retriever):
    """Brute-force top-k by torch matmul, on any device; ``supports_add``.

    Args:
        metric: ``"ip"`` or ``"cosine"``.
        device: ``"cpu"`` (default), ``"cuda"``, ``"cuda:N"``, ``"mps"`` or ``"auto"``; where the item
            matrix lives and the scoring runs.
        chunk_size: query rows scored together (query parameter): ``"auto"`` (default: 256 on CPU,
            4096 on a GPU) or a positive integer. The plain path holds ``chunk_size * count`` scores.
    """

    name = "exact"
    build_param_names = ("device",)
    query_param_names = ("chunk_size",)
    supports_add = True
    native_filters = True
    #: catalogues at least this large, and at least ``grouped_items_per_k`` items per requested
    #: result, use the grouped search (below, the plain path is as fast: measured crossover on CPU)
    grouped_min_items: ClassVar[int] = 16384
    grouped_items_per_k: ClassVar[int] = 800
    #: the grouped search's form: ``"blocked"`` (rescoring gathered vectors, cache-blocked), ``"scored"``
    #: (group maxima of the kept score matrix), or None: blocked on CPU, scored on any other device
    grouped_form: ClassVar[str | None] = None

    def __init__(self, metric: str = "ip", **params: Any) -> None:
        override = _LOAD_DEVICE.get()
        if override is not None:
            params["device"] = override
        super().__init__(metric, **params)
        device = self.build_params.get("device", DEFAULT_DEVICE)
        self.device: torch.device = resolve_device(device)
        self.build_params["device"] = str(device)  # keep the header JSON-friendly (torch.device -> str)
        self.query_params.setdefault("chunk_size", DEFAULT_CHUNK_SIZE)
        self._chunk_size = _chunk_size(self.query_params["chunk_size"])
        # Rows 0..count-1 of this buffer are the indexed vectors; spare rows make add() amortised O(1).
        self._buffer: torch.Tensor | None = None
        self._max_norm = 0.0  # largest item norm (bounds float32 rounding in the grouped search)

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

    def memory_bytes(self) -> int | None:
        """Bytes of the item matrix (with its spare rows for ``add``)."""
        return None if self._buffer is None else int(self._buffer.numel() * self._buffer.element_size())

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
        self._max_norm = _max_norm(vectors)

    def _add(self, vectors: np.ndarray, start: int) -> None:
        assert self._buffer is not None
        end = start + vectors.shape[0]
        if self._buffer.shape[0] < end:
            capacity = max(end, start + start // 2)
            grown = torch.empty((capacity, self._buffer.shape[1]), dtype=torch.float32, device=self.device)
            grown[:start].copy_(self._buffer[:start])
            self._buffer = grown
        self._buffer[start:end].copy_(_from_numpy(vectors))
        self._max_norm = max(self._max_norm, _max_norm(vectors))

    def _chunk(self, n_queries: int) -> int:
        chunk = self._chunk_size
        if chunk is None:
            on_cpu = self.device.type == "cpu"
            chunk = AUTO_CHUNK["cpu" if on_cpu else "other"]
            if not on_cpu:  # the score matrix of one chunk stays within _GPU_SCORE_BYTES
                chunk = min(chunk, _GPU_SCORE_BYTES // (4 * max(self.count, 1)))
        return max(1, min(chunk, n_queries))

    def _grouped_search(self, count: int, k: int, dim: int) -> Any:
        """The grouped search method for ``count`` items and top-``k``, or None where the plain path
        is as fast (small catalogues, or ``k`` close to the catalogue size)."""
        form = self.grouped_form or ("blocked" if self.device.type == "cpu" else "scored")
        g = group_size(count, k, dim) if form == "blocked" else scored_group_size(count, k)
        if (
            count < max(self.grouped_min_items, 1)
            or count < self.grouped_items_per_k * k
            or (k + 1) * g * 2 > count
        ):
            return None
        return self._search_grouped if form == "blocked" else self._search_scored

    @torch.inference_mode()
    def _search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        items = self.item_matrix
        search = self._grouped_search(items.shape[0], k, items.shape[1]) or self._search_plain
        return self._run_chunks(queries, k, lambda chunk, k, start: search(chunk, k))

    def _run_chunks(self, queries: np.ndarray, k: int, search: Any) -> tuple[np.ndarray, np.ndarray]:
        """``search(chunk_queries, k, first_row) -> (scores, labels)`` over chunks of the queries, on
        threads on a CPU."""
        n_queries = queries.shape[0]
        all_queries = _from_numpy(queries).to(self.device)
        chunk = self._chunk(n_queries)
        labels = torch.empty((n_queries, k), dtype=torch.int64, device=self.device)
        scores = torch.empty((n_queries, k), dtype=torch.float32, device=self.device)
        starts = list(range(0, n_queries, chunk))

        def one(start: int) -> None:
            end = min(start + chunk, n_queries)
            scores[start:end], labels[start:end] = search(all_queries[start:end], k, start)

        workers = min(torch.get_num_threads(), len(starts)) if self.device.type == "cpu" else 1
        if workers > 1:
            _parallel_chunks(one, starts, workers)
        else:
            for start in starts:
                one(start)
        return labels.cpu().numpy(), scores.cpu().numpy()

    @torch.inference_mode()
    def _search_filtered(
        self, queries: np.ndarray, k: int, label_filter: LabelFilter
    ) -> tuple[np.ndarray, np.ndarray]:
        """Exact filtered top-k: forbidden items' scores are masked to ``-inf`` before the canonical
        top-k (a shared allow-list scores only its items); masked slots come back as label ``-1``."""
        items = self.item_matrix
        device = self.device
        lists = label_filter.lists
        if label_filter.allow and label_filter.shared:
            allowed = torch.from_numpy(lists.ids).to(device)  # sorted: canonical ties are kept
            subset = items[allowed]
            take = min(k, int(allowed.numel()))

            def search_subset(chunk: torch.Tensor, k: int, start: int) -> tuple[torch.Tensor, torch.Tensor]:
                values = torch.full((chunk.shape[0], k), -math.inf, device=device)
                labels = torch.full((chunk.shape[0], k), -1, dtype=torch.int64, device=device)
                if take:
                    values[:, :take], position = canonical_topk(chunk @ subset.t(), take)
                    labels[:, :take] = allowed[position]
                return values, labels

            return self._run_chunks(queries, k, search_subset)
        rows = torch.from_numpy(lists.row_of_entries()).to(device)
        listed = torch.from_numpy(lists.ids).to(device)
        indptr = lists.indptr

        def search_masked(chunk: torch.Tensor, k: int, start: int) -> tuple[torch.Tensor, torch.Tensor]:
            scores = chunk @ items.t()
            if label_filter.shared:
                entry_rows, entry_labels = None, listed
            else:
                lo, hi = int(indptr[start]), int(indptr[start + chunk.shape[0]])
                entry_rows, entry_labels = rows[lo:hi] - start, listed[lo:hi]
            if label_filter.allow:
                assert entry_rows is not None
                masked = torch.full_like(scores, -math.inf)
                masked[entry_rows, entry_labels] = scores[entry_rows, entry_labels]
                scores = masked
            elif entry_rows is None:
                scores[:, entry_labels] = -math.inf
            else:
                scores[entry_rows, entry_labels] = -math.inf
            values, labels = canonical_topk(scores, k)
            return values, labels.masked_fill(values == -math.inf, -1)

        return self._run_chunks(queries, k, search_masked)

    def _search_plain(self, queries: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """One matmul over every item, then the canonical top-k."""
        return canonical_topk(queries @ self.item_matrix.t(), k)

    def _search_scored(self, queries: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Exact top-k through group maxima of the kept score matrix (the GPU form; module docstring)."""
        scores = queries @ self.item_matrix.t()
        m, count = scores.shape
        g = scored_group_size(count, k)
        groups = count // g
        wanted = min(k + 1, groups)
        maxima = scores[:, : groups * g].view(m, groups, g).amax(dim=2)
        group_values, index = torch.topk(maxima, wanted, dim=1, sorted=False)
        # every group left out is no better than the worst one kept
        excluded = (
            group_values.amin(dim=1) if wanted < groups else torch.full((m,), -math.inf, device=scores.device)
        )
        index = index.sort(dim=1).values  # candidates in index order: canonical ties by position
        candidates = (index.unsqueeze(2) * g + torch.arange(g, device=scores.device)).reshape(m, -1)
        if groups * g < count:  # the last, partial group is always a candidate
            tail = torch.arange(groups * g, count, device=scores.device).expand(m, -1)
            candidates = torch.cat([candidates, tail], 1)
        top_values, position = canonical_topk(scores.gather(1, candidates), k)
        top_labels = candidates.gather(1, position)
        unsure = (excluded >= top_values[:, -1]).nonzero().squeeze(1)
        if unsure.numel():  # an excluded group may hold an item tied with the k-th score
            top_values[unsure], top_labels[unsure] = canonical_topk(scores[unsure], k)
        return top_values, top_labels

    def _search_grouped(self, queries: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Exact top-k through group maxima, blocked for the cache (the CPU form; module docstring)."""
        items = self.item_matrix
        count, dim = items.shape
        m = queries.shape[0]
        g = group_size(count, k, dim)
        groups = count // g
        wanted = min(k + 1, groups)
        kind = "cpu" if self.device.type == "cpu" else "other"
        block = min(groups * g, max(g, (_BLOCK_BYTES[kind] // (4 * m)) // g * g))
        per_super = max(wanted, _GROUP_BUFFER_BYTES[kind] // (4 * m))
        queries_t = queries.t()
        scratch = torch.empty((block, m), dtype=torch.float32, device=self.device)
        kept_values, kept_groups = [], []
        excluded = torch.full((m,), -math.inf, device=self.device)
        for first in range(0, groups, per_super):
            last = min(first + per_super, groups)
            maxima = torch.empty((last - first, m), dtype=torch.float32, device=self.device)
            for lo in range(first * g, last * g, block):
                hi = min(lo + block, last * g)
                # [hi - lo, m]: the faster layout for a short inner dimension, reduced while in cache
                part = torch.mm(items[lo:hi], queries_t, out=scratch[: hi - lo])
                torch.amax(
                    part.view((hi - lo) // g, g, m), dim=1, out=maxima[lo // g - first : hi // g - first]
                )
            take = min(wanted, last - first)
            values, index = torch.topk(maxima.t(), take, dim=1)
            if take < last - first:  # groups left out here are no better than the last one kept
                excluded = torch.maximum(excluded, values[:, -1])
            kept_values.append(values)
            kept_groups.append(index + first)
        values, index = torch.cat(kept_values, 1), torch.cat(kept_groups, 1)
        if values.shape[1] > wanted:
            values, position = torch.topk(values, wanted, dim=1)
            excluded = torch.maximum(excluded, values[:, -1])
            index = index.gather(1, position)
        offsets = torch.arange(g, device=self.device)
        candidates = (index.unsqueeze(2) * g + offsets).reshape(m, -1)
        if groups * g < count:  # the last, partial group is always a candidate
            tail = torch.arange(groups * g, count, device=self.device).expand(m, -1)
            candidates = torch.cat([candidates, tail], 1)
        candidates = candidates.sort(dim=1).values  # index order: canonical ties by position
        rescored = torch.bmm(items[candidates], queries.unsqueeze(2)).squeeze(2)
        top_values, position = canonical_topk(rescored, k)
        top_labels = candidates.gather(1, position)
        # Float32 rounding bound of two computations of one dot product: an excluded group closer than
        # this to the k-th score (or tied with it) might hold a better or tied item.
        slack = 2.0 * dim * 2.0**-24 * self._max_norm * torch.linalg.vector_norm(queries, dim=1)
        unsure = (excluded + slack >= top_values[:, -1]).nonzero().squeeze(1)
        if unsure.numel():
            top_values[unsure], top_labels[unsure] = self._search_plain(queries[unsure], k)
        return top_values, top_labels

    def _apply_query_params(self) -> None:
        self._chunk_size = _chunk_size(self.query_params.get("chunk_size", DEFAULT_CHUNK_SIZE))

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
                f"{path}: holds {array.dtype} {array.shape}, the header says float32 ({self.count},"
                f" {self.dim}); rebuild the index"
            )
        self._buffer = torch.from_numpy(np.ascontiguousarray(array)).to(self.device)
        self._max_norm = _max_norm(array)
