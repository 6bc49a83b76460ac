"""MatchData.from_interactions against a slow per-user reference.

The reference walks the log row by row: it groups events per user in file order, sorts each user's
events by (timestamp, file row) so that equal timestamps keep file order, drops users below
``min_user_events``, and calls the last event test, the second last valid and the rest train. Codes,
histories, side features, ranking tasks and counts are then rebuilt with plain loops and compared
with MatchData's vectorised tensors, on random logs (hypothesis) and on hand-made ones.
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

from zoo.data.interactions import Interactions
from zoo.data.match import MatchData, TrainBatches
from zoo.data.protocol import Protocol, get_protocol
from zoo.errors import DataError, UsageError

SETTINGS = settings(max_examples=40, deadline=None)

GENDERS = ["F", "M", "F", None, "M", "X", "F", "M"]
AGES = [1, 18, 25, 25, 35, 45, 50, 56]
CATS = ["a", "b", "a", "c", None, "b", "d", "a", "e"]
GENRES = [
    "Drama|Comedy",
    "Action",
    "",
    None,
    "Comedy|Action|Drama",
    "Horror",
    "Drama",
    "Noir|Drama|War|Comedy",
    "Action",
]


def uid(i, as_str):
    return f"u{i}" if as_str else int(i)


def iid(i, as_str):
    return f"i{i}" if as_str else int(100 + i)


def make_data(rows, as_str=False, with_tables=True) -> Interactions:
    """rows: (user, item, timestamp[, rating]) with small ints; users 0..7 and items 0..8 have side rows."""
    frame = pd.DataFrame(
        {
            "user_id": pd.Series([uid(r[0], as_str) for r in rows], dtype=object if as_str else np.int64),
            "item_id": pd.Series([iid(r[1], as_str) for r in rows], dtype=object if as_str else np.int64),
            "timestamp": np.array([r[2] for r in rows], dtype=np.int64),
        }
    )
    if rows and len(rows[0]) > 3:
        frame["rating"] = [float(r[3]) for r in rows]
    users = items = None
    if with_tables:
        users = pd.DataFrame({"user_id": [uid(i, as_str) for i in range(8)], "gender": GENDERS, "age": AGES})
        items = pd.DataFrame({"item_id": [iid(i, as_str) for i in range(9)], "cat": CATS, "genres": GENRES})
    return Interactions(
        frame,
        users=users,
        items=items,
        name="fixture",
        item_multivalue={"genres": "|"} if with_tables else {},
    )


# -- slow references -------------------------------------------------------------------------------------
def missing(v) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def sorted_distinct(values) -> list:
    out = []
    for v in values:
        if not missing(v) and v not in out:
            out.append(v)
    return sorted(out)


def code_of(vocab, value) -> int:
    if missing(value):
        return 0
    return vocab.index(value) + 2 if value in vocab else 1


def tokens_of(text) -> list[str]:
    return [] if missing(text) else [t for t in str(text).split("|") if t]


class Reference:
    """Everything MatchData should contain, computed one user and one event at a time."""

    def __init__(self, data: Interactions, min_user_events: int = 3, rows_kept=None):
        events = data.events
        per_user: dict = {}
        for row in range(len(events)):
            if rows_kept is not None and row not in rows_kept:
                continue
            u, i, t = events["user_id"].iloc[row], events["item_id"].iloc[row], events["timestamp"].iloc[row]
            per_user.setdefault(u, []).append((t, row, i))
        self.sequences = {}
        self.dropped = 0
        for u in sorted(per_user):
            ordered = sorted(per_user[u], key=lambda e: (e[0], e[1]))  # time, then file order
            if len(ordered) < min_user_events:
                self.dropped += 1
                continue
            self.sequences[u] = [e[2] for e in ordered]
        train_items = [i for seq in self.sequences.values() for i in seq[:-2]]
        self.user_vocab = sorted(self.sequences)
        self.item_vocab = sorted(set(train_items))
        self.codes = {u: [code_of(self.item_vocab, i) for i in seq] for u, seq in self.sequences.items()}
        self.item_counts = Counter(code_of(self.item_vocab, i) for i in train_items)
        # side tables, fit on the training users and items only
        self.user_side: dict = {}
        self.item_side: dict = {}
        self.side_vocab: dict = {}
        if data.users is not None:
            known = [r for _, r in data.users.iterrows() if r["user_id"] in self.user_vocab]
            for col in ("gender", "age"):
                vocab = sorted_distinct([r[col] for r in known])
                self.side_vocab[col] = vocab
                self.user_side[col] = {r["user_id"]: code_of(vocab, r[col]) for r in known}
        if data.items is not None:
            known = [r for _, r in data.items.iterrows() if r["item_id"] in self.item_vocab]
            vocab = sorted_distinct([r["cat"] for r in known])
            self.side_vocab["cat"] = vocab
            self.item_side["cat"] = {r["item_id"]: code_of(vocab, r["cat"]) for r in known}
            vocab = sorted_distinct([t for r in known for t in tokens_of(r["genres"])])
            self.side_vocab["genres"] = vocab
            self.genre_width = max([1] + [len(tokens_of(r["genres"])) for r in known])
            self.item_side["genres"] = {
                r["item_id"]: [code_of(vocab, t) for t in tokens_of(r["genres"])] for r in known
            }

    def user_code(self, u) -> int:
        return self.user_vocab.index(u) + 2

    def raw_user(self, code: int):
        return self.user_vocab[code - 2]

    def raw_item(self, code: int):
        return self.item_vocab[code - 2] if code >= 2 else None

    def history(self, u, k: int, length: int) -> list[int]:
        before = self.codes[u][:k][-length:]
        return [0] * (length - len(before)) + before

    def user_features(self, u) -> dict:
        return {col: table.get(u, 0) for col, table in self.user_side.items()}

    def item_features(self, item_code: int) -> dict:
        raw = self.raw_item(item_code)
        out = {"cat": self.item_side["cat"].get(raw, 0)}
        genres = self.item_side["genres"].get(raw, [])
        out["genres"] = genres + [0] * (self.genre_width - len(genres))
        return out


def locate(data: MatchData, ref: Reference) -> dict:
    """user raw id -> list of positions, checking that each user's events are contiguous."""
    seq_users = data.seq_users.tolist()
    out = {}
    for code in sorted(set(seq_users)):
        positions = [p for p, c in enumerate(seq_users) if c == code]
        assert positions == list(range(positions[0], positions[-1] + 1)), "a user's events are not contiguous"
        out[ref.raw_user(code)] = positions
    return out


