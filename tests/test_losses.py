"""Every loss of zoo.train.losses against a slow reference written with explicit loops and a hand-made
log-sum-exp, on random inputs (hypothesis draws shapes, seeds and masks) plus hand-made cases, and
gradients that stay finite when candidates are masked to -inf.
"""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from zoo.train import losses

SETTINGS = settings(max_examples=60, deadline=None)


# -- slow references -------------------------------------------------------------------------------------
def softplus(x: float) -> float:
    """log(1 + exp(x)), stable."""
    return max(x, 0.0) + math.log1p(math.exp(-abs(x)))


def logsumexp(values: list[float]) -> float:
    finite = [v for v in values if v != -math.inf]
    if not finite:
        return -math.inf
    top = max(finite)
    return top + math.log(sum(math.exp(v - top) for v in finite))


def ref_pointwise(pos, neg, mask):
    total, count = 0.0, 0
    for p in pos:
        total += softplus(-p)  # -log sigmoid(p)
        count += 1
    if neg is not None:
        for i, row in enumerate(neg):
            for j, value in enumerate(row):
                if mask is not None and mask[i][j]:
                    continue
                total += softplus(value)  # -log(1 - sigmoid(value))
                count += 1
    return total / max(count, 1)


def ref_pairwise(pos, neg, mask, kind, margin):
    total, count = 0.0, 0
    for i, row in enumerate(neg):
        for j, value in enumerate(row):
            if mask is not None and mask[i][j]:
                continue
            diff = pos[i] - value
            total += softplus(-diff) if kind == "bpr" else max(0.0, margin - diff)
            count += 1
    return total / max(count, 1)


def ref_softmax(pos, neg, mask):
    total = 0.0
    for i, row in enumerate(neg):
        candidates = [pos[i]] + [v for j, v in enumerate(row) if mask is None or not mask[i][j]]
        total += logsumexp(candidates) - pos[i]
    return total / len(pos)


def dot(a, b) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


def ref_inbatch(user, items, pos_ids, tau, log_q=None, extra_items=None, extra_ids=None, extra_log_q=None):
    rows = len(user)
    total = 0.0
    for i in range(rows):
        candidates = []
        target = None
        for j in range(rows):
            logit = dot(user[i], items[j]) / tau - (log_q[j] if log_q is not None else 0.0)
            if j == i:
                target = logit
            elif pos_ids[j] == pos_ids[i]:
                continue  # another copy of this row's positive is not a negative
            candidates.append(logit)
        for k in range(len(extra_items or [])):
            if extra_ids is not None and extra_ids[k] == pos_ids[i]:
                continue
            candidates.append(
                dot(user[i], extra_items[k]) / tau - (extra_log_q[k] if extra_log_q is not None else 0.0)
            )
        total += logsumexp(candidates) - target
    return total / rows


def random_case(seed: int, rows: int, n: int, mask_rate: float):
    g = torch.Generator().manual_seed(seed)
    pos = torch.randn(rows, generator=g, dtype=torch.float64) * 3
    neg = torch.randn(rows, n, generator=g, dtype=torch.float64) * 3
    mask = torch.rand(rows, n, generator=g) < mask_rate
    return pos, neg, mask


shapes = dict(
    seed=st.integers(0, 10_000),
    rows=st.integers(1, 7),
    n=st.integers(1, 6),
    mask_rate=st.sampled_from([0.0, 0.3, 0.8, 1.0]),
    use_mask=st.booleans(),
)


# -- point-wise ------------------------------------------------------------------------------------------
@SETTINGS
@given(**shapes)
def test_pointwise_vs_reference(seed, rows, n, mask_rate, use_mask):
    pos, neg, mask = random_case(seed, rows, n, mask_rate)
    mask = mask if use_mask else None
    got = losses.pointwise_loss(pos, neg, mask)
    expected = ref_pointwise(pos.tolist(), neg.tolist(), None if mask is None else mask.tolist())
    assert got.item() == pytest.approx(expected, rel=1e-9, abs=1e-12)


