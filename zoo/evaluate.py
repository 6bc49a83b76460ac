"""Ranking metrics, AUC, full-catalogue top-k and ANN recall.

The evaluation protocol, and why:

* **Full ranking.** Every user is scored against the *whole* item catalogue (no sampled negatives):
  sampled-candidate metrics are known to disagree with full-ranking ones and to flatter weak models.
  :func:`topk_items` does it in user chunks, one matmul plus one ``topk`` per chunk, on any device.
* **Masking.** Items the user already interacted with (training history) can be excluded from the
  ranking (their score becomes ``-inf``); otherwise a model is rewarded for recommending what the user
  has already consumed, which recall never wants. Masking is given as CSR rows of item *row* indices.
* **Out-of-vocabulary targets are misses.** A target item the model cannot score (not in the
  catalogue, marked ``-1``) stays in the denominator and counts as a miss. Dropping such users would
  silently remove the hardest cases and inflate every metric.
* **Binary relevance.** Every target is relevant with gain 1; each distinct item counts once, so a
  ranked list with a repeated id cannot hit twice. ``-1`` in a ranked list is an empty slot.
* **Multi-interest users** (``[U, K, D]`` vectors) score an item by the max over their K interests,
  the same rule as ``RecallModel.score``.

Definitions (``r`` is a 0-based rank, ``T`` the user's targets, ``H_K`` the targets in the top K):

* ``hitrate@K = [|H_K| > 0]``, ``recall@K = |H_K| / |T|``, ``precision@K = |H_K| / K``;
* ``ndcg@K = DCG / IDCG`` with ``DCG = sum_{hit r < K} 1 / log2(r + 2)`` and
  ``IDCG = sum_{i < min(|T|, K)} 1 / log2(i + 2)``;
* ``mrr@K = 1 / (r_first + 1)`` for the first hit within K, else 0.

Each metric is averaged over the evaluated users. Everything here is vectorised (numpy / torch).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import torch

from zoo.errors import UsageError
from zoo.retrieval.topk import canonical_topk

__all__ = [
    "METRIC_NAMES",
    "ann_recall",
    "auc_score",
    "coverage_score",
    "diversity_score",
    "evaluate_ranking",
    "gauc_score",
    "hit_score",
    "mrr_score",
    "ndcg_score",
    "novelty_score",
    "precision_score",
    "ranking_metrics",
    "recall_score",
    "topk_items",
    "topk_metrics",
]

METRIC_NAMES: tuple[str, ...] = ("hitrate", "recall", "ndcg", "mrr", "precision")
"""Metric families reported by :func:`ranking_metrics`, each as ``NAME@K``."""

CSR = tuple[Any, Any]


# -- conversions -------------------------------------------------------------------------------
def _to_numpy(values: Any) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        return values.detach().to("cpu").numpy()
    return np.asarray(values)


def _int_array(values: Any, *, what: str, ndim: int | None = None) -> np.ndarray:
    array = _to_numpy(values)
    if array.size == 0 and not np.issubdtype(array.dtype, np.integer):
        array = array.astype(np.int64)
    if not (np.issubdtype(array.dtype, np.integer) or array.dtype == np.bool_):
        if (
            np.issubdtype(array.dtype, np.floating)
            and np.all(np.isfinite(array))
            and np.all(array == np.round(array))
        ):
            array = array.astype(np.int64)
        else:
            raise UsageError(f"{what} must hold integer ids, got dtype {array.dtype}")
    array = array.astype(np.int64, copy=False)
    if ndim is not None and array.ndim != ndim:
        raise UsageError(f"{what} must be {ndim}-D, got shape {tuple(array.shape)}")
    return array


def _is_csr(targets: Any) -> bool:
    return (
        isinstance(targets, (tuple, list))
        and len(targets) == 2
        and all(np.ndim(_to_numpy(part)) == 1 for part in targets)
    )


def _csr_arrays(csr: CSR, rows: int, *, what: str) -> tuple[np.ndarray, np.ndarray]:
    """Validate a CSR pair ``(indptr [rows + 1], indices)`` and return it as int64 arrays."""
    indptr = _int_array(csr[0], what=f"{what} indptr", ndim=1)
    indices = _int_array(csr[1], what=f"{what} indices", ndim=1)
    if len(indptr) != rows + 1:
        raise UsageError(
            f"{what} indptr has {len(indptr)} entries; it needs one per user plus one ({rows + 1})"
        )
    if rows and (indptr[0] < 0 or np.any(np.diff(indptr) < 0) or indptr[-1] > len(indices)):
        raise UsageError(
            f"{what} indptr must be non-decreasing from >= 0 up to len(indices) = {len(indices)}"
        )
    return indptr, indices


def _check_ks(ks: Iterable[int] | int) -> tuple[int, ...]:
    values = (ks,) if isinstance(ks, (int, np.integer)) else tuple(ks)
    if not values:
        raise UsageError("ks is empty; give at least one cut-off, e.g. ks=(10, 50)")
    out = []
    for k in values:
        if isinstance(k, bool) or int(k) != k or int(k) < 1:
            raise UsageError(f"every cut-off in ks must be a positive integer, got {k!r}")
        out.append(int(k))
    return tuple(sorted(set(out)))


# -- full ranking ------------------------------------------------------------------------------
def topk_items(
    user_vectors: torch.Tensor,
    item_vectors: torch.Tensor,
    k: int,
    *,
    exclude: tuple[torch.Tensor, torch.Tensor] | None = None,
    chunk_size: int = 2048,
    device: torch.device | str | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``k`` best items for each user over the whole catalogue (inner-product scores).

    Args:
        user_vectors: ``[U, D]``, or ``[U, K, D]`` for multi-interest users (an item's score is the
            max over the user's K vectors). numpy arrays are accepted too.
        item_vectors: ``[N, D]``.
        k: how many items per user (``k > N`` is allowed; the tail is padded).
        exclude: CSR ``(indptr [U + 1], indices [nnz])`` of item *row* indices to mask for each user
            (score ``-inf``), e.g. the training history. Negative indices (items unknown to the
            catalogue) are ignored.
        chunk_size: users scored per matmul; memory is ``chunk_size * K * N`` scores.
        device: where to compute (default: the device of ``user_vectors``).

    Returns:
        ``(indices [U, k] int64, scores [U, k] float32)`` on CPU, best first. Slots with no valid
        item (``k > N``, or masked items needed to fill ``k``) hold index ``-1`` and score ``-inf``.
        Tied scores rank the smaller item row first (:func:`zoo.retrieval.topk.canonical_topk`, the
        same order as the ``exact`` retriever's), on every device.
    """
    users = torch.as_tensor(user_vectors)
    items = torch.as_tensor(item_vectors)
    k = int(k)
    if k < 0:
        raise UsageError(f"k must be >= 0, got {k}")
    if int(chunk_size) < 1:
        raise UsageError(f"chunk_size must be >= 1, got {chunk_size}")
    chunk_size = int(chunk_size)
    if users.ndim not in (2, 3):
        raise UsageError(f"user vectors must be [U, D] or [U, K, D], got shape {tuple(users.shape)}")
    if items.ndim != 2:
        raise UsageError(f"item vectors must be [N, D], got shape {tuple(items.shape)}")
    if users.shape[-1] != items.shape[1]:
        raise UsageError(
            f"user vectors have dimension {users.shape[-1]} but item vectors have {items.shape[1]};"
            " both towers must output the same size"
        )
    if users.ndim == 3 and users.shape[1] == 0 and users.shape[0] > 0:
        raise UsageError("multi-interest user vectors have K = 0 interests")
    n_users, n_items = int(users.shape[0]), int(items.shape[0])
    out_idx = torch.full((n_users, k), -1, dtype=torch.int64)
    out_scores = torch.full((n_users, k), -math.inf, dtype=torch.float32)

    indptr = indices = None
    if exclude is not None:
        indptr_np, indices_np = _csr_arrays(exclude, n_users, what="exclude")
        if indices_np.size and indices_np.max() >= n_items:
            raise UsageError(
                f"exclude holds item row {int(indices_np.max())} but there are only {n_items} items;"
                " exclude takes item row indices, not raw item ids"
            )
        indptr, indices = torch.from_numpy(indptr_np), torch.from_numpy(indices_np)

    fetch = min(k, n_items)
    if n_users == 0 or fetch == 0:
        return out_idx, out_scores
    for name, tensor in (("user", users), ("item", items)):
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise UsageError(f"{name} vectors contain NaN or infinite values; check the model's embeddings")

    dev = torch.device(device) if device is not None else users.device
    dtype = torch.promote_types(users.dtype, items.dtype)
    if not dtype.is_floating_point:
        dtype = torch.float32
    items_dev = items.to(dev, dtype)
    items_t = items_dev.T
    for start in range(0, n_users, chunk_size):
        stop = min(n_users, start + chunk_size)
        query = users[start:stop].to(dev, dtype)
        if query.ndim == 3:
            rows, interests, dim = query.shape
            scores = (
                (query.reshape(rows * interests, dim) @ items_t).view(rows, interests, n_items).amax(dim=1)
            )
        else:
            scores = query @ items_t
        if indptr is not None and indices is not None:
            lo, hi = int(indptr[start]), int(indptr[stop])
            if hi > lo:
                cols = indices[lo:hi]
                counts = indptr[start + 1 : stop + 1] - indptr[start:stop]
                row_ids = torch.repeat_interleave(torch.arange(stop - start), counts)
                keep = cols >= 0
                scores[row_ids[keep].to(dev), cols[keep].to(dev)] = -math.inf
        values, idx = canonical_topk(scores, fetch)
        idx = torch.where(torch.isneginf(values), torch.full_like(idx, -1), idx)
        out_idx[start:stop, :fetch] = idx.to("cpu")
        out_scores[start:stop, :fetch] = values.to("cpu", torch.float32)
    return out_idx, out_scores