def check_against_reference(
    data: MatchData, interactions: Interactions, ref: Reference, protocol: Protocol
) -> None:
    # vocabularies
    assert data.schema.user_vocab == len(ref.user_vocab) + 2
    assert data.schema.item_vocab == len(ref.item_vocab) + 2
    assert data.catalogue.tolist() == list(range(2, len(ref.item_vocab) + 2))
    assert data.schema.history_len == protocol.history_len
    # layout: one contiguous, time-ordered run per kept user
    where = locate(data, ref)
    assert set(where) == set(ref.sequences)
    assert data.seq_items.shape[0] == sum(len(s) for s in ref.sequences.values())
    for u, positions in where.items():
        assert [data.seq_items[p].item() for p in positions] == ref.codes[u]
        assert all(data.seq_start[p].item() == positions[0] for p in positions)
        assert all(data.seq_users[p].item() == ref.user_code(u) for p in positions)
    # roles
    assert sorted(data.valid_positions.tolist()) == sorted(pos[-2] for pos in where.values())
    assert sorted(data.test_positions.tolist()) == sorted(pos[-1] for pos in where.values())
    expected_train = sorted(p for pos in where.values() for p in pos[1:-2])
    assert data.train_positions.tolist() == expected_train
    # item counts = training counts
    counts = data.item_counts.tolist()
    assert len(counts) == data.schema.item_vocab
    assert counts == [ref.item_counts.get(c, 0) if c >= 2 else 0 for c in range(data.schema.item_vocab)]
    # histories, for every event and several lengths
    every = torch.arange(data.seq_items.shape[0])
    for length in (None, 1, 4):
        got = data.histories(every, length).tolist()
        for u, positions in where.items():
            for k, p in enumerate(positions):
                assert got[p] == ref.history(u, k, length or protocol.history_len), (u, k, length)
    # batches: user features, history, target item features, in any order of positions
    order = torch.randperm(every.shape[0], generator=torch.Generator().manual_seed(0))
    batch = data.batch(every[order])
    user_of = {p: u for u, pos in where.items() for p in pos}
    index_of = {p: k for pos in where.values() for k, p in enumerate(pos)}
    expected_keys = {"user_id", "hist_item_id", "item_id"} | set(ref.user_side) | set(ref.item_side)
    assert set(batch) == expected_keys
    for row, p in enumerate(order.tolist()):
        u = user_of[p]
        assert batch["user_id"][row].item() == ref.user_code(u)
        for col, value in ref.user_features(u).items():
            assert batch[col][row].item() == value, col
        assert batch["hist_item_id"][row].tolist() == ref.history(u, index_of[p], protocol.history_len)
        item = ref.codes[u][index_of[p]]
        assert batch["item_id"][row].item() == item
        if ref.item_side:
            features = ref.item_features(item)
            assert batch["cat"][row].item() == features["cat"]
            assert batch["genres"][row].tolist() == features["genres"]
    for tensor in batch.values():
        assert tensor.dtype == torch.int64 and tensor.shape[0] == every.shape[0]
    # ranking tasks
    for split, offset in (("valid", 2), ("test", 1)):
        task = data.ranking_task(split)
        assert task.name == split and task.num_users == len(where)
        assert task.catalogue.tolist() == data.catalogue.tolist()
        rows_users = [ref.raw_user(c) for c in task.users["user_id"].tolist()]
        assert sorted(rows_users) == sorted(where)
        for row, u in enumerate(rows_users):
            n = len(ref.codes[u])
            target = ref.codes[u][n - offset]
            assert task.targets[row] == (target if target >= 2 else -1)
            assert task.users["item_id"][row].item() == target
            assert task.users["hist_item_id"][row].tolist() == ref.history(
                u, n - offset, protocol.history_len
            )
        if not protocol.mask_seen:
            assert task.exclude is None
            continue
        indptr, indices = (t.tolist() for t in task.exclude)
        assert len(indptr) == task.num_users + 1 and indptr[0] == 0
        for row, u in enumerate(rows_users):
            n = len(ref.codes[u])
            earlier = ref.codes[u][: n - offset]
            excluded = indices[indptr[row] : indptr[row + 1]]
            assert set(excluded) == {c - 2 for c in earlier if c >= 2}, (split, u)
            assert all(0 <= e < len(ref.item_vocab) for e in excluded)
    # the card
    card = data.card
    kept_events = sum(len(s) for s in ref.sequences.values())
    assert card["protocol"] == protocol.name and card["dataset"] == "fixture"
    assert card["before_filters"] == interactions.stats()
    assert card["users_dropped_below_min_events"] == ref.dropped
    assert card["after_filters"] == {
        "interactions": kept_events,
        "users": len(ref.sequences),
        "items": len({i for s in ref.sequences.values() for i in s}),
    }
    assert card["train_interactions"] == sum(len(s) - 2 for s in ref.sequences.values())
    assert card["train_samples"] == sum(len(s) - 3 for s in ref.sequences.values())
    assert card["catalogue_items"] == len(ref.item_vocab)
    assert card["test_targets_not_in_training"] == sum(c[-1] < 2 for c in ref.codes.values())
    assert card["valid_targets_not_in_training"] == sum(c[-2] < 2 for c in ref.codes.values())
    assert card["history_len"] == protocol.history_len
    assert data.summary() == {
        "users": len(ref.sequences),
        "items": len(ref.item_vocab),
        "train_samples": card["train_samples"],
    }


