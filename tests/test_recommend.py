"""zoo.serving.Recommender and ``zoo recommend``: from a run folder to recommendations.

Tiny runs (one per model family) are trained once per module through ``zoo.pipeline.run`` with its
evaluation stages wrapped, so that the tests hold ``zoo run``'s own rankings of the test users.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from zoo.data.encoder import FIRST_CODE
from zoo.errors import ModelFileError, UsageError
from zoo.pipeline import RunConfig, run
from zoo.serving import NewUser, Recommender

DATA = {"users": 120, "items": 60, "categories": 4, "mean_length": 12, "seed": 3}
K = 10
MODELS = {  # family -> (model, retriever of the run's index, model params)
    "two_tower": ("dssm", "hnsw", {"embed_dim": 8, "dims": [16, 8]}),
    "sequential": ("sasrec", "exact", {"embed_dim": 8, "num_blocks": 1}),
    "multi_interest": ("mind", "exact", {"embed_dim": 8, "interest_num": 3}),
}


def _capturing(function, key, captured):
    def wrapped(*args, **kwargs):
        captured[key] = result = function(*args, **kwargs)
        return result

    return wrapped


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, tuple[Path, dict]]:
    """family -> (run folder, what zoo run computed: 'embedded', 'exact' and 'index' rankings)."""
    stages = importlib.import_module("zoo.pipeline.run")
    out = {}
    for family, (model, retriever, params) in MODELS.items():
        captured: dict = {}
        folder = tmp_path_factory.mktemp(family) / "run"
        config = RunConfig(
            model=model,
            retriever=retriever,
            dataset_options=dict(DATA),
            epochs=1,
            device="cpu",
            params=dict(params),
            ks=(K,),
            out=str(folder),
        )
        with pytest.MonkeyPatch.context() as patch:
            for key in ("embed", "evaluate_exact", "evaluate_index"):
                patch.setattr(stages, key, _capturing(getattr(stages, key), key, captured))
            run(config)
        out[family] = (folder, captured)
    return out


@pytest.fixture(scope="module")
def recommenders(runs) -> dict[str, Recommender]:
    return {family: Recommender.load(folder) for family, (folder, _) in runs.items()}


def _history(recommender: Recommender, user_row: int) -> list:
    """The original item ids of every event of a stored user (items out of the catalogue left out)."""
    users = recommender.users
    codes = users.items[users.indptr[user_row] : users.indptr[user_row + 1]]
    return list(recommender.encoder.vocabs["item_id"].decode(codes[codes >= FIRST_CODE]))


# -- the run folder ---------------------------------------------------------------------------------------
def test_run_folder_stores_users_and_items(runs, recommenders):
    folder, captured = runs["two_tower"]
    for name in ("users/users.json", "users/events.safetensors", "items/items.json"):
        assert (folder / name).is_file(), name
    header = json.loads((folder / "users" / "users.json").read_text())
    report = json.loads((folder / "run.json").read_text())
    assert header["users"] == report["data"]["users"] == captured["embed"].num_users
    assert header["events"] == report["protocol"]["after_filters"]["interactions"]
    items = json.loads((folder / "items" / "items.json").read_text())
    assert items["count"] == report["data"]["items"] and set(items["columns"]) == {
        "category",
        "brand",
        "price_band",
    }
    recommender = recommenders["two_tower"]
    metadata = recommender.item_metadata([items["ids"][3]])[0]
    assert metadata == {c: values[3] for c, values in items["columns"].items()}
    assert recommender.num_users == header["users"] and recommender.num_items == items["count"]


# -- as evaluated: zoo run's own ranking ------------------------------------------------------------------
@pytest.mark.parametrize("family", list(MODELS))
def test_as_evaluated_top_k_is_zoo_runs_ranking(runs, recommenders, family):
    _, captured = runs[family]
    recommender = recommenders[family]
    decode = recommender.encoder.vocabs["item_id"].decode
    users = recommender.user_ids
    exact = recommender.recommend(users, K, as_evaluated=True, exact=True)
    through_index = recommender.recommend(users, K, as_evaluated=True)
    for name, recs in (("evaluate_exact", exact), ("evaluate_index", through_index)):
        top = captured[name].top
        assert top.shape == (len(users), K)
        expected = [[v for v in decode(row) if v is not None] for row in top]
        assert [rec.items for rec in recs] == expected, name
    assert [rec.user for rec in exact] == users
    if family == "multi_interest":
        assert captured["embed"].user_vectors.dim() == 3  # the interests were merged, as zoo run does


def test_as_evaluated_excludes_only_the_items_before_the_test_event(recommenders):
    recommender = recommenders["two_tower"]
    row = 7
    user = recommender.user_ids[row]
    history = _history(recommender, row)
    before_test = set(history[:-1])
    (rec,) = recommender.recommend(user, recommender.num_items, as_evaluated=True, exact=True)
    assert not before_test & set(rec.items)
    assert len(rec.items) == recommender.num_items - len(before_test)


# -- full history: the production answer ---------------------------------------------------------------
@pytest.mark.parametrize("family", list(MODELS))
def test_full_history_never_recommends_a_seen_item(recommenders, family):
    recommender = recommenders[family]
    users = recommender.user_ids[:20]
    for exact in (True, False):
        recs = recommender.recommend(users, K, exact=exact)
        for row, rec in enumerate(recs):
            assert rec.user == users[row] and len(rec.items) == K
            assert not set(_history(recommender, row)) & set(rec.items)
            assert rec.scores == sorted(rec.scores, reverse=True)


def test_full_history_reads_every_event(recommenders):
    """The full answer reads the held-out events too: it equals a new user with the same id and the
    whole log as history, and differs from the as-evaluated vectors."""
    recommender = recommenders["sequential"]
    vocab = recommender.encoder.vocabs["item_id"]
    row = next(
        r
        for r in range(recommender.num_users)
        if (vocab.encode(_history(recommender, r)) >= FIRST_CODE).all()
        and len(_history(recommender, r)) == np.diff(recommender.users.indptr)[r]
    )
    user = recommender.user_ids[row]
    (known,) = recommender.recommend(user, K)
    new = recommender.recommend_new({"user_id": user}, history=_history(recommender, row), k=K)
    assert new.items == known.items and new.notes == []
    np.testing.assert_allclose(new.scores, known.scores, rtol=1e-5, atol=1e-6)
    full, evaluated = (recommender.user_vectors([user], as_evaluated=flag) for flag in (False, True))
    assert not np.allclose(full, evaluated)


def test_include_seen_ranks_the_whole_catalogue(recommenders):
    recommender = recommenders["two_tower"]
    user = recommender.user_ids[0]
    (everything,) = recommender.recommend(user, recommender.num_items, exclude_seen=False, exact=True)
    assert sorted(everything.items) == sorted(recommender.item_ids)
    seen = set(_history(recommender, 0))
    (unseen,) = recommender.recommend(user, K, exact=True)
    assert unseen.items == [i for i in everything.items if i not in seen][:K]


def test_batch_equals_one_user_at_a_time(recommenders):
    recommender = recommenders["multi_interest"]
    users = recommender.user_ids[3:9]
    batch = recommender.recommend(users, 5)
    for user, rec in zip(users, batch, strict=True):
        (single,) = recommender.recommend(user, 5)
        assert single.items == rec.items
        np.testing.assert_allclose(single.scores, rec.scores, rtol=1e-5, atol=1e-6)


def test_ids_given_as_text_are_the_same_users(recommenders):
    recommender = recommenders["two_tower"]
    user = recommender.user_ids[4]
    assert isinstance(user, int)
    (by_int,), (by_text,) = recommender.recommend(user, 5), recommender.recommend(str(user), 5)
    assert by_text.user == user and by_text.items == by_int.items


# -- known users' vectors, computed once ------------------------------------------------------------------
@pytest.mark.parametrize("family", list(MODELS))
def test_known_user_vectors_are_kept_and_equal_the_tower(runs, family):
    """With the cache (the default) the tower runs once over every known user; answers and vectors
    equal the tower's per request (cache off), and a new user still goes through the tower."""
    folder, _ = runs[family]
    cached, per_request = Recommender.load(folder), Recommender.load(folder, cache_users=False)
    users = cached.user_ids[5:17]
    for as_evaluated in (False, True):
        kept = cached.known_user_vectors(as_evaluated=as_evaluated)
        assert kept.shape[0] == cached.num_users
        assert cached.known_user_vectors(as_evaluated=as_evaluated) is kept  # computed once
        np.testing.assert_allclose(
            cached.user_vectors(users, as_evaluated=as_evaluated),
            per_request.user_vectors(users, as_evaluated=as_evaluated),
            rtol=1e-5,
            atol=1e-6,
        )
        for exact in (True, False):
            ours = cached.recommend(users, K, as_evaluated=as_evaluated, exact=exact)
            theirs = per_request.recommend(users, K, as_evaluated=as_evaluated, exact=exact)
            assert [r.items for r in ours] == [r.items for r in theirs]
            for a, b in zip(ours, theirs, strict=True):
                np.testing.assert_allclose(a.scores, b.scores, rtol=1e-5, atol=1e-6)

    def no_tower(*args, **kwargs):
        raise AssertionError("the user tower ran for a known user")

    cached.model.user_tower = no_tower  # known users now answer from the kept vectors only
    assert len(cached.recommend(users, K)[0].items) == K
    assert len(cached.recommend(users, K, as_evaluated=True, exclude_seen=False)[0].items) == K
    with pytest.raises(AssertionError, match="the user tower ran"):
        cached.recommend_new(history=cached.item_ids[:3], k=K)  # cold start: the tower, as before


