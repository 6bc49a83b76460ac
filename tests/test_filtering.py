"""drop_excluded / query_excluding against a slow reference and a brute-force fake retriever.

The reference scores every item for every user with plain loops (max over interests for [U, K, D]
input), sorts by score, drops the user's excluded ids and keeps the first ``topk``, padding with
id -1 / score -inf. Users have very different exclusion counts (none, a few, almost everything,
everything), so the chunking by exclusion count is exercised.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from zoo.errors import UsageError
from zoo.retrieval.filtering import drop_excluded, query_excluding


class BruteForce:
    """A tiny exact retriever: inner product, top-k by score (ties: smaller id), -1 / -inf padding."""

    def __init__(self, vectors: np.ndarray, ids: np.ndarray) -> None:
        self.vectors = np.asarray(vectors, dtype=np.float64)
        self.ids = np.asarray(ids, dtype=np.int64)
        self.calls: list[tuple[int, int]] = []

    def __len__(self) -> int:
        return len(self.ids)

    def query(self, vectors, topk: int):
        vectors = np.atleast_2d(np.asarray(vectors, dtype=np.float64))
        self.calls.append((vectors.shape[0], topk))
        scores = vectors @ self.vectors.T
        order = np.lexsort((np.broadcast_to(self.ids, scores.shape), -scores), axis=1)[:, :topk]
        ids = self.ids[order]
        top = np.take_along_axis(scores, order, axis=1).astype(np.float32)
        if ids.shape[1] < topk:
            pad = topk - ids.shape[1]
            ids = np.pad(ids, ((0, 0), (0, pad)), constant_values=-1)
            top = np.pad(top, ((0, 0), (0, pad)), constant_values=-np.inf)
        return ids, top


# -- slow references -------------------------------------------------------------------------------------
def ref_drop(ids, scores, lists, topk):
    out_ids, out_scores = [], []
    for row in range(len(ids)):
        kept = [(i, s) for i, s in zip(ids[row], scores[row], strict=True) if i >= 0 and i not in lists[row]]
        kept = kept[:topk] + [(-1, -math.inf)] * max(0, topk - len(kept))
        out_ids.append([i for i, _ in kept])
        out_scores.append([s for _, s in kept])
    return out_ids, out_scores


def ref_query(users, item_vectors, item_ids, lists, topk):
    """users: [U, D] or [U, K, D] nested lists."""
    out_ids, out_scores = [], []
    for u, user in enumerate(users):
        interests = user if isinstance(user[0], list) else [user]
        scored = []
        for vector, item in zip(item_vectors, item_ids, strict=True):
            best = max(sum(a * b for a, b in zip(q, vector, strict=True)) for q in interests)
            scored.append((-best, item))
        scored.sort()
        kept = [(item, -neg) for neg, item in scored if lists is None or item not in lists[u]][:topk]
        kept += [(-1, -math.inf)] * (topk - len(kept))
        out_ids.append([i for i, _ in kept])
        out_scores.append([s for _, s in kept])
    return out_ids, out_scores


def to_csr(lists):
    indptr = [0]
    flat = []
    for items in lists:
        flat.extend(items)
        indptr.append(len(flat))
    return np.array(indptr, dtype=np.int64), np.array(flat, dtype=np.int64)


def assert_same(got_ids, got_scores, ref_ids, ref_scores):
    assert got_ids.dtype == np.int64 and got_scores.dtype == np.float32
    assert got_ids.tolist() == ref_ids
    for g_row, r_row in zip(got_scores.tolist(), ref_scores, strict=True):
        for g, r in zip(g_row, r_row, strict=True):
            if r == -math.inf:
                assert g == -math.inf
            else:
                assert g == pytest.approx(r, rel=1e-5, abs=1e-5)


# -- drop_excluded -----------------------------------------------------------------------------------------
@settings(max_examples=80, deadline=None)
@given(data=st.data(), rows=st.integers(1, 6), width=st.integers(0, 9), topk=st.integers(1, 10))
def test_drop_excluded_vs_reference(data, rows, width, topk):
    ids_rows, score_rows, lists = [], [], []
    for _ in range(rows):
        real = data.draw(st.lists(st.integers(0, 40), unique=True, max_size=width))
        row = real + [-1] * (width - len(real))  # retrievers pad the tail with -1
        ids_rows.append(row)
        score_rows.append(
            sorted((data.draw(st.floats(-5, 5)) for _ in real), reverse=True)
            + [-math.inf] * (width - len(real))
        )
        lists.append(
            data.draw(st.lists(st.integers(0, 45), max_size=12))
        )  # may repeat, may miss the row's ids
    ids = np.array(ids_rows, dtype=np.int64).reshape(rows, width)
    scores = np.array(score_rows, dtype=np.float32).reshape(rows, width)
    got_ids, got_scores = drop_excluded(ids, scores, to_csr(lists), topk)
    assert got_ids.shape == (rows, topk) and got_scores.shape == (rows, topk)
    assert_same(got_ids, got_scores, *ref_drop(ids.tolist(), scores.tolist(), lists, topk))


def test_drop_excluded_hand_made():
    ids = np.array([[5, 3, 9, 1], [2, 4, -1, -1], [7, 8, 6, 0]])
    scores = np.array([[4, 3, 2, 1], [2, 1, -np.inf, -np.inf], [9, 8, 7, 6]], dtype=np.float32)
    exclude = (
        np.array([0, 2, 2, 6]),
        np.array([3, 1, 7, 8, 6, 0]),
    )  # row 1 excludes nothing, row 2 everything
    got_ids, got_scores = drop_excluded(ids, scores, exclude, 3)
    assert got_ids.tolist() == [[5, 9, -1], [2, 4, -1], [-1, -1, -1]]
    assert got_scores[0].tolist() == [4, 2, -np.inf] and got_scores[2].tolist() == [-np.inf] * 3
    # an id equal to another row's excluded id is kept; ids larger than every excluded id work
    got_ids, _ = drop_excluded(
        np.array([[3, 100], [3, 100]]), np.zeros((2, 2), np.float32), (np.array([0, 1, 1]), np.array([3])), 2
    )
    assert got_ids.tolist() == [[100, -1], [3, 100]]


# -- query_excluding -----------------------------------------------------------------------------------------
def make_case(seed: int, users: int, items: int, dim: int, interests: int | None):
    rng = np.random.default_rng(seed)
    item_vectors = rng.standard_normal((items, dim))
    item_ids = rng.permutation(np.arange(items) * 3 + 100)  # ids are not row numbers
    shape = (users, dim) if interests is None else (users, interests, dim)
    user_vectors = rng.standard_normal(shape)
    lists = []
    for u in range(users):
        kind = u % 5
        if kind == 0:
            n = 0
        elif kind == 1:
            n = 1
        elif kind == 2:
            n = items - 1  # almost everything
        elif kind == 3:
            n = items  # everything
        else:
            n = int(rng.integers(0, items))
        chosen = rng.choice(item_ids, size=n, replace=False).tolist()
        if n and kind == 4:
            chosen += chosen[:2]  # duplicates (a user who saw an item twice)
            chosen += [99_999]  # an id the index does not hold
        lists.append(chosen)
    return item_vectors, item_ids, user_vectors, lists


@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(0, 1000),
    users=st.integers(1, 12),
    items=st.integers(1, 15),
    topk=st.integers(1, 20),
    interests=st.sampled_from([None, 1, 3]),
    chunk_size=st.sampled_from([1, 3, 2048]),
    as_tensor=st.booleans(),
)
def test_query_excluding_vs_reference(seed, users, items, topk, interests, chunk_size, as_tensor):
    item_vectors, item_ids, user_vectors, lists = make_case(seed, users, items, 4, interests)
    retriever = BruteForce(item_vectors, item_ids)
    query = torch.from_numpy(user_vectors) if as_tensor else user_vectors
    got_ids, got_scores = query_excluding(retriever, query, topk, to_csr(lists), chunk_size=chunk_size)
    assert got_ids.shape == (users, topk)
    assert_same(
        got_ids,
        got_scores,
        *ref_query(user_vectors.tolist(), item_vectors.tolist(), item_ids.tolist(), lists, topk),
    )
    for row, excluded in zip(got_ids.tolist(), lists, strict=True):
        real = [i for i in row if i >= 0]
        assert not set(real) & set(excluded) and len(set(real)) == len(real)


def test_query_excluding_without_exclusion():
    item_vectors, item_ids, user_vectors, _ = make_case(1, 6, 10, 4, None)
    got = query_excluding(BruteForce(item_vectors, item_ids), user_vectors, 4, None)
    assert_same(*got, *ref_query(user_vectors.tolist(), item_vectors.tolist(), item_ids.tolist(), None, 4))
    _, _, multi, _ = make_case(2, 6, 10, 4, 2)
    got = query_excluding(BruteForce(item_vectors, item_ids), multi, 4, None)
    assert_same(*got, *ref_query(multi.tolist(), item_vectors.tolist(), item_ids.tolist(), None, 4))


def test_heavy_users_do_not_inflate_light_users_queries():
    """Users are chunked by exclusion count: light users ask for topk + (their chunk's largest count)."""
    item_vectors, item_ids, user_vectors, _ = make_case(3, 8, 40, 4, None)
    lists = [[] for _ in range(6)] + [item_ids[:30].tolist(), item_ids[:35].tolist()]
    retriever = BruteForce(item_vectors, item_ids)
    got = query_excluding(retriever, user_vectors, 5, to_csr(lists), chunk_size=6)
    assert_same(*got, *ref_query(user_vectors.tolist(), item_vectors.tolist(), item_ids.tolist(), lists, 5))
    assert retriever.calls == [(6, 5), (2, 40)]  # the 6 light users: 5; the heavy two: min(5 + 35, 40)


# -- the filter arguments ----------------------------------------------------------------------------------
def test_id_list_forms() -> None:
    from zoo.retrieval.filtering import IdLists, as_id_lists

    shared = as_id_lists([3, 1, np.int64(2)], 4, name="exclude")
    assert shared.shared and shared.ids.tolist() == [3, 1, 2] and shared.sizes(4).tolist() == [3] * 4
    assert as_id_lists(np.array([5, 6]), 2).shared and as_id_lists([], 3).shared
    assert as_id_lists(torch.tensor([1, 2]), 7).shared
    rows = as_id_lists([[1, 2], [], np.array([7])], 3)
    assert not rows.shared and rows.indptr.tolist() == [0, 2, 2, 3] and rows.row(2).tolist() == [7]
    assert as_id_lists(np.array([[1, 2], [3, 4]]), 2).row(1).tolist() == [3, 4]
    ragged = np.empty(2, dtype=object)
    ragged[0], ragged[1] = [1], [2, 3]
    assert as_id_lists(ragged, 2).sizes(2).tolist() == [1, 2]
    csr = IdLists(np.array([0, 1, 3]), np.array([9, 8, 7]))
    assert as_id_lists(csr, 2) is csr
    assert csr.take(np.array([1, 1, 0])).ids.tolist() == [8, 7, 8, 7, 9]
    assert csr.repeat(2).indptr.tolist() == [0, 1, 2, 4, 6] and csr.repeat(2).ids.tolist() == [
        9,
        9,
        8,
        7,
        8,
        7,
    ]
    with pytest.raises(UsageError, match="3 per-query lists for 2"):
        as_id_lists([[1], [2], [3]], 2, name="allow")
    with pytest.raises(UsageError, match="integers"):
        as_id_lists([[1.5]], 1)
    with pytest.raises(UsageError, match="integers"):
        as_id_lists(np.array([True, False]), 1)
    with pytest.raises(UsageError, match="list of item ids"):
        as_id_lists({1, 2}, 1)
    with pytest.raises(UsageError, match="indptr"):
        IdLists(np.array([0, 5]), np.array([1, 2]))


def test_combine_lists_is_allow_minus_exclude() -> None:
    from zoo.retrieval.filtering import IdLists, combine_lists

    allow = IdLists.from_lists([[1, 2, 3], [4, 5]])
    assert combine_lists(allow, IdLists.one_for_all([2, 5]), 2).ids.tolist() == [1, 3, 4]
    got = combine_lists(IdLists.one_for_all([1, 2, 3]), IdLists.from_lists([[3], [1, 9]]), 2)
    assert got.indptr.tolist() == [0, 2, 4] and got.ids.tolist() == [1, 2, 2, 3]
    both = combine_lists(IdLists.one_for_all([1, 2]), IdLists.one_for_all([2]), 5)
    assert both.shared and both.ids.tolist() == [1]


def ref_query_allowed(users, item_vectors, item_ids, allow, topk):
    """The reference restricted to each user's allow-list."""
    banned = [[i for i in item_ids if i not in set(row)] for row in allow]
    return ref_query(users, item_vectors, item_ids, banned, topk)


@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(0, 1000),
    users=st.integers(1, 10),
    items=st.integers(1, 30),
    topk=st.integers(1, 12),
    interests=st.sampled_from([None, 2]),
    chunk_size=st.sampled_from([1, 4, 2048]),
)
def test_overfetch_allow_vs_reference(seed, users, items, topk, interests, chunk_size):
    """A retriever without filters is over-fetched for allow-lists, however short the lists are."""
    from zoo.retrieval.filtering import IdLists, overfetch_search
    from zoo.retrieval.merge import query_interests

    item_vectors, item_ids, user_vectors, _ = make_case(seed, users, items, 4, interests)
    rng = np.random.default_rng(seed)
    allow = [
        rng.choice(item_ids, size=int(rng.integers(0, items + 1)), replace=False).tolist()
        for _ in range(users)
    ]
    allow[0] = allow[0] + [77_777]  # an id the index does not hold
    retriever = BruteForce(item_vectors, item_ids)
    want = ref_query_allowed(user_vectors.tolist(), item_vectors.tolist(), item_ids.tolist(), allow, topk)
    got = query_interests(retriever, user_vectors, topk, allow=allow)
    assert_same(*got, *want)
    got = overfetch_search(
        lambda rows, k: query_interests(retriever, rows, k),
        user_vectors,
        topk,
        items,
        IdLists.from_lists(allow),
        allow=True,
        chunk_size=chunk_size,
    )
    assert_same(*got, *want)