def test_pointwise_hand_made():
    pos = torch.tensor([0.0, 2.0], dtype=torch.float64)
    neg = torch.tensor([[0.0, 50.0], [-1.0, 3.0]], dtype=torch.float64)
    mask = torch.tensor([[False, True], [False, False]])
    # log 2 + softplus(-2) + log 2 + softplus(-1) + softplus(3), over 5 terms; the masked 50 counts nowhere
    expected = (2 * math.log(2) + softplus(-2) + softplus(-1) + softplus(3)) / 5
    assert losses.pointwise_loss(pos, neg, mask).item() == pytest.approx(expected)
    # without negatives: the positives alone
    assert losses.pointwise_loss(pos, None).item() == pytest.approx((math.log(2) + softplus(-2)) / 2)
    assert losses.pointwise_loss(pos, neg[:, :0]).item() == pytest.approx((math.log(2) + softplus(-2)) / 2)


def test_labelled_loss():
    logits = torch.tensor([0.5, -2.0, 3.0], dtype=torch.float64)
    labels = torch.tensor([1, 0, 0])
    expected = (softplus(-0.5) + softplus(-2.0) + softplus(3.0)) / 3
    assert losses.labelled_loss(logits, labels).item() == pytest.approx(expected)


# -- pair-wise -------------------------------------------------------------------------------------------
@SETTINGS
@given(**shapes, kind=st.sampled_from(["bpr", "hinge"]), margin=st.sampled_from([0.0, 0.5, 1.0, 4.0]))
def test_pairwise_vs_reference(seed, rows, n, mask_rate, use_mask, kind, margin):
    pos, neg, mask = random_case(seed, rows, n, mask_rate)
    mask = mask if use_mask else None
    got = losses.pairwise_loss(pos, neg, mask, kind=kind, margin=margin)
    expected = ref_pairwise(pos.tolist(), neg.tolist(), None if mask is None else mask.tolist(), kind, margin)
    assert got.item() == pytest.approx(expected, rel=1e-9, abs=1e-12)


def test_pairwise_hand_made():
    pos = torch.tensor([1.0], dtype=torch.float64)
    neg = torch.tensor([[1.0, 3.0, -9.0]], dtype=torch.float64)
    mask = torch.tensor([[False, False, True]])
    assert losses.pairwise_loss(pos, neg, mask).item() == pytest.approx((math.log(2) + softplus(2.0)) / 2)
    assert losses.pairwise_loss(pos, neg, mask, kind="hinge", margin=1.0).item() == pytest.approx(
        (1.0 + 3.0) / 2
    )
    everything_masked = torch.ones(1, 3, dtype=torch.bool)
    assert losses.pairwise_loss(pos, neg, everything_masked).item() == 0.0


# -- list-wise -------------------------------------------------------------------------------------------
@SETTINGS
@given(**shapes)
def test_softmax_vs_reference(seed, rows, n, mask_rate, use_mask):
    pos, neg, mask = random_case(seed, rows, n, mask_rate)
    mask = mask if use_mask else None
    got = losses.softmax_loss(pos, neg, mask)
    expected = ref_softmax(pos.tolist(), neg.tolist(), None if mask is None else mask.tolist())
    assert got.item() == pytest.approx(expected, rel=1e-9, abs=1e-12)


def test_softmax_hand_made():
    pos = torch.tensor([0.0, 1.0], dtype=torch.float64)
    neg = torch.tensor([[0.0, 0.0], [1.0, 100.0]], dtype=torch.float64)
    mask = torch.tensor([[False, False], [False, True]])
    expected = (math.log(3) + math.log(2)) / 2  # the masked 100 would dominate otherwise
    assert losses.softmax_loss(pos, neg, mask).item() == pytest.approx(expected)


