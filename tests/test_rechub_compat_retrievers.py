"""Torch-RecHub's retriever forms: ``Annoy(...)`` / ``Faiss(dim, ...)`` and ``query(v=..., n=...)``."""

from __future__ import annotations

import numpy as np
import pytest

from zoo.errors import UsageError

pytest.importorskip("annoy")
pytest.importorskip("faiss")


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    return rng.standard_normal((300, 8)).astype(np.float32), rng.standard_normal(8).astype(np.float32)


def test_annoy_rechub_default_is_angular_ascending(data) -> None:
    from zoo.retrieval import Annoy

    items, q = data
    annoy = Annoy(n_trees=50, search_k=100_000)  # Torch-RecHub's keywords; default metric: ours ip
    annoy.fit(items)
    ids, distances = annoy.query(v=q, n=10)
    assert isinstance(ids, list) and isinstance(distances, list) and len(ids) == 10
    cos = items @ q / np.linalg.norm(items, axis=1) / np.linalg.norm(q)
    assert ids == np.argsort(-cos)[:10].tolist()
    assert distances == sorted(distances)  # nearest first, ascending
    assert np.allclose(distances, np.sqrt(2 - 2 * np.sort(cos)[::-1][:10]), atol=1e-5)
    # our form is unchanged: inner-product scores, high to low
    ours, scores = annoy.query(q, 10)
    assert ours.tolist() == np.argsort(-(items @ q))[:10].tolist()
    assert np.all(np.diff(scores) <= 0)
    # the multi-interest merge Torch-RecHub's examples do (sort ascending, keep the first) keeps the best
    merged = sorted(zip(distances, ids, strict=True))[:3]
    assert [i for _, i in merged] == ids[:3]


def test_annoy_rechub_dot_and_errors(data) -> None:
    from zoo.retrieval import Annoy

    items, q = data
    annoy = Annoy(metric="dot", n_trees=50, search_k=100_000)
    annoy.fit(items)
    annoy.set_query_arguments(100_000)
    ids, dots = annoy.query(v=q, n=5)
    assert ids == np.argsort(-(items @ q))[:5].tolist()
    assert dots == sorted(dots, reverse=True)
    with pytest.raises(UsageError, match="not both"):
        annoy.query(q, 5, v=q)
    with pytest.raises(UsageError, match="one vector"):
        annoy.query(v=items[:2], n=5)
    with pytest.raises(UsageError, match="euclidean"):
        Annoy(metric="euclidean")


def test_faiss_rechub_constructor_l2_and_ip(data) -> None:
    from zoo.retrieval import Faiss

    items, q = data
    index = Faiss(8, index_type="flat", metric="l2")
    index.fit(items)
    ids, distances = index.query(v=q, n=5)
    squared = ((items - q) ** 2).sum(axis=1)
    assert ids == [np.argsort(squared)[:5].tolist()]
    assert np.allclose(distances[0], np.sort(squared)[:5], atol=1e-4)
    ours, scores = index.query(q, 5)  # our form on an L2 index: scores are -squared distances
    assert ours.tolist() == ids[0] and np.allclose(scores, -np.sort(squared)[:5], atol=1e-4)
    ip = Faiss(dim=8, index_type="hnsw", m=16, metric="ip")
    ip.fit(items)
    ip.set_query_arguments(efSearch=300)
    ids, dots = ip.query(v=q[None, :], n=5)
    assert ids == [np.argsort(-(items @ q))[:5].tolist()] and dots[0] == sorted(dots[0], reverse=True)
    ivf = Faiss(8, "ivf", 4, metric="ip")
    assert ivf.build_params["index"] == "IVF4,Flat" and ivf.query_params["nprobe"] == 1
    with pytest.raises(UsageError, match="dimension"):
        Faiss(4).fit(items)
    with pytest.raises(UsageError, match="index_type"):
        Faiss(8, index_type="pq")
    # our own constructor and form are unchanged
    plain = Faiss(index="Flat").fit(items)
    assert plain.rechub is None and plain.query(q, 3)[0].tolist() == np.argsort(-(items @ q))[:3].tolist()
