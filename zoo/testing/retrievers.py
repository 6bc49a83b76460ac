"""Conformance suite for retriever plugins, plus brute-force reference helpers.

Every retriever backend, built-in or third-party, runs the same tests by subclassing
:class:`RetrieverConformance` (the pandas extension-test pattern)::

    # tests/test_my_index.py
    from zoo.testing.retrievers import RetrieverConformance

    class TestMyIndex(RetrieverConformance):
        retriever_name = "my-index"          # created through the registry...
        params = {"search_k": 5000}          # ...with generous settings for the recall floor
        recall_floor = 0.9
        deterministic_params = {"num_threads": 1}  # optional: settings that make builds reproducible

    # or, without installing the plugin, override the factory:
    class TestMyIndexDirect(RetrieverConformance):
        def make_retriever(self, metric="ip", **params):
            return MyIndex(metric=metric, **{"search_k": 5000, **params})

What the suite checks: shapes and dtypes, sorted higher-is-better scores, ``-1`` / ``-inf`` padding
when ``k`` exceeds the catalogue, ``k = 0`` / empty / wrong-dimension / NaN queries rejected with a
clear ``UsageError``, the same answers for float64, Fortran-ordered, strided or list input, for one
batch or its parts, and from concurrent threads; multi-interest queries merged by best score; recall
against brute force above :attr:`RetrieverConformance.recall_floor` for inner product and cosine;
filtered queries (``allow`` / ``exclude``, per query or shared, with custom ids, multi-interest): no
excluded id ever returned, only allowed ids returned, ``k`` results while enough items remain and
``-1`` / ``-inf`` padding only when fewer remain, recall against filtered brute force;
``add`` after ``fit`` (or a clear refusal); parameter defaults that match the spec; save/load round
trips that answer identically; truncated, corrupted, missing or inconsistent index files rejected
with ``ModelFileError`` (never a crash); reproducible builds under ``deterministic_params``.

To opt out of one test (say why), override it in the subclass and call ``pytest.skip(reason)``.
The data are fixed-seed numpy random vectors (2,000 x 32 by default), so the suite is fast and
deterministic. Requires pytest (imported here, not by :mod:`zoo.testing`).
"""

from __future__ import annotations

import json
import shutil
from functools import lru_cache
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest

from zoo.errors import ModelFileError, UsageError
from zoo.retrieval.base import HEADER_FILE, Retriever, normalize_rows

__all__ = [
    "RetrieverConformance",
    "brute_force_topk",
    "filtered_topk",
    "embedding_like",
    "make_vectors",
    "recall_at_k",
    "similarity",
]


# -- reference helpers ---------------------------------------------------------------------------
@lru_cache(maxsize=16)
def make_vectors(n: int, dim: int, seed: int = 0, spread_norms: bool = False) -> np.ndarray:
    """Fixed-seed float32 random normal vectors ``[n, dim]`` (read-only, cached).

    ``spread_norms=True`` scales every row by a log-normal factor (norms spanning ~3 orders of
    magnitude), which separates cosine from inner-product rankings.
    """
    rng = np.random.default_rng(seed)
    vectors = rng.standard_normal((n, dim), dtype=np.float32)
    if spread_norms:
        vectors *= np.exp(rng.normal(0.0, 1.5, size=(n, 1))).astype(np.float32)
    vectors.setflags(write=False)
    return vectors


@lru_cache(maxsize=8)
def embedding_like(
    n: int,
    dim: int,
    seed: int = 0,
    *,
    queries: bool = False,
    clusters: int = 256,
    norm_spread: float = 0.35,
    structure_seed: int = 1234,
) -> np.ndarray:
    """Fixed-seed float32 vectors shaped like a trained two-tower model's embeddings (read-only, cached).

    Isotropic Gaussian noise is the hardest input for any ANN index and unlike trained embeddings;
    these vectors have the properties that matter instead:

    * **low effective rank**: coordinates in a random rotation of a spectrum decaying as
      ``1 / sqrt(i)`` (most variance in a few directions, a long tail of small ones);
    * **clusters** (``clusters``, 256 by default) of Zipf-distributed sizes, around which
      items spread with half the centres' scale (genres, categories);
    * **norms** that vary log-normally with ``norm_spread`` (inner-product training inflates popular
      items' norms);
    * with ``queries=True``, *user* vectors: the mean of 8 to 32 items drawn from one to three
      clusters plus noise, as a pooled history or a user tower produces.

    The rotation and the cluster centres come from ``structure_seed``, shared by items and queries;
    ``seed`` draws the members, so items and queries of the same ``n``/``dim`` family match.
    """
    structure = np.random.default_rng(structure_seed)
    n_clusters = max(1, int(clusters))
    spectrum = 1.0 / np.sqrt(np.arange(1, dim + 1, dtype=np.float64))
    rotation, _ = np.linalg.qr(structure.standard_normal((dim, dim)))
    centres = (structure.standard_normal((n_clusters, dim)) * spectrum) @ rotation.T
    popularity = 1.0 / np.arange(1, n_clusters + 1, dtype=np.float64)  # Zipf cluster sizes
    popularity /= popularity.sum()
    rng = np.random.default_rng(seed)

    def items_of(count: int, chosen: np.ndarray) -> np.ndarray:
        spread = (rng.standard_normal((count, dim)) * spectrum * 0.5) @ rotation.T
        return centres[chosen] + spread

    if not queries:
        chosen = rng.choice(n_clusters, size=n, p=popularity)
        vectors = items_of(n, chosen)
        vectors *= np.exp(rng.normal(0.0, norm_spread, size=(n, 1)))
    else:
        vectors = np.empty((n, dim))
        history = rng.integers(8, 33, size=n)
        interests = rng.integers(1, 4, size=n)
        for size in np.unique(history):  # vectorised per history length
            rows = np.flatnonzero(history == size)
            picks = rng.choice(n_clusters, size=(rows.size, 3), p=popularity)
            which = rng.integers(0, interests[rows][:, None], size=(rows.size, size))
            chosen = np.take_along_axis(picks, which, axis=1).reshape(-1)
            members = items_of(chosen.size, chosen).reshape(rows.size, size, dim)
            vectors[rows] = members.mean(axis=1)
        vectors += (rng.standard_normal((n, dim)) * spectrum * 0.1) @ rotation.T
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    vectors.setflags(write=False)
    return vectors


