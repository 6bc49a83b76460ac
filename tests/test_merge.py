"""Multi-interest merge: vectorised merge vs a slow per-user reference, and query_interests end to end."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from zoo.errors import UsageError
from zoo.retrieval import merge_interest_results, query_interests
from zoo.testing.retrievers import brute_force_topk, make_vectors


def reference_merge(ids: np.ndarray, scores: np.ndarray, topk: int) -> tuple[np.ndarray, np.ndarray]:
    """The obvious per-user Python loop: best score per id, sorted (score desc, id asc), padded."""
    out_ids = np.full((ids.shape[0], topk), -1, dtype=np.int64)
    out_scores = np.full((ids.shape[0], topk), -np.inf, dtype=np.float32)
    for user in range(ids.shape[0]):
        best: dict[int, float] = {}
        for item, score in zip(ids[user].tolist(), scores[user].tolist(), strict=True):
            if item < 0:
                continue
            if item not in best or score > best[item]:
                best[item] = score
        ranked = sorted(best.items(), key=lambda pair: (-pair[1], pair[0]))[:topk]
        for j, (item, score) in enumerate(ranked):
            out_ids[user, j] = item
            out_scores[user, j] = score
    return out_ids, out_scores


def random_candidates(
    seed: int, users: int, interests: int, k: int, id_range: int
) -> tuple[np.ndarray, np.ndarray]:
    """Per-interest result lists with deliberate duplicates (small id range), ties and -1 padding."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, id_range, size=(users, interests * k))
    scores = rng.integers(-20, 20, size=(users, interests * k)).astype(np.float32) / 4  # many ties
    pad = rng.random((users, interests * k)) < 0.2
    ids[pad] = -1
    scores[pad] = -np.inf
    return ids, scores


@pytest.mark.parametrize(
    ("seed", "users", "interests", "k", "id_range", "topk"),
    [
        (0, 50, 4, 10, 30, 10),  # heavy duplication
        (1, 40, 3, 8, 1000, 8),  # few duplicates
        (2, 30, 5, 6, 12, 20),  # fewer distinct ids than topk: padding
        (3, 25, 1, 10, 50, 5),  # one interest, shorter output
        (4, 20, 2, 1, 3, 1),
    ],
)
def test_merge_matches_reference(
    seed: int, users: int, interests: int, k: int, id_range: int, topk: int
) -> None:
    ids, scores = random_candidates(seed, users, interests, k, id_range)
    got_ids, got_scores = merge_interest_results(ids, scores, topk)
    want_ids, want_scores = reference_merge(ids, scores, topk)
    assert got_ids.dtype == np.int64 and got_scores.dtype == np.float32
    assert got_ids.shape == got_scores.shape == (users, topk)
    np.testing.assert_array_equal(got_ids, want_ids)
    np.testing.assert_array_equal(got_scores, want_scores)


def test_merge_hand_made() -> None:
    ids = np.array(
        [
            [5, 3, 9, 3, 7, -1],  # 3 twice: keeps its best score 0.8
            [-1, -1, -1, -1, -1, -1],  # nothing found
            [1, 2, 3, 1, 2, 3],  # same three ids in both interests
        ]
    )
    scores = np.array(
        [
            [0.9, 0.2, 0.5, 0.8, 0.1, -np.inf],
            [-np.inf] * 6,
            [0.1, 0.2, 0.3, 0.6, 0.5, 0.4],
        ],
        dtype=np.float32,
    )
    got_ids, got_scores = merge_interest_results(ids, scores, 4)
    np.testing.assert_array_equal(got_ids, [[5, 3, 9, 7], [-1, -1, -1, -1], [1, 2, 3, -1]])
    np.testing.assert_array_equal(
        got_scores,
        np.array([[0.9, 0.8, 0.5, 0.1], [-np.inf] * 4, [0.6, 0.5, 0.4, -np.inf]], dtype=np.float32),
    )


def test_merge_ties_go_to_the_smaller_id() -> None:
    got_ids, _ = merge_interest_results(np.array([[9, 4, 7, 4]]), np.array([[1.0, 1.0, 1.0, 0.5]]), 3)
    np.testing.assert_array_equal(got_ids, [[4, 7, 9]])


