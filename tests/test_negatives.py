"""Offline negative samplers: ranges, frequencies vs count**alpha, log_q vs the probabilities, errors.

Frequencies are checked with a chi-square bound on a fixed seed (deterministic, generous enough that
a correct sampler never fails, tight enough that a wrong exponent or an off-by-one range does).
"""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from zoo.data.negatives import NegativeSampler, PopularitySampler, UniformSampler, make_sampler
from zoo.errors import UsageError


def chi_square(observed: list[int], expected: list[float]) -> float:
    total = 0.0
    for o, e in zip(observed, expected, strict=True):
        if e == 0:
            assert o == 0, "drew an item with probability 0"
            continue
        total += (o - e) ** 2 / e
    return total


def histogram(ids: torch.Tensor, size: int) -> list[int]:
    counts = [0] * size
    for i in ids.reshape(-1).tolist():  # slow on purpose: the reference does not trust bincount
        counts[i] += 1
    return counts


# -- uniform ----------------------------------------------------------------------------------------------
@settings(max_examples=40, deadline=None)
@given(
    low=st.integers(0, 5),
    span=st.integers(1, 30),
    rows=st.integers(0, 20),
    n=st.integers(0, 10),
    seed=st.integers(0, 99),
)
def test_uniform_range_and_shape(low, span, rows, n, seed):
    sampler = UniformSampler(low, low + span)
    pos = torch.full((rows,), low, dtype=torch.long)
    ids = sampler.sample(pos, n, torch.Generator().manual_seed(seed))
    assert ids.shape == (rows, n) and ids.dtype == torch.int64
    assert ((ids >= low) & (ids < low + span)).all()
    again = sampler.sample(pos, n, torch.Generator().manual_seed(seed))
    assert torch.equal(ids, again)
    shared = sampler.sample_shared(n, torch.Generator().manual_seed(seed))
    assert shared.shape == (n,) and ((shared >= low) & (shared < low + span)).all()


def test_uniform_frequencies_and_log_q():
    sampler = UniformSampler(2, 12)
    ids = sampler.sample(torch.zeros(5000, dtype=torch.long), 4, torch.Generator().manual_seed(0))
    observed = histogram(ids, 12)
    expected = [0.0, 0.0] + [20000 / 10] * 10
    # 9 degrees of freedom: P(chi2 > 40) ~ 7e-6
    assert chi_square(observed, expected) < 40
    log_q = sampler.log_q(torch.tensor([[2, 5], [11, 7]]))
    assert log_q.shape == (2, 2)
    assert torch.allclose(log_q, torch.full((2, 2), -math.log(10)))


def test_uniform_errors():
    with pytest.raises(UsageError, match="range"):
        UniformSampler(5, 5)
    with pytest.raises(UsageError):
        UniformSampler(6, 2)


# -- popularity ---------------------------------------------------------------------------------------------
def slow_popularity(counts: list[float], alpha: float) -> list[float]:
    weights = [c**alpha if c > 0 else 0.0 for c in counts]
    total = sum(weights)
    return [w / total for w in weights]


@pytest.mark.parametrize("alpha", [0.0, 0.5, 0.75, 1.0])
def test_popularity_frequencies(alpha):
    counts = [0, 0, 50, 20, 5, 1, 0, 10, 2]
    sampler = PopularitySampler(torch.tensor(counts), alpha=alpha)
    probs = slow_popularity(counts, alpha)
    assert sampler.probs.tolist() == pytest.approx(probs, rel=1e-5)
    draws = sampler.sample(torch.zeros(6000, dtype=torch.long), 5, torch.Generator().manual_seed(1))
    assert draws.shape == (6000, 5)
    observed = histogram(draws, len(counts))
    expected = [p * draws.numel() for p in probs]
    # 5 degrees of freedom (6 items with a count): P(chi2 > 35) ~ 1.5e-6
    assert chi_square(observed, expected) < 35, (observed, expected)
    for item in (0, 1, 6):  # no count: never proposed
        assert observed[item] == 0


def test_popularity_wrong_exponent_is_detectable():
    """The chi-square bound above separates alpha 0.75 from alpha 1.0 (the test can fail)."""
    counts = [0, 0, 50, 20, 5, 1, 0, 10, 2]
    draws = PopularitySampler(torch.tensor(counts), alpha=0.75).sample(
        torch.zeros(6000, dtype=torch.long), 5, torch.Generator().manual_seed(1)
    )
    observed = histogram(draws, len(counts))
    wrong = [p * draws.numel() for p in slow_popularity(counts, 1.0)]
    assert chi_square(observed, wrong) > 100


@settings(max_examples=40, deadline=None)
@given(
    counts=st.lists(st.integers(0, 1000), min_size=1, max_size=20).filter(lambda c: sum(c) > 0),
    alpha=st.sampled_from([0.0, 0.25, 0.75, 1.0, 1.5]),
)
def test_popularity_log_q_matches_probabilities(counts, alpha):
    sampler = PopularitySampler(torch.tensor(counts), alpha=alpha)
    probs = slow_popularity(counts, alpha)
    ids = torch.arange(len(counts))
    log_q = sampler.log_q(ids)
    assert log_q.shape == (len(counts),)
    for i, p in enumerate(probs):
        if p > 0:
            assert log_q[i].item() == pytest.approx(math.log(p), rel=1e-4, abs=1e-5)
        else:
            assert log_q[i].item() < -50  # "never proposed": a hugely negative log probability
    assert sum(math.exp(v) for v in log_q.tolist()) == pytest.approx(1.0, rel=1e-4)
    batch = torch.tensor([[0, len(counts) - 1], [len(counts) - 1, 0]])
    assert torch.equal(sampler.log_q(batch), log_q[batch])
    # samples only ever come from items with a count
    draws = sampler.sample(torch.zeros(50, dtype=torch.long), 3, torch.Generator().manual_seed(0))
    assert all(counts[i] > 0 for i in draws.reshape(-1).tolist())


def test_popularity_errors_and_device():
    with pytest.raises(UsageError, match="positive count"):
        PopularitySampler(torch.zeros(5))
    with pytest.raises(UsageError):
        PopularitySampler(torch.tensor([-1.0, 0.0]))
    sampler = PopularitySampler(torch.tensor([1.0, 3.0]))
    assert sampler.to("cpu") is sampler
    shared = sampler.sample_shared(7, torch.Generator().manual_seed(0))
    assert shared.shape == (7,)


# -- make_sampler -------------------------------------------------------------------------------------------
def test_make_sampler():
    uniform = make_sampler("uniform", 10, None)
    assert isinstance(uniform, UniformSampler) and (uniform.low, uniform.high) == (1, 10)
    assert (make_sampler("uniform", 10, None, low=2).low) == 2
    popularity = make_sampler("popularity", 4, torch.tensor([0, 0, 3, 1]), alpha=1.0)
    assert isinstance(popularity, PopularitySampler)
    assert popularity.probs.tolist() == pytest.approx([0, 0, 0.75, 0.25])
    with pytest.raises(UsageError, match="counts"):
        make_sampler("popularity", 4, None)
    with pytest.raises(UsageError, match="uniform or popularity"):
        make_sampler("zipf", 4, None)
    with pytest.raises(UsageError):
        make_sampler("uniform", 1, None)  # empty range 1..0


def test_base_class_is_abstract():
    base = NegativeSampler()
    with pytest.raises(NotImplementedError):
        base.sample(torch.zeros(1, dtype=torch.long), 1)
    with pytest.raises(NotImplementedError):
        base.log_q(torch.zeros(1, dtype=torch.long))
