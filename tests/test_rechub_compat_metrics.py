"""Torch-RecHub's metric functions in zoo.evaluate, each against a slow, obvious reference written here."""

from __future__ import annotations

import math

import numpy as np
import pytest

from zoo.errors import UsageError
from zoo.evaluate import (
    auc_score,
    coverage_score,
    diversity_score,
    gauc_score,
    hit_score,
    mrr_score,
    ndcg_score,
    novelty_score,
    precision_score,
    recall_score,
    topk_metrics,
)


def ref_topk(y_true, y_pred, k):
    """Each metric by its textbook definition, one user and one position at a time."""
    ndcg = mrr = recall = precision = 0.0
    hits_total = truth_total = 0
    for user, truth in y_true.items():
        seen, hits, dcg, first = set(), 0, 0.0, None
        for rank, item in enumerate(list(y_pred[user])[:k]):
            if item in truth and item not in seen:
                hits += 1
                dcg += 1 / math.log2(rank + 2)
                first = rank if first is None else first
            seen.add(item)
        idcg = sum(1 / math.log2(r + 2) for r in range(min(len(set(truth)), k)))
        ndcg += dcg / idcg
        mrr += 0 if first is None else 1 / (first + 1)
        recall += hits / len(set(truth))
        precision += hits / k
        hits_total += hits
        truth_total += len(set(truth))
    n = len(y_true)
    return {
        "NDCG": ndcg / n,
        "MRR": mrr / n,
        "Recall": recall / n,
        "Hit": hits_total / truth_total,
        "Precision": precision / n,
    }


def value(text: str) -> float:
    return float(text.split(": ")[1])


@pytest.mark.parametrize("seed", range(5))
def test_topk_metrics_against_reference(seed: int) -> None:
    rng = np.random.default_rng(seed)
    y_true = {f"u{u}": list(rng.choice(30, size=rng.integers(1, 5), replace=False)) for u in range(40)}
    y_pred = {u: list(rng.choice(30, size=10, replace=False)) for u in y_true}
    out = topk_metrics(y_true, y_pred, topKs=[3, 10])
    for i, k in enumerate((3, 10)):
        want = ref_topk(y_true, y_pred, k)
        for name in ("NDCG", "MRR", "Recall", "Hit", "Precision"):
            assert out[name][i].startswith(f"{name}@{k}: ")
            assert value(out[name][i]) == pytest.approx(round(want[name], 4), abs=1e-4)


def test_topk_metrics_hand_computed_and_single_functions() -> None:
    y_pred = {"0": [0, 1], "1": [0, 1], "2": [2, 3]}
    y_true = {"0": [1, 2], "1": [0, 1, 2], "2": [2, 3]}
    out = topk_metrics(y_true, y_pred, topKs=(1, 2))
    assert out["NDCG"][1] == "NDCG@2: 0.7956" and out["MRR"][1] == "MRR@2: 0.8333"
    assert out["Recall"][1] == "Recall@2: 0.7222" and out["Hit"][1] == "Hit@2: 0.7143"
    assert out["Precision"][1] == "Precision@2: 0.8333"
    for fn, name in (
        (ndcg_score, "NDCG"),
        (hit_score, "Hit"),
        (mrr_score, "MRR"),
        (recall_score, "Recall"),
        (precision_score, "Precision"),
    ):
        assert fn(y_true, y_pred, topKs=[1, 2]) == out[name]
    assert recall_score(y_true, {u: v + [9, 9, 9] for u, v in y_pred.items()}) == ["Recall@5: 0.7222"]
    with pytest.raises(UsageError, match="same users"):
        topk_metrics(y_true, {"0": [1]})
    with pytest.raises(UsageError, match="list or tuple"):
        topk_metrics(y_true, y_pred, topKs=5)


def ref_auc(y, s):
    pos = [b for a, b in zip(y, s, strict=True) if a == 1]
    neg = [b for a, b in zip(y, s, strict=True) if a == 0]
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p in pos for n in neg)
    return wins / (len(pos) * len(neg))


def test_auc_and_gauc_against_reference() -> None:
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 300)
    s = np.round(rng.random(300) + 0.3 * y, 1)
    users = rng.integers(0, 12, 300)
    assert auc_score(y, s) == pytest.approx(ref_auc(y.tolist(), s.tolist()))
    total = weight = 0.0
    for u in np.unique(users):
        rows = users == u
        if len(set(y[rows])) == 2:
            total += rows.sum() * ref_auc(y[rows].tolist(), s[rows].tolist())
            weight += rows.sum()
    assert gauc_score(y, s, users) == pytest.approx(total / weight)
    weights = {u: 1.0 for u in np.unique(users)}
    assert gauc_score(y, s, users, weights) != pytest.approx(total / weight)
    with pytest.raises(UsageError, match="no user"):
        gauc_score([1, 0], [0.2, 0.1], ["a", "b"])
    with pytest.raises(UsageError, match="swapped"):
        auc_score(s, y)


def test_beyond_accuracy_against_reference() -> None:
    rng = np.random.default_rng(5)
    emb = {i: rng.standard_normal(4) for i in range(20)}
    y_pred = {u: list(rng.choice(25, size=6, replace=False)) for u in range(15)}  # 20..24 have no vector
    for k in (1, 3, 6):
        per_user = []
        for items in y_pred.values():
            vs = [emb[i] for i in items[:k] if i in emb]
            pairs = [
                1 - np.dot(a, b) / np.linalg.norm(a) / np.linalg.norm(b)
                for x, a in enumerate(vs)
                for b in vs[x + 1 :]
            ]
            if pairs:
                per_user.append(sum(pairs) / len(pairs))
        want = round(float(np.mean(per_user)), 4) if per_user else 0.0
        assert diversity_score(y_pred, emb, [k]) == {"Diversity": [f"Diversity@{k}: {want}"]}
        covered = {i for items in y_pred.values() for i in items[:k]}
        assert coverage_score(y_pred, range(30), [k]) == {
            "Coverage": [f"Coverage@{k}: {round(len(covered) / 30, 4)}"]
        }
        pop = {i: (i + 1) / 100 for i in range(22)}
        novelty = np.mean(
            [
                np.mean([-math.log2(max(pop.get(i, 1e-10), 1e-10)) for i in items[:k]])
                for items in y_pred.values()
            ]
        )
        assert novelty_score(y_pred, pop, [k]) == {"Novelty": [f"Novelty@{k}: {round(float(novelty), 4)}"]}
    matrix = np.stack([emb[i] for i in range(20)])
    small = {u: [i for i in v if i < 20] for u, v in y_pred.items()}
    assert diversity_score(small, matrix, [3]) == diversity_score(small, emb, [3])
    with pytest.raises(UsageError, match="empty"):
        coverage_score(y_pred, [], [3])
