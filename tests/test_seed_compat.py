"""The seed tutorial's data helpers against slow ports of the seed's own loops.

``generate_seq_feature_match`` is compared with a literal port of Torch-RecHub's loop semantics: per
user sorted by time (equal timestamps: file order), for i in 1..n-1 a sample
(user, item_i, hist=items[:i], histlen=i); the last one is the test row (label 1), the others train
rows; mode 0 adds ``neg_ratio`` label-0 rows per positive, mode 1 repeats the positive ``neg_ratio``
times with one ``neg_items`` id each, mode 2 keeps one row whose ``neg_items`` holds ``neg_ratio`` ids.
Training rows are shuffled, so rows are compared as multisets; negatives are random, so they are
checked by their properties and, for the distribution, by a chi-square-style bound with a fixed seed.
"""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from zoo.data.seed_compat import (
    MatchDataGenerator,
    df_to_dict,
    gen_model_input,
    generate_seq_feature_match,
    negative_probabilities,
    pad_sequences,
    sample_negatives,
)
from zoo.errors import DataError, UsageError

SETTINGS = settings(max_examples=50, deadline=None)


# -- slow references -------------------------------------------------------------------------------------
def slow_samples(data: pd.DataFrame, user_col, item_col, time_col, attrs, min_item):
    """(train, test): lists of dict samples, in the seed's loop order."""
    per_user: dict = {}
    for row in range(len(data)):
        per_user.setdefault(data[user_col].iloc[row], []).append((data[time_col].iloc[row], row))
    train, test = [], []
    for u in sorted(per_user):
        ordered = [row for _, row in sorted(per_user[u])]
        if len(ordered) < min_item:
            continue
        items = [data[item_col].iloc[r] for r in ordered]
        times = [data[time_col].iloc[r] for r in ordered]
        attr_lists = {a: [data[a].iloc[r] for r in ordered] for a in attrs}
        for i in range(1, len(items)):
            sample = {
                user_col: u,
                item_col: items[i],
                f"hist_{item_col}": tuple(items[:i]),
                f"histlen_{item_col}": i,
                **{f"hist_{a}": tuple(attr_lists[a][:i]) for a in attrs},
                time_col: times[i],
            }
            (test if i == len(items) - 1 else train).append(sample)
    return train, test


def as_plain(value):
    if isinstance(value, (np.ndarray, list, tuple)):
        return tuple(as_plain(v) for v in value)
    if isinstance(value, np.generic):
        return value.item()
    return value


def rows_of(frame: pd.DataFrame, columns) -> list[tuple]:
    """The frame's rows as tuples of plain Python values (arrays become tuples)."""
    values = [[as_plain(v) for v in frame[c].tolist()] for c in columns]
    return list(zip(*values, strict=True)) if values else [()] * len(frame)


def slow_pad(seqs, maxlen, padding, truncating, value):
    seqs = [list(s) for s in seqs]
    if maxlen is None:
        maxlen = max([len(s) for s in seqs] + [0])
    out = []
    for s in seqs:
        if maxlen == 0:
            s = []
        elif len(s) > maxlen:
            s = s[len(s) - maxlen :] if truncating == "pre" else s[:maxlen]
        pad = [value] * (maxlen - len(s))
        out.append(pad + s if padding == "pre" else s + pad)
    return out, maxlen


def make_log(rows, attrs: bool = True) -> pd.DataFrame:
    frame = pd.DataFrame(
        {
            "user_id": [r[0] for r in rows],
            "movie_id": [r[1] for r in rows],
            "timestamp": [r[2] for r in rows],
        }
    )
    if attrs:
        frame["cate_id"] = [r[3] for r in rows]
    return frame


log_rows = st.lists(
    st.tuples(st.integers(1, 6), st.integers(1, 8), st.integers(0, 3), st.integers(0, 4)),
    min_size=1,
    max_size=40,
)


