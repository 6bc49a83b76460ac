"""The built-in retrievers: the shared conformance suite plus backend-specific checks.

annoy and faiss are optional extras: their tests are skipped (with the reason) where the library is
not installed, and the tests of a missing backend's behaviour run everywhere.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from zoo.errors import DeviceError, ModelFileError, PluginError, UsageError
from zoo.registry import create_retriever, default_registry
from zoo.retrieval.base import HEADER_FILE, Retriever
from zoo.retrieval.transforms import MipsToL2, rescore
from zoo.testing.retrievers import RetrieverConformance, brute_force_topk, make_vectors, recall_at_k

torch = pytest.importorskip("torch")

import zoo_plugins.exact.retriever as exact_module  # noqa: E402
from zoo_plugins.exact.retriever import ExactRetriever, canonical_topk, group_size, scored_group_size  # noqa: E402
from zoo_plugins.hnsw.retriever import HnswRetriever  # noqa: E402

HAS_ANNOY = importlib.util.find_spec("annoy") is not None
HAS_FAISS = importlib.util.find_spec("faiss") is not None
needs_annoy = pytest.mark.skipif(
    not HAS_ANNOY, reason='annoy not installed (pip install "recall-zoo[annoy]")'
)
needs_faiss = pytest.mark.skipif(
    not HAS_FAISS, reason='faiss not installed (pip install "recall-zoo[faiss]")'
)


def clustered(n: int, dim: int, seed: int, clusters: int = 100, rank: int = 12) -> np.ndarray:
    """Embedding-like vectors: Gaussian clusters in a ``rank``-dimensional subspace, plus a little noise.

    Trained embeddings have a low intrinsic dimension; isotropic 64-d noise (the hardest case for
    any graph index) is what the 200k measurement in the notes uses instead. The subspace and the
    cluster centres are shared by every seed, so items and queries come from the same distribution.
    """
    shared = np.random.default_rng(1234)
    projection = shared.standard_normal((rank, dim)).astype(np.float32) / np.sqrt(rank)
    centres = shared.standard_normal((clusters, rank)).astype(np.float32)
    rng = np.random.default_rng(seed)
    latent = centres[rng.integers(0, clusters, n)] + 0.5 * rng.standard_normal((n, rank), dtype=np.float32)
    noise = 0.05 * rng.standard_normal((n, dim), dtype=np.float32)
    return np.ascontiguousarray(latent @ projection + noise, dtype=np.float32)


# -- conformance -------------------------------------------------------------------------------------
class TestExactConformance(RetrieverConformance):
    retriever_name = "exact"
    params = {"chunk_size": 64}  # several chunks per query batch
    recall_floor = 1.0
    deterministic_params = {}


class TestExactGroupedConformance(RetrieverConformance):
    """The grouped search path (large catalogues) on the suite's data."""

    recall_floor = 1.0
    deterministic_params = {}

    def make_retriever(self, metric: str = "ip", **params: Any) -> ExactRetriever:
        return GroupedExact(metric=metric, **{"chunk_size": 48, **params})


class GroupedExact(ExactRetriever):
    """The exact retriever with the grouped path forced on any catalogue size."""

    grouped_min_items = 1
    grouped_items_per_k = 0


class CountingGroupedExact(GroupedExact):
    """The grouped path, counting the rows it hands to the plain path."""

    def __init__(self, fallback: list[int], **params: Any) -> None:
        super().__init__(**params)
        self._fallback = fallback

    def _search_plain(self, queries: Any, k: int) -> Any:
        self._fallback.append(int(queries.shape[0]))  # list.append: safe from the query threads
        return super()._search_plain(queries, k)


class ScoredExact(GroupedExact):
    """The grouped search in its scored (GPU) form, forced on CPU and on any catalogue size."""

    grouped_form = "scored"


class TestExactScoredConformance(RetrieverConformance):
    """The scored grouped search (the GPU form) on the suite's data."""

    recall_floor = 1.0
    deterministic_params = {}

    def make_retriever(self, metric: str = "ip", **params: Any) -> ExactRetriever:
        return ScoredExact(metric=metric, **{"chunk_size": 48, **params})


class TestExactConformanceDirect(RetrieverConformance):
    """The suite also runs without the registry (``make_retriever`` overridden)."""

    recall_floor = 1.0
    n_items = 600

    def make_retriever(self, metric: str = "ip", **params: Any) -> ExactRetriever:
        return ExactRetriever(metric=metric, **params)


class TestHnswConformance(RetrieverConformance):
    retriever_name = "hnsw"
    params = {"M": 16, "ef": 200, "ef_construction": 64, "num_threads": 1}
    recall_floor = 0.95
    deterministic_params = {"num_threads": 1}


@needs_annoy
class TestAnnoyConformance(RetrieverConformance):
    retriever_name = "annoy"
    params = {"n_trees": 10, "search_k": 3000, "num_threads": 1}  # inner product via the MIPS-to-L2 transform
    recall_floor = 0.9
    n_items = 1000
    n_queries = 120
    deterministic_params = {"num_threads": 1}


@needs_annoy
class TestAnnoyNativeDotConformance(RetrieverConformance):
    retriever_name = "annoy"
    params = {"n_trees": 10, "search_k": 3000, "mips": "native", "num_threads": 1}
    recall_floor = 0.9
    n_items = 600
    n_queries = 100


@needs_faiss
class TestFaissFlatConformance(RetrieverConformance):
    retriever_name = "faiss"
    params = {"index": "Flat", "num_threads": 1}
    recall_floor = 1.0
    deterministic_params = {}


@needs_faiss
class TestFaissIvfConformance(RetrieverConformance):
    retriever_name = "faiss"
    params = {"index": "IVF", "nprobe": 40, "num_threads": 1}  # 51 lists for 2,000 vectors
    recall_floor = 0.95
    deterministic_params = {"num_threads": 1}


@needs_faiss
class TestFaissIvfPqConformance(RetrieverConformance):
    retriever_name = "faiss"
    params = {"index": "IVF-PQ", "nprobe": 40, "k_factor": 30, "num_threads": 1}
    recall_floor = 0.9
    n_items = 1000
    n_queries = 120


