"""zoo.evaluate against slow, literal reference implementations (plain Python loops over users)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from zoo.errors import UsageError
from zoo.evaluate import ann_recall, auc_score, evaluate_ranking, ranking_metrics, topk_items

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# -- references: written from the definitions, as literally as possible ------------------------
def ref_metrics(
    ranked: list[list[int]], target_lists: list[list[int]], ks: tuple[int, ...]
) -> dict[str, float]:
    sums: dict[str, float] = {}
    users = 0
    for row, targets in zip(ranked, target_lists, strict=True):
        if len(targets) == 0:
            continue
        users += 1
        relevant = {t for t in targets if t >= 0}
        n_targets = len(relevant) + len([t for t in targets if t < 0])
        for k in ks:
            seen: set[int] = set()
            hit_ranks = []
            for r in range(k):
                item = row[r]
                if item < 0 or item in seen:
                    continue
                seen.add(item)
                if item in relevant:
                    hit_ranks.append(r)
            dcg = sum(1.0 / math.log2(r + 2) for r in hit_ranks)
            idcg = sum(1.0 / math.log2(i + 2) for i in range(min(n_targets, k)))
            values = {
                "hitrate": 1.0 if hit_ranks else 0.0,
                "recall": len(hit_ranks) / n_targets,
                "ndcg": dcg / idcg,
                "mrr": 1.0 / (hit_ranks[0] + 1) if hit_ranks else 0.0,
                "precision": len(hit_ranks) / k,
            }
            for name, value in values.items():
                key = f"{name}@{k}"
                sums[key] = sums.get(key, 0.0) + value
    out = {key: (total / users if users else math.nan) for key, total in sums.items()}
    out["users"] = users
    return out


def ref_scores(users: np.ndarray, items: np.ndarray) -> list[list[float]]:
    table = []
    for u in range(len(users)):
        interests = users[u] if users.ndim == 3 else users[u][None, :]
        row = []
        for i in range(len(items)):
            best = -math.inf
            for vec in interests:
                best = max(best, sum(float(a) * float(b) for a, b in zip(vec, items[i], strict=True)))
            row.append(best)
        table.append(row)
    return table


def ref_auc(scores: list[float], labels: list[int]) -> float:
    pos = [s for s, y in zip(scores, labels, strict=True) if y > 0]
    neg = [s for s, y in zip(scores, labels, strict=True) if y <= 0]
    if not pos or not neg:
        return math.nan
    total = 0.0
    for p in pos:
        for n in neg:
            total += 1.0 if p > n else 0.5 if p == n else 0.0
    return total / (len(pos) * len(neg))


def ref_ann_recall(approx: list[list[int]], exact: list[list[int]]) -> float:
    values = []
    for a_row, e_row in zip(approx, exact, strict=True):
        truth = {e for e in e_row if e >= 0}
        if not truth:
            continue
        values.append(len(truth & {a for a in a_row if a >= 0}) / len(truth))
    return sum(values) / len(values) if values else math.nan


def to_csr(lists: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
    indptr = np.zeros(len(lists) + 1, dtype=np.int64)
    indptr[1:] = np.cumsum([len(x) for x in lists])
    indices = np.array([v for x in lists for v in x], dtype=np.int64)
    return indptr, indices


def assert_metrics_equal(got: dict[str, float], want: dict[str, float]) -> None:
    assert set(got) == set(want)
    assert got["users"] == want["users"]
    for key, value in want.items():
        if math.isnan(value):
            assert math.isnan(got[key]), key
        else:
            assert got[key] == pytest.approx(value, abs=1e-12), key


# -- ranking_metrics ---------------------------------------------------------------------------
def test_ranking_metrics_hand_computed() -> None:
    ranked = np.array([[5, 3, 9], [1, 2, 4], [7, 8, -1]])
    targets = np.array([3, 6, 7])
    got = ranking_metrics(ranked, targets, ks=(1, 3))
    # user 0 hits at rank 1, user 1 misses, user 2 hits at rank 0
    assert got["hitrate@1"] == pytest.approx(1 / 3)
    assert got["hitrate@3"] == pytest.approx(2 / 3)
    assert got["recall@3"] == pytest.approx(2 / 3)
    assert got["precision@3"] == pytest.approx((1 / 3 + 0 + 1 / 3) / 3)
    assert got["mrr@3"] == pytest.approx((1 / 2 + 0 + 1) / 3)
    assert got["ndcg@3"] == pytest.approx((1 / math.log2(3) + 0 + 1) / 3)
    assert got["users"] == 3


def test_oov_target_counts_as_miss() -> None:
    ranked = np.array([[1, -1], [2, 3]])
    got = ranking_metrics(ranked, np.array([-1, 2]), ks=(2,))
    assert got["users"] == 2  # the OOV user stays in the denominator
    assert got["hitrate@2"] == pytest.approx(0.5)
    assert got["recall@2"] == pytest.approx(0.5)


def test_multi_target_hand_computed() -> None:
    ranked = np.array([[4, 1, 2, 9], [0, 0, 0, 0], [5, 6, 7, 8]])
    indptr, ids = to_csr([[1, 9, 3], [], [0]])
    got = ranking_metrics(ranked, (indptr, ids), ks=(2, 4))
    assert got["users"] == 2  # the user without targets is skipped
    assert got["recall@4"] == pytest.approx((2 / 3 + 0) / 2)
    ndcg_u0 = (1 / math.log2(3) + 1 / math.log2(5)) / (1 + 1 / math.log2(3) + 1 / math.log2(4))
    assert got["ndcg@4"] == pytest.approx(ndcg_u0 / 2)
    assert got["precision@2"] == pytest.approx((1 / 2) / 2)


def test_repeated_id_in_ranking_hits_once() -> None:
    got = ranking_metrics(np.array([[3, 3, 3]]), np.array([3]), ks=(3,))
    assert got["precision@3"] == pytest.approx(1 / 3)
    assert got["ndcg@3"] == pytest.approx(1.0)


def test_ranking_metrics_accepts_tensors_and_empty() -> None:
    got = ranking_metrics(torch.tensor([[1, 2]]), torch.tensor([2]), ks=2)
    assert got["mrr@2"] == pytest.approx(0.5)
    empty = ranking_metrics(np.zeros((0, 5), dtype=np.int64), np.zeros(0, dtype=np.int64), ks=(5,))
    assert empty["users"] == 0 and math.isnan(empty["recall@5"])


def test_ranking_metrics_errors() -> None:
    with pytest.raises(UsageError, match="columns"):
        ranking_metrics(np.zeros((2, 5), dtype=np.int64), np.zeros(2, dtype=np.int64), ks=(10,))
    with pytest.raises(UsageError, match="rows"):
        ranking_metrics(np.zeros((2, 5), dtype=np.int64), np.zeros(3, dtype=np.int64), ks=(5,))
    with pytest.raises(UsageError, match="positive"):
        ranking_metrics(np.zeros((2, 5), dtype=np.int64), np.zeros(2, dtype=np.int64), ks=(0,))
    with pytest.raises(UsageError, match="indptr"):
        ranking_metrics(np.zeros((2, 5), dtype=np.int64), (np.array([0, 1]), np.array([1])), ks=(5,))


@st.composite
def ranked_and_targets(draw: st.DrawFn) -> tuple[np.ndarray, list[list[int]], tuple[int, ...]]:
    n_users = draw(st.integers(0, 12))
    width = draw(st.integers(1, 8))
    n_items = draw(st.integers(1, 15))
    ids = st.integers(-1, n_items - 1)
    ranked = np.array(
        draw(st.lists(st.lists(ids, min_size=width, max_size=width), min_size=n_users, max_size=n_users)),
        dtype=np.int64,
    ).reshape(n_users, width)
    targets = draw(st.lists(st.lists(ids, max_size=5), min_size=n_users, max_size=n_users))
    ks = tuple(draw(st.lists(st.integers(1, width), min_size=1, max_size=3)))
    return ranked, targets, ks


@SETTINGS
@given(ranked_and_targets())
def test_ranking_metrics_csr_matches_reference(
    case: tuple[np.ndarray, list[list[int]], tuple[int, ...]],
) -> None:
    ranked, targets, ks = case
    want = ref_metrics(ranked.tolist(), targets, tuple(sorted(set(ks))))
    if not want.get("users"):
        want = {
            f"{m}@{k}": math.nan
            for k in sorted(set(ks))
            for m in ("hitrate", "recall", "ndcg", "mrr", "precision")
        }
        want["users"] = 0
    assert_metrics_equal(ranking_metrics(ranked, to_csr(targets), ks), want)


@SETTINGS
@given(ranked_and_targets())
def test_ranking_metrics_single_target_matches_reference(
    case: tuple[np.ndarray, list[list[int]], tuple[int, ...]],
) -> None:
    ranked, targets, ks = case
    single = [t[0] if t else -1 for t in targets]
    want = ref_metrics(ranked.tolist(), [[t] for t in single], tuple(sorted(set(ks))))
    if not want.get("users"):
        want = {
            f"{m}@{k}": math.nan
            for k in sorted(set(ks))
            for m in ("hitrate", "recall", "ndcg", "mrr", "precision")
        }
        want["users"] = 0
    got = ranking_metrics(ranked, np.array(single, dtype=np.int64), ks)
    assert_metrics_equal(got, want)
    # the same targets in CSR form give the same numbers
    assert_metrics_equal(ranking_metrics(ranked, to_csr([[t] for t in single]), ks), want)


def test_ranking_metrics_large_random_against_reference() -> None:
    rng = np.random.default_rng(3)
    ranked = np.stack([rng.permutation(60)[:20] for _ in range(300)])
    ranked[rng.random(ranked.shape) < 0.05] = -1
    lists = [list(rng.integers(-1, 60, size=rng.integers(0, 6))) for _ in range(300)]
    assert_metrics_equal(
        ranking_metrics(ranked, to_csr(lists), (1, 5, 20)), ref_metrics(ranked.tolist(), lists, (1, 5, 20))
    )


# -- topk_items --------------------------------------------------------------------------------
def ref_topk(users: np.ndarray, items: np.ndarray, k: int, exclude_lists: list[list[int]] | None):
    table = ref_scores(users, items)
    out_idx, out_scores = [], []
    for u, row in enumerate(table):
        banned = set(exclude_lists[u]) if exclude_lists else set()
        allowed = [(score, i) for i, score in enumerate(row) if i not in banned]
        allowed.sort(key=lambda pair: -pair[0])
        chosen = allowed[:k]
        out_idx.append([i for _, i in chosen] + [-1] * (k - len(chosen)))
        out_scores.append([s for s, _ in chosen] + [-math.inf] * (k - len(chosen)))
    return out_idx, out_scores, table


def check_topk(idx: torch.Tensor, scores: torch.Tensor, users, items, k, exclude_lists) -> None:
    want_idx, want_scores, table = ref_topk(users, items, k, exclude_lists)
    assert idx.dtype == torch.int64 and scores.dtype == torch.float32
    assert idx.device.type == "cpu" and scores.device.type == "cpu"
    assert tuple(idx.shape) == (len(users), k) and tuple(scores.shape) == (len(users), k)
    got_idx, got_scores = idx.tolist(), scores.tolist()
    for u in range(len(users)):
        # scores at each rank agree (ties may order differently, so compare values, not ids)
        np.testing.assert_allclose(
            got_scores[u], np.array(want_scores[u], dtype=np.float32), rtol=1e-5, atol=1e-5
        )
        valid = [i for i in got_idx[u] if i >= 0]
        assert len(valid) == len(set(valid)) == len([i for i in want_idx[u] if i >= 0])
        assert got_idx[u][len(valid) :] == [-1] * (k - len(valid))
        banned = set(exclude_lists[u]) if exclude_lists else set()
        for rank, i in enumerate(valid):
            assert i not in banned
            assert table[u][i] == pytest.approx(got_scores[u][rank], rel=1e-5, abs=1e-5)


@st.composite
def ranking_case(draw: st.DrawFn):
    n_users = draw(st.integers(0, 7))
    n_items = draw(st.integers(0, 9))
    dim = draw(st.integers(1, 4))
    interests = draw(st.sampled_from([None, 1, 3]))
    k = draw(st.integers(0, 12))
    seed = draw(st.integers(0, 2**16))
    rng = np.random.default_rng(seed)
    shape = (n_users, dim) if interests is None else (n_users, interests, dim)
    users = rng.standard_normal(shape).astype(np.float32)
    items = rng.standard_normal((n_items, dim)).astype(np.float32)
    use_exclude = draw(st.booleans()) and n_items > 0
    exclude_lists = (
        [list(rng.integers(-1, n_items, size=rng.integers(0, n_items + 2))) for _ in range(n_users)]
        if use_exclude
        else None
    )
    chunk = draw(st.integers(1, 8))
    return users, items, k, exclude_lists, chunk


@SETTINGS
@given(ranking_case())
def test_topk_items_matches_reference(case) -> None:
    users, items, k, exclude_lists, chunk = case
    exclude = to_csr(exclude_lists) if exclude_lists is not None else None
    idx, scores = topk_items(
        torch.from_numpy(users), torch.from_numpy(items), k, exclude=exclude, chunk_size=chunk
    )
    check_topk(
        idx,
        scores,
        users,
        items,
        k,
        [[e for e in x if e >= 0] for x in exclude_lists] if exclude_lists else None,
    )


def test_topk_items_hand_computed_and_padding() -> None:
    users = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    items = torch.tensor([[3.0, 0.0], [1.0, 1.0], [0.0, 2.0]])
    idx, scores = topk_items(users, items, 4)
    assert idx.tolist() == [[0, 1, 2, -1], [2, 1, 0, -1]]
    assert scores.tolist() == [[3.0, 1.0, 0.0, -math.inf], [2.0, 1.0, 0.0, -math.inf]]
    exclude = (torch.tensor([0, 1, 4]), torch.tensor([0, 2, 1, 0]))
    idx, scores = topk_items(users, items, 3, exclude=exclude, chunk_size=1)
    assert idx.tolist() == [[1, 2, -1], [-1, -1, -1]]
    assert scores[1].tolist() == [-math.inf] * 3


def test_topk_items_multi_interest_is_max_over_interests() -> None:
    users = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])
    items = torch.tensor([[2.0, 0.0], [0.0, 3.0], [1.0, 1.0]])
    idx, scores = topk_items(users, items, 3)
    assert idx.tolist() == [[1, 0, 2]]
    assert scores.tolist() == [[3.0, 2.0, 1.0]]


def test_topk_items_chunking_and_device_do_not_change_results() -> None:
    gen = torch.Generator().manual_seed(0)
    users = torch.randn(37, 8, generator=gen, dtype=torch.float64)
    items = torch.randn(50, 8, generator=gen, dtype=torch.float64)
    a = topk_items(users, items, 10)
    b = topk_items(users, items, 10, chunk_size=4, device="cpu")
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert a[1].dtype == torch.float32


def test_topk_items_empty_inputs_and_errors() -> None:
    idx, scores = topk_items(torch.zeros(0, 4), torch.randn(5, 4), 3)
    assert tuple(idx.shape) == (0, 3) and tuple(scores.shape) == (0, 3)
    idx, _ = topk_items(
        torch.zeros(0, 4), torch.randn(5, 4), 3, exclude=(np.array([0]), np.array([], dtype=np.int64))
    )
    assert tuple(idx.shape) == (0, 3)
    idx, _ = topk_items(torch.randn(2, 4), torch.zeros(0, 4), 2)
    assert idx.tolist() == [[-1, -1], [-1, -1]]
    with pytest.raises(UsageError, match="dimension"):
        topk_items(torch.randn(2, 3), torch.randn(5, 4), 2)
    with pytest.raises(UsageError, match="item row"):
        topk_items(torch.randn(2, 4), torch.randn(5, 4), 2, exclude=(np.array([0, 1, 1]), np.array([7])))
    with pytest.raises(UsageError, match="indptr"):
        topk_items(torch.randn(2, 4), torch.randn(5, 4), 2, exclude=(np.array([0, 1]), np.array([1])))
    with pytest.raises(UsageError, match="NaN"):
        topk_items(torch.full((2, 4), math.nan), torch.randn(5, 4), 2)


# -- auc_score ---------------------------------------------------------------------------------
def test_auc_hand_computed() -> None:
    # (y_true, y_pred): Torch-RecHub's and sklearn's order
    assert auc_score([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == pytest.approx(
        0.75
    )  # sklearn's docstring example
    assert auc_score([0, 1, 0, 1], [1, 1, 1, 1]) == pytest.approx(0.5)
    assert auc_score(torch.tensor([0.0, 1.0]), torch.tensor([0.2, 0.9])) == pytest.approx(1.0)
    with pytest.raises(UsageError, match="every label is positive"):
        auc_score([1, 1], [0.1, 0.2])
    with pytest.raises(UsageError, match="no rows"):
        auc_score([], [])
    with pytest.raises(UsageError, match="swapped"):
        auc_score([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1])
    with pytest.raises(UsageError, match="NaN"):
        auc_score([0, 1], [0.5, math.nan])
    with pytest.raises(UsageError):
        auc_score([1], [0.1, 0.2])


@SETTINGS
@given(st.lists(st.tuples(st.integers(-3, 3), st.booleans()), max_size=40))
def test_auc_matches_pairwise_definition_with_ties(pairs: list[tuple[int, bool]]) -> None:
    scores = [float(s) / 2 for s, _ in pairs]
    labels = [int(y) for _, y in pairs]
    want = ref_auc(scores, labels)
    if math.isnan(want):  # one class only (or no rows): an error, never a silent nan
        with pytest.raises(UsageError):
            auc_score(np.array(labels), np.array(scores))
        return
    assert auc_score(np.array(labels), np.array(scores)) == pytest.approx(want, abs=1e-12)


def test_auc_large_random_against_reference() -> None:
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 2, size=400)
    scores = np.round(labels * 0.3 + rng.standard_normal(400), 1)  # rounding creates ties
    assert auc_score(labels, scores) == pytest.approx(ref_auc(scores.tolist(), labels.tolist()), abs=1e-12)


# -- ann_recall --------------------------------------------------------------------------------
def test_ann_recall_hand_computed() -> None:
    assert ann_recall([[1, 2, 3], [4, 5, 6]], [[3, 2, 9], [-1, -1, -1]]) == pytest.approx(2 / 3)
    assert ann_recall(np.array([1, -1]), np.array([1, 2])) == pytest.approx(0.5)
    assert math.isnan(ann_recall([[1]], [[-1]]))
    with pytest.raises(UsageError):
        ann_recall([[1]], [[1], [2]])


@SETTINGS
@given(
    st.integers(0, 10).flatmap(
        lambda rows: st.tuples(
            st.lists(st.lists(st.integers(-1, 12), min_size=4, max_size=4), min_size=rows, max_size=rows),
            st.lists(st.lists(st.integers(-1, 12), min_size=3, max_size=3), min_size=rows, max_size=rows),
        )
    )
)
def test_ann_recall_matches_reference(case: tuple[list[list[int]], list[list[int]]]) -> None:
    approx, exact = case
    a = np.array(approx, dtype=np.int64).reshape(len(approx), 4)
    e = np.array(exact, dtype=np.int64).reshape(len(exact), 3)
    want = ref_ann_recall(approx, exact)
    got = ann_recall(a, e)
    assert (math.isnan(got) and math.isnan(want)) or got == pytest.approx(want, abs=1e-12)


# -- evaluate_ranking --------------------------------------------------------------------------
def test_evaluate_ranking_maps_item_ids_and_masks() -> None:
    rng = np.random.default_rng(7)
    users = torch.from_numpy(rng.standard_normal((40, 6)))
    items = torch.from_numpy(rng.standard_normal((30, 6)))
    item_ids = np.arange(30) * 10 + 1000
    history = [list(rng.choice(30, size=rng.integers(0, 5), replace=False)) for _ in range(40)]
    exclude = to_csr(history)
    idx, _ = topk_items(users, items, 12, exclude=exclude)
    ranked_ids = np.where(idx.numpy() >= 0, item_ids[np.maximum(idx.numpy(), 0)], -1)
    targets = item_ids[rng.integers(0, 30, size=40)]
    targets[:3] = -1
    got = evaluate_ranking(
        users, items, targets, ks=(5, 12), exclude=exclude, item_ids=item_ids, chunk_size=7
    )
    want = ref_metrics(ranked_ids.tolist(), [[t] for t in targets.tolist()], (5, 12))
    assert_metrics_equal(got, want)
    # without item_ids, targets are row indices
    rows = rng.integers(0, 30, size=40)
    plain = evaluate_ranking(users, items, rows, ks=(5,))
    idx, _ = topk_items(users, items, 5)
    assert_metrics_equal(plain, ref_metrics(idx.tolist(), [[t] for t in rows.tolist()], (5,)))


def test_evaluate_ranking_perfect_model_scores_one() -> None:
    items = torch.eye(8)
    targets = np.arange(8)
    got = evaluate_ranking(items.clone(), items, targets, ks=(1, 3))
    assert got["hitrate@1"] == got["ndcg@3"] == got["mrr@3"] == pytest.approx(1.0)