# -- generate_seq_feature_match ---------------------------------------------------------------------------
@SETTINGS
@given(
    rows=log_rows,
    mode=st.sampled_from([0, 1, 2]),
    neg_ratio=st.integers(0, 3),
    min_item=st.integers(0, 5),
    sample_method=st.sampled_from([0, 1, 2, 3]),
    with_attr=st.booleans(),
)
def test_generate_vs_slow_port(rows, mode, neg_ratio, min_item, sample_method, with_attr):
    if mode in (1, 2) and neg_ratio == 0:
        neg_ratio = 1
    data = make_log(rows)
    attrs = ["cate_id"] if with_attr else []
    kwargs = dict(
        item_attribute_cols=attrs,
        sample_method=sample_method,
        mode=mode,
        neg_ratio=neg_ratio,
        min_item=min_item,
        seed=5,
    )
    catalogue = set(data["movie_id"])
    if neg_ratio > 0 and len(catalogue) < 2:
        with pytest.raises(DataError, match="two distinct items"):
            generate_seq_feature_match(data, "user_id", "movie_id", "timestamp", **kwargs)
        return
    train, test = generate_seq_feature_match(data, "user_id", "movie_id", "timestamp", **kwargs)
    ref_train, ref_test = slow_samples(data, "user_id", "movie_id", "timestamp", attrs, min_item)
    base = [
        "user_id",
        "movie_id",
        "hist_movie_id",
        "histlen_movie_id",
        *[f"hist_{a}" for a in attrs],
        "timestamp",
    ]
    last = "label" if mode == 0 else "neg_items"
    assert list(test.columns) == [*base, "label"]
    assert list(train.columns) == [*base, last]
    # test rows: exactly the reference's, label 1
    assert Counter(rows_of(test, base)) == Counter(tuple(s[c] for c in base) for s in ref_test)
    assert (test["label"] == 1).all()
    # train rows: the positives as a multiset; negatives by rule
    key_cols = [c for c in base if c != "movie_id"]  # (user, history, histlen, attr histories, time)
    positive_of = {tuple(s[c] for c in key_cols): s["movie_id"] for s in ref_train}
    assert len(positive_of) == len(ref_train)  # each sample has its own key
    got = rows_of(train, [*key_cols, "movie_id", last])
    if mode == 0:
        positives = Counter((row[:-2], row[-2]) for row in got if row[-1] == 1)
        assert positives == Counter((key, item) for key, item in positive_of.items())
        negatives = [row for row in got if row[-1] == 0]
        assert len(negatives) + len(ref_train) == len(train)
        per_key = Counter(row[:-2] for row in negatives)
        assert per_key == Counter({key: neg_ratio for key in positive_of} if neg_ratio else {})
        for row in negatives:
            assert row[-2] != positive_of[row[:-2]] and row[-2] in catalogue
    elif mode == 1:
        assert len(train) == neg_ratio * len(ref_train)
        assert Counter((row[:-2], row[-2]) for row in got) == Counter(
            {(k, i): neg_ratio for k, i in positive_of.items()}
        )
        for row in got:
            assert row[-1] != row[-2] and row[-1] in catalogue
    else:
        assert len(train) == len(ref_train)
        assert Counter((row[:-2], row[-2]) for row in got) == Counter(positive_of.items())
        for row in got:
            assert len(row[-1]) == neg_ratio
            assert all(n != row[-2] and n in catalogue for n in row[-1])


def test_hand_made_point_wise():
    data = make_log(
        [(1, 10, 3, 0), (2, 11, 1, 1), (1, 12, 1, 2), (1, 13, 1, 3), (2, 12, 0, 1), (3, 10, 0, 0)]
    )
    train, test = generate_seq_feature_match(
        data, "user_id", "movie_id", "timestamp", ["cate_id"], min_item=0, seed=0
    )
    # user 1 in time order (ties at t=1 in file order): 12, 13, 10; user 2: 12, 11; user 3: one event, no
    # sample
    cols = ["user_id", "movie_id", "hist_movie_id", "histlen_movie_id", "hist_cate_id", "timestamp", "label"]
    assert sorted(rows_of(train, cols)) == [(1, 13, (12,), 1, (2,), 1, 1)]
    assert sorted(rows_of(test, cols)) == [(1, 10, (12, 13), 2, (2, 3), 3, 1), (2, 11, (12,), 1, (1,), 1, 1)]
    # min_item drops user 2 (two items)
    train, test = generate_seq_feature_match(data, "user_id", "movie_id", "timestamp", min_item=3, seed=0)
    assert set(test["user_id"]) == {1}