# -- allow / exclude -------------------------------------------------------------------------------------
def test_allow_and_exclude_lists(recommenders):
    recommender = recommenders["two_tower"]
    user = recommender.user_ids[2]
    seen = set(_history(recommender, 2))
    candidates = [i for i in recommender.item_ids if i not in seen][:8]
    (rec,) = recommender.recommend(user, 5, allow=[*candidates, 10_000], exclude=candidates[:2])
    assert set(rec.items) <= set(candidates[2:]) and len(rec.items) == 5
    assert rec.notes == ["allow: ignored 1 item(s) not in the catalogue (10000)"]
    (plain,) = recommender.recommend(user, K, exclude=candidates[:3])
    assert not set(candidates[:3]) & set(plain.items) and len(plain.items) == K
    (few,) = recommender.recommend(user, K, allow=candidates[:3])
    assert sorted(few.items) == sorted(candidates[:3])  # fewer allowed items than k: all of them


# -- new users ----------------------------------------------------------------------------------------------
def test_new_user_from_features_and_history(recommenders):
    recommender = recommenders["two_tower"]
    history = recommender.item_ids[:4]
    rec = recommender.recommend_new(
        {"age_band": "never-seen", "gender": recommender.encoder.vocabs["user:gender"].values[0]},
        history=[*history, "no-such-item"],
        k=K,
    )
    assert rec.user is None and len(rec.items) == K and not set(history) & set(rec.items)
    assert rec.notes == [
        "feature 'age_band': value 'never-seen' was never seen in training (OOV, id 1)",
        "history: dropped 1 item(s) not in the catalogue ('no-such-item')",
    ]
    cold = recommender.recommend_new(k=3)  # nothing known at all: still an answer
    assert len(cold.items) == 3
    many = recommender.recommend_new_batch(
        [NewUser({}, history), {"features": {}, "history": history[:1]}], k=K, exclude_seen=False
    )
    assert many[0].items == recommender.recommend_new({}, history, k=K, exclude_seen=False).items
    assert len(many) == 2