def rows_to_ids(rows: np.ndarray, catalogue: np.ndarray) -> np.ndarray:
    """Catalogue rows (``-1`` pads, as :func:`topk_items` returns them) to the items' ids (``-1`` kept)."""
    rows = np.asarray(rows)
    return np.where(rows >= 0, np.asarray(catalogue)[rows.clip(min=0)], -1)


# -- ranking metrics ---------------------------------------------------------------------------
def _first_occurrence(ranked: np.ndarray) -> np.ndarray:
    """True where an id appears for the first time in its row (later repeats cannot hit again)."""
    if ranked.shape[1] < 2:
        return np.ones(ranked.shape, dtype=bool)
    order = np.argsort(ranked, axis=1, kind="stable")
    ordered = np.take_along_axis(ranked, order, axis=1)
    repeat = np.zeros(ranked.shape, dtype=bool)
    repeat[:, 1:] = ordered[:, 1:] == ordered[:, :-1]
    first = np.ones(ranked.shape, dtype=bool)
    np.put_along_axis(first, order, ~repeat, axis=1)
    return first


def _hits_csr(ranked: np.ndarray, indptr: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``hit [U, k]`` (ranked id is one of the row's targets) and ``|T|`` per row.

    Valid (``>= 0``) targets are de-duplicated within a row; each ``-1`` target counts as one target
    that can never be hit.
    """
    n_rows = ranked.shape[0]
    counts = np.diff(indptr)
    owner = np.repeat(np.arange(n_rows, dtype=np.int64), counts)
    targets = targets[indptr[0] : indptr[-1]]
    valid = targets >= 0
    # Dense codes for every id that appears, so that (row, code) packs into one int64 key.
    codes, inverse = np.unique(np.concatenate([targets[valid], ranked[ranked >= 0]]), return_inverse=True)
    width = max(1, len(codes))
    n_valid = int(valid.sum())
    target_keys = np.unique(owner[valid] * width + inverse[:n_valid])
    n_targets = np.bincount(target_keys // width, minlength=n_rows) + np.bincount(
        owner[~valid], minlength=n_rows
    )

    hit = np.zeros(ranked.shape, dtype=bool)
    present = ranked >= 0
    if target_keys.size and present.any():
        rows = np.broadcast_to(np.arange(n_rows, dtype=np.int64)[:, None], ranked.shape)[present]
        keys = rows * width + inverse[n_valid:]
        pos = np.minimum(np.searchsorted(target_keys, keys), len(target_keys) - 1)
        hit[present] = target_keys[pos] == keys
    return hit, n_targets


def ranking_metrics(
    topk: np.ndarray | torch.Tensor,
    targets: np.ndarray | torch.Tensor | CSR,
    ks: Sequence[int] | int = (10, 50),
) -> dict[str, float]:
    """HitRate, Recall, NDCG, MRR and Precision at each cut-off in ``ks``, averaged over users.

    Args:
        topk: ``[U, k]`` item ids ranked best first, ``k >= max(ks)``; ``-1`` is an empty slot.
        targets: either a 1-D ``[U]`` array with one target id per user (``-1`` = the true item is not
            in the catalogue: a miss, the user is still counted), or CSR ``(indptr [U + 1], ids)`` with
            several targets per user (users with no target are skipped).
        ks: the cut-offs.

    Returns:
        ``{"hitrate@K", "recall@K", "ndcg@K", "mrr@K", "precision@K"}`` for every K, plus
        ``"users"``: how many users were evaluated. With no user to evaluate the metrics are NaN.
    """
    ranked = _int_array(topk, what="topk", ndim=2)
    cutoffs = _check_ks(ks)
    n_rows, width = ranked.shape
    if cutoffs[-1] > width:
        raise UsageError(
            f"topk has {width} columns but metrics at K = {cutoffs[-1]} were asked for; rank more items"
        )
    ranked = ranked[:, : cutoffs[-1]]

    if _is_csr(targets):
        indptr, ids = _csr_arrays(targets, n_rows, what="targets")  # type: ignore[arg-type]
        hit, n_targets = _hits_csr(ranked, indptr, ids)
    else:
        single = _int_array(targets, what="targets", ndim=1)
        if len(single) != n_rows:
            raise UsageError(
                f"targets has {len(single)} entries but topk has {n_rows} rows (one target per user)"
            )
        hit = (ranked == single[:, None]) & (single[:, None] >= 0)
        n_targets = np.ones(n_rows, dtype=np.int64)
    hit &= (ranked >= 0) & _first_occurrence(ranked)

    evaluated = n_targets > 0
    hit, n_targets = hit[evaluated], n_targets[evaluated]
    n_users = int(evaluated.sum())
    discount = 1.0 / np.log2(np.arange(cutoffs[-1], dtype=np.float64) + 2.0)
    ideal = np.cumsum(discount)

    out: dict[str, float] = {}
    for k in cutoffs:
        top = hit[:, :k]
        n_hit = top.sum(axis=1)
        any_hit = n_hit > 0
        dcg = top @ discount[:k]
        idcg = ideal[np.minimum(n_targets, k) - 1]
        first = np.argmax(top, axis=1)
        per_user = {
            "hitrate": any_hit.astype(np.float64),
            "recall": n_hit / np.maximum(n_targets, 1),
            "ndcg": dcg / idcg,
            "mrr": np.where(any_hit, 1.0 / (first + 1.0), 0.0),
            "precision": n_hit / float(k),
        }
        for name in METRIC_NAMES:
            out[f"{name}@{k}"] = float(per_user[name].mean()) if n_users else math.nan
    out["users"] = n_users
    return out


# -- AUC ---------------------------------------------------------------------------------------
def _average_ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks of ``values``; tied values share the mean of the ranks they span."""
    order = np.argsort(values, kind="mergesort")
    ordered = values[order]
    starts = np.flatnonzero(np.concatenate([[True], ordered[1:] != ordered[:-1]]))
    ends = np.concatenate([starts[1:], [len(values)]])
    group_rank = (starts + 1 + ends) / 2.0
    ranks = np.empty(len(values), dtype=np.float64)
    ranks[order] = np.repeat(group_rank, ends - starts)
    return ranks


def _binary_labels(y_true: Any, y_pred: Any, *, what: str) -> tuple[np.ndarray, np.ndarray]:
    """``(positive mask, scores)`` for ``what(y_true, y_pred)``; a one-line UsageError for every input
    whose AUC would be undefined (empty, one class, NaN scores) or that looks swapped."""
    y = _to_numpy(y_true).ravel()
    s = _to_numpy(y_pred).ravel()
    if len(s) != len(y):
        raise UsageError(
            f"{what} got {len(y)} labels but {len(s)} scores; pass (y_true, y_pred) of equal length"
        )
    if len(y) == 0:
        raise UsageError(f"{what} got no rows; AUC needs positive and negative rows")
    try:
        y = y.astype(np.float64)
        s = s.astype(np.float64)
    except (TypeError, ValueError):
        raise UsageError(f"{what} takes numeric (y_true, y_pred)") from None
    classes = np.unique(y[~np.isnan(y)])
    pred_binary = bool(np.isin(np.unique(s[~np.isnan(s)]), (0.0, 1.0)).all())
    if np.isnan(y).any() or len(classes) > 2 or not np.isin(classes, (-1.0, 0.0, 1.0)).all():
        hint = " (the arguments look swapped: the order is y_true, y_pred)" if pred_binary else ""
        raise UsageError(f"{what}: y_true must hold binary labels (0/1){hint}")
    if np.isnan(s).any():
        raise UsageError(f"{what}: y_pred contains NaN scores; check the model's outputs")
    if len(classes) < 2:
        label = "positive" if classes[0] > 0 else "negative"
        raise UsageError(f"{what}: every label is {label}; AUC needs both positive and negative rows")
    return y == classes[-1], s


def auc_score(
    y_true: np.ndarray | torch.Tensor | Sequence[float], y_pred: np.ndarray | torch.Tensor | Sequence[float]
) -> float:
    """ROC AUC of the scores ``y_pred`` for the binary labels ``y_true`` (Torch-RecHub's and sklearn's
    argument order), equal to sklearn's ``roc_auc_score``.

    Computed with the Mann-Whitney rank statistic, tied scores taking their average rank. Where sklearn
    would warn and return ``nan`` or raise, this raises one UsageError line: no rows, one class only,
    NaN scores, labels that are not binary (and says so when the two arguments look swapped).
    """
    positive, s = _binary_labels(y_true, y_pred, what="auc_score")
    n_pos = int(positive.sum())
    n_neg = len(s) - n_pos
    ranks = _average_ranks(s)
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


# -- ANN recall --------------------------------------------------------------------------------
def ann_recall(approx_ids: np.ndarray | torch.Tensor, exact_ids: np.ndarray | torch.Tensor) -> float:
    """Mean over queries of ``|approx ∩ exact| / |exact|``: how much of the exact top-k an ANN found.

    ``-1`` entries are ignored and repeated ids count once; queries with no valid exact id are
    skipped (``nan`` if none is left). 1-D inputs are read as a single query.
    """
    approx = _int_array(approx_ids, what="approx_ids")
    exact = _int_array(exact_ids, what="exact_ids")
    approx = approx[None, :] if approx.ndim == 1 else approx
    exact = exact[None, :] if exact.ndim == 1 else exact
    if approx.ndim != 2 or exact.ndim != 2:
        raise UsageError("ann_recall takes [Q, k] id arrays")
    if approx.shape[0] != exact.shape[0]:
        raise UsageError(f"ann_recall got {approx.shape[0]} approximate rows but {exact.shape[0]} exact rows")
    n_rows = exact.shape[0]
    a_ok, e_ok = approx >= 0, exact >= 0
    codes, inverse = np.unique(np.concatenate([exact[e_ok], approx[a_ok]]), return_inverse=True)
    width = max(1, len(codes))
    rows = np.arange(n_rows, dtype=np.int64)[:, None]
    n_exact_valid = int(e_ok.sum())
    exact_keys = np.unique(np.broadcast_to(rows, exact.shape)[e_ok] * width + inverse[:n_exact_valid])
    approx_keys = np.unique(np.broadcast_to(rows, approx.shape)[a_ok] * width + inverse[n_exact_valid:])
    n_exact = np.bincount(exact_keys // width, minlength=n_rows)
    if exact_keys.size and approx_keys.size:
        pos = np.minimum(np.searchsorted(exact_keys, approx_keys), len(exact_keys) - 1)
        found = approx_keys[exact_keys[pos] == approx_keys]
    else:
        found = np.zeros(0, dtype=np.int64)
    n_found = np.bincount(found // width, minlength=n_rows)
    keep = n_exact > 0
    if not keep.any():
        return math.nan
    return float(np.mean(n_found[keep] / n_exact[keep]))


# -- convenience -------------------------------------------------------------------------------
def evaluate_ranking(
    user_vectors: torch.Tensor,
    item_vectors: torch.Tensor,
    targets: np.ndarray | torch.Tensor | CSR,
    *,
    ks: Sequence[int] | int = (10, 50),
    exclude: tuple[torch.Tensor, torch.Tensor] | None = None,
    item_ids: np.ndarray | torch.Tensor | None = None,
    chunk_size: int = 2048,
    device: torch.device | str | None = None,
) -> dict[str, float]:
    """Full-ranking metrics in one call: :func:`topk_items` at ``max(ks)`` then :func:`ranking_metrics`.

    ``targets`` are in the id space of ``item_ids`` (default: item row indices); ``exclude`` holds
    item row indices. See :func:`ranking_metrics` for the target forms and the keys returned.
    """
    cutoffs = _check_ks(ks)
    idx, _ = topk_items(
        user_vectors, item_vectors, cutoffs[-1], exclude=exclude, chunk_size=chunk_size, device=device
    )
    ranked = idx.numpy()
    if item_ids is not None:
        ids = _int_array(item_ids, what="item_ids", ndim=1)
        n_items = int(torch.as_tensor(item_vectors).shape[0])
        if len(ids) != n_items:
            raise UsageError(f"item_ids has {len(ids)} entries but there are {n_items} item vectors")
        ranked = np.where(ranked >= 0, ids[np.maximum(ranked, 0)] if len(ids) else -1, -1)
    return ranking_metrics(ranked, targets, cutoffs)


# -- Torch-RecHub's metric functions -----------------------------------------------------------------
# Same names, arguments and return shapes as ``torch_rechub.basic.metric``: dicts of ``{user: [items]}``
# in, ``{"NDCG": ["NDCG@5: 0.1234", ...], ...}`` out (values rounded to 4 digits as there). The hit
# test is the one of :func:`ranking_metrics`; what differs from Torch-RecHub on purpose is listed in
# docs/migration-torch-rechub.md (a repeated id hits once, users without ground truth are left out).
RECHUB_TOPK_NAMES: tuple[str, ...] = ("NDCG", "MRR", "Recall", "Hit", "Precision")


def _topks(topKs: Any) -> list[int]:
    if topKs is None:
        return [5]
    if not isinstance(topKs, (tuple, list)):
        raise UsageError(f"topKs must be a list or tuple of cut-offs such as [5, 10], got {topKs!r}")
    for k in topKs:
        _check_ks(k)
    return [int(k) for k in topKs]


def _user_lists(y_true: dict[Any, Any], y_pred: dict[Any, Any], width: int) -> tuple[Any, ...]:
    """The dicts as one id matrix ``[U, width]`` (``-1`` pads short lists) and CSR targets, over the
    users of ``y_true`` that have ground truth; ids of any hashable type are coded to integers."""
    if not isinstance(y_true, dict) or not isinstance(y_pred, dict):
        raise UsageError("topk_metrics takes y_true and y_pred as dicts {user: [item ids]}")
    missing = [u for u in y_true if u not in y_pred]
    if missing or len(y_true) != len(y_pred):
        some = missing[0] if missing else next(u for u in y_pred if u not in y_true)
        raise UsageError(
            f"y_true and y_pred must hold the same users ({len(y_true)} vs {len(y_pred)}; user {some!r}"
            " is in only one of them)"
        )
    users = [u for u in y_true if len(y_true[u]) > 0]
    truths = [list(np.asarray(y_true[u]).ravel()) for u in users]
    preds = [list(np.asarray(y_pred[u]).ravel())[:width] for u in users]
    flat = [item for row in truths for item in row] + [item for row in preds for item in row]
    codes = {}
    for item in flat:
        codes.setdefault(item.item() if hasattr(item, "item") else item, len(codes))
    ranked = np.full((len(users), width), -1, dtype=np.int64)
    for r, row in enumerate(preds):
        ranked[r, : len(row)] = [codes[i.item() if hasattr(i, "item") else i] for i in row]
    indptr = np.concatenate([[0], np.cumsum([len(t) for t in truths])]).astype(np.int64)
    ids = np.array([codes[i.item() if hasattr(i, "item") else i] for t in truths for i in t], dtype=np.int64)
    return ranked, indptr, ids


def topk_metrics(y_true: dict[Any, Any], y_pred: dict[Any, Any], topKs: Sequence[int] | None = None) -> dict:
    """Torch-RecHub's ``topk_metrics``: NDCG, MRR, Recall, Hit and Precision at each cut-off.

    Args:
        y_true: ``{user: [relevant item ids]}``.
        y_pred: ``{user: [recommended item ids, best first]}`` for the same users.
        topKs: cut-offs, e.g. ``[5, 10]`` (default ``[5]``).

    Returns:
        ``{"NDCG": ["NDCG@5: 0.1234", ...], "MRR": [...], "Recall": [...], "Hit": [...],
        "Precision": [...]}``, one string per cut-off. ``Hit`` is Torch-RecHub's: relevant items found
        over all relevant items (the hit rate when each user has one); the others are means over users.
    """
    ks = _topks(topKs)
    ranked, indptr, ids = _user_lists(y_true, y_pred, max(ks))
    if ranked.shape[0] == 0:
        raise UsageError("topk_metrics: no user has ground truth items; the metrics are undefined")
    hit, n_targets = _hits_csr(ranked, indptr, ids)
    hit &= (ranked >= 0) & _first_occurrence(ranked)
    discount = 1.0 / np.log2(np.arange(max(ks), dtype=np.float64) + 2.0)
    ideal = np.cumsum(discount)
    out: dict[str, list[str]] = {name: [] for name in RECHUB_TOPK_NAMES}
    for k in ks:
        top = hit[:, :k]
        n_hit = top.sum(axis=1)
        first = np.argmax(top, axis=1)
        values = {
            "NDCG": np.mean(top @ discount[:k] / ideal[np.minimum(n_targets, k) - 1]),
            "MRR": np.mean(np.where(n_hit > 0, 1.0 / (first + 1.0), 0.0)),
            "Recall": np.mean(n_hit / n_targets),
            "Hit": n_hit.sum() / n_targets.sum(),
            "Precision": np.mean(n_hit / k),
        }
        for name in RECHUB_TOPK_NAMES:
            out[name].append(f"{name}@{k}: {round(float(values[name]), 4)}")
    return out


def ndcg_score(
    y_true: dict[Any, Any], y_pred: dict[Any, Any], topKs: Sequence[int] | None = None
) -> list[str]:
    """``topk_metrics(...)["NDCG"]`` (Torch-RecHub's function)."""
    return topk_metrics(y_true, y_pred, topKs)["NDCG"]


def hit_score(
    y_true: dict[Any, Any], y_pred: dict[Any, Any], topKs: Sequence[int] | None = None
) -> list[str]:
    """``topk_metrics(...)["Hit"]`` (Torch-RecHub's function)."""
    return topk_metrics(y_true, y_pred, topKs)["Hit"]


def mrr_score(
    y_true: dict[Any, Any], y_pred: dict[Any, Any], topKs: Sequence[int] | None = None
) -> list[str]:
    """``topk_metrics(...)["MRR"]`` (Torch-RecHub's function)."""
    return topk_metrics(y_true, y_pred, topKs)["MRR"]


def recall_score(
    y_true: dict[Any, Any], y_pred: dict[Any, Any], topKs: Sequence[int] | None = None
) -> list[str]:
    """``topk_metrics(...)["Recall"]`` (Torch-RecHub's function)."""
    return topk_metrics(y_true, y_pred, topKs)["Recall"]


def precision_score(
    y_true: dict[Any, Any], y_pred: dict[Any, Any], topKs: Sequence[int] | None = None
) -> list[str]:
    """``topk_metrics(...)["Precision"]`` (Torch-RecHub's function)."""
    return topk_metrics(y_true, y_pred, topKs)["Precision"]


def gauc_score(y_true: Any, y_pred: Any, users: Any, weights: dict[Any, float] | None = None) -> float:
    """Group AUC (Torch-RecHub's ``gauc_score``): each user's :func:`auc_score`, weighted by ``weights[user]``
    or by the user's row count.

    Users whose rows are all of one class have no AUC and are left out (Torch-RecHub raises on the first
    one); a UsageError when no user has both classes.
    """
    y = _to_numpy(y_true).ravel()
    s = _to_numpy(y_pred).ravel()
    u = np.asarray(_to_numpy(users)).ravel()
    if not len(y) == len(s) == len(u):
        raise UsageError(
            f"gauc_score got {len(y)} labels, {len(s)} scores and {len(u)} users; pass one each per row"
        )
    import pandas as pd

    codes, uniques = pd.factorize(u)
    total = weight_sum = 0.0
    for code, user in enumerate(uniques):
        rows = codes == code
        labels = y[rows]
        if len(np.unique(labels)) < 2:
            continue
        weight = float(len(labels) if weights is None else weights[user])
        total += weight * auc_score(labels, s[rows])
        weight_sum += weight
    if weight_sum == 0:
        raise UsageError("gauc_score: no user has both positive and negative rows (or every weight is 0)")
    return total / weight_sum


def _rechub_result(name: str, ks: list[int], values: list[float]) -> dict[str, list[str]]:
    return {name: [f"{name}@{k}: {round(float(v), 4)}" for k, v in zip(ks, values, strict=True)]}


def diversity_score(
    y_pred: dict[Any, Any], item_embeddings: Any, topKs: Sequence[int] | None = None
) -> dict[str, list[str]]:
    """Intra-list diversity (Torch-RecHub's ``diversity_score``): per user, the mean pairwise cosine distance
    ``1 - cos`` among the top-K items that have an embedding (a dict ``{item: vector}``, or a 2-D array
    indexed by item id); users with fewer than two such items are left out; 0.0 when none is left.

    Returns ``{"Diversity": ["Diversity@5: 0.1234", ...]}``.
    """
    ks = _topks(topKs)
    table = item_embeddings if isinstance(item_embeddings, dict) else _to_numpy(item_embeddings)
    values = []
    for k in ks:
        per_user = []
        for items in y_pred.values():
            vectors = [
                np.asarray(table[i], dtype=np.float64)
                for i in list(items)[:k]
                if (i in table if isinstance(table, dict) else 0 <= int(i) < len(table))
            ]
            if len(vectors) < 2:
                continue
            unit = np.stack(vectors)
            unit = unit / np.maximum(np.linalg.norm(unit, axis=1, keepdims=True), 1e-10)
            n = len(unit)
            per_user.append((1.0 - unit @ unit.T)[np.triu_indices(n, k=1)].mean())
        values.append(np.mean(per_user) if per_user else 0.0)
    return _rechub_result("Diversity", ks, values)


def coverage_score(
    y_pred: dict[Any, Any], all_items: Any, topKs: Sequence[int] | None = None
) -> dict[str, list[str]]:
    """Catalogue coverage (Torch-RecHub's ``coverage_score``): distinct items in anyone's top K over the
    catalogue size ``len(all_items)``. Returns ``{"Coverage": ["Coverage@5: 0.1234", ...]}``."""
    ks = _topks(topKs)
    if len(all_items) == 0:
        raise UsageError("coverage_score: all_items is empty; pass the catalogue's item ids")
    values = [len({i for items in y_pred.values() for i in list(items)[:k]}) / len(all_items) for k in ks]
    return _rechub_result("Coverage", ks, values)


def novelty_score(
    y_pred: dict[Any, Any], item_popularity: dict[Any, float], topKs: Sequence[int] | None = None
) -> dict[str, list[str]]:
    """Mean self-information (Torch-RecHub's ``novelty_score``): per user the mean ``-log2(p)`` of the top-K
    items' popularity ``p`` (an item missing from ``item_popularity``, or p below 1e-10, counts as 1e-10),
    averaged over users with recommendations. Returns ``{"Novelty": ["Novelty@5: 2.74", ...]}``."""
    ks = _topks(topKs)
    values = []
    for k in ks:
        per_user = [
            np.mean([-np.log2(max(float(item_popularity.get(i, 1e-10)), 1e-10)) for i in list(items)[:k]])
            for items in y_pred.values()
            if len(items)
        ]
        values.append(np.mean(per_user) if per_user else 0.0)
    return _rechub_result("Novelty", ks, values)