@settings(max_examples=40, deadline=None)
@given(
    rows=st.lists(
        st.tuples(st.integers(1, 4), st.sampled_from([7, 9]), st.integers(0, 2), st.just(0)),
        min_size=2,
        max_size=25,
    ),
    mode=st.sampled_from([0, 1, 2]),
    neg_ratio=st.integers(1, 4),
    sample_method=st.sampled_from([0, 1, 2, 3]),
)
def test_negatives_never_equal_positive_tiny_catalogue(rows, mode, neg_ratio, sample_method):
    data = make_log(rows, attrs=False)
    if data["movie_id"].nunique() < 2:
        return
    train, _ = generate_seq_feature_match(
        data,
        "user_id",
        "movie_id",
        "timestamp",
        sample_method=sample_method,
        mode=mode,
        neg_ratio=neg_ratio,
        seed=1,
    )
    for r in range(len(train)):
        item = train["movie_id"].iloc[r]
        if mode == 0:
            if train["label"].iloc[r] == 0:
                assert item in (7, 9)
            continue
        negatives = np.atleast_1d(train["neg_items"].iloc[r])
        assert (negatives == 16 - item).all()  # the other item of {7, 9}


def frames_equal(a: pd.DataFrame, b: pd.DataFrame) -> bool:
    return list(a.columns) == list(b.columns) and rows_of(a, a.columns) == rows_of(b, b.columns)


def test_seeded_reproducible():
    rng = np.random.default_rng(0)
    data = make_log(
        list(
            zip(
                rng.integers(0, 30, 600),
                rng.integers(0, 50, 600),
                rng.integers(0, 100, 600),
                rng.integers(0, 5, 600),
                strict=True,
            )
        )
    )
    for mode in (0, 1, 2):
        args = ("user_id", "movie_id", "timestamp", ["cate_id"], 1, mode, 3)
        a_train, a_test = generate_seq_feature_match(data, *args, seed=42)
        b_train, b_test = generate_seq_feature_match(data, *args, seed=42)
        assert frames_equal(a_train, b_train) and frames_equal(a_test, b_test)
        c_train, c_test = generate_seq_feature_match(data, *args, seed=43)
        assert frames_equal(a_test, c_test)
        last = "label" if mode == 0 else "neg_items"
        key = ["user_id", "histlen_movie_id", "movie_id", last]
        # another seed: other negatives (compare the sorted rows so the shuffle does not matter)
        assert sorted(rows_of(a_train, key)) != sorted(rows_of(c_train, key))
        assert not frames_equal(a_train, c_train)


def test_argument_errors():
    data = make_log([(1, 1, 0, 0), (1, 2, 1, 0), (1, 3, 2, 0)])
    with pytest.raises(DataError, match="nope"):
        generate_seq_feature_match(data, "user_id", "nope", "timestamp")
    with pytest.raises(UsageError, match="mode"):
        generate_seq_feature_match(data, "user_id", "movie_id", "timestamp", mode=3)
    with pytest.raises(UsageError, match="neg_ratio"):
        generate_seq_feature_match(data, "user_id", "movie_id", "timestamp", mode=2, neg_ratio=0)
    with pytest.raises(UsageError, match="sample_method"):
        generate_seq_feature_match(data, "user_id", "movie_id", "timestamp", sample_method=7, neg_ratio=1)


# -- negative sampling distributions -------------------------------------------------------------------
def slow_probabilities(counts, method):
    n = len(counts)
    if method == 0:
        weights = [1.0] * n
    elif method == 1:
        weights = [c**0.75 for c in counts]
    elif method == 2:
        weights = [math.log(c + 1) + 1e-6 for c in counts]
    else:
        # RALM: rank 0 is the most popular item (ties: earlier item first)
        order = sorted(range(n), key=lambda i: (-counts[i], i))
        rank = {item: r for r, item in enumerate(order)}
        weights = [(math.log(rank[i] + 2) - math.log(rank[i] + 1)) / math.log(n + 1) for i in range(n)]
    total = sum(weights)
    return [w / total for w in weights]