@SETTINGS
@given(
    seed=st.integers(0, 10_000),
    rows=st.integers(1, 8),
    dim=st.integers(1, 5),
    n_ids=st.integers(1, 5),
    tau=st.sampled_from([0.05, 0.5, 1.0, 2.0]),
    use_log_q=st.booleans(),
    extra=st.integers(0, 5),
    extra_ids_given=st.booleans(),
    extra_log_q_given=st.booleans(),
)
def test_inbatch_softmax_vs_reference(
    seed, rows, dim, n_ids, tau, use_log_q, extra, extra_ids_given, extra_log_q_given
):
    g = torch.Generator().manual_seed(seed)
    user = torch.randn(rows, dim, generator=g, dtype=torch.float64)
    items = torch.randn(rows, dim, generator=g, dtype=torch.float64)
    pos_ids = torch.randint(0, n_ids, (rows,), generator=g)  # few ids: many in-batch duplicates
    log_q = torch.log(torch.rand(rows, generator=g, dtype=torch.float64) + 0.01) if use_log_q else None
    extra_items = torch.randn(extra, dim, generator=g, dtype=torch.float64) if extra else None
    extra_ids = torch.randint(0, n_ids + 2, (extra,), generator=g) if extra and extra_ids_given else None
    extra_log_q = (
        torch.log(torch.rand(extra, generator=g, dtype=torch.float64) + 0.01)
        if extra and extra_log_q_given
        else None
    )
    got = losses.inbatch_softmax_loss(
        user,
        items,
        pos_ids,
        tau,
        log_q=log_q,
        extra_items=extra_items,
        extra_ids=extra_ids,
        extra_log_q=extra_log_q,
    )
    expected = ref_inbatch(
        user.tolist(),
        items.tolist(),
        pos_ids.tolist(),
        tau,
        None if log_q is None else log_q.tolist(),
        None if extra_items is None else extra_items.tolist(),
        None if extra_ids is None else extra_ids.tolist(),
        None if extra_log_q is None else extra_log_q.tolist(),
    )
    assert got.item() == pytest.approx(expected, rel=1e-9, abs=1e-10)


def test_inbatch_hand_made():
    user = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], dtype=torch.float64)
    items = torch.tensor([[2.0, 0.0], [0.0, 1.0], [1.0, 0.0]], dtype=torch.float64)
    pos_ids = torch.tensor([7, 8, 7])  # rows 0 and 2 share a positive
    # row 0: candidates item0 (2), item1 (0); item2 is its own positive again -> masked
    # row 1: all three; row 2: item1 (1), item2 (1); item0 masked
    row0 = logsumexp([2.0, 0.0]) - 2.0
    row1 = logsumexp([0.0, 1.0, 0.0]) - 1.0
    row2 = logsumexp([1.0, 1.0]) - 1.0
    got = losses.inbatch_softmax_loss(user, items, pos_ids, 1.0)
    assert got.item() == pytest.approx((row0 + row1 + row2) / 3)
    # logQ: subtract log q of each column's item, also from the positive
    log_q = torch.tensor([math.log(0.5), math.log(0.25), math.log(0.5)], dtype=torch.float64)
    lq = log_q.tolist()
    row0 = logsumexp([2.0 - lq[0], 0.0 - lq[1]]) - (2.0 - lq[0])
    row1 = logsumexp([0.0 - lq[0], 1.0 - lq[1], 0.0 - lq[2]]) - (1.0 - lq[1])
    row2 = logsumexp([1.0 - lq[1], 1.0 - lq[2]]) - (1.0 - lq[2])
    got = losses.inbatch_softmax_loss(user, items, pos_ids, 1.0, log_q=log_q)
    assert got.item() == pytest.approx((row0 + row1 + row2) / 3)
    # mixed: one shared extra negative with id 8 (row 1's positive: masked there only), temperature 0.5
    extra = torch.tensor([[0.0, 2.0]], dtype=torch.float64)
    got = losses.inbatch_softmax_loss(
        user,
        items,
        pos_ids,
        0.5,
        extra_items=extra,
        extra_ids=torch.tensor([8]),
        extra_log_q=torch.tensor([math.log(0.1)], dtype=torch.float64),
    )
    e = -math.log(0.1)
    row0 = logsumexp([4.0, 0.0, 0.0 + e]) - 4.0
    row1 = logsumexp([0.0, 2.0, 0.0]) - 2.0
    row2 = logsumexp([2.0, 2.0, 4.0 + e]) - 2.0
    assert got.item() == pytest.approx((row0 + row1 + row2) / 3)