def similarity(items: np.ndarray, queries: np.ndarray, metric: str = "ip") -> np.ndarray:
    """Score matrix ``[q, n]``: inner products, or cosines for ``metric="cosine"`` (float64)."""
    items = np.asarray(items, dtype=np.float64)
    queries = np.asarray(queries, dtype=np.float64)
    if metric == "cosine":
        items, queries = normalize_rows(items), normalize_rows(queries)
    elif metric != "ip":
        raise ValueError(f"metric must be 'ip' or 'cosine', got {metric!r}")
    return queries @ items.T


def brute_force_topk(
    items: np.ndarray, queries: np.ndarray, k: int, metric: str = "ip"
) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-``k`` labels (int64) and scores (float64) per query, in numpy.

    Rows are sorted by score descending; ties go to the smaller label. ``k`` is capped at the
    number of items (no padding).
    """
    scores = similarity(items, queries, metric)
    k = min(int(k), scores.shape[1])
    order = np.lexsort((np.broadcast_to(np.arange(scores.shape[1]), scores.shape), -scores), axis=1)[:, :k]
    return order.astype(np.int64), np.take_along_axis(scores, order, axis=1)


def filtered_topk(
    items: np.ndarray,
    queries: np.ndarray,
    k: int,
    metric: str = "ip",
    *,
    allow: list[Any] | None = None,
    exclude: list[Any] | None = None,
) -> np.ndarray:
    """Exact top-``k`` labels per query restricted to its ``allow`` list and/or outside its ``exclude``
    list (one list of labels per query), padded with ``-1`` when fewer items pass."""
    scores = similarity(items, queries, metric)
    n = scores.shape[1]
    passes = np.ones(scores.shape, dtype=bool)
    for row in range(scores.shape[0]):
        if allow is not None:
            keep = np.zeros(n, dtype=bool)
            listed = np.asarray(allow[row], dtype=np.int64)
            keep[listed[(listed >= 0) & (listed < n)]] = True
            passes[row] &= keep
        if exclude is not None:
            listed = np.asarray(exclude[row], dtype=np.int64)
            passes[row, listed[(listed >= 0) & (listed < n)]] = False
    labels = np.broadcast_to(np.arange(n), scores.shape)
    order = np.lexsort((labels, -scores, ~passes), axis=1)[:, :k]
    found = np.where(np.take_along_axis(passes, order, axis=1), order, -1)
    if found.shape[1] < k:
        found = np.pad(found, ((0, 0), (0, k - found.shape[1])), constant_values=-1)
    return found.astype(np.int64)


def recall_at_k(found: np.ndarray, truth: np.ndarray) -> float:
    """Mean fraction of each row of ``truth`` (ids, ``-1`` = none) present in the same row of ``found``."""
    found = np.atleast_2d(np.asarray(found))
    truth = np.atleast_2d(np.asarray(truth))
    if found.shape[0] != truth.shape[0]:
        raise ValueError(f"found has {found.shape[0]} rows, truth has {truth.shape[0]}")
    # hits[i, j]: truth[i, j] appears in found[i]; vectorised over rows.
    hits = (truth[:, :, None] == found[:, None, :]).any(axis=2) & (truth >= 0)
    wanted = (truth >= 0).sum(axis=1)
    per_row = np.divide(hits.sum(axis=1), wanted, out=np.ones(truth.shape[0]), where=wanted > 0)
    return float(per_row.mean())


# -- the suite -------------------------------------------------------------------------------------
class RetrieverConformance:
    """Tests every retriever must pass. Subclass with a name ``Test...`` so pytest collects it.

    Attributes:
        retriever_name: registry name used by the default :meth:`make_retriever`.
        params: build/query parameters for every retriever the suite creates (generous settings:
            the recall tests must clear :attr:`recall_floor`).
        recall_floor: minimum recall@10 against the brute-force top-10, for ``ip`` and ``cosine``.
        n_items, dim, n_queries, seed: size and seed of the random data.
        filter_queries: queries of the filtered-retrieval tests (one list each).
    """

    retriever_name: ClassVar[str] = ""
    params: ClassVar[dict[str, Any]] = {}
    recall_floor: ClassVar[float] = 0.9
    n_items: ClassVar[int] = 2000
    dim: ClassVar[int] = 32
    n_queries: ClassVar[int] = 200
    seed: ClassVar[int] = 2024
    topk: ClassVar[int] = 10
    filter_queries: ClassVar[int] = 40
    #: parameters that make a build deterministic (e.g. ``{"num_threads": 1}``); ``None`` skips the test
    deterministic_params: ClassVar[dict[str, Any] | None] = None

    # -- hooks a subclass may override ------------------------------------------------------
    def make_retriever(self, metric: str = "ip", **params: Any) -> Retriever:
        """A fresh, unfitted retriever (default: ``zoo.registry.create_retriever``)."""
        if not self.retriever_name:
            raise NotImplementedError("set retriever_name or override make_retriever() in your test class")
        from zoo.registry import create_retriever

        return create_retriever(self.retriever_name, metric=metric, **{**self.params, **params})

    def load_retriever(self, directory: Path, like: Retriever) -> Retriever:
        """Load a saved index (default: ``type(like).load(directory)``)."""
        return type(like).load(directory)

    # -- data --------------------------------------------------------------------------------
    @property
    def items(self) -> np.ndarray:
        return make_vectors(self.n_items, self.dim, self.seed)

    @property
    def queries(self) -> np.ndarray:
        return make_vectors(self.n_queries, self.dim, self.seed + 1)

    @pytest.fixture(scope="class")
    @classmethod
    def fitted(cls) -> Retriever:
        """An ``ip`` retriever fitted on :attr:`items` (shared by read-only tests: do not mutate)."""
        suite = cls()
        return suite.make_retriever("ip").fit(suite.items)

    # -- registration ----------------------------------------------------------------------------
    def test_spec_matches_class(self) -> None:
        if not self.retriever_name:
            pytest.skip("no retriever_name: the retriever is not created through the registry")
        from zoo.registry import default_registry

        spec = default_registry().retriever(self.retriever_name)
        cls = spec.load()
        assert issubclass(cls, Retriever)
        assert cls.name == spec.name
        assert set(spec.build_params) == set(cls.build_param_names)
        assert set(spec.query_params) == set(cls.query_param_names)
        assert spec.supports_add == cls.supports_add

    def test_spec_defaults_match_class_defaults(self) -> None:
        if not self.retriever_name:
            pytest.skip("no retriever_name: the retriever is not created through the registry")
        from zoo.registry import default_registry

        spec = default_registry().retriever(self.retriever_name)
        direct = spec.load()(metric="ip")  # no parameters: the class's own defaults (it may fill none)
        for own, declared in (
            (direct.build_params, spec.build_params),
            (direct.query_params, spec.query_params),
        ):
            drift = {k: (v, declared.get(k)) for k, v in own.items() if k in declared and declared[k] != v}
            assert not drift, f"class defaults differ from the spec's (class, spec): {drift}"

    # -- output format -----------------------------------------------------------------------------
    def test_query_shapes_and_dtypes(self, fitted: Retriever) -> None:
        ids, scores = fitted.query(self.queries, self.topk)
        assert isinstance(ids, np.ndarray) and isinstance(scores, np.ndarray)
        assert ids.shape == scores.shape == (self.n_queries, self.topk)
        assert ids.dtype == np.int64
        assert scores.dtype == np.float32
        assert ((ids >= 0) & (ids < self.n_items)).all()
        assert np.isfinite(scores).all()
        assert len(fitted) == fitted.count == self.n_items
        assert fitted.dim == self.dim

    def test_no_duplicate_ids_in_a_row(self, fitted: Retriever) -> None:
        ids, _ = fitted.query(self.queries, self.topk)
        ordered = np.sort(ids, axis=1)
        assert (ordered[:, 1:] != ordered[:, :-1]).all()

    def test_single_vector_query_gives_1d(self, fitted: Retriever) -> None:
        ids, scores = fitted.query(self.queries[3], self.topk)
        assert ids.shape == scores.shape == (self.topk,)
        assert ids.dtype == np.int64 and scores.dtype == np.float32
        batch_ids, batch_scores = fitted.query(self.queries[3:4], self.topk)
        np.testing.assert_array_equal(ids, batch_ids[0])
        np.testing.assert_allclose(scores, batch_scores[0], rtol=1e-5, atol=1e-5)

    def test_scores_sorted_descending(self, fitted: Retriever) -> None:
        _, scores = fitted.query(self.queries, self.topk)
        assert (np.diff(scores, axis=1) <= 0).all()

    @pytest.mark.parametrize("metric", ["ip", "cosine"])
    def test_scores_are_similarities(self, metric: str) -> None:
        items = make_vectors(self.n_items, self.dim, self.seed, spread_norms=True)
        retriever = self.make_retriever(metric).fit(items)
        ids, scores = retriever.query(self.queries, self.topk)
        expected = np.take_along_axis(similarity(items, self.queries, metric), ids, axis=1)
        scale = float(np.abs(expected).max())
        np.testing.assert_allclose(scores, expected, rtol=1e-4, atol=1e-4 * scale)

    def test_padding_when_topk_exceeds_catalogue(self) -> None:
        retriever = self.make_retriever("ip").fit(self.items[:5])
        ids, scores = retriever.query(self.queries[:7], 8)
        assert ids.shape == scores.shape == (7, 8)
        np.testing.assert_array_equal(np.sort(ids[:, :5], axis=1), np.tile(np.arange(5), (7, 1)))
        assert (ids[:, 5:] == -1).all()
        assert np.isneginf(scores[:, 5:]).all()
        assert np.isfinite(scores[:, :5]).all()
        one_ids, one_scores = retriever.query(self.queries[0], 6)
        assert one_ids.shape == (6,) and one_ids[-1] == -1 and np.isneginf(one_scores[-1])

    def test_topk_equal_to_catalogue_returns_every_item(self) -> None:
        n = 300
        retriever = self.make_retriever("ip").fit(self.items[:n])
        ids, scores = retriever.query(self.queries[:20], n)
        np.testing.assert_array_equal(np.sort(ids, axis=1), np.tile(np.arange(n), (20, 1)))
        assert (np.diff(scores, axis=1) <= 0).all()

    # -- input validation --------------------------------------------------------------------------
    @pytest.mark.parametrize("topk", [0, -1, 2.5, "10", True, None, np.float64(3.0)])
    def test_invalid_topk_rejected(self, fitted: Retriever, topk: Any) -> None:
        with pytest.raises(UsageError, match="topk"):
            fitted.query(self.queries, topk)

    def test_numpy_integer_topk_accepted(self, fitted: Retriever) -> None:
        ids, _ = fitted.query(self.queries[:3], np.int64(4))
        assert ids.shape == (3, 4)

    def test_empty_query_rejected(self, fitted: Retriever) -> None:
        with pytest.raises(UsageError, match="query"):
            fitted.query(np.empty((0, self.dim), dtype=np.float32), self.topk)
        with pytest.raises(UsageError, match="query"):
            fitted.query(np.empty((0, 3, self.dim), dtype=np.float32), self.topk)

    def test_wrong_dimension_rejected(self, fitted: Retriever) -> None:
        with pytest.raises(UsageError, match=rf"dimension {self.dim + 1}.*dimension {self.dim}"):
            fitted.query(np.ones((2, self.dim + 1), dtype=np.float32), self.topk)
        with pytest.raises(UsageError, match="dimension"):
            fitted.query(np.ones(self.dim - 1, dtype=np.float32), self.topk)

    def test_bad_query_values_rejected(self, fitted: Retriever) -> None:
        bad = np.array(self.queries[:2])
        bad[1, 0] = np.nan
        with pytest.raises(UsageError, match="NaN"):
            fitted.query(bad, self.topk)
        with pytest.raises(UsageError):
            fitted.query(np.ones((2, 3, self.dim), dtype=np.float32), self.topk)

    def test_query_before_fit_rejected(self) -> None:
        retriever = self.make_retriever("ip")
        with pytest.raises(UsageError, match="fit"):
            retriever.query(self.queries, self.topk)

    def test_bad_fit_input_rejected(self) -> None:
        retriever = self.make_retriever("ip")
        with pytest.raises(UsageError):
            retriever.fit(np.empty((0, self.dim), dtype=np.float32))
        with pytest.raises(UsageError, match="unique"):
            retriever.fit(self.items[:3], ids=[1, 2, 1])
        with pytest.raises(UsageError):
            retriever.fit(self.items[:3], ids=[1, 2])

    def test_unknown_metric_rejected(self) -> None:
        with pytest.raises(UsageError):
            self.make_retriever("l2")

    def test_accepts_torch_tensors(self) -> None:
        torch = pytest.importorskip("torch")
        retriever = self.make_retriever("ip").fit(torch.from_numpy(np.array(self.items[:500])))
        ids, scores = retriever.query(torch.from_numpy(np.array(self.queries[:5])), 3)
        assert ids.shape == (5, 3) and isinstance(ids, np.ndarray) and scores.dtype == np.float32

    def test_index_does_not_alias_input(self) -> None:
        items = np.array(self.items)  # writable copy
        retriever = self.make_retriever("ip").fit(items)
        before = retriever.query(self.queries[:20], self.topk)
        items[:] = 0.0
        after = retriever.query(self.queries[:20], self.topk)
        np.testing.assert_array_equal(before[0], after[0])
        np.testing.assert_array_equal(before[1], after[1])

    # -- ids ---------------------------------------------------------------------------------------------
    def test_custom_ids_returned(self) -> None:
        rng = np.random.default_rng(self.seed)
        custom = 10**12 + rng.permutation(self.n_items).astype(np.int64) * 7
        retriever = self.make_retriever("ip").fit(self.items, ids=custom)
        np.testing.assert_array_equal(retriever.ids, custom)
        ids, _ = retriever.query(self.queries, self.topk)
        assert np.isin(ids, custom).all()
        truth, _ = brute_force_topk(self.items, self.queries, self.topk, "ip")
        assert recall_at_k(ids, custom[truth]) >= self.recall_floor

    def test_refit_replaces_index(self) -> None:
        retriever = self.make_retriever("ip").fit(self.items[:100])
        retriever.fit(self.items[100:150], ids=np.arange(1000, 1050))
        assert retriever.count == 50
        ids, _ = retriever.query(self.queries[:5], 60)
        assert set(ids[ids >= 0].tolist()) == set(range(1000, 1050))

    # -- recall --------------------------------------------------------------------------------------
    def test_recall_ip(self, fitted: Retriever) -> None:
        ids, _ = fitted.query(self.queries, self.topk)
        truth, _ = brute_force_topk(self.items, self.queries, self.topk, "ip")
        assert recall_at_k(ids, truth) >= self.recall_floor

    def test_recall_cosine(self) -> None:
        items = make_vectors(self.n_items, self.dim, self.seed, spread_norms=True)
        queries = make_vectors(self.n_queries, self.dim, self.seed + 1, spread_norms=True)
        retriever = self.make_retriever("cosine").fit(items)
        ids, scores = retriever.query(queries, self.topk)
        truth, _ = brute_force_topk(items, queries, self.topk, "cosine")
        assert recall_at_k(ids, truth) >= self.recall_floor
        assert (scores <= 1.0 + 1e-4).all() and (scores >= -1.0 - 1e-4).all()
        # With such spread norms the inner-product ranking is very different: cosine was applied.
        ip_truth, _ = brute_force_topk(items, queries, self.topk, "ip")
        assert recall_at_k(ids, ip_truth) < 0.5

    # -- inputs a serving system sends -----------------------------------------------------------
    def test_other_dtypes_and_layouts_give_the_same_answers(self, fitted: Retriever) -> None:
        queries = np.array(self.queries[:40])
        expected, _ = fitted.query(queries, self.topk)
        for variant in (
            queries.astype(np.float64),
            np.asfortranarray(queries),
            np.repeat(queries, 2, axis=0)[::2],  # a strided view
            queries.tolist(),
        ):
            got, _ = fitted.query(variant, self.topk)
            np.testing.assert_array_equal(got, expected)

    def test_query_does_not_modify_its_input(self) -> None:
        retriever = self.make_retriever("cosine").fit(self.items)
        queries = np.array(self.queries[:20]) * 3.0
        before = queries.copy()
        retriever.query(queries, self.topk)
        np.testing.assert_array_equal(queries, before)

    def test_batches_and_single_rows_agree(self, fitted: Retriever) -> None:
        whole, whole_scores = fitted.query(self.queries, self.topk)
        parts = [
            fitted.query(self.queries[lo : lo + 37], self.topk)[0] for lo in range(0, self.n_queries, 37)
        ]
        np.testing.assert_array_equal(np.vstack(parts), whole)
        for row in (0, 7, self.n_queries - 1):
            one, one_scores = fitted.query(self.queries[row], self.topk)
            np.testing.assert_array_equal(one, whole[row])
            np.testing.assert_allclose(one_scores, whole_scores[row], rtol=1e-5, atol=1e-5)

    def test_concurrent_queries_agree(self, fitted: Retriever) -> None:
        from concurrent.futures import ThreadPoolExecutor

        expected, _ = fitted.query(self.queries, self.topk)
        with ThreadPoolExecutor(max_workers=4) as pool:
            results = list(pool.map(lambda _: fitted.query(self.queries, self.topk)[0], range(4)))
        for got in results:
            np.testing.assert_array_equal(got, expected)

    def test_zero_query_vector(self) -> None:
        for metric in ("ip", "cosine"):
            retriever = self.make_retriever(metric).fit(self.items[:300])
            ids, scores = retriever.query(np.zeros(self.dim, dtype=np.float32), self.topk)
            assert ids.shape == (self.topk,) and (ids >= 0).all() and len(set(ids.tolist())) == self.topk
            np.testing.assert_allclose(scores, 0.0, atol=1e-5)

    def test_duplicate_item_vectors(self) -> None:
        items = np.array(self.items[:400])
        items[100:300] = items[0]  # many identical vectors (e.g. untrained cold items)
        retriever = self.make_retriever("ip").fit(items)
        ids, scores = retriever.query(items[0] * 2.0, 50)
        assert len(set(ids.tolist())) == 50 and (ids >= 0).all()
        assert (np.diff(scores) <= 0).all()
        ids, _ = retriever.query(self.queries[:10], 400)
        np.testing.assert_array_equal(np.sort(ids, axis=1), np.tile(np.arange(400), (10, 1)))

    # -- filtered retrieval ----------------------------------------------------------------------------
    def _check_filtered_rows(
        self, ids: np.ndarray, scores: np.ndarray, passing: list[set[int]], truth: np.ndarray
    ) -> None:
        """Every row: only passing ids, ``min(k, passing)`` results then -1 / -inf padding, sorted,
        distinct; recall against the filtered truth."""
        assert ids.shape == scores.shape == (len(passing), self.topk)
        assert ids.dtype == np.int64 and scores.dtype == np.float32
        for row, allowed in enumerate(passing):
            got = ids[row]
            real = got[got >= 0].tolist()
            assert set(real) <= allowed, f"row {row} returned forbidden ids {sorted(set(real) - allowed)}"
            expected = min(self.topk, len(allowed))
            assert len(real) == expected, f"row {row}: {len(real)} results, {len(allowed)} items pass"
            assert (got[:expected] >= 0).all() and (got[expected:] == -1).all()
            assert np.isfinite(scores[row, :expected]).all() and np.isneginf(scores[row, expected:]).all()
            assert len(set(real)) == len(real)
            assert (np.diff(scores[row, :expected]) <= 0).all()
        assert recall_at_k(ids, truth) >= self.recall_floor

    def _exclude_lists(self, queries: np.ndarray, ids: np.ndarray) -> list[list[int]]:
        """Per query: its own true top-5 and a random set whose size varies from none to all but 3."""
        rng = np.random.default_rng(self.seed + 7)
        n = len(ids)
        top, _ = brute_force_topk(self.items[:n], queries, 5)
        sizes = [0, 1, 50, n // 2, n - self.topk - 2, n - 3, n]
        lists = []
        for row in range(queries.shape[0]):
            size = sizes[row % len(sizes)] if row < 2 * len(sizes) else int(rng.integers(0, n // 4))
            chosen = set(rng.choice(n, size=size, replace=False).tolist()) | set(top[row].tolist())
            lists.append([int(ids[label]) for label in sorted(chosen)])
        return lists

    def test_unfiltered_query_is_unchanged(self, fitted: Retriever) -> None:
        plain = fitted.query(self.queries, self.topk)
        same = fitted.query(self.queries, self.topk, allow=None, exclude=None)
        np.testing.assert_array_equal(plain[0], same[0])
        np.testing.assert_array_equal(plain[1], same[1])

    def test_exclude_never_returns_excluded_ids(self, fitted: Retriever) -> None:
        queries = np.array(self.queries[: self.filter_queries])
        lists = self._exclude_lists(queries, np.arange(self.n_items))
        passing = [set(range(self.n_items)) - set(row) for row in lists]
        truth = filtered_topk(self.items, queries, self.topk, exclude=lists)
        ids, scores = fitted.query(queries, self.topk, exclude=lists)
        self._check_filtered_rows(ids, scores, passing, truth)
        # a small batch (a serving request) may take another path than a large one (an evaluation)
        few = max(1, min(len(lists), getattr(fitted, "filter_batch_rows", len(lists))))
        for lo in range(0, len(lists), few):
            rows = slice(lo, lo + few)
            ids, scores = fitted.query(queries[rows], self.topk, exclude=lists[rows])
            self._check_filtered_rows(ids, scores, passing[rows], truth[rows])

    def test_allow_returns_only_allowed_ids(self, fitted: Retriever) -> None:
        queries = np.array(self.queries[: self.filter_queries])
        rng = np.random.default_rng(self.seed + 8)
        sizes = [0, 1, 3, self.topk, self.topk + 1, 50, self.n_items // 4, self.n_items]
        lists = []
        for row in range(queries.shape[0]):
            size = sizes[row % len(sizes)]
            chosen = rng.choice(self.n_items, size=size, replace=False).tolist()
            lists.append(chosen + ([self.n_items + 5, 10**12] if row % 3 == 0 else []))  # unknown ids
        ids, scores = fitted.query(queries, self.topk, allow=lists)
        passing = [set(row) & set(range(self.n_items)) for row in lists]
        truth = filtered_topk(self.items, queries, self.topk, allow=lists)
        self._check_filtered_rows(ids, scores, passing, truth)

    def test_allow_and_exclude_together(self, fitted: Retriever) -> None:
        queries = np.array(self.queries[: self.filter_queries])
        rng = np.random.default_rng(self.seed + 9)
        allow = [rng.choice(self.n_items, size=60, replace=False).tolist() for _ in range(len(queries))]
        exclude = [row[: 10 + i % 45] for i, row in enumerate(allow)]
        ids, scores = fitted.query(queries, self.topk, allow=allow, exclude=exclude)
        passing = [set(a) - set(e) for a, e in zip(allow, exclude, strict=True)]
        truth = filtered_topk(self.items, queries, self.topk, allow=allow, exclude=exclude)
        self._check_filtered_rows(ids, scores, passing, truth)

    def test_one_list_for_every_query(self, fitted: Retriever) -> None:
        queries = np.array(self.queries[: self.filter_queries])
        top, _ = brute_force_topk(self.items, queries[:3], 5)
        excluded = sorted(set(top.reshape(-1).tolist()) | set(range(0, self.n_items, 3)))
        shared = fitted.query(queries, self.topk, exclude=np.array(excluded))
        per_query = fitted.query(queries, self.topk, exclude=[excluded] * len(queries))
        passing = [set(range(self.n_items)) - set(excluded)] * len(queries)
        truth = filtered_topk(self.items, queries, self.topk, exclude=[excluded] * len(queries))
        self._check_filtered_rows(*shared, passing, truth)
        self._check_filtered_rows(*per_query, passing, truth)
        if self.recall_floor >= 1.0:  # exact backends agree whichever way the lists are given
            np.testing.assert_array_equal(shared[0], per_query[0])
        allowed = list(range(1, self.n_items, 4))  # a plain list of ints: one list for every query
        ids, scores = fitted.query(queries, self.topk, allow=allowed)
        truth = filtered_topk(self.items, queries, self.topk, allow=[allowed] * len(queries))
        self._check_filtered_rows(ids, scores, [set(allowed)] * len(queries), truth)

    def test_filters_leaving_few_or_no_items(self) -> None:
        n = 300
        retriever = self.make_retriever("ip").fit(self.items[:n])
        queries = np.array(self.queries[:6])
        kept = [7, 150, 299]
        ids, scores = retriever.query(queries, self.topk, exclude=sorted(set(range(n)) - set(kept)))
        assert (np.sort(ids[:, :3], axis=1) == kept).all() and (ids[:, 3:] == -1).all()
        assert np.isneginf(scores[:, 3:]).all() and np.isfinite(scores[:, :3]).all()
        for everything in ({"exclude": list(range(n))}, {"allow": []}, {"allow": [n + 1, n + 2]}):
            ids, scores = retriever.query(queries, self.topk, **everything)
            assert (ids == -1).all() and np.isneginf(scores).all(), everything
        ids, _ = retriever.query(queries, 2 * n, exclude=[0, 1])  # topk above the catalogue
        assert (np.sort(ids[:, : n - 2], axis=1) == np.arange(2, n)).all() and (ids[:, n - 2 :] == -1).all()

    def test_filters_with_custom_ids_and_one_vector(self) -> None:
        custom = 10**12 + np.arange(self.n_items, dtype=np.int64)[::-1] * 7
        retriever = self.make_retriever("ip").fit(self.items, ids=custom)
        query = np.array(self.queries[5])
        top, _ = brute_force_topk(self.items, query[None], 20)
        excluded = custom[top[0, :5]]
        ids, scores = retriever.query(query, self.topk, exclude=excluded)
        assert ids.shape == scores.shape == (self.topk,)
        assert not set(ids.tolist()) & set(excluded.tolist()) and (ids >= 0).all()
        assert recall_at_k(ids, custom[top[0, 5 : 5 + self.topk]]) >= self.recall_floor
        allowed = custom[top[0, 10:13]].tolist() + [5, -3]  # ids the index does not hold are ignored
        ids, _ = retriever.query(query, self.topk, allow=allowed)
        assert set(ids[:3].tolist()) == set(allowed[:3]) and (ids[3:] == -1).all()

    def test_filtered_multi_interest_queries(self, fitted: Retriever) -> None:
        from zoo.retrieval.merge import query_interests

        users = self.filter_queries // 3
        interests = np.array(self.queries[: users * 3]).reshape(users, 3, self.dim)
        best = similarity(self.items, interests.reshape(-1, self.dim)).reshape(users, 3, -1).max(axis=1)
        rng = np.random.default_rng(self.seed + 10)
        lists = [
            sorted(set(np.argsort(-best[u])[:4].tolist()) | set(rng.choice(self.n_items, 30).tolist()))
            for u in range(users)
        ]
        ids, scores = query_interests(fitted, interests, self.topk, exclude=lists)
        masked = best.copy()
        for u, row in enumerate(lists):
            masked[u, row] = -np.inf
        truth = np.argsort(-masked, axis=1, kind="stable")[:, : self.topk]
        passing = [set(range(self.n_items)) - set(row) for row in lists]
        self._check_filtered_rows(ids, scores, passing, truth)

    def test_filtered_after_add(self) -> None:
        if not self.make_retriever("ip").supports_add:
            pytest.skip("the retriever cannot add to a built index")
        split = self.n_items // 2
        ids = np.arange(self.n_items, dtype=np.int64) + 100
        retriever = self.make_retriever("ip").fit(self.items[:split], ids=ids[:split])
        retriever.add(self.items[split:], ids[split:])
        queries = np.array(self.items[split : split + 8])  # each finds itself first unfiltered
        found, _ = retriever.query(queries, self.topk, exclude=ids[split : split + 8].tolist())
        assert not set(found.reshape(-1).tolist()) & set(ids[split : split + 8].tolist())
        found, _ = retriever.query(queries, self.topk, allow=[[int(i)] for i in ids[split : split + 8]])
        np.testing.assert_array_equal(found[:, 0], ids[split : split + 8])
        assert (found[:, 1:] == -1).all()

    def test_bad_filters_rejected(self, fitted: Retriever) -> None:
        queries = np.array(self.queries[:4])
        with pytest.raises(UsageError, match="exclude"):
            fitted.query(queries, self.topk, exclude=[[1], [2]])  # 2 lists for 4 queries
        with pytest.raises(UsageError, match="integers"):
            fitted.query(queries, self.topk, allow=np.array([1.5, 2.0]))
        with pytest.raises(UsageError):
            fitted.query(queries, self.topk, exclude="seen")

    # -- multi-interest users ---------------------------------------------------------------------
    def test_multi_interest_queries_merge_by_best_score(self, fitted: Retriever) -> None:
        from zoo.retrieval.merge import query_interests

        users = self.n_queries // 3
        interests = self.queries[: users * 3].reshape(users, 3, self.dim)  # [users, 3 interests, d]
        ids, scores = query_interests(fitted, interests, self.topk)
        assert ids.shape == scores.shape == (users, self.topk)
        assert ids.dtype == np.int64 and scores.dtype == np.float32
        ordered = np.sort(ids, axis=1)
        assert (ordered[:, 1:] != ordered[:, :-1]).all()
        assert (np.diff(scores, axis=1) <= 0).all()
        best = similarity(self.items, interests.reshape(-1, self.dim)).reshape(users, 3, -1).max(axis=1)
        truth = np.argsort(-best, axis=1, kind="stable")[:, : self.topk]
        assert recall_at_k(ids, truth) >= self.recall_floor

    # -- determinism -----------------------------------------------------------------------------
    def test_deterministic_build(self) -> None:
        if self.deterministic_params is None:
            pytest.skip(
                "deterministic_params not set: the backend's builds are not claimed to be reproducible"
            )
        first = self.make_retriever("ip", **self.deterministic_params).fit(self.items)
        second = self.make_retriever("ip", **self.deterministic_params).fit(self.items)
        a, a_scores = first.query(self.queries, self.topk)
        b, b_scores = second.query(self.queries, self.topk)
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(a_scores, b_scores)

    def test_memory_report(self, fitted: Retriever) -> None:
        reporter = getattr(fitted, "memory_bytes", None)
        if not callable(reporter):
            pytest.skip("the retriever does not report its memory (optional memory_bytes())")
        value = reporter()
        assert value is None or (isinstance(value, int) and value > 0)

    # -- add -------------------------------------------------------------------------------------------
    def test_add_after_fit(self) -> None:
        if not self.make_retriever("ip").supports_add:
            with pytest.raises(UsageError, match="add"):
                self.make_retriever("ip").fit(self.items[:100]).add(
                    self.items[100:110], ids=np.arange(100, 110)
                )
            return
        items = make_vectors(self.n_items, self.dim, self.seed, spread_norms=True)
        split = self.n_items * 3 // 4
        ids = np.arange(self.n_items, dtype=np.int64) * 3 + 5
        retriever = self.make_retriever("cosine").fit(items[:split], ids=ids[:split])
        middle = (split + self.n_items) // 2
        retriever.add(items[split:middle], ids[split:middle])  # two adds: growth is exercised
        retriever.add(items[middle:], ids[middle:])
        assert retriever.count == self.n_items
        np.testing.assert_array_equal(retriever.ids, ids)
        # every added vector finds itself (cosine 1) first
        found, scores = retriever.query(items[split:], 1)
        assert (found[:, 0] == ids[split:]).mean() >= self.recall_floor
        np.testing.assert_allclose(scores[found[:, 0] == ids[split:], 0], 1.0, atol=1e-4)
        got, _ = retriever.query(self.queries, self.topk)
        truth, _ = brute_force_topk(items, self.queries, self.topk, "cosine")
        assert recall_at_k(got, ids[truth]) >= self.recall_floor
        with pytest.raises(UsageError, match="unique"):
            retriever.add(items[:2], ids[:2])
        with pytest.raises(UsageError, match="dimension"):
            retriever.add(np.ones((2, self.dim + 1), dtype=np.float32), [10**9, 10**9 + 1])

    # -- query parameters ------------------------------------------------------------------------------
    def test_set_query_params_unknown_rejected(self, fitted: Retriever) -> None:
        with pytest.raises(UsageError, match="no_such_param"):
            fitted.set_query_params(no_such_param=1)

    def test_set_query_params_known_keeps_answers(self) -> None:
        retriever = self.make_retriever("ip").fit(self.items)
        before = retriever.query(self.queries, self.topk)
        assert retriever.set_query_params(**dict(retriever.query_params)) is retriever
        after = retriever.query(self.queries, self.topk)
        np.testing.assert_array_equal(before[0], after[0])

    # -- save / load ---------------------------------------------------------------------------------------
    @pytest.fixture(scope="class")
    @classmethod
    def saved(cls, fitted: Retriever, tmp_path_factory: pytest.TempPathFactory) -> Path:
        """The shared fitted retriever saved once (copy it before damaging it)."""
        return fitted.save(tmp_path_factory.mktemp("conformance") / "index")

    def test_save_load_round_trip(self, fitted: Retriever, saved: Path) -> None:
        loaded = self.load_retriever(saved, fitted)
        assert type(loaded) is type(fitted)
        assert (loaded.metric, loaded.dim, loaded.count) == (fitted.metric, fitted.dim, fitted.count)
        assert loaded.build_params == fitted.build_params
        assert loaded.query_params == fitted.query_params
        np.testing.assert_array_equal(loaded.ids, fitted.ids)
        expected = fitted.query(self.queries, self.topk)
        got = loaded.query(self.queries, self.topk)
        np.testing.assert_array_equal(got[0], expected[0])
        np.testing.assert_array_equal(got[1], expected[1])
        header = json.loads((saved / HEADER_FILE).read_text())
        assert header["backend"] == fitted.name
        assert (header["metric"], header["dim"], header["count"]) == ("ip", self.dim, self.n_items)

    def test_save_load_round_trip_cosine_custom_ids(self, tmp_path: Path) -> None:
        ids = np.arange(500, dtype=np.int64)[::-1] * 11
        retriever = self.make_retriever("cosine").fit(self.items[:500], ids=ids)
        loaded = self.load_retriever(retriever.save(tmp_path / "index"), retriever)
        assert loaded.metric == "cosine"
        np.testing.assert_array_equal(loaded.query(self.queries, 5)[0], retriever.query(self.queries, 5)[0])

    def test_save_overwrites_existing_index(self, tmp_path: Path) -> None:
        first = self.make_retriever("ip").fit(self.items[:50])
        second = self.make_retriever("ip").fit(self.items[:80])
        first.save(tmp_path / "index")
        second.save(tmp_path / "index")
        assert self.load_retriever(tmp_path / "index", second).count == 80
        assert [p.name for p in tmp_path.iterdir()] == ["index"]  # no temporary folders left

    def test_save_empty_rejected(self, tmp_path: Path) -> None:
        with pytest.raises(UsageError):
            self.make_retriever("ip").save(tmp_path / "index")

    def _damaged_copies(self, saved: Path, tmp_path: Path) -> list[tuple[str, Path]]:
        header = json.loads((saved / HEADER_FILE).read_text())
        copies = []
        for name in [*sorted(header["files"]), HEADER_FILE]:
            for damage in ("truncated", "corrupted"):
                target = tmp_path / f"{name}-{damage}"
                shutil.copytree(saved, target)
                data = bytearray((target / name).read_bytes())
                if damage == "truncated":
                    data = data[: len(data) // 2]
                else:  # flip a few bytes in the middle, same size
                    middle = len(data) // 2
                    for i in range(middle, min(middle + 16, len(data))):
                        data[i] ^= 0xFF
                (target / name).write_bytes(bytes(data))
                copies.append((f"{name} {damage}", target))
        return copies

    def test_damaged_files_rejected(self, fitted: Retriever, saved: Path, tmp_path: Path) -> None:
        for what, folder in self._damaged_copies(saved, tmp_path):
            with pytest.raises(ModelFileError):
                self.load_retriever(folder, fitted)
                pytest.fail(f"loading with {what} did not raise ModelFileError")

    def test_missing_file_rejected(self, fitted: Retriever, saved: Path, tmp_path: Path) -> None:
        header = json.loads((saved / HEADER_FILE).read_text())
        for name in header["files"]:
            target = tmp_path / f"missing-{name}"
            shutil.copytree(saved, target)
            (target / name).unlink()
            with pytest.raises(ModelFileError, match="missing"):
                self.load_retriever(target, fitted)

    def test_other_backend_rejected(self, fitted: Retriever, saved: Path, tmp_path: Path) -> None:
        target = tmp_path / "other"
        shutil.copytree(saved, target)
        header = json.loads((target / HEADER_FILE).read_text())
        header["backend"] = "some-other-backend"
        (target / HEADER_FILE).write_text(json.dumps(header))
        with pytest.raises(ModelFileError, match="some-other-backend"):
            self.load_retriever(target, fitted)

    @pytest.mark.parametrize(("key", "delta"), [("dim", 1), ("dim", -1), ("count", 1)])
    def test_header_inconsistent_with_files_rejected(
        self, fitted: Retriever, saved: Path, tmp_path: Path, key: str, delta: int
    ) -> None:
        # index.json is not covered by the checksums: a backend must not trust its dim/count blindly
        target = tmp_path / "edited"
        shutil.copytree(saved, target)
        header = json.loads((target / HEADER_FILE).read_text())
        header[key] += delta
        (target / HEADER_FILE).write_text(json.dumps(header))
        with pytest.raises(ModelFileError):
            self.load_retriever(target, fitted)

    def test_not_an_index_rejected(self, fitted: Retriever, tmp_path: Path) -> None:
        with pytest.raises(ModelFileError):
            self.load_retriever(tmp_path, fitted)
        (tmp_path / HEADER_FILE).write_text('{"hello": "world"}')
        with pytest.raises(ModelFileError):
            self.load_retriever(tmp_path, fitted)