@pytest.mark.parametrize("method", [0, 1, 2, 3])
def test_negative_probabilities_formulas(method):
    for counts in ([5, 1, 3, 3, 10], [1], [2, 2], list(range(1, 40))[::-1], [7, 1, 7, 100, 1, 2]):
        got = negative_probabilities(np.array(counts), method)
        assert got.shape == (len(counts),)
        np.testing.assert_allclose(got, slow_probabilities(counts, method), rtol=1e-12)
        assert got.sum() == pytest.approx(1.0)
    if method == 3:
        got = negative_probabilities(np.array([1, 100, 10]), 3)
        assert got[1] > got[2] > got[0]  # the most popular item is the most likely


def test_negative_probabilities_unknown_method():
    with pytest.raises(UsageError, match="sample_method"):
        negative_probabilities(np.array([1, 2]), 4)


def chi_square(observed, expected) -> float:
    return sum((o - e) ** 2 / e for o, e in zip(observed, expected, strict=True) if e > 0)


@pytest.mark.parametrize("method", [0, 1, 2, 3])
def test_sample_negatives_distribution(method):
    """Draws follow probs conditioned on "not the positive" (exact rejection, not a biased fix-up)."""
    counts = np.array([60, 25, 10, 5, 2, 1])
    items = np.array([10, 11, 12, 13, 14, 15])
    probs = negative_probabilities(counts, method)
    rng = np.random.default_rng(123)
    positives = items[rng.choice(len(items), size=3000, p=probs)]
    n = 5
    draws = sample_negatives(positives, items, probs, n, np.random.default_rng(7))
    assert draws.shape == (3000, n) and (draws != positives[:, None]).all()
    observed = [int((draws == item).sum()) for item in items]
    expected = [0.0] * len(items)
    for pos in positives:  # slow: row by row
        p_pos = probs[list(items).index(pos)]
        for j, item in enumerate(items):
            if item != pos:
                expected[j] += n * probs[j] / (1 - p_pos)
    # 5 degrees of freedom: P(chi2 > 30) < 2e-5; a biased sampler is off by thousands
    assert chi_square(observed, expected) < 30, (observed, expected)


def test_generated_negatives_follow_popularity():
    """generate_seq_feature_match draws from counts over the whole log (as the seed does)."""
    rng = np.random.default_rng(9)
    n_rows = 4000
    items_drawn = rng.choice(6, size=n_rows, p=[0.4, 0.25, 0.15, 0.1, 0.06, 0.04])
    data = make_log(
        list(
            zip(
                rng.integers(0, 200, n_rows),
                items_drawn,
                rng.integers(0, 1000, n_rows),
                np.zeros(n_rows, int),
                strict=True,
            )
        ),
        attrs=False,
    )
    train, _ = generate_seq_feature_match(
        data, "user_id", "movie_id", "timestamp", sample_method=1, mode=1, neg_ratio=2, seed=3
    )
    counts = Counter(data["movie_id"])
    catalogue = sorted(counts)
    probs = slow_probabilities([counts[i] for i in catalogue], 1)
    expected = [0.0] * len(catalogue)
    for pos in train["movie_id"]:
        p_pos = probs[catalogue.index(pos)]
        for j, item in enumerate(catalogue):
            if item != pos:
                expected[j] += probs[j] / (1 - p_pos)
    observed = [int((train["neg_items"] == item).sum()) for item in catalogue]
    assert chi_square(observed, expected) < 30, (observed, expected)


def test_sample_negatives_edge_cases():
    rng = np.random.default_rng(0)
    assert sample_negatives(np.array([1, 2]), np.array([1, 2]), np.array([0.5, 0.5]), 0, rng).shape == (2, 0)
    with pytest.raises(DataError, match="two distinct"):
        sample_negatives(np.array([1]), np.array([1]), np.array([1.0]), 2, rng)
    with pytest.raises(DataError, match="mass"):
        sample_negatives(np.array([1, 1]), np.array([1, 2]), np.array([1 - 1e-15, 1e-15]), 2, rng)


