"""The built-in retrievers: the shared conformance suite plus backend-specific checks."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from zoo.errors import DeviceError, ModelFileError, UsageError
from zoo.registry import create_retriever
from zoo.retrieval.base import HEADER_FILE
from zoo.testing.retrievers import RetrieverConformance, brute_force_topk, make_vectors, recall_at_k

torch = pytest.importorskip("torch")

from zoo_plugins.exact.retriever import ExactRetriever, canonical_topk  # noqa: E402
from zoo_plugins.hnsw.retriever import HnswRetriever  # noqa: E402


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


class TestExactConformanceDirect(RetrieverConformance):
    """The suite also runs without the registry (``make_retriever`` overridden)."""

    recall_floor = 1.0
    n_items = 600

    def make_retriever(self, metric: str = "ip", **params: Any) -> ExactRetriever:
        return ExactRetriever(metric=metric, **params)


class TestHnswConformance(RetrieverConformance):
    retriever_name = "hnsw"
    params = {"ef": 200}
    recall_floor = 0.95


# -- registration ------------------------------------------------------------------------------------
def test_plugin_modules_import_no_heavy_backend() -> None:
    code = (
        "import sys, zoo_plugins.exact, zoo_plugins.hnsw;"
        "from zoo.registry import list_retrievers; names = list_retrievers();"
        "assert {'exact', 'hnsw'} <= set(names), names;"
        "heavy = [m for m in ('torch', 'hnswlib') if m in sys.modules]; assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_registry_defaults() -> None:
    exact = create_retriever("exact")
    assert isinstance(exact, ExactRetriever)
    assert exact.build_params == {"device": "cpu"} and exact.query_params == {"chunk_size": 1024}
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
    assert retriever.query_params == {"chunk_size": 1024}  # the rejected value is not kept


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
