"""FeatureEncoder and Vocabulary against slow, literal references.

Codes: 0 = missing / padding, 1 = out of vocabulary, real values from 2 in sorted order. Side tables
are indexed by id code; a multi-valued column becomes a [ids, max_tokens] matrix, right-padded with 0.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zoo.data.encoder import FIRST_CODE, OOV, PAD, FeatureEncoder, Vocabulary
from zoo.errors import DataError, ModelFileError

SETTINGS = settings(max_examples=60, deadline=None)


# -- slow references -----------------------------------------------------------------------------------
def is_missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def slow_vocab(values) -> list:
    """Sorted distinct non-missing values."""
    distinct = []
    for v in values:
        if not is_missing(v) and v not in distinct:
            distinct.append(v)
    return sorted(distinct)


def slow_code(vocab: list, value) -> int:
    if is_missing(value):
        return 0
    for index, known in enumerate(vocab):
        if known == value:
            return 2 + index
    return 1


def slow_tokens(text, sep: str) -> list[str]:
    if is_missing(text):
        return []
    return [t for t in str(text).split(sep) if t != ""]


def slow_side_tables(train_ids, table: pd.DataFrame, key: str, multivalue: dict[str, str]):
    """(vocab per column, table per column) computed row by row."""
    id_vocab = slow_vocab(train_ids)
    size = len(id_vocab) + 2
    known_rows = [row for _, row in table.iterrows() if slow_code(id_vocab, row[key]) >= 2]
    vocabs, tables = {}, {}
    for col in table.columns:
        if col == key:
            continue
        if col in multivalue:
            tokens = [t for row in known_rows for t in slow_tokens(row[col], multivalue[col])]
            vocab = slow_vocab(tokens)
            width = max([1] + [len(slow_tokens(row[col], multivalue[col])) for row in known_rows])
            matrix = [[0] * width for _ in range(size)]
            for row in known_rows:
                code = slow_code(id_vocab, row[key])
                for j, token in enumerate(slow_tokens(row[col], multivalue[col])):
                    matrix[code][j] = slow_code(vocab, token)
            tables[col] = matrix
        else:
            vocab = slow_vocab([row[col] for row in known_rows])
            column = [0] * size
            for row in known_rows:
                column[slow_code(id_vocab, row[key])] = slow_code(vocab, row[col])
            tables[col] = column
        vocabs[col] = vocab
    return vocabs, tables


# -- Vocabulary ------------------------------------------------------------------------------------------
def test_constants():
    assert (PAD, OOV, FIRST_CODE) == (0, 1, 2)


def test_vocabulary_hand_made():
    vocab = Vocabulary.fit([30, 10, 20, 10, None])
    assert vocab.size == 5
    assert vocab.encode([10, 20, 30, 99, None]).tolist() == [2, 3, 4, 1, 0]
    assert vocab.decode(np.array([0, 1, 2, 3, 4])).tolist() == [None, None, 10, 20, 30]
    assert vocab.encode(np.array([], dtype=np.int64)).tolist() == []


def test_vocabulary_strings_hand_made():
    vocab = Vocabulary.fit(pd.Series(["b", "a", None, "c", "a"]))
    assert vocab.size == 5
    assert vocab.encode(["a", "b", "c", "zz", None]).tolist() == [2, 3, 4, 1, 0]
    # a number never matches a string id
    assert vocab.encode([1]).tolist() == [1]
    assert vocab.decode(np.array([[4, 0], [2, 1]])).tolist() == [["c", None], ["a", None]]


@SETTINGS
@given(
    train=st.lists(st.one_of(st.none(), st.integers(-5, 20)), max_size=30),
    query=st.lists(st.one_of(st.none(), st.integers(-8, 25)), max_size=30),
)
def test_vocabulary_ints_vs_reference(train, query):
    vocab = Vocabulary.fit(pd.Series(train, dtype=object))
    ref = slow_vocab(train)
    assert vocab.size == len(ref) + 2
    assert list(vocab.to_json()) == ref
    codes = vocab.encode(pd.Series(query, dtype=object))
    assert codes.dtype == np.int64
    assert codes.tolist() == [slow_code(ref, q) for q in query]
    decoded = vocab.decode(codes).tolist()
    for q, d in zip(query, decoded, strict=True):
        assert d == (q if slow_code(ref, q) >= 2 else None)


@SETTINGS
@given(
    train=st.lists(st.one_of(st.none(), st.text("abcxyz", min_size=1, max_size=3)), max_size=30),
    query=st.lists(st.one_of(st.none(), st.text("abcxyz", min_size=1, max_size=3)), max_size=30),
)
def test_vocabulary_strings_vs_reference(train, query):
    vocab = Vocabulary.fit(pd.Series(train, dtype=object))
    ref = slow_vocab(train)
    assert vocab.size == len(ref) + 2
    assert list(vocab.to_json()) == ref
    codes = vocab.encode(pd.Series(query, dtype=object))
    assert codes.tolist() == [slow_code(ref, q) for q in query]
    # decode(encode(x)) == x for every known value
    known = [q for q in query if slow_code(ref, q) >= 2]
    assert vocab.decode(vocab.encode(known)).tolist() == known
    # every code decodes to the value it stands for
    all_codes = np.arange(vocab.size)
    assert vocab.encode(vocab.decode(all_codes)[2:].tolist()).tolist() == list(range(2, vocab.size))


# -- FeatureEncoder ----------------------------------------------------------------------------------------
def make_tables(id_kind: str):
    wrap = (lambda i: f"u{i}") if id_kind == "str" else (lambda i: 100 + i)
    wrap_item = (lambda i: f"i{i}") if id_kind == "str" else (lambda i: 500 + i)
    users = pd.DataFrame(
        {
            "user_id": [wrap(i) for i in range(6)],
            "gender": ["F", "M", None, "F", "X", "M"],  # user 4 ("X") never trains
            "age": [18, 25, 25, 56, 1, 35],
        }
    )
    items = pd.DataFrame(
        {
            "item_id": [wrap_item(i) for i in range(7)],
            "cat": ["a", "b", "a", "c", "z", None, "b"],  # item 4 ("z") never trains
            "genres": [
                "Drama|Comedy",
                "Action",
                "",
                None,
                "Secret|Drama",
                "Comedy|Action|Drama",
                "Horror||Drama",
            ],
        }
    )
    train_users = np.array(
        [wrap(i) for i in (0, 1, 2, 3, 5, 0, 1, 7)], dtype=object
    )  # u7: not in the user table
    train_items = np.array([wrap_item(i) for i in (0, 1, 2, 3, 5, 6, 6, 9)], dtype=object)  # 9: no item row
    return users, items, train_users, train_items


@pytest.mark.parametrize("id_kind", ["int", "str"])
def test_feature_encoder_vs_reference(id_kind):
    users, items, train_users, train_items = make_tables(id_kind)
    if id_kind == "int":
        train_users, train_items = train_users.astype(np.int64), train_items.astype(np.int64)
    encoder = FeatureEncoder.fit(train_users, train_items, users, items, {"genres": "|"})
    assert encoder.user_columns == ["gender", "age"]
    assert encoder.item_columns == ["cat", "genres"]
    assert encoder.user_vocab == len(slow_vocab(list(train_users))) + 2
    assert encoder.item_vocab == len(slow_vocab(list(train_items))) + 2

    ref_user_ids = slow_vocab(list(train_users))
    all_users = list(users["user_id"]) + list(train_users)
    assert encoder.encode_users(pd.Series(all_users, dtype=object)).tolist() == [
        slow_code(ref_user_ids, u) for u in all_users
    ]

    user_vocabs, user_tables = slow_side_tables(list(train_users), users, "user_id", {})
    item_vocabs, item_tables = slow_side_tables(list(train_items), items, "item_id", {"genres": "|"})
    # the unseen user's and item's side values are not in any vocabulary
    assert (
        "X" not in user_vocabs["gender"]
        and "z" not in item_vocabs["cat"]
        and "Secret" not in item_vocabs["genres"]
    )
    assert item_vocabs["genres"] == ["Action", "Comedy", "Drama", "Horror"]
    for col, vocab in user_vocabs.items():
        assert list(encoder.vocabs[f"user:{col}"].to_json()) == vocab
    for col, vocab in item_vocabs.items():
        assert list(encoder.vocabs[f"item:{col}"].to_json()) == vocab
    assert encoder.side_vocab_sizes("user") == {c: len(v) + 2 for c, v in user_vocabs.items()}
    assert encoder.side_vocab_sizes("item") == {c: len(v) + 2 for c, v in item_vocabs.items()}

    got_users = encoder.user_table(users)
    got_items = encoder.item_table(items)
    assert set(got_users) == set(user_tables) and set(got_items) == set(item_tables)
    for col, ref in user_tables.items():
        assert got_users[col].dtype == np.int64
        assert got_users[col].tolist() == ref, col
    for col, ref in item_tables.items():
        assert got_items[col].tolist() == ref, col
    assert got_items["genres"].shape == (encoder.item_vocab, 3)
    # rows 0 (padding) and 1 (OOV) are all zeros
    assert not got_items["genres"][:2].any() and not got_users["gender"][:2].any()
    assert encoder.user_table(None) == {} and encoder.item_table(None) == {}


@SETTINGS
@given(
    rows=st.lists(
        st.tuples(
            st.integers(0, 9),
            st.lists(st.sampled_from(["a", "b", "c", "d", ""]), max_size=4),
            st.sampled_from(["x", "y", None]),
        ),
        min_size=1,
        max_size=10,
        unique_by=lambda r: r[0],
    ),
    train=st.lists(st.integers(0, 12), min_size=1, max_size=15),
    sep=st.sampled_from(["|", ", "]),
)
def test_item_table_random_vs_reference(rows, train, sep):
    items = pd.DataFrame(
        {
            "item_id": [r[0] for r in rows],
            "tags": [sep.join(r[1]) for r in rows],
            "kind": pd.Series([r[2] for r in rows], dtype=object),
        }
    )
    encoder = FeatureEncoder.fit(
        np.zeros(len(train), dtype=np.int64), np.array(train), None, items, {"tags": sep}
    )
    vocabs, tables = slow_side_tables(train, items, "item_id", {"tags": sep})
    got = encoder.item_table(items)
    for col in ("tags", "kind"):
        assert list(encoder.vocabs[f"item:{col}"].to_json()) == vocabs[col]
        assert got[col].tolist() == tables[col], col


def test_multivalue_column_must_hold_strings():
    items = pd.DataFrame({"item_id": [1, 2], "genres": [3, 4]})
    with pytest.raises(DataError, match="genres"):
        FeatureEncoder.fit(np.array([1]), np.array([1, 2]), None, items, {"genres": "|"})


# -- persistence -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("id_kind", ["int", "str"])
def test_save_load_round_trip(tmp_path: Path, id_kind):
    users, items, train_users, train_items = make_tables(id_kind)
    if id_kind == "int":
        train_users, train_items = train_users.astype(np.int64), train_items.astype(np.int64)
    encoder = FeatureEncoder.fit(train_users, train_items, users, items, {"genres": "|"})
    path = tmp_path / "sub" / "vocab.json"
    encoder.save(path)
    data = json.loads(path.read_text())  # plain JSON, no pickles
    assert set(data) == {"vocabs", "item_multivalue", "user_columns", "item_columns"}
    loaded = FeatureEncoder.load(path)
    assert loaded.to_dict() == encoder.to_dict()
    assert loaded.item_multivalue == {"genres": "|"}
    probe_users = pd.Series(list(users["user_id"]) + [None], dtype=object)
    probe_items = pd.Series(list(items["item_id"]) + [None], dtype=object)
    assert loaded.encode_users(probe_users).tolist() == encoder.encode_users(probe_users).tolist()
    assert loaded.encode_items(probe_items).tolist() == encoder.encode_items(probe_items).tolist()
    for name, vocab in encoder.vocabs.items():
        codes = np.arange(vocab.size)
        assert loaded.vocabs[name].decode(codes).tolist() == vocab.decode(codes).tolist(), name
    for a, b in (
        (loaded.user_table(users), encoder.user_table(users)),
        (loaded.item_table(items), encoder.item_table(items)),
    ):
        assert set(a) == set(b)
        for col in a:
            assert np.array_equal(a[col], b[col]), col


def test_round_trip_int_ids_stay_ints(tmp_path: Path):
    encoder = FeatureEncoder.fit(np.array([3, 1, 2]), np.array([7, 5]))
    encoder.save(tmp_path / "v.json")
    loaded = FeatureEncoder.load(tmp_path / "v.json")
    # a string "1" must not match the int id 1 after a round trip, and 1 must
    assert loaded.encode_users([1, "1", 3]).tolist() == [2, 1, 4]
    assert loaded.vocabs["item_id"].decode(np.array([2, 3])).tolist() == [5, 7]


def test_load_errors(tmp_path: Path):
    with pytest.raises(ModelFileError, match="not found"):
        FeatureEncoder.load(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ModelFileError, match="unreadable"):
        FeatureEncoder.load(bad)
    bad.write_text(json.dumps({"no_vocabs": 1}))
    with pytest.raises(ModelFileError, match="unreadable"):
        FeatureEncoder.load(bad)