# -- pad_sequences ---------------------------------------------------------------------------------------
@SETTINGS
@given(
    seqs=st.lists(st.lists(st.integers(1, 99), max_size=8), max_size=8),
    maxlen=st.one_of(st.none(), st.integers(0, 6)),
    padding=st.sampled_from(["pre", "post"]),
    truncating=st.sampled_from(["pre", "post"]),
    value=st.sampled_from([0, -1]),
    container=st.sampled_from(["lists", "arrays", "object_array"]),
)
def test_pad_sequences_vs_reference(seqs, maxlen, padding, truncating, value, container):
    if container == "arrays":
        given_seqs = [np.array(s, dtype=np.int64) for s in seqs]
    elif container == "object_array":
        given_seqs = np.empty(len(seqs), dtype=object)
        given_seqs[:] = [np.array(s, dtype=np.int64) for s in seqs]
    else:
        given_seqs = seqs
    got = pad_sequences(given_seqs, maxlen=maxlen, padding=padding, truncating=truncating, value=value)
    expected, width = slow_pad(seqs, maxlen, padding, truncating, value)
    assert got.shape == (len(seqs), width)
    assert got.dtype == np.int64
    assert got.tolist() == expected


def test_pad_sequences_hand_made():
    seqs = [[1, 2, 3, 4], [5], []]
    assert pad_sequences(seqs, maxlen=3).tolist() == [[2, 3, 4], [0, 0, 5], [0, 0, 0]]
    assert pad_sequences(seqs, maxlen=3, padding="post", truncating="post").tolist() == [
        [1, 2, 3],
        [5, 0, 0],
        [0, 0, 0],
    ]
    assert pad_sequences(seqs).tolist() == [[1, 2, 3, 4], [0, 0, 0, 5], [0, 0, 0, 0]]
    assert pad_sequences([[], []]).shape == (2, 0)
    assert pad_sequences([]).shape == (0, 0)
    assert pad_sequences([], maxlen=4).shape == (0, 4)
    floats = pad_sequences([[0.5], [1.5, 2.5]], dtype="float32", value=-1.0)
    assert floats.dtype == np.float32 and floats.tolist() == [[-1.0, 0.5], [1.5, 2.5]]
    with pytest.raises(UsageError):
        pad_sequences(seqs, padding="middle")
    with pytest.raises(UsageError):
        pad_sequences(seqs, truncating="both")


# -- df_to_dict / gen_model_input ------------------------------------------------------------------------
def test_df_to_dict():
    frame = pd.DataFrame({"a": [1, 2], "b": ["x", "y"]})
    frame["lists"] = pd.Series([[1, 2], [3, 4]], dtype=object)
    frame["ragged"] = pd.Series([[1], [2, 3]], dtype=object)
    out = df_to_dict(frame)
    assert set(out) == {"a", "b", "lists", "ragged"}
    assert out["a"].tolist() == [1, 2] and list(out["b"]) == ["x", "y"]
    assert out["lists"].shape == (2, 2) and out["lists"].tolist() == [[1, 2], [3, 4]]
    assert out["ragged"].dtype == object and [list(v) for v in out["ragged"]] == [[1], [2, 3]]
    assert df_to_dict(frame.iloc[:0])["a"].shape == (0,)


def profiles():
    users = pd.DataFrame(
        {"user_id": [1, 2, 3, 4, 5, 6], "gender": [1, 2, 1, 2, 1, 2], "age": [3, 4, 5, 6, 7, 8]}
    )
    items = pd.DataFrame({"movie_id": list(range(1, 9)), "cate": [9, 8, 7, 6, 5, 4, 3, 2]})
    return users, items