class HiddenFilters:
    """An exact retriever seen through ``query(vectors, topk)`` only (no filter support)."""

    def __init__(self, retriever) -> None:
        self.retriever = retriever

    def __len__(self) -> int:
        return len(self.retriever)

    def query(self, vectors, topk: int):
        return self.retriever.query(vectors, topk)


@pytest.mark.parametrize("interests", [None, 3])
def test_query_excluding_native_equals_overfetch(interests) -> None:
    """evaluate_index's call gives the same top-k through the contract (masked exact scores) as by
    over-fetching the unfiltered exact ranking."""
    from zoo_plugins.exact.retriever import ExactRetriever

    item_vectors, item_ids, user_vectors, lists = make_case(11, 40, 300, 8, interests)
    exact = ExactRetriever(chunk_size=7).fit(item_vectors.astype(np.float32), ids=item_ids)
    vectors = user_vectors.astype(np.float32)
    native = query_excluding(exact, vectors, 15, to_csr(lists))
    overfetched = query_excluding(HiddenFilters(exact), vectors, 15, to_csr(lists), chunk_size=9)
    np.testing.assert_array_equal(native[0], overfetched[0])
    np.testing.assert_allclose(native[1], overfetched[1], rtol=1e-5, atol=1e-5)
    assert_same(
        *native, *ref_query(user_vectors.tolist(), item_vectors.tolist(), item_ids.tolist(), lists, 15)
    )