log_rows = st.lists(
    st.tuples(st.integers(0, 7), st.integers(0, 9), st.integers(0, 3)),  # few timestamps: many ties
    min_size=1,
    max_size=45,
)


@SETTINGS
@given(
    rows=log_rows,
    as_str=st.booleans(),
    mask_seen=st.booleans(),
    history_len=st.integers(1, 6),
    min_user_events=st.integers(3, 5),
    with_tables=st.booleans(),
)
def test_from_interactions_vs_reference(rows, as_str, mask_seen, history_len, min_user_events, with_tables):
    interactions = make_data(rows, as_str=as_str, with_tables=with_tables)
    protocol = Protocol(
        name="t", mask_seen=mask_seen, history_len=history_len, min_user_events=min_user_events
    )
    ref = Reference(interactions, min_user_events)
    if not ref.sequences:
        with pytest.raises(DataError, match="min|events"):
            MatchData.from_interactions(interactions, protocol)
        return
    kept_items = {i for s in ref.sequences.values() for i in s}
    if len(ref.sequences) < 2 or len(kept_items) < 2:  # too small to train and rank on: refused
        with pytest.raises(DataError, match="left after the protocol's filters"):
            MatchData.from_interactions(interactions, protocol)
        return
    data = MatchData.from_interactions(interactions, protocol)
    check_against_reference(data, interactions, ref, protocol)
    if with_tables:
        assert data.schema.user_side == {c: len(ref.side_vocab[c]) + 2 for c in ("gender", "age")}
        assert data.schema.item_side == {c: len(ref.side_vocab[c]) + 2 for c in ("cat", "genres")}
        assert data.schema.item_multivalue == ("genres",)
        assert tuple(data.item_table["genres"].shape) == (data.schema.item_vocab, ref.genre_width)
    else:
        assert data.schema.user_side == {} and data.schema.item_side == {}