@pytest.mark.parametrize("mode", [0, 1, 2])
def test_gen_model_input(mode):
    rng = np.random.default_rng(mode)
    data = make_log(
        list(
            zip(
                rng.integers(1, 7, 120),
                rng.integers(1, 9, 120),
                rng.integers(0, 30, 120),
                rng.integers(0, 3, 120),
                strict=True,
            )
        )
    )
    train, test = generate_seq_feature_match(
        data, "user_id", "movie_id", "timestamp", ["cate_id"], mode=mode, neg_ratio=2, seed=0
    )
    users, items = profiles()
    gender = dict(zip(users["user_id"], users["gender"], strict=True))
    cate = dict(zip(items["movie_id"], items["cate"], strict=True))
    for frame in (train, test):
        for maxlen, padding, truncating in ((4, "pre", "pre"), (6, "post", "post")):
            x = gen_model_input(
                frame,
                users,
                "user_id",
                items,
                "movie_id",
                seq_max_len=maxlen,
                padding=padding,
                truncating=truncating,
            )
            n = len(frame)
            assert set(x) == set(frame.columns) | {"gender", "age", "cate"}
            for col, values in x.items():
                assert len(values) == n, col
            for r in range(n):  # rows keep their order; profiles joined row by row
                u, m = frame["user_id"].iloc[r], frame["movie_id"].iloc[r]
                assert x["user_id"][r] == u and x["movie_id"][r] == m
                assert x["gender"][r] == gender[u] and x["cate"][r] == cate[m]
                assert x["histlen_movie_id"][r] == min(frame["histlen_movie_id"].iloc[r], maxlen)
                for hist in ("hist_movie_id", "hist_cate_id"):
                    expected, _ = slow_pad([list(frame[hist].iloc[r])], maxlen, padding, truncating, 0)
                    assert x[hist][r].tolist() == expected[0], hist
            assert x["hist_movie_id"].shape == (n, maxlen)
            if "neg_items" in frame.columns:
                negs = x["neg_items"]
                if mode == 2:
                    assert negs.shape == (n, 2)
                assert [as_plain(v) for v in negs] == [as_plain(v) for v in frame["neg_items"]]
            if "label" in frame.columns:
                assert x["label"].tolist() == frame["label"].tolist()


def test_gen_model_input_missing_key():
    users, items = profiles()
    frame = pd.DataFrame({"user_id": [1], "movie_id": [1]})
    with pytest.raises(DataError, match="user_profile"):
        gen_model_input(frame, users.rename(columns={"user_id": "uid"}), "user_id", items, "movie_id", 3)
    with pytest.raises(DataError, match="item_profile"):
        gen_model_input(frame, users, "user_id", items.drop(columns="movie_id"), "movie_id", 3)


# -- MatchDataGenerator ----------------------------------------------------------------------------------
def collect(loader) -> list[dict[str, torch.Tensor]]:
    return list(loader)


def test_match_data_generator_batches():
    n = 103
    rng = np.random.default_rng(0)
    x = {
        "row": np.arange(n),
        "user_id": rng.integers(1, 50, n),
        "hist_movie_id": rng.integers(0, 9, (n, 4)),
        "score": rng.random(n),
        "title": np.array([f"t{i}" for i in range(n)], dtype=object),  # text: left out
        "label": rng.integers(0, 2, n),
    }
    items = {"movie_id": np.arange(1, 12), "cate": np.arange(11) % 3}
    test_users = {"user_id": np.arange(1, 30), "hist_movie_id": rng.integers(0, 9, (29, 4))}
    train_dl, test_dl, item_dl = MatchDataGenerator(x=x, y=x["label"], seed=4).generate_dataloader(
        test_users, items, batch_size=16
    )
    assert len(train_dl) == math.ceil(n / 16) and len(test_dl) == 2 and len(item_dl) == 1

    passes = [collect(train_dl) for _ in range(3)]
    for batches in passes:
        rows = torch.cat([b["row"] for b in batches]).tolist()
        assert sorted(rows) == list(range(n))  # every row once
        assert all(b["row"].shape[0] == 16 for b in batches[:-1])
        for b in batches:
            assert "title" not in b
            idx = b["row"].numpy()
            assert b["label"].dtype == torch.float32
            assert b["label"].tolist() == x["label"][idx].astype(float).tolist()  # labels aligned with rows
            assert b["user_id"].tolist() == x["user_id"][idx].tolist()
            assert b["hist_movie_id"].tolist() == x["hist_movie_id"][idx].tolist()
            assert b["score"].dtype == torch.float32
            np.testing.assert_allclose(b["score"].numpy(), x["score"][idx], rtol=1e-6)
    orders = [torch.cat([b["row"] for b in batches]).tolist() for batches in passes]
    assert orders[0] != list(range(n)) and orders[0] != orders[1] != orders[2]
    # same seed replays, other seed differs
    again, _, _ = MatchDataGenerator(x=x, y=x["label"], seed=4).generate_dataloader(
        test_users, items, batch_size=16
    )
    assert [torch.cat([b["row"] for b in collect(again)]).tolist() for _ in range(3)] == orders
    other, _, _ = MatchDataGenerator(x=x, y=x["label"], seed=5).generate_dataloader(
        test_users, items, batch_size=16
    )
    assert torch.cat([b["row"] for b in collect(other)]).tolist() != orders[0]
    # test and item loaders: in order, not shuffled, no labels
    test_batches = collect(test_dl)
    assert torch.cat([b["user_id"] for b in test_batches]).tolist() == list(range(1, 30))
    assert all("label" not in b for b in test_batches)
    item_batches = collect(item_dl)
    assert (
        item_batches[0]["movie_id"].tolist() == list(range(1, 12))
        and item_batches[0]["cate"].tolist() == (np.arange(11) % 3).tolist()
    )