@needs_faiss
class TestFaissHnswL2Conformance(RetrieverConformance):
    retriever_name = "faiss"
    params = {"index": "HNSW", "efSearch": 200, "mips": "l2", "num_threads": 1}
    recall_floor = 0.95
    n_items = 1000
    n_queries = 120
    deterministic_params = {"num_threads": 1}


def test_every_builtin_retriever_has_a_conformance_class() -> None:
    covered = {
        cls.retriever_name
        for cls in globals().values()
        if isinstance(cls, type) and issubclass(cls, RetrieverConformance) and cls.retriever_name
    }
    builtin = {
        s.name
        for s in default_registry().specs("retriever")
        if s.plugin in ("exact", "hnsw", "annoy", "faiss")  # milvus: tests/test_milvus.py (a server fixture)
    }
    assert builtin <= covered, f"add a RetrieverConformance subclass for {sorted(builtin - covered)}"


# -- registration ------------------------------------------------------------------------------------
def test_plugin_modules_import_no_heavy_backend() -> None:
    code = (
        "import sys, zoo_plugins.exact, zoo_plugins.hnsw, zoo_plugins.annoy, zoo_plugins.faiss,"
        " zoo_plugins.milvus, zoo.retrieval, zoo.retrieval.filtering;"
        "from zoo.registry import list_retrievers; names = list_retrievers();"
        "assert {'exact', 'hnsw', 'annoy', 'faiss', 'milvus'} <= set(names), names;"
        "heavy = [m for m in ('torch', 'hnswlib', 'annoy', 'faiss', 'pymilvus') if m in sys.modules];"
        " assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_missing_backend_is_listed_unavailable_and_breaks_nothing_else(monkeypatch) -> None:
    from typer.testing import CliRunner

    from zoo_cli.main import build_app

    monkeypatch.setitem(sys.modules, "annoy", None)  # as if annoy were not installed
    monkeypatch.setitem(sys.modules, "zoo_plugins.annoy.retriever", None)
    spec = default_registry().retriever("annoy")
    assert not spec.available and spec.install_hint() == 'pip install "recall-zoo[annoy]"'
    with pytest.raises(PluginError, match=r"recall-zoo\[annoy\]"):
        create_retriever("annoy")
    with pytest.raises(PluginError, match=r"recall-zoo\[annoy\]"):
        from zoo.retrieval import Annoy  # noqa: F401
    assert create_retriever("hnsw").fit(make_vectors(50, 4, 0)).count == 50
    listed = CliRunner().invoke(build_app(), ["retrievers"])
    assert listed.exit_code == 0
    assert "annoy" in listed.stdout and "hnsw" in listed.stdout
    as_json = json.loads(CliRunner().invoke(build_app(), ["retrievers", "--json"]).stdout)
    (entry,) = [r for r in as_json if r["name"] == "annoy"]
    assert entry["available"] is False and entry["install"] == 'pip install "recall-zoo[annoy]"'


def test_registry_defaults() -> None:
    exact = create_retriever("exact")
    assert isinstance(exact, ExactRetriever)
    assert exact.build_params == {"device": "cpu"} and exact.query_params == {"chunk_size": "auto"}
    hnsw = create_retriever("hnsw", metric="cosine", M=8)
    assert isinstance(hnsw, HnswRetriever) and hnsw.metric == "cosine"
    assert hnsw.build_params == {"M": 8, "ef_construction": 200, "seed": 100, "num_threads": -1}
    assert hnsw.query_params == {"ef": 64}
    with pytest.raises(UsageError, match="'eff'"):
        create_retriever("hnsw", eff=10)


# -- exact -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("metric", ["ip", "cosine"])
def test_exact_equals_numpy_brute_force(metric: str) -> None:
    items = make_vectors(3000, 24, 7, spread_norms=True)
    queries = make_vectors(150, 24, 8)
    ids, scores = ExactRetriever(metric=metric).fit(items).query(queries, 25)
    truth, truth_scores = brute_force_topk(items, queries, 25, metric)
    np.testing.assert_array_equal(ids, truth)
    np.testing.assert_allclose(scores, truth_scores, rtol=1e-4, atol=1e-4 * np.abs(truth_scores).max())


def test_exact_chunking_matches_one_chunk() -> None:
    items = make_vectors(1000, 16, 3)
    queries = make_vectors(257, 16, 4)
    one = ExactRetriever(chunk_size=10_000).fit(items).query(queries, 12)
    for chunk, rows in ((1, 20), (7, 257), (256, 257)):
        got = ExactRetriever(chunk_size=chunk).fit(items).query(queries[:rows], 12)
        np.testing.assert_array_equal(got[0], one[0][:rows])
        # BLAS may pick another kernel for another shape (gemv for one row): last-bit differences
        np.testing.assert_allclose(got[1], one[1][:rows], rtol=1e-6, atol=1e-6)
    retriever = ExactRetriever().fit(items)
    retriever.set_query_params(chunk_size=5)
    np.testing.assert_array_equal(retriever.query(queries, 12)[0], one[0])


def test_exact_ties_go_to_the_first_indexed_item() -> None:
    # 40 identical items (e.g. untrained cold items) around 10 distinct ones
    rng = np.random.default_rng(0)
    items = np.repeat(rng.standard_normal((1, 8)).astype(np.float32), 50, axis=0)
    distinct = [3, 11, 17, 25, 31, 38, 42, 44, 46, 49]
    items[distinct] = rng.standard_normal((10, 8)).astype(np.float32) * 0.01  # all score below the tie
    ids = np.arange(50, dtype=np.int64)[::-1] + 100  # custom ids in reverse order of labels
    query = items[:1] * 3
    got_ids, got_scores = ExactRetriever(chunk_size=1).fit(items, ids=ids).query(query, 5)
    tied = [label for label in range(50) if label not in distinct][:5]
    np.testing.assert_array_equal(got_ids[0], ids[tied])
    assert (got_scores == got_scores[0, 0]).all()
    truth, _ = brute_force_topk(items, query, 45, "ip")
    np.testing.assert_array_equal(ExactRetriever().fit(items).query(query, 45)[0], truth)


def test_canonical_topk_orders_ties_by_index() -> None:
    scores = torch.tensor([[1.0, 3.0, 3.0, 3.0, 2.0, 3.0], [5.0, 4.0, 3.0, 2.0, 1.0, 0.0]])
    values, indices = canonical_topk(scores, 3)
    assert indices.tolist() == [[1, 2, 3], [0, 1, 2]]
    assert values.tolist() == [[3.0, 3.0, 3.0], [5.0, 4.0, 3.0]]
    values, indices = canonical_topk(scores, 6)
    assert indices.tolist() == [[1, 2, 3, 5, 4, 0], [0, 1, 2, 3, 4, 5]]


def test_exact_params_validated() -> None:
    with pytest.raises(DeviceError):
        ExactRetriever(device="tpu")
    with pytest.raises(UsageError, match="chunk_size"):
        ExactRetriever(chunk_size=0)
    retriever = ExactRetriever(device="auto").fit(make_vectors(10, 4, 0))
    with pytest.raises(UsageError, match="chunk_size"):
        retriever.set_query_params(chunk_size=-3)
    with pytest.raises(UsageError, match="chunk_size"):
        retriever.set_query_params(chunk_size="big")
    assert retriever.query_params == {"chunk_size": "auto"}  # the rejected value is not kept


def test_exact_save_is_plain_numpy(tmp_path: Path) -> None:
    items = make_vectors(100, 8, 1)
    ExactRetriever().fit(items).save(tmp_path / "index")
    stored = np.load(tmp_path / "index" / "vectors.npy", allow_pickle=False)
    np.testing.assert_array_equal(stored, items)


def test_exact_load_with_device_override(tmp_path: Path) -> None:
    items = make_vectors(100, 8, 1)
    ExactRetriever(device="auto").fit(items).save(tmp_path / "index")
    loaded = ExactRetriever.load(tmp_path / "index", device="cpu")
    assert loaded.device == torch.device("cpu") and loaded.build_params["device"] == "cpu"
    assert loaded.item_matrix.device == torch.device("cpu")
    # the override does not leak into later constructions
    assert ExactRetriever().build_params["device"] == "cpu"


def test_exact_load_rejects_mismatched_vectors(tmp_path: Path) -> None:
    retriever = ExactRetriever().fit(make_vectors(100, 8, 1))
    folder = retriever.save(tmp_path / "index")
    # a consistent header (checksums recomputed) over a vector file of the wrong shape
    np.save(folder / "vectors.npy", np.zeros((100, 9), dtype=np.float32), allow_pickle=False)
    header = json.loads((folder / HEADER_FILE).read_text())
    header["files"]["vectors.npy"] = {
        "bytes": (folder / "vectors.npy").stat().st_size,
        "sha256": hashlib.sha256((folder / "vectors.npy").read_bytes()).hexdigest(),
    }
    (folder / HEADER_FILE).write_text(json.dumps(header))
    with pytest.raises(ModelFileError, match="vectors.npy"):
        ExactRetriever.load(folder)


def test_exact_add_grows_without_changing_answers() -> None:
    items = make_vectors(900, 16, 5)
    queries = make_vectors(40, 16, 6)
    grown = ExactRetriever().fit(items[:100])
    for start in range(100, 900, 100):
        grown.add(items[start : start + 100], ids=np.arange(start, start + 100))
    full = ExactRetriever().fit(items)
    np.testing.assert_array_equal(grown.query(queries, 20)[0], full.query(queries, 20)[0])
    assert grown.item_matrix.shape == (900, 16)


def test_loading_another_backends_index_rejected(tmp_path: Path) -> None:
    items = make_vectors(200, 8, 2)
    ExactRetriever().fit(items).save(tmp_path / "exact")
    HnswRetriever().fit(items).save(tmp_path / "hnsw")
    with pytest.raises(ModelFileError, match="'exact', not 'hnsw'"):
        HnswRetriever.load(tmp_path / "exact")
    with pytest.raises(ModelFileError, match="'hnsw', not 'exact'"):
        ExactRetriever.load(tmp_path / "hnsw")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_exact_cuda_matches_cpu(tmp_path: Path) -> None:
    items = make_vectors(5000, 32, 9)
    queries = make_vectors(300, 32, 10)
    cpu = ExactRetriever(device="cpu").fit(items).query(queries, 50)
    gpu_retriever = ExactRetriever(device="cuda", chunk_size=128).fit(items)
    gpu = gpu_retriever.query(queries, 50)
    np.testing.assert_array_equal(gpu[0], cpu[0])
    np.testing.assert_allclose(gpu[1], cpu[1], rtol=1e-4, atol=1e-4)
    gpu_retriever.save(tmp_path / "index")
    loaded = ExactRetriever.load(tmp_path / "index", device="cpu")
    np.testing.assert_array_equal(loaded.query(queries, 50)[0], cpu[0])


# -- hnsw ---------------------------------------------------------------------------------------------------
def test_hnsw_ef_smaller_than_k() -> None:
    items = make_vectors(3000, 16, 11)
    queries = make_vectors(50, 16, 12)
    retriever = HnswRetriever(ef=5).fit(items)
    ids, scores = retriever.query(queries, 100)
    assert ids.shape == (50, 100) and (ids >= 0).all()
    assert (np.sort(ids, axis=1)[:, 1:] != np.sort(ids, axis=1)[:, :-1]).all()
    truth, _ = brute_force_topk(items, queries, 100)
    assert recall_at_k(ids, truth) >= 0.9
    assert retriever.query_params["ef"] == 5  # the per-query raise does not stick


def test_hnsw_k_larger_than_count() -> None:
    items = make_vectors(20, 8, 13)
    ids, scores = HnswRetriever().fit(items).query(make_vectors(4, 8, 14), 50)
    np.testing.assert_array_equal(np.sort(ids[:, :20], axis=1), np.tile(np.arange(20), (4, 1)))
    assert (ids[:, 20:] == -1).all() and np.isneginf(scores[:, 20:]).all()


def test_hnsw_unreachable_items_fall_back_to_exact() -> None:
    # M=2 with many duplicates leaves items the graph search cannot reach: hnswlib raises for k=count.
    items = np.array(make_vectors(200, 8, 15))
    items[:100] = items[0]
    queries = make_vectors(6, 8, 16)
    retriever = HnswRetriever(M=2, ef_construction=10, num_threads=1).fit(items)
    ids, scores = retriever.query(queries, 200)
    np.testing.assert_array_equal(np.sort(ids, axis=1), np.tile(np.arange(200), (6, 1)))
    truth_scores = np.sort(items.astype(np.float64) @ queries.T.astype(np.float64), axis=0)[::-1].T
    np.testing.assert_allclose(scores, truth_scores, rtol=1e-4, atol=1e-4)


def test_hnsw_fallback_rows_do_not_depend_on_the_batch() -> None:
    # k=60: with this graph some rows reach 60 items and some do not (hnswlib fails the whole batch)
    items = np.array(make_vectors(200, 8, 15))
    items[:100] = items[0]
    queries = make_vectors(40, 8, 16)
    retriever = HnswRetriever(M=2, ef_construction=10, num_threads=1).fit(items)
    ids, scores = retriever.query(queries, 60)
    assert (ids >= 0).all()
    for row in range(0, 40, 3):
        alone_ids, alone_scores = retriever.query(queries[row], 60)
        np.testing.assert_array_equal(ids[row], alone_ids)
        np.testing.assert_allclose(scores[row], alone_scores, rtol=1e-6, atol=1e-6)  # BLAS shape-dependent


def test_hnsw_deterministic_single_thread_build() -> None:
    items = clustered(2000, 16, 17)
    queries = make_vectors(100, 16, 18)
    first = HnswRetriever(num_threads=1, ef=16).fit(items).query(queries, 10)
    second = HnswRetriever(num_threads=1, ef=16).fit(items).query(queries, 10)
    np.testing.assert_array_equal(first[0], second[0])
    np.testing.assert_array_equal(first[1], second[1])


def test_hnsw_all_cores_reach_hnswlib_as_a_positive_count(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """num_threads=-1 must mean every core: hnswlib 0.8 runs a batch on one thread when its default is -1."""
    import zoo.retrieval.threads as threads_module

    monkeypatch.setattr(threads_module.os, "sched_getaffinity", lambda pid: {0, 1, 2}, raising=False)
    assert threads_module.resolve_threads(-1) == 3 and threads_module.resolve_threads(5) == 5
    retriever = HnswRetriever().fit(make_vectors(300, 8, 3))
    assert retriever._index.num_threads == 3
    loaded = HnswRetriever.load(retriever.save(tmp_path / "index"))
    assert loaded.build_params["num_threads"] == -1  # the file keeps the request, not this machine's count
    assert loaded._index.num_threads == 3
    assert HnswRetriever(num_threads=1).fit(make_vectors(300, 8, 3))._index.num_threads == 1


def test_hnsw_recall_at_default_settings() -> None:
    items = clustered(10_000, 64, 19)
    queries = clustered(500, 64, 20)
    ids, _ = create_retriever("hnsw").fit(items).query(queries, 10)
    truth, _ = ExactRetriever().fit(items).query(queries, 10)
    assert recall_at_k(ids, truth) >= 0.95


def test_hnsw_params_validated() -> None:
    for bad in ({"M": 0}, {"ef_construction": -5}, {"num_threads": 0}, {"num_threads": 1.5}, {"ef": True}):
        with pytest.raises(UsageError):
            HnswRetriever(**bad)
    retriever = HnswRetriever().fit(make_vectors(50, 4, 0))
    with pytest.raises(UsageError, match="ef"):
        retriever.set_query_params(ef=0)
    assert retriever.query_params == {"ef": 64}  # the rejected value is not kept


def test_hnsw_set_ef_changes_search_without_rebuild(tmp_path: Path) -> None:
    items = clustered(5000, 32, 21)
    queries = clustered(200, 32, 22)
    retriever = HnswRetriever(M=8, ef_construction=40, num_threads=1).fit(items)
    truth, _ = brute_force_topk(items, queries, 10)
    low = recall_at_k(retriever.set_query_params(ef=10).query(queries, 10)[0], truth)
    high = recall_at_k(retriever.set_query_params(ef=400).query(queries, 10)[0], truth)
    assert high > low and high >= 0.9
    loaded = HnswRetriever.load(retriever.save(tmp_path / "index"))
    assert loaded.query_params == {"ef": 400}


def test_hnsw_backend_version_in_header() -> None:
    import importlib.metadata

    retriever = HnswRetriever().fit(make_vectors(10, 4, 0))
    assert retriever.header()["backend_version"] == f"hnswlib {importlib.metadata.version('hnswlib')}"


# -- exact: the grouped search ---------------------------------------------------------------------------
@pytest.mark.parametrize(("n", "dim", "k"), [(4000, 16, 10), (4001, 8, 37), (3000, 24, 1), (5003, 12, 100)])
def test_exact_grouped_equals_plain_and_numpy(n: int, dim: int, k: int) -> None:
    items = np.array(make_vectors(n, dim, 31, spread_norms=True))
    items[200:260] = items[7]  # a tie group crossing group boundaries
    queries = np.array(make_vectors(120, dim, 32))
    queries[3] = items[7] * 2.0  # ties at the top
    fallback: list[int] = []
    grouped = CountingGroupedExact(fallback, chunk_size=50).fit(items).query(queries, k)
    plain = ExactRetriever(chunk_size=50).fit(items).query(queries, k)
    # The grouped path answers (a doubtful-row check that always fired would hide it behind the plain
    # path): at most the few rows that could tie at the k-th score are handed over.
    assert sum(fallback) <= 3, fallback
    truth, truth_scores = brute_force_topk(items, queries, k)
    np.testing.assert_array_equal(grouped[0], plain[0])
    np.testing.assert_array_equal(grouped[0], truth)
    np.testing.assert_allclose(grouped[1], truth_scores, rtol=1e-4, atol=1e-4 * np.abs(truth_scores).max())


@pytest.mark.parametrize(("n", "dim", "k"), [(4000, 16, 10), (4001, 8, 37), (3000, 24, 1), (5003, 12, 100)])
def test_exact_scored_equals_plain_and_numpy(monkeypatch, n: int, dim: int, k: int) -> None:
    items = np.array(make_vectors(n, dim, 41, spread_norms=True))
    items[200:260] = items[7]  # a tie group crossing group boundaries
    queries = np.array(make_vectors(120, dim, 42))
    queries[3] = items[7] * 2.0  # ties at the top
    full_rows: list[int] = []
    original = exact_module.canonical_topk

    def counting_topk(scores: Any, k: int) -> Any:
        if scores.shape[1] == n:  # a top-k over every item: the plain path or the scored fallback
            full_rows.append(int(scores.shape[0]))
        return original(scores, k)

    monkeypatch.setattr(exact_module, "canonical_topk", counting_topk)
    scored = ScoredExact(chunk_size=50).fit(items).query(queries, k)
    assert sum(full_rows) <= 3, full_rows  # the group maxima answer all but the tied rows
    monkeypatch.setattr(exact_module, "canonical_topk", original)
    plain = ExactRetriever(chunk_size=50).fit(items).query(queries, k)
    truth, truth_scores = brute_force_topk(items, queries, k)
    np.testing.assert_array_equal(scored[0], plain[0])
    np.testing.assert_array_equal(scored[1], plain[1])  # the same score matrix: the same numbers
    np.testing.assert_array_equal(scored[0], truth)
    np.testing.assert_allclose(scored[1], truth_scores, rtol=1e-4, atol=1e-4 * np.abs(truth_scores).max())


def test_exact_scored_ties_across_excluded_groups() -> None:
    # every item scores the same for the first query: the k-th score ties with excluded groups, and
    # the answer must still be the first k items in index order
    items = np.array(make_vectors(3000, 8, 43))
    items[:, 0] = 0.0
    queries = np.zeros((2, 8), dtype=np.float32)
    queries[0, 0] = 1.0
    queries[1] = np.array(make_vectors(1, 8, 44))[0]
    labels, scores = ScoredExact().fit(items).query(queries, 25)
    np.testing.assert_array_equal(labels[0], np.arange(25))
    np.testing.assert_array_equal(labels[1], brute_force_topk(items, queries[1:], 25)[0][0])


def test_exact_grouped_form_follows_the_device() -> None:
    items = np.array(make_vectors(40_000, 8, 45))
    retriever = ExactRetriever().fit(items)
    assert retriever._grouped_search(40_000, 10, 8) == retriever._search_grouped  # CPU: blocked
    assert retriever._grouped_search(40_000, 100, 8) is None  # fewer than 800 items per result
    retriever.device = torch.device("cuda")  # only inspected here: nothing runs on it
    assert retriever._grouped_search(40_000, 10, 8) == retriever._search_scored
    assert retriever._chunk(10**6) == 4096
    retriever._ids = np.arange(10**6)  # a GPU chunk of 4096 x 1M scores would take 16 GiB: smaller chunks
    assert retriever._chunk(10**6) == (2 << 30) // (4 * 10**6)


def test_exact_grouped_with_many_super_blocks(monkeypatch) -> None:
    # a tiny group buffer forces one super-block per few groups: candidates are merged across them
    monkeypatch.setitem(exact_module._GROUP_BUFFER_BYTES, "cpu", 4 * 64 * 30)
    monkeypatch.setitem(exact_module._BLOCK_BYTES, "cpu", 4 * 64 * 16)
    items = np.array(make_vectors(6000, 16, 33))
    queries = np.array(make_vectors(64, 16, 34))
    got = GroupedExact(chunk_size=64).fit(items).query(queries, 12)
    truth, _ = brute_force_topk(items, queries, 12)
    np.testing.assert_array_equal(got[0], truth)


def test_exact_grouped_after_add_and_cosine() -> None:
    items = np.array(make_vectors(5000, 16, 35, spread_norms=True))
    queries = np.array(make_vectors(80, 16, 36))
    retriever = GroupedExact(metric="cosine").fit(items[:3000])
    retriever.add(items[3000:] * 50.0, ids=np.arange(3000, 5000))  # longer vectors: the rounding bound grows
    truth, _ = brute_force_topk(np.vstack([items[:3000], items[3000:] * 50.0]), queries, 20, "cosine")
    np.testing.assert_array_equal(retriever.query(queries, 20)[0], truth)


def test_exact_group_size() -> None:
    assert group_size(200_000, 10, 64) == 16
    assert group_size(200_000, 100, 64) == 4
    assert 4 <= group_size(10, 1000, 8) <= 64 and 4 <= group_size(10**9, 1, 4) <= 64
    assert scored_group_size(200_000, 10) == 128
    assert scored_group_size(200_000, 100) == 32
    assert 4 <= scored_group_size(10, 1000) <= 256 and 4 <= scored_group_size(10**9, 1) <= 256


def test_ids_follow_fit_and_add_after_the_positional_shortcut() -> None:
    # fit without ids answers labels as ids; an add with other ids (or a refit with ids) must not keep
    # using that shortcut
    items = np.array(make_vectors(50, 8, 61))
    retriever = ExactRetriever(metric="cosine").fit(items[:30])  # each vector's best match is itself
    assert retriever._ids_are_positions()
    np.testing.assert_array_equal(retriever.query(items[5], 1)[0], [5])
    retriever.add(items[30:], ids=np.arange(1000, 1020))
    assert not retriever._ids_are_positions()
    np.testing.assert_array_equal(retriever.query(items[40], 1)[0], [1010])
    np.testing.assert_array_equal(retriever.query(items[5], 1)[0], [5])
    retriever.fit(items[:30], ids=np.arange(30)[::-1])
    np.testing.assert_array_equal(retriever.query(items[5], 1)[0], [24])
    padded = retriever.query(items[:2], 40)  # k above the catalogue: -1 padding, -inf scores
    assert (padded[0][:, 30:] == -1).all() and np.isneginf(padded[1][:, 30:]).all()


def test_exact_memory_bytes() -> None:
    retriever = ExactRetriever()
    assert retriever.memory_bytes() is None
    assert retriever.fit(make_vectors(100, 8, 1)).memory_bytes() == 100 * 8 * 4


# -- the MIPS-to-L2 transform ------------------------------------------------------------------------------
def test_mips_to_l2_preserves_inner_product_ranking() -> None:
    items = np.array(make_vectors(500, 12, 37, spread_norms=True))
    queries = np.array(make_vectors(30, 12, 38))
    transform = MipsToL2.fit(items)
    augmented = transform.items(items)
    np.testing.assert_allclose(np.linalg.norm(augmented, axis=1), transform.max_norm, rtol=1e-4)
    distances = ((transform.queries(queries)[:, None, :] - augmented[None]) ** 2).sum(-1)
    by_distance = np.argsort(distances, axis=1, kind="stable")[:, :10]
    truth, _ = brute_force_topk(items, queries, 10)
    assert recall_at_k(by_distance, truth) >= 0.99
    assert transform.covers(items) and not transform.covers(
        items[:1] * 2 * transform.max_norm / np.linalg.norm(items[0])
    )


def test_rescore_orders_dedups_and_pads() -> None:
    items = np.eye(4, dtype=np.float32)
    queries = np.array([[0.1, 0.9, 0.5, 0.0]], dtype=np.float32)
    labels, scores = rescore(items, queries, np.array([[0, 2, 2, 1, -1]]), 5)
    assert labels.tolist() == [[1, 2, 0, -1, -1]]
    np.testing.assert_allclose(scores[0, :3], [0.9, 0.5, 0.1], rtol=1e-6)
    assert np.isneginf(scores[0, 3:]).all()


# -- annoy -------------------------------------------------------------------------------------------------
@needs_annoy
def test_seed_tutorial_annoy_usage() -> None:
    from zoo.retrieval import Annoy

    item_embeddings = np.array(make_vectors(800, 16, 39))
    user_embeddings = np.array(make_vectors(5, 16, 40))
    annoy = Annoy(n_trees=10)
    annoy.fit(item_embeddings)
    similar_items, scores = annoy.query(user_embeddings[0], topk=10)
    assert similar_items.shape == scores.shape == (10,) and similar_items.dtype == np.int64
    batch_ids, _ = annoy.query(user_embeddings, 10)  # a batch works too
    assert batch_ids.shape == (5, 10)
    assert annoy.set_query_arguments(search_k=500).query_params == {"search_k": 500}
    assert Annoy(metric="angular").metric == "cosine" and Annoy(metric="dot").metric == "ip"


@needs_annoy
def test_annoy_cannot_add_and_rejects_bad_params() -> None:
    from zoo_plugins.annoy.retriever import AnnoyRetriever

    retriever = AnnoyRetriever(num_threads=1).fit(make_vectors(100, 8, 41))
    with pytest.raises(UsageError, match="add"):
        retriever.add(make_vectors(5, 8, 42), ids=np.arange(100, 105))
    for bad in ({"n_trees": 0}, {"mips": "cosine"}, {"search_k": 0}, {"num_threads": 0}, {"seed": -1}):
        with pytest.raises(UsageError):
            AnnoyRetriever(**bad)
    with pytest.raises(UsageError):
        AnnoyRetriever(metric="euclidean")


@needs_annoy
def test_annoy_l2_transform_beats_native_dot_when_norms_vary() -> None:
    # The documented claim (docs/retrievers.md): Annoy's own 'dot' metric loses recall when item norms
    # vary; the MIPS-to-L2 transform does not, at the same trees and search_k.
    items = np.array(make_vectors(3000, 16, 43, spread_norms=True))
    queries = np.array(make_vectors(200, 16, 44))
    truth, _ = brute_force_topk(items, queries, 10)
    recalls = {}
    for mips in ("l2", "native"):
        retriever = create_retriever("annoy", mips=mips, n_trees=10, search_k=1000, num_threads=1).fit(items)
        recalls[mips] = recall_at_k(retriever.query(queries, 10)[0], truth)
    assert recalls["l2"] > recalls["native"] + 0.05, recalls


@needs_annoy
def test_annoy_search_k_changes_answers_without_rebuild(tmp_path: Path) -> None:
    items = clustered(4000, 16, 45)
    queries = clustered(100, 16, 46)
    truth, _ = brute_force_topk(items, queries, 10)
    retriever = create_retriever("annoy", n_trees=4, num_threads=1).fit(items)
    low = recall_at_k(retriever.set_query_params(search_k=20).query(queries, 10)[0], truth)
    high = recall_at_k(retriever.set_query_params(search_k=4000).query(queries, 10)[0], truth)
    assert high > low and high >= 0.9
    loaded = type(retriever).load(retriever.save(tmp_path / "index"))
    assert loaded.query_params == {"search_k": 4000}
    assert (
        loaded.memory_bytes() and loaded.memory_bytes() >= (tmp_path / "index" / "annoy.ann").stat().st_size
    )


@needs_annoy
@pytest.mark.parametrize("mips", ["l2", "native"])
def test_annoy_short_forest_answers_are_completed(mips: str) -> None:
    """search_k=1 makes Annoy offer fewer than k candidates for some rows: those rows are searched
    again over every node, in both modes (labels only with the transform, labels and scores with dot)."""
    items = clustered(3000, 16, 48)
    queries = clustered(200, 16, 49)
    retriever = create_retriever("annoy", mips=mips, n_trees=2, search_k=1, num_threads=1).fit(items)
    raw = retriever._index
    transformed = retriever._transform.queries(queries) if retriever._transform is not None else queries
    short = sum(len(raw.get_nns_by_vector(row, 10, 1)) < 10 for row in transformed.tolist())
    assert short > 0  # the case under test happens
    labels, scores = retriever.query(queries, 10)
    assert (labels >= 0).all() and all(len(set(row)) == 10 for row in labels.tolist())
    expected = np.einsum("qd,qkd->qk", queries.astype(np.float64), items[labels].astype(np.float64))
    np.testing.assert_allclose(scores, expected, rtol=1e-4, atol=1e-4)
    assert (np.diff(scores, axis=1) <= 1e-6).all()


@needs_annoy
def test_annoy_query_restores_the_garbage_collector_state() -> None:
    import gc

    items = clustered(500, 8, 50)
    retriever = create_retriever("annoy", n_trees=2, num_threads=1).fit(items)
    assert gc.isenabled()
    retriever.query(items[:20], 5)
    assert gc.isenabled()
    gc.disable()
    try:
        retriever.query(items[:20], 5)
        assert not gc.isenabled()  # the caller's choice is kept
    finally:
        gc.enable()
    with pytest.raises(UsageError):
        retriever.query(np.full((2, 8), np.nan, dtype=np.float32), 5)
    assert gc.isenabled()


@needs_annoy
def test_annoy_batched_queries_use_threads() -> None:
    items = np.array(make_vectors(2000, 16, 47))
    queries = np.array(make_vectors(500, 16, 48))
    threaded = create_retriever("annoy", num_threads=4, seed=3).fit(items)
    single = create_retriever("annoy", num_threads=1, seed=3).fit(items)
    assert threaded.threads == 4
    # the same forest answers the same, whatever the number of query threads
    threaded._threads = 1
    reference = threaded.query(queries, 10)[0]
    threaded._threads = 4
    np.testing.assert_array_equal(threaded.query(queries, 10)[0], reference)
    assert single.query(queries, 10)[0].shape == (500, 10)


# -- faiss -------------------------------------------------------------------------------------------------
@needs_faiss
def test_faiss_shorthands_resolve_to_factory_strings() -> None:
    from zoo_plugins.faiss.retriever import auto_nlist, pq_subquantizers, resolve_factory

    assert resolve_factory("Flat", 10**6, 64) == "Flat"
    assert resolve_factory("IVF", 200_000, 64) == f"IVF{auto_nlist(200_000)},Flat" == "IVF1789,Flat"
    assert resolve_factory("IVF-PQ", 200_000, 64) == "IVF1789,PQ16x8"
    assert resolve_factory("HNSW", 10, 64) == "HNSW32"
    assert resolve_factory("IVF256,SQ8", 10, 64) == "IVF256,SQ8"
    assert auto_nlist(2000) == 51 and auto_nlist(10) == 1
    assert pq_subquantizers(65) == 13 and pq_subquantizers(64) == 16


@needs_faiss
def test_faiss_small_catalogue_falls_back_to_flat(tmp_path: Path) -> None:
    retriever = create_retriever("faiss", index="IVF1024,PQ8", num_threads=1).fit(make_vectors(300, 16, 49))
    assert retriever.index_description.startswith("Flat (exact")
    loaded = type(retriever).load(retriever.save(tmp_path / "index"))
    assert loaded.index_description == retriever.index_description
    truth, _ = brute_force_topk(make_vectors(300, 16, 49), make_vectors(20, 16, 50), 5)
    np.testing.assert_array_equal(loaded.query(make_vectors(20, 16, 50), 5)[0], truth)


@needs_faiss
def test_faiss_bad_factory_string_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="factory"):
        create_retriever("faiss", index="NotAnIndex42").fit(make_vectors(100, 8, 51))
    for bad in (
        {"index": ""},
        {"mips": "dot"},
        {"rescore": "sometimes"},
        {"nprobe": 0},
        {"efSearch": -1},
        {"k_factor": 0},
    ):
        with pytest.raises(UsageError):
            create_retriever("faiss", **bad)


@needs_faiss
def test_faiss_nprobe_and_efsearch_change_answers_without_rebuild() -> None:
    items = clustered(6000, 16, 52)
    queries = clustered(150, 16, 53)
    truth, _ = brute_force_topk(items, queries, 10)
    ivf = create_retriever("faiss", index="IVF", num_threads=1).fit(items)
    faiss_index = ivf.faiss_index
    low = recall_at_k(ivf.set_query_params(nprobe=1).query(queries, 10)[0], truth)
    high = recall_at_k(ivf.set_query_params(nprobe=64).query(queries, 10)[0], truth)
    assert high > low and high >= 0.99 and ivf.faiss_index is faiss_index
    hnsw = create_retriever("faiss", index="HNSW8", efSearch=1, num_threads=1).fit(items)
    ids, _ = hnsw.query(queries, 50)  # efSearch is raised to k: every row is full
    assert (ids >= 0).all()
    assert recall_at_k(hnsw.set_query_params(efSearch=256).query(queries, 10)[0], truth) >= 0.95


@needs_faiss
def test_faiss_pq_scores_are_exact_when_rescored_and_approximate_otherwise() -> None:
    items = clustered(3000, 16, 54)
    queries = clustered(50, 16, 55)

    def exact_scores(ids: np.ndarray) -> np.ndarray:
        return np.take_along_axis(queries.astype(np.float64) @ items.T.astype(np.float64), ids, 1)

    rescored = create_retriever("faiss", index="IVF-PQ", nprobe=16, k_factor=4, num_threads=1).fit(items)
    ids, scores = rescored.query(queries, 10)
    np.testing.assert_allclose(scores, exact_scores(ids), rtol=1e-4, atol=1e-3)
    approximate = create_retriever("faiss", index="IVF-PQ", nprobe=16, rescore=False, num_threads=1).fit(
        items
    )
    ids, scores = approximate.query(queries, 10)
    assert (np.diff(scores, axis=1) <= 0).all() and not np.allclose(scores, exact_scores(ids), rtol=1e-4)
    assert approximate.memory_bytes() < rescored.memory_bytes()


@needs_faiss
def test_faiss_l2_transform_refits_when_an_added_vector_is_longer() -> None:
    items = np.array(make_vectors(2000, 16, 56))
    queries = np.array(make_vectors(40, 16, 57))
    retriever = create_retriever("faiss", index="Flat", mips="l2", num_threads=1).fit(items[:1500])
    retriever.add(items[1500:] * 10.0, ids=np.arange(1500, 2000))
    full = np.vstack([items[:1500], items[1500:] * 10.0])
    truth, _ = brute_force_topk(full, queries, 10)
    np.testing.assert_array_equal(retriever.query(queries, 10)[0], truth)


def test_exact_batches_run_on_threads_and_restore_the_torch_setting() -> None:
    items = np.array(make_vectors(5000, 8, 58))
    queries = np.array(make_vectors(300, 8, 59))
    truth, _ = brute_force_topk(items, queries, 10)
    previous = torch.get_num_threads()
    torch.set_num_threads(3)
    try:
        for retriever in (ExactRetriever(chunk_size=32).fit(items), GroupedExact(chunk_size=32).fit(items)):
            np.testing.assert_array_equal(retriever.query(queries, 10)[0], truth)
            assert torch.get_num_threads() == 3
            # The workers' single-thread setting is process-wide for threads that start later: a fresh
            # thread must see the restored value (the calling thread's own setting proves nothing).
            seen: list[int] = []
            fresh = threading.Thread(target=lambda out=seen: out.append(torch.get_num_threads()))
            fresh.start()
            fresh.join()
            assert seen == [3]
    finally:
        torch.set_num_threads(previous)


# -- class-name aliases (zoo.retrieval.Annoy...) come from the plugins' specs ------------------------
def test_retrieval_aliases_come_from_the_specs() -> None:
    import zoo.retrieval
    from zoo import hookimpl, testing
    from zoo.retrieval import backend_names
    from zoo.specs import RetrieverSpec

    assert backend_names() == {
        "Annoy": "annoy", "Exact": "exact", "Faiss": "faiss", "Hnsw": "hnsw", "HNSW": "hnsw",
        "Milvus": "milvus",
    }  # fmt: skip
    assert zoo.retrieval.Exact is ExactRetriever
    with pytest.raises(AttributeError):
        zoo.retrieval.Nothing  # noqa: B018
    with pytest.raises(AttributeError):
        zoo.retrieval.exact  # noqa: B018 - aliases are class names, never registry names

    class ThirdParty:
        @hookimpl
        def zoo_register_retrievers(self) -> list[RetrieverSpec]:
            return [RetrieverSpec(name="brute", factory=lambda **kw: ExactRetriever, aliases=("Brute",))]

    with testing.register_plugin(ThirdParty(), "brute-plugin"):
        assert backend_names()["Brute"] == "brute"
        assert zoo.retrieval.Brute is not None

    class Clash:
        @hookimpl
        def zoo_register_retrievers(self) -> list[RetrieverSpec]:
            return [RetrieverSpec(name="other", factory="x:y", aliases=("Hnsw",))]

    with testing.register_plugin(Clash(), "clash-plugin"), pytest.raises(PluginError, match="claimed by"):
        zoo.retrieval.Hnsw  # noqa: B018
    with pytest.raises(PluginError, match="class names"):
        RetrieverSpec(name="bad", factory="x:y", aliases=("not_a_class",))


# -- filtered retrieval: native backends and the base class's fallback ----------------------------------
class NumpyBruteForce(Retriever):
    """A third-party backend that knows nothing of filters: it gets the base class's exact fallback."""

    name = "numpy-brute-force"

    def _build(self, vectors: np.ndarray) -> None:
        self._matrix = np.array(vectors, dtype=np.float32)

    def _search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        scores = queries @ self._matrix.T
        top = np.lexsort((np.broadcast_to(np.arange(scores.shape[1]), scores.shape), -scores), axis=1)[:, :k]
        return top, np.take_along_axis(scores, top, axis=1)

    def _save_index(self, directory: Path) -> None:
        np.save(directory / "matrix.npy", self._matrix, allow_pickle=False)

    def _load_index(self, directory: Path) -> None:
        matrix = np.load(directory / "matrix.npy", allow_pickle=False)
        if matrix.shape != (self.count, self.dim):
            raise ModelFileError(f"{directory}: matrix {matrix.shape} does not match the header")
        self._matrix = matrix


class TestFallbackFilteringConformance(RetrieverConformance):
    """The conformance suite (filters included) for a backend without native filtering."""

    recall_floor = 1.0
    n_items = 600

    def make_retriever(self, metric: str = "ip", **params: Any) -> Retriever:
        return NumpyBruteForce(metric=metric, **params)


def test_native_filter_flags() -> None:
    assert ExactRetriever.native_filters and HnswRetriever.native_filters
    assert not NumpyBruteForce.native_filters and NumpyBruteForce.supports_filters
    if HAS_ANNOY:
        from zoo_plugins.annoy.retriever import AnnoyRetriever

        assert not AnnoyRetriever.native_filters  # over-fetch and drop
    if HAS_FAISS:
        from zoo_plugins.faiss.retriever import FaissRetriever

        assert FaissRetriever.native_filters


@pytest.mark.parametrize("ids", [None, np.arange(1500, dtype=np.int64)[::-1] * 3 + 7])
def test_native_exact_filtering_equals_the_fallback(ids: np.ndarray | None) -> None:
    """Masked exact scores and over-fetching the exact ranking give the same ids, per query or shared."""
    items = make_vectors(1500, 16, 70)
    queries = np.array(make_vectors(60, 16, 71))
    native = ExactRetriever(chunk_size=16).fit(items, ids=ids)
    fallback = NumpyBruteForce().fit(items, ids=ids)
    known = native.ids
    rng = np.random.default_rng(72)
    per_query = [rng.choice(known, size=int(rng.integers(0, 1500)), replace=False) for _ in range(60)]
    shared = rng.choice(known, size=700, replace=False)
    for kwargs in (
        {"exclude": per_query},
        {"allow": per_query},
        {"exclude": shared},
        {"allow": shared},
        {"allow": shared, "exclude": per_query},
    ):
        got, got_scores = native.query(queries, 20, **kwargs)
        want, want_scores = fallback.query(queries, 20, **kwargs)
        np.testing.assert_array_equal(got, want)
        np.testing.assert_allclose(got_scores, want_scores, rtol=1e-5, atol=1e-5)


def test_exact_grouped_path_filters_exactly() -> None:
    items = make_vectors(3000, 8, 73)
    queries = np.array(make_vectors(40, 8, 74))
    excluded = [list(range(i, 3000, 5)) for i in range(40)]
    got, _ = GroupedExact(chunk_size=8).fit(items).query(queries, 10, exclude=excluded)
    want, _ = NumpyBruteForce().fit(items).query(queries, 10, exclude=excluded)
    np.testing.assert_array_equal(got, want)


def test_hnsw_filtered_rows_the_graph_cannot_fill_use_brute_force() -> None:
    # M=2 over many duplicates leaves unreachable items: a filter allowing only some of them still
    # returns every allowed item, best first.
    items = np.array(make_vectors(200, 8, 15))
    items[:100] = items[0]
    queries = make_vectors(6, 8, 16)
    retriever = HnswRetriever(M=2, ef_construction=10, num_threads=1).fit(items)
    allowed = list(range(0, 200, 3))
    ids, scores = retriever.query(queries, 80, allow=allowed)
    assert (np.sort(ids[:, : len(allowed)], axis=1) == allowed).all() and (ids[:, len(allowed) :] == -1).all()
    assert (np.diff(scores[:, : len(allowed)], axis=1) <= 1e-6).all()
