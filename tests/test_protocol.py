"""Protocol presets, replace(), the rating threshold and the iterated k-core filter.

The k-core filter is compared with a slow fixed-point reference (drop every user and item below its
threshold, recount, repeat until nothing changes); the result must also satisfy the core property.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zoo.data.interactions import Interactions
from zoo.data.protocol import PROTOCOLS, Protocol, get_protocol
from zoo.errors import DataError, UnknownNameError, UsageError

SETTINGS = settings(max_examples=80, deadline=None)


def make_interactions(rows, with_rating: bool = True) -> Interactions:
    """rows: (user, item, timestamp, rating) tuples."""
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp", "rating"])
    if not with_rating:
        frame = frame.drop(columns="rating")
    return Interactions(frame, name="fixture")


# -- slow references -------------------------------------------------------------------------------------
def slow_filter(rows, min_rating, user_core, item_core):
    """Indices (into rows) kept by the rating threshold followed by the iterated k-core."""
    kept = [i for i, r in enumerate(rows) if min_rating is None or r[3] >= min_rating]
    while True:
        users = Counter(rows[i][0] for i in kept)
        items = Counter(rows[i][1] for i in kept)
        survivors = []
        for i in kept:
            u, it = rows[i][0], rows[i][1]
            if user_core and users[u] < user_core:
                continue
            if item_core and items[it] < item_core:
                continue
            survivors.append(i)
        if survivors == kept:
            return kept
        kept = survivors


event_rows = st.lists(
    st.tuples(st.integers(0, 7), st.integers(0, 7), st.integers(0, 5), st.integers(1, 5)),
    min_size=1,
    max_size=60,
)


# -- presets -----------------------------------------------------------------------------------------------
def test_presets():
    assert set(PROTOCOLS) == {"loo", "deepmatch", "recbole-seq", "sasrec"}
    loo = get_protocol("loo")
    assert (
        loo.min_rating,
        loo.user_core,
        loo.item_core,
        loo.mask_seen,
        loo.history_len,
        loo.min_user_events,
    ) == (
        None,
        0,
        0,
        True,
        50,
        3,
    )
    deepmatch = get_protocol("deepmatch")
    assert deepmatch.mask_seen is False and deepmatch.min_rating is None and deepmatch.user_core == 0
    recbole = get_protocol("recbole-seq")
    assert (
        recbole.min_rating,
        recbole.user_core,
        recbole.item_core,
        recbole.mask_seen,
        recbole.history_len,
    ) == (
        3,
        10,
        10,
        False,
        50,
    )
    sasrec = get_protocol("sasrec")
    assert (sasrec.min_rating, sasrec.user_core, sasrec.item_core, sasrec.mask_seen, sasrec.history_len) == (
        None,
        5,
        5,
        True,
        200,  # SASRec+'s evaluation filters the user's earlier items
    )
    for name, protocol in PROTOCOLS.items():
        assert protocol.name == name
        assert protocol.split == "leave_one_out"
        assert protocol.description
        assert get_protocol(name) is protocol
    custom = Protocol(name="mine", history_len=7)
    assert get_protocol(custom) is custom


def test_unknown_protocol_exit_2_with_suggestion():
    with pytest.raises(UnknownNameError) as info:
        get_protocol("sasrek")
    err = info.value
    assert isinstance(err, UsageError) and err.exit_code == 2
    assert "sasrec" in err.suggestions
    assert "protocol" in str(err) and "sasrek" in str(err) and "\n" not in str(err)


@pytest.mark.parametrize(
    "kwargs, words",
    [
        ({"split": "random"}, "split"),
        ({"history_len": 0}, "history_len"),
        ({"min_user_events": 2}, "min_user_events"),
    ],
)
def test_invalid_protocol_fields(kwargs, words):
    with pytest.raises(UsageError, match=words) as info:
        Protocol(**kwargs)
    assert info.value.exit_code == 2


# -- replace ----------------------------------------------------------------------------------------------
def test_replace():
    loo = get_protocol("loo")
    assert loo.replace() is loo
    assert loo.replace(mask_seen=None, history_len=None) is loo  # None means "not given"
    assert loo.replace(mask_seen=True, history_len=50) is loo  # nothing changed
    changed = loo.replace(mask_seen=False, history_len=20)
    assert changed is not loo
    assert (changed.name, changed.mask_seen, changed.history_len) == ("loo+custom", False, 20)
    assert (changed.min_rating, changed.user_core, changed.min_user_events) == (None, 0, 3)
    assert loo.mask_seen is True and loo.name == "loo"  # the preset itself is untouched
    assert changed.card()["protocol"] == "loo+custom"
    with pytest.raises(UsageError):
        loo.replace(history_len=0)  # validated like a fresh protocol


def test_replace_name_and_repeat():
    loo = get_protocol("loo")
    named = loo.replace(name="mine", user_core=2)
    assert (named.name, named.user_core) == ("mine", 2)
    twice = loo.replace(history_len=10).replace(user_core=3)
    assert twice.name == "loo+custom" and (twice.history_len, twice.user_core) == (10, 3)


# -- rating threshold -------------------------------------------------------------------------------------
def test_rating_threshold_hand_made():
    rows = [(1, 10, 0, 5), (1, 11, 1, 2), (2, 10, 0, 3), (2, 12, 1, 2.5), (3, 13, 0, 4)]
    protocol = Protocol(min_rating=3)
    events, removed = protocol.filter_events(make_interactions(rows))
    assert list(events.index) == [0, 2, 4]
    assert removed == {"below_min_rating": 2}


def test_missing_rating_column_with_threshold():
    data = make_interactions([(1, 10, 0, 5), (1, 11, 1, 2)], with_rating=False)
    with pytest.raises(DataError, match="rating") as info:
        get_protocol("recbole-seq").filter_events(data)
    assert info.value.exit_code == 3
    # without a threshold the column is not needed
    events, removed = get_protocol("loo").filter_events(data)
    assert len(events) == 2 and removed == {}


def test_everything_filtered_is_a_data_error():
    data = make_interactions([(1, 10, 0, 1), (2, 11, 1, 2)])
    with pytest.raises(DataError, match="no interactions left"):
        Protocol(min_rating=4).filter_events(data)
    with pytest.raises(DataError, match="no interactions left"):
        Protocol(user_core=3).filter_events(data)


# -- k-core -------------------------------------------------------------------------------------------------
def test_k_core_needs_several_rounds():
    # user 3's only other item (20) dies with user 2, which only has one event; then user 3 drops below 2
    rows = [
        (1, 10, 0, 5),
        (1, 11, 1, 5),
        (1, 12, 2, 5),
        (4, 10, 0, 5),
        (4, 11, 1, 5),
        (4, 12, 2, 5),
        (2, 20, 0, 5),
        (3, 20, 0, 5),
        (3, 10, 1, 5),
    ]
    events, removed = Protocol(user_core=2, item_core=2).filter_events(make_interactions(rows))
    assert sorted(events.index) == slow_filter(rows, None, 2, 2) == [0, 1, 2, 3, 4, 5]
    assert removed["k_core_rounds"] >= 2


@SETTINGS
@given(
    rows=event_rows,
    min_rating=st.sampled_from([None, 2, 3, 4.5]),
    user_core=st.integers(0, 4),
    item_core=st.integers(0, 4),
)
def test_k_core_vs_fixed_point_reference(rows, min_rating, user_core, item_core):
    rows = list(dict.fromkeys(rows))  # Interactions drops exact repeats of an event (first one kept)
    protocol = Protocol(min_rating=min_rating, user_core=user_core, item_core=item_core)
    expected = slow_filter(rows, min_rating, user_core, item_core)
    data = make_interactions(rows)
    if not expected:
        with pytest.raises(DataError):
            protocol.filter_events(data)
        return
    events, removed = protocol.filter_events(data)
    assert list(events.index) == expected  # same rows, file order kept
    assert events.equals(data.events.loc[expected])
    if min_rating is not None:
        assert removed["below_min_rating"] == sum(r[3] < min_rating for r in rows)
    if user_core or item_core:
        assert removed["k_core_rounds"] >= 1
    else:
        assert "k_core_rounds" not in removed
    # the core property holds on the result
    users = Counter(events["user_id"])
    items = Counter(events["item_id"])
    assert all(c >= user_core for c in users.values())
    assert all(c >= item_core for c in items.values())
    if min_rating is not None:
        assert (events["rating"] >= min_rating).all()


def test_card_fields():
    card = get_protocol("recbole-seq").card()
    assert card["protocol"] == "recbole-seq"
    assert card["filters"] == {"min_rating": 3, "user_core": 10, "item_core": 10, "min_user_events": 3}
    assert card["history_len"] == 50
    assert "none" in card["masking"]
    assert "masked" not in card["masking"] and "removed" in get_protocol("loo").card()["masking"]
    for key in ("description", "split", "candidates", "oov_targets"):
        assert isinstance(card[key], str) and card[key]


def test_filter_does_not_mutate_input():
    rows = [(1, 10, 0, 5), (1, 11, 1, 1), (2, 10, 0, 5)]
    data = make_interactions(rows)
    before = data.events.copy()
    Protocol(min_rating=3, user_core=1, item_core=2).filter_events(data)
    pd.testing.assert_frame_equal(data.events, before)
    assert np.array_equal(data.events.index, np.arange(3))


def test_replace_unknown_setting():
    with pytest.raises(UsageError, match="history_length"):
        get_protocol("loo").replace(history_length=3)


# -- time precision -----------------------------------------------------------------------------------------
def test_time_precision_presets_and_validation():
    assert get_protocol("recbole-seq").time_precision == "float32"  # RecBole sorts a float32 tensor
    assert {p.time_precision for name, p in PROTOCOLS.items() if name != "recbole-seq"} == {"float64"}
    assert get_protocol("recbole-seq").card()["time_precision"] == "float32"
    assert "float32" in get_protocol("recbole-seq").card()["split"]
    with pytest.raises(UsageError, match="time_precision") as info:
        Protocol(time_precision="float16")
    assert info.value.exit_code == 2
    assert get_protocol("recbole-seq").replace(time_precision="float64").name == "recbole-seq+custom"


@pytest.mark.parametrize("precision", ["float64", "float32"])
def test_time_precision_orders_events_like_a_slow_reference(precision):
    """Each user's sequence equals a per-user sort by (timestamp rounded to ``precision``, file row)."""
    from zoo.data.match import MatchData

    rng = np.random.default_rng(7)
    users, items = 20, 40
    rows = []
    for user in range(users):
        # 2001-era timestamps: float32 steps of 64 s there, so events seconds apart may tie
        times = 997_454_400 + rng.integers(0, 900, size=items)
        rows += [(user, int(item), int(t), 5) for item, t in zip(rng.permutation(items), times, strict=True)]
    file_order = rng.permutation(len(rows))
    rows = [rows[i] for i in file_order]
    protocol = Protocol(name="t", mask_seen=False, time_precision=precision)
    data = MatchData.from_interactions(make_interactions(rows), protocol)

    key = np.float32 if precision == "float32" else np.float64
    expected = {}
    for row, (user, item, t, _) in enumerate(rows):
        expected.setdefault(user, []).append((float(key(t)), row, item))
    vocab = data.encoder.vocabs
    seq_users = vocab["user_id"].decode(data.seq_users.numpy())
    seq_items = vocab["item_id"].decode(data.seq_items.numpy())
    got: dict[int, list[int]] = {}
    for user, item in zip(seq_users, seq_items, strict=True):
        got.setdefault(int(user), []).append(int(item))
    assert got == {user: [item for _, _, item in sorted(events)] for user, events in expected.items()}


def test_float32_time_order_differs_from_exact_order():
    """The setting is used: events 20 s apart inside one 64-second float32 step keep file order."""
    from zoo.data.match import MatchData

    base = 997_454_400  # a multiple of 64, exactly representable in float32
    # file order: item 1 at base + 20 s, then item 2 at base + 1 s; float32 rounds both to base (64-s steps)
    rows = [(0, 1, base + 20, 5), (0, 2, base + 1, 5), (0, 3, base + 600, 5), (0, 4, base + 1200, 5)]
    rows += [
        (1, 3, base, 5),
        (1, 4, base + 600, 5),
        (1, 1, base + 1200, 5),
        (1, 2, base + 1800, 5),
    ]  # 3, 4 in training
    orders = {}
    for precision in ("float64", "float32"):
        data = MatchData.from_interactions(
            make_interactions(rows), Protocol(name="t", time_precision=precision)
        )
        items = data.encoder.vocabs["item_id"].decode(data.seq_items.numpy()[:4])
        orders[precision] = [int(i) for i in items]
    assert orders == {"float64": [2, 1, 3, 4], "float32": [1, 2, 3, 4]}