def test_match_data_generator_from_seed_pipeline():
    rng = np.random.default_rng(1)
    data = make_log(
        list(
            zip(
                rng.integers(1, 7, 200),
                rng.integers(1, 9, 200),
                rng.integers(0, 60, 200),
                rng.integers(0, 3, 200),
                strict=True,
            )
        )
    )
    train, test = generate_seq_feature_match(
        data, "user_id", "movie_id", "timestamp", ["cate_id"], mode=0, neg_ratio=3, seed=0
    )
    users, items = profiles()
    x_train = gen_model_input(train, users, "user_id", items, "movie_id", seq_max_len=5)
    x_test = gen_model_input(test, users, "user_id", items, "movie_id", seq_max_len=5)
    train_dl, test_dl, item_dl = MatchDataGenerator(
        x=x_train, y=x_train["label"], seed=0
    ).generate_dataloader(x_test, df_to_dict(items), batch_size=32)
    batches = collect(train_dl)
    assert sum(b["label"].shape[0] for b in batches) == len(train)
    assert sum(b["label"].sum().item() for b in batches) == (train["label"] == 1).sum()
    for b in batches:
        assert b["hist_movie_id"].shape[1] == 5
    assert sum(b["user_id"].shape[0] for b in collect(test_dl)) == len(test)


def test_loader_errors():
    with pytest.raises(DataError, match="labels"):
        MatchDataGenerator(x={"a": np.arange(4)}, y=np.arange(3)).generate_dataloader(
            {"a": np.arange(2)}, {"b": np.arange(2)}, 2
        )
    with pytest.raises(UsageError, match="batch_size"):
        MatchDataGenerator(x={"a": np.arange(4)}).generate_dataloader(
            {"a": np.arange(2)}, {"b": np.arange(2)}, 0
        )
    with pytest.raises(DataError, match="different lengths"):
        MatchDataGenerator(x={"a": np.arange(4), "b": np.arange(3)}).generate_dataloader(
            {"a": np.arange(2)}, {"b": np.arange(2)}, 2
        )
    with pytest.raises(DataError, match="numeric"):
        MatchDataGenerator(x={"t": np.array(["x", "y"])}).generate_dataloader(
            {"a": np.arange(2)}, {"b": np.arange(2)}, 2
        )


def test_loader_does_not_alias_read_only_input():
    """pandas hands out read-only arrays (copy-on-write); batches must not write through to them."""
    frame = pd.DataFrame({"a": np.arange(6), "b": np.linspace(0, 1, 6)})
    x = df_to_dict(frame)
    readonly = np.arange(6)
    readonly.setflags(write=False)
    x["c"] = readonly
    _, test_dl, _ = MatchDataGenerator(x=x).generate_dataloader(x, x, batch_size=4)
    for batch in test_dl:
        for tensor in batch.values():
            tensor += 1
    assert frame["a"].tolist() == list(range(6)) and readonly.tolist() == list(range(6))
    assert frame["b"].tolist() == pytest.approx(np.linspace(0, 1, 6).tolist())