@pytest.mark.parametrize("family", ["sequential", "multi_interest"])
def test_new_user_in_other_families(recommenders, family):
    recommender = recommenders[family]
    rec = recommender.recommend_new(history=recommender.item_ids[:5], k=K, exact=True)
    assert len(rec.items) == K and not set(recommender.item_ids[:5]) & set(rec.items)


# -- bad input ---------------------------------------------------------------------------------------------
def test_bad_input_is_a_one_line_usage_error(recommenders, tmp_path):
    recommender = recommenders["two_tower"]
    with pytest.raises(UsageError, match="'no-such-user' is not a known user"):
        recommender.recommend(["no-such-user"])
    for k in (0, recommender.num_items + 1, True, 2.5):
        with pytest.raises(UsageError, match="k must be an integer from 1 to"):
            recommender.recommend(recommender.user_ids[0], k)
    with pytest.raises(UsageError, match="unknown user feature 'shoe_size'.*user_id, age_band"):
        recommender.recommend_new({"shoe_size": 44})
    with pytest.raises(UsageError, match="no such run folder"):
        Recommender.load(tmp_path / "missing")
    (tmp_path / "model").mkdir()
    with pytest.raises(ModelFileError, match="no users/ folder"):
        Recommender.load(tmp_path)


def test_another_retriever_over_the_item_vectors(runs, recommenders):
    folder, _ = runs["two_tower"]
    exact = Recommender.load(folder, retriever="exact")
    users = exact.user_ids[:10]
    truth = recommenders["two_tower"].recommend(users, K, exact=True)
    assert [r.items for r in exact.recommend(users, K)] == [r.items for r in truth]


# -- the command ---------------------------------------------------------------------------------------------
def _invoke(*args: str):
    from zoo_cli.main import build_app

    return CliRunner().invoke(build_app(), list(args))


def test_zoo_recommend_json_and_table(runs, recommenders):
    folder, _ = runs["two_tower"]
    recommender = recommenders["two_tower"]
    a, b = (str(u) for u in recommender.user_ids[:2])
    result = _invoke("recommend", str(folder), "--user", a, "--user", b, "--k", "4", "--format", "json")
    assert result.exit_code == 0, result.output
    answer = json.loads(result.stdout)
    expected = recommender.recommend([a, b], 4)
    assert [r["user"] for r in answer] == [int(a), int(b)]
    assert [[i["item_id"] for i in r["items"]] for r in answer] == [r.items for r in expected]
    assert set(answer[0]["items"][0]["metadata"]) == {"category", "brand", "price_band"}
    table = _invoke("recommend", str(folder), "--user", a, "--k", "3", "--include-seen", "--exact")
    assert table.exit_code == 0 and "rank" in table.stdout and "category" in table.stdout
    assert f"user {a}" in table.stdout


@pytest.mark.parametrize(
    "args, message",
    [
        (("--user", "nobody"), "is not a known user"),
        (("--user", "1", "--k", "0"), "k must be an integer"),
        ((), "give at least one --user"),
    ],
)
def test_zoo_recommend_bad_input(runs, args, message):
    folder, _ = runs["two_tower"]
    result = _invoke("recommend", str(folder), *args)
    assert result.exit_code == 2 and message in result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1
    wrong = _invoke("recommend", str(folder), "--user", "1", "--format", "xml")
    assert wrong.exit_code == 2 and "xml" in wrong.output and "Traceback" not in wrong.output