def test_hand_made_log():
    # user 0: ties at t=5 keep file order (items 3 then 1); user 1 has only two events (dropped);
    # item 8 is only user 2's test item, so it is out of vocabulary; user 5's "X" gender never trains.
    rows = [
        (0, 2, 1),
        (2, 4, 0),
        (0, 3, 5),
        (1, 1, 0),
        (0, 1, 5),
        (2, 5, 1),
        (0, 0, 9),
        (2, 6, 2),
        (1, 2, 1),
        (2, 8, 3),
        (0, 6, 7),
        (5, 0, 9),
    ]
    interactions = make_data(rows)
    protocol = Protocol(name="t", history_len=3)
    data = MatchData.from_interactions(interactions, protocol)
    ref = Reference(interactions)
    assert ref.sequences == {0: [102, 103, 101, 106, 100], 2: [104, 105, 106, 108]}
    check_against_reference(data, interactions, ref, protocol)
    # spelled out: training items are user 0's [102, 103, 101] and user 2's [104, 105]
    assert data.encoder.vocabs["item_id"].to_json() == [101, 102, 103, 104, 105]
    test = data.ranking_task("test")
    by_user = {ref.raw_user(c): r for r, c in enumerate(test.users["user_id"].tolist())}
    # user 0 tests on item 100 (never trained -> OOV), user 2 on 108 (OOV)
    assert test.targets[by_user[0]] == -1 and test.targets[by_user[2]] == -1
    assert data.card["test_targets_not_in_training"] == 2
    # user 0's history before the test event: [103, 101, 106] -> [4, 2, 1] (106 is only valid: OOV)
    assert test.users["hist_item_id"][by_user[0]].tolist() == [4, 2, 1]
    # user 2's earlier items 104, 105, 106 -> 104 and 105 are catalogue rows 3 and 4; 106 is OOV
    indptr, indices = test.exclude
    r = by_user[2]
    assert sorted(indices[indptr[r] : indptr[r + 1]].tolist()) == [3, 4]
    assert data.card["users_dropped_below_min_events"] == 2  # users 1 and 5
    assert "X" not in data.encoder.vocabs["user:gender"].to_json()