# -- gradients -------------------------------------------------------------------------------------------
def test_gradients_finite_with_masks():
    g = torch.Generator().manual_seed(0)
    pos = torch.randn(4, generator=g, requires_grad=True)
    neg = torch.randn(4, 3, generator=g, requires_grad=True)
    mask = torch.tensor(
        [[True, True, True], [False, True, False], [False, False, False], [True, False, True]]
    )
    for loss in (
        losses.pointwise_loss(pos, neg, mask),
        losses.pairwise_loss(pos, neg, mask),
        losses.pairwise_loss(pos, neg, mask, kind="hinge"),
        losses.softmax_loss(pos, neg, mask),
    ):
        pos.grad = neg.grad = None
        loss.backward()
        assert torch.isfinite(loss)
        assert torch.isfinite(pos.grad).all() and torch.isfinite(neg.grad).all()
        assert (neg.grad[mask] == 0).all()  # a masked candidate gets no gradient

    user = torch.randn(5, 3, generator=g, requires_grad=True)
    items = torch.randn(5, 3, generator=g, requires_grad=True)
    extra = torch.randn(2, 3, generator=g, requires_grad=True)
    for pos_ids in (
        torch.tensor([1, 1, 1, 1, 1]),
        torch.tensor([1, 2, 1, 3, 2]),
    ):  # every negative masked, some masked
        loss = losses.inbatch_softmax_loss(
            user,
            items,
            pos_ids,
            0.1,
            log_q=torch.full((5,), -2.0),
            extra_items=extra,
            extra_ids=torch.tensor([1, 1]),
            extra_log_q=torch.tensor([-1.0, -1.0]),
        )
        user.grad = items.grad = extra.grad = None
        loss.backward()
        assert torch.isfinite(loss)
        for t in (user, items, extra):
            assert torch.isfinite(t.grad).all()
        if pos_ids.unique().numel() == 1:
            # nothing to contrast with: zero loss, zero gradient, and extra ids equal to the positive masked
            assert loss.item() == pytest.approx(0.0, abs=1e-6)
            assert (extra.grad == 0).all()


def test_bpr_max_matches_a_slow_reference():
    import math

    from zoo.train.losses import bpr_max_loss

    generator = torch.Generator().manual_seed(5)
    pos = torch.randn(6, generator=generator, dtype=torch.float64)
    neg = torch.randn(6, 4, generator=generator, dtype=torch.float64)
    mask = torch.zeros(6, 4, dtype=torch.bool)
    mask[0, 1] = True
    mask[2, :] = True  # a row with no negative left contributes nothing
    total, rows = 0.0, 0
    for i in range(6):
        kept = [j for j in range(4) if not mask[i, j]]
        if not kept:
            continue
        exps = [math.exp(float(neg[i, j])) for j in kept]
        weights = [e / sum(exps) for e in exps]
        ranking = sum(
            w / (1 + math.exp(-(float(pos[i]) - float(neg[i, j]))))
            for w, j in zip(weights, kept, strict=True)
        )
        penalty = sum(w * float(neg[i, j]) ** 2 for w, j in zip(weights, kept, strict=True))
        total += -math.log(ranking) + 0.5 * penalty
        rows += 1
    assert float(bpr_max_loss(pos, neg, mask, reg=0.5)) == pytest.approx(total / rows, rel=1e-9)


@pytest.mark.parametrize("seed", range(5))
def test_duplicate_pairs_are_exactly_the_equal_off_diagonal_pairs(seed):
    from zoo.train.losses import duplicate_pairs

    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, 12 + 10 * seed, (40,), generator=generator)
    rows, cols = duplicate_pairs(ids)
    found = set(zip(rows.tolist(), cols.tolist(), strict=True))
    expected = {(i, j) for i in range(40) for j in range(40) if i != j and ids[i] == ids[j]}
    assert found == expected and len(found) == rows.numel()
    unique = torch.arange(7)
    assert duplicate_pairs(unique)[0].numel() == 0