def test_merge_accepts_torch_and_empty_candidates() -> None:
    torch = pytest.importorskip("torch")
    ids, scores = random_candidates(5, 6, 2, 4, 10)
    got = merge_interest_results(torch.from_numpy(ids), torch.from_numpy(scores), 3)
    want = merge_interest_results(ids, scores, 3)
    np.testing.assert_array_equal(got[0], want[0])
    empty_ids, empty_scores = merge_interest_results(np.empty((3, 0), dtype=np.int64), np.empty((3, 0)), 2)
    assert (empty_ids == -1).all() and np.isneginf(empty_scores).all() and empty_ids.shape == (3, 2)


@pytest.mark.parametrize(
    ("ids", "scores", "topk"),
    [
        (np.zeros((2, 3), dtype=np.int64), np.zeros((2, 4)), 2),  # shapes differ
        (np.zeros(3, dtype=np.int64), np.zeros(3), 2),  # not 2-D
        (np.zeros((2, 3)), np.zeros((2, 3)), 2),  # float ids
        (np.zeros((2, 3), dtype=np.int64), np.zeros((2, 3)), 0),
        (np.zeros((2, 3), dtype=np.int64), np.zeros((2, 3)), 1.5),
    ],
)
def test_merge_rejects_bad_input(ids: np.ndarray, scores: np.ndarray, topk: Any) -> None:
    with pytest.raises(UsageError):
        merge_interest_results(ids, scores, topk)


# -- query_interests with the exact retriever -------------------------------------------------------
@pytest.fixture(scope="module")
def exact() -> Any:
    pytest.importorskip("torch")
    from zoo_plugins.exact.retriever import ExactRetriever

    return ExactRetriever(chunk_size=100).fit(make_vectors(2000, 16, 0), ids=np.arange(2000) * 2 + 1)


def test_query_interests_equals_max_over_interests(exact: Any) -> None:
    users, interests, topk = 60, 4, 15
    vectors = make_vectors(users * interests, 16, 1).reshape(users, interests, 16)
    ids, scores = query_interests(exact, vectors, topk)
    assert ids.shape == scores.shape == (users, topk)
    # Brute force: score every item by the user's best interest, take the top-k.
    items = make_vectors(2000, 16, 0).astype(np.float64)
    best = np.einsum("ukd,nd->ukn", vectors.astype(np.float64), items).max(axis=1)
    order = np.argsort(-best, axis=1, kind="stable")[:, :topk]
    np.testing.assert_array_equal(ids, order * 2 + 1)
    np.testing.assert_allclose(scores, np.take_along_axis(best, order, axis=1), rtol=1e-4, atol=1e-4)


def test_query_interests_plain_vectors(exact: Any) -> None:
    vectors = make_vectors(10, 16, 2)
    ids, scores = query_interests(exact, vectors, 5)
    truth, _ = brute_force_topk(make_vectors(2000, 16, 0), vectors, 5)
    np.testing.assert_array_equal(ids, truth * 2 + 1)
    one_ids, _ = query_interests(exact, vectors[0], 5)
    np.testing.assert_array_equal(one_ids, ids[0])


def test_query_interests_accepts_torch(exact: Any) -> None:
    torch = pytest.importorskip("torch")
    vectors = make_vectors(3 * 2, 16, 3).reshape(3, 2, 16)
    got = query_interests(exact, torch.from_numpy(np.array(vectors)), 7)
    want = query_interests(exact, vectors, 7)
    np.testing.assert_array_equal(got[0], want[0])


def test_query_interests_pads_small_catalogue() -> None:
    pytest.importorskip("torch")
    from zoo_plugins.exact.retriever import ExactRetriever

    retriever = ExactRetriever().fit(make_vectors(3, 4, 0))
    ids, scores = query_interests(retriever, make_vectors(4, 4, 1).reshape(2, 2, 4), 5)
    np.testing.assert_array_equal(np.sort(ids[:, :3], axis=1), [[0, 1, 2], [0, 1, 2]])
    assert (ids[:, 3:] == -1).all() and np.isneginf(scores[:, 3:]).all()


def test_query_interests_rejects_bad_shapes(exact: Any) -> None:
    with pytest.raises(UsageError, match="interests"):
        query_interests(exact, np.zeros((2, 2, 2, 16), dtype=np.float32), 3)
    with pytest.raises(UsageError):
        query_interests(exact, np.zeros((0, 2, 16), dtype=np.float32), 3)
    with pytest.raises(UsageError, match="topk"):
        query_interests(exact, np.zeros((2, 2, 16), dtype=np.float32), 0)