def test_item_only_in_test_is_oov():
    rows = [(0, 1, 0), (0, 2, 1), (0, 3, 2), (0, 4, 3), (1, 1, 0), (1, 2, 1), (1, 7, 2)]
    data = MatchData.from_interactions(make_data(rows), get_protocol("loo"))
    assert data.encoder.encode_items([107, 103, 104, 101]).tolist() == [1, 1, 1, 2]
    test = data.ranking_task("test")
    assert sorted(test.targets.tolist()) == [-1, -1]
    # the valid item 103 of user 0 is OOV too, and its side features are not looked up
    assert data.item_features(torch.tensor([1]))["cat"].tolist() == [0]
    assert "c" not in data.encoder.vocabs["item:cat"].to_json()  # item 3's category only appears in valid


def test_rating_threshold_and_k_core_are_applied_first():
    rows = [
        (0, 1, 0, 5),
        (0, 2, 1, 1),
        (0, 3, 2, 5),
        (0, 4, 3, 5),
        (1, 1, 0, 4),
        (1, 3, 1, 4),
        (1, 4, 2, 4),
        (2, 1, 0, 1),
        (2, 2, 1, 1),
        (2, 5, 2, 5),
    ]
    interactions = make_data(rows)
    protocol = Protocol(name="t", min_rating=3, item_core=2)
    data = MatchData.from_interactions(interactions, protocol)
    # rating >= 3 keeps rows 0, 2, 3, 4, 5, 6, 9; item 5 has one event -> 2-core drops it; user 2 is left
    # empty
    kept = {0, 2, 3, 4, 5, 6}
    ref = Reference(interactions, rows_kept=kept)
    check_against_reference(data, interactions, ref, protocol)
    assert data.card["removed"]["below_min_rating"] == 3
    assert data.card["after_filters"]["interactions"] == 6


def test_missing_rating_column_with_threshold():
    interactions = make_data([(0, 1, 0), (0, 2, 1), (0, 3, 2)])
    with pytest.raises(DataError, match="rating"):
        MatchData.from_interactions(interactions, get_protocol("recbole-seq"))


def test_user_side_column_named_like_item_side_is_renamed():
    rows = [(0, 1, 0), (0, 2, 1), (0, 3, 2), (1, 2, 0), (1, 1, 1), (1, 3, 2)]
    interactions = make_data(rows)
    users = interactions.users.rename(columns={"gender": "cat"})
    interactions = Interactions(
        interactions.events, users=users, items=interactions.items, item_multivalue={"genres": "|"}
    )
    data = MatchData.from_interactions(interactions, get_protocol("loo"))
    assert set(data.schema.user_side) == {"user_cat", "age"}
    assert set(data.schema.item_side) == {"cat", "genres"}
    batch = data.batch(data.train_positions)
    vocab = data.encoder.vocabs["user:cat"].to_json()
    assert vocab == ["F", "M"]
    for row in range(batch["user_id"].shape[0]):
        raw = data.encoder.vocabs["user_id"].decode(batch["user_id"][row : row + 1].numpy())[0]
        assert batch["user_cat"][row].item() == vocab.index(GENDERS[raw]) + 2
        item_raw = data.encoder.vocabs["item_id"].decode(batch["item_id"][row : row + 1].numpy())[0]
        assert (
            batch["cat"][row].item()
            == data.encoder.vocabs["item:cat"].to_json().index(CATS[item_raw - 100]) + 2
        )


# -- TrainBatches -------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def medium() -> MatchData:
    rng = np.random.default_rng(3)
    n = 1500
    rows = list(
        zip(
            rng.integers(0, 8, n).tolist(),
            rng.integers(0, 9, n).tolist(),
            rng.integers(0, 50, n).tolist(),
            strict=True,
        )
    )
    return MatchData.from_interactions(make_data(rows), Protocol(name="t", history_len=5))


def recorded_passes(data: MatchData, batches: TrainBatches, passes: int) -> list[list[list[int]]]:
    """The positions of every batch of every pass, recorded by wrapping ``data.batch``."""
    seen: list[list[int]] = []
    original = data.batch

    def spy(positions):
        seen.append(positions.tolist())
        out = original(positions)
        reference = original(positions.clone())
        assert all(torch.equal(out[k], reference[k]) for k in out)
        return out

    data.batch = spy  # instance attribute: shadows the method for this object only
    try:
        out = []
        for _ in range(passes):
            seen.clear()
            for batch in batches:
                assert batch["user_id"].shape[0] == len(seen[-1])
            out.append([list(b) for b in seen])
        return out
    finally:
        del data.batch


