"""Torch-RecHub's serving builders over recall-zoo's retrievers (zoo.serving.builders)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from zoo.errors import ModelFileError, UnknownNameError, UsageError
from zoo.serving.builders import (
    AnnoyBuilder,
    FaissBuilder,
    IndexBuilder,
    MilvusBuilder,
    builder_factory,
)
from zoo.testing.retrievers import brute_force_topk, make_vectors, recall_at_k

torch = pytest.importorskip("torch")

needs = {
    name: pytest.mark.skipif(importlib.util.find_spec(module) is None, reason=f"{module} not installed")
    for name, module in (("annoy", "annoy"), ("faiss", "faiss"), ("milvus", "milvus_lite"))
}
ITEMS = make_vectors(600, 16, 1)
USERS = make_vectors(25, 16, 2)


@needs["annoy"]
def test_torch_rechub_annoy_usage(tmp_path: Path) -> None:
    builder = builder_factory("annoy", d=16, metric="angular", n_trees=10, searchk=2000)
    assert isinstance(builder, AnnoyBuilder)
    items, users = torch.from_numpy(np.array(ITEMS)), torch.from_numpy(np.array(USERS))
    with builder.from_embeddings(items) as indexer:
        ids, scores = indexer.query(users, 10)  # torch in, torch out (as Torch-RecHub returns)
        assert isinstance(ids, torch.Tensor) and ids.shape == scores.shape == (25, 10)
        truth, _ = brute_force_topk(ITEMS, USERS, 10, "cosine")
        assert recall_at_k(ids.numpy(), truth) >= 0.9
        indexer.save(tmp_path / "annoy-index")
    with builder.from_index_file(tmp_path / "annoy-index") as loaded:
        np.testing.assert_array_equal(loaded.query(users, 10)[0].numpy(), ids.numpy())
    assert builder.indexer is not None and builder.indexer.retriever.build_params["n_trees"] == 10


@needs["faiss"]
@pytest.mark.parametrize(
    ("index_type", "factory"), [("Flat", "Flat"), ("HNSW", "HNSW8"), ("IVF", "IVF4,Flat")]
)
def test_faiss_builder_index_types(index_type: str, factory: str, tmp_path: Path) -> None:
    builder = FaissBuilder(index_type, metric="IP", m=8, nlists=4, nprobe=4, efSearch=64)
    ids = np.arange(600, dtype=np.int64) * 10 + 3
    indexer = builder.from_embeddings(np.array(ITEMS), ids=ids)  # numpy in, numpy out
    assert indexer.retriever.build_params["index"] == factory
    found, _ = indexer.query(np.array(USERS), 10)
    truth, _ = brute_force_topk(ITEMS, USERS, 10)
    assert isinstance(found, np.ndarray) and recall_at_k(found, ids[truth]) >= 0.9
    excluded = found[:, :3]  # filtered retrieval through the indexer
    again, _ = indexer.query(np.array(USERS), 10, exclude=excluded)
    for row, forbidden in zip(again.tolist(), excluded.tolist(), strict=True):
        assert not set(row) & set(forbidden) and min(row) >= 0
    builder.save(tmp_path / "index")
    np.testing.assert_array_equal(
        builder.from_index_file(tmp_path / "index").query(np.array(USERS), 10)[0], found
    )


@needs["milvus"]
def test_milvus_builder_lite_by_default(tmp_path: Path) -> None:
    builder = builder_factory("milvus", d=16, index_type="HNSW", metric="COSINE", m=16, ef=64)
    assert isinstance(builder, MilvusBuilder)
    with builder.from_embeddings(np.array(ITEMS)) as indexer:
        assert indexer.retriever.lite and indexer.retriever.metric == "cosine"
        ids, _ = indexer.query(np.array(USERS), 10, allow=list(range(0, 600, 2)))
        assert (ids % 2 == 0).all()
        builder.save(tmp_path / "milvus-index")
    with builder.from_index_file(tmp_path / "milvus-index") as loaded:
        np.testing.assert_array_equal(loaded.query(np.array(USERS), 10, allow=list(range(0, 600, 2)))[0], ids)
    assert MilvusBuilder(host="milvus.internal", port=19531).params["uri"] == "http://milvus.internal:19531"


def test_generic_builder_for_any_registered_retriever(tmp_path: Path) -> None:
    builder = builder_factory("hnsw", metric="ip", M=8, ef=64)
    assert type(builder) is IndexBuilder and builder.retriever_name == "hnsw"
    indexer = builder.from_embeddings(ITEMS, ids=np.arange(600) + 1000)
    ids, _ = indexer.query(USERS[0], 5)
    assert ids.shape == (5,) and (ids >= 1000).all()
    builder.save(tmp_path / "hnsw-index")
    with pytest.raises(ModelFileError, match="'hnsw', not 'exact'"):
        builder_factory("exact").from_index_file(tmp_path / "hnsw-index")
    with pytest.raises(ModelFileError, match="dimension"):
        builder_factory("hnsw", d=32).from_index_file(tmp_path / "hnsw-index")


def test_bad_builder_input() -> None:
    with pytest.raises(UnknownNameError):
        builder_factory("no-such-index")
    with pytest.raises(UsageError, match="euclidean"):
        builder_factory("hnsw", metric="L2")
    with pytest.raises(UsageError, match="nothing to save"):
        builder_factory("hnsw").save("anywhere")
    with pytest.raises(UsageError, match="d=8"):
        builder_factory("hnsw", d=8).from_embeddings(ITEMS)
    with pytest.raises(UsageError, match="d "):
        builder_factory("hnsw", d=0)
    with pytest.raises(UsageError, match="not both"):
        MilvusBuilder(host="h", uri="http://h:1")