def test_train_batches_cover_every_position_once(medium: MatchData):
    train = sorted(medium.train_positions.tolist())
    assert len(train) > 500
    batches = medium.train_batches(64, seed=11)
    assert isinstance(batches, TrainBatches)
    assert len(batches) == math.ceil(len(train) / 64)
    passes = recorded_passes(medium, batches, 3)
    for one_pass in passes:
        assert len(one_pass) == len(batches)
        assert all(len(b) == 64 for b in one_pass[:-1]) and 1 <= len(one_pass[-1]) <= 64
        flat = [p for b in one_pass for p in b]
        assert sorted(flat) == train  # every training position exactly once
    flats = [[p for b in one_pass for p in b] for one_pass in passes]
    assert flats[0] != flats[1] != flats[2] and flats[0] != flats[2]  # reshuffled every pass
    assert flats[0] != train  # actually shuffled
    # the same seed replays the same passes; another seed does not
    again = recorded_passes(medium, medium.train_batches(64, seed=11), 3)
    assert again == passes
    other = recorded_passes(medium, medium.train_batches(64, seed=12), 1)
    assert other[0] != passes[0]
    # no shuffling: positions in order
    plain = recorded_passes(medium, medium.train_batches(100, shuffle=False), 2)
    assert (
        [p for b in plain[0] for p in b]
        == medium.train_positions.tolist()
        == [p for b in plain[1] for p in b]
    )


def test_train_batches_bad_size(medium: MatchData):
    with pytest.raises(ValueError):
        medium.train_batches(0)


def test_ranking_task_bad_split(medium: MatchData):
    with pytest.raises(ValueError, match="valid"):
        medium.ranking_task("train")


def test_no_user_long_enough():
    with pytest.raises(DataError, match="3 or more events"):
        MatchData.from_interactions(make_data([(0, 1, 0), (0, 2, 1), (1, 1, 0)]), get_protocol("loo"))


@pytest.mark.parametrize("stride", [None, 1, 3, 7])
def test_sequence_windows_train_every_target_once_with_context(medium: MatchData, stride):
    length = 8
    starts, valid = medium.seq_start[medium.valid_positions], medium.valid_positions
    expected = sorted(
        (int(medium.seq_users[p]), int(medium.seq_items[p - 1]), int(medium.seq_items[p]))
        for s, v in zip(starts.tolist(), valid.tolist(), strict=True)
        for p in range(s + 1, v)
    )
    ends = medium.sequence_windows(length, stride)
    batch = medium.sequence_batch(ends, length, stride)
    inputs, targets = batch[medium.schema.history_name], batch["next_item_id"]
    got = sorted(
        (int(batch[medium.schema.user_id][row]), int(inputs[row, col]), int(targets[row, col]))
        for row, col in (targets > 0).nonzero().tolist()
    )
    assert got == expected  # every training target exactly once, each after its true previous item
    context = length - (stride or length)
    trained_columns = (targets > 0).nonzero()[:, 1]
    assert bool((trained_columns >= context).all())
    # every trained target sees at least `context` earlier items, unless its user's history starts later
    for row, col in (targets > 0).nonzero().tolist():
        assert int((inputs[row, : col + 1] > 0).sum()) >= context + 1 or int(inputs[row, 0]) == 0


def test_sequence_window_stride_is_checked(medium: MatchData):
    with pytest.raises(UsageError, match="window_stride"):
        medium.sequence_windows(8, 9)
    with pytest.raises(UsageError, match="window_stride"):
        medium.sequence_windows(8, 0)


def test_window_stride_is_refused_for_sample_models(medium: MatchData):
    class SampleModel:
        training_data = "samples"

    with pytest.raises(UsageError, match="window_stride applies to models trained on sequence windows"):
        medium.training_batches(SampleModel(), 32, window_stride=4)
    assert len(medium.training_batches(SampleModel(), 32)) > 0
