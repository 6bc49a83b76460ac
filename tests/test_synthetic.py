"""The synthetic dataset: determinism, shape of the log, and that its structure is learnable."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from zoo.data.interactions import Interactions
from zoo.errors import UsageError
from zoo.evaluate import ranking_metrics
from zoo_plugins.synthetic import generator
from zoo_plugins.synthetic.generator import SyntheticConfig, generate, load, simulate

SMALL = {"users": 300, "items": 200, "categories": 10, "mean_length": 20}


@pytest.fixture(scope="module")
def default_sim() -> generator.Simulation:
    return simulate()


@pytest.fixture(scope="module")
def loo(default_sim: generator.Simulation) -> dict[str, np.ndarray]:
    """Leave-one-out split of the default dataset: each user's last event is the target."""
    events = default_sim.interactions.events
    users, items = events["user_id"].to_numpy(), events["item_id"].to_numpy()
    last = np.r_[users[1:] != users[:-1], True]
    n_users, n_items = int(users.max()) + 1, len(default_sim.interactions.items)
    target = np.full(n_users, -1)
    target[users[last]] = items[last]
    train_u, train_i = users[~last], items[~last]
    seen = np.zeros((n_users, n_items), dtype=bool)
    seen[train_u, train_i] = True
    return {"target": target, "train_u": train_u, "train_i": train_i, "seen": seen}


def hit_rates(scores: np.ndarray, loo: dict[str, np.ndarray]) -> dict[str, float]:
    """Rank every item per user (training items masked) and score with zoo.evaluate."""
    masked = np.where(loo["seen"], -np.inf, scores)
    ranked = np.argsort(-masked, axis=1, kind="stable")[:, :50]
    return ranking_metrics(ranked, loo["target"], ks=(10, 50))


# -- determinism and sizes ---------------------------------------------------------------------
def frames(data: Interactions) -> tuple[pd.DataFrame, pd.DataFrame | None, pd.DataFrame | None]:
    return data.events, data.users, data.items


def test_same_seed_same_frames_and_other_seed_differs() -> None:
    a, b = generate(seed=3, **SMALL), generate(seed=3, **SMALL)
    for left, right in zip(frames(a), frames(b), strict=True):
        pd.testing.assert_frame_equal(left, right)
    c = generate(seed=4, **SMALL)
    assert not a.events.equals(c.events)


def test_sizes_follow_the_options() -> None:
    data = generate(seed=1, **SMALL)
    assert len(data.users) == 300 and data.events["user_id"].nunique() == 300
    assert len(data.items) == 200 and data.events["item_id"].between(0, 199).all()
    assert data.items["category"].nunique() == 10
    assert 0.8 * 300 * 20 <= len(data.events) <= 1.2 * 300 * 20
    assert data.events.groupby("user_id").size().min() >= 2
    assert set(data.users.columns) == {"user_id", "age_band", "gender", "region"}
    assert set(data.items.columns) == {"item_id", "category", "brand", "price_band"}
    assert data.meta["params"]["users"] == 300 and data.meta["params"]["seed"] == 1


def test_default_size(default_sim: generator.Simulation) -> None:
    stats = default_sim.interactions.stats()
    assert 60_000 <= stats["interactions"] <= 100_000
    assert stats["users"] == 2000 and stats["items"] == 1000


def test_no_repeated_pairs_increasing_timestamps_and_ratings(default_sim: generator.Simulation) -> None:
    events = default_sim.interactions.events
    assert not events.duplicated(["user_id", "item_id"]).any()
    assert events["user_id"].is_monotonic_increasing
    same_user = events["user_id"].to_numpy()[1:] == events["user_id"].to_numpy()[:-1]
    assert (np.diff(events["timestamp"].to_numpy())[same_user] > 0).all()
    assert pd.api.types.is_integer_dtype(events["timestamp"]) and pd.api.types.is_integer_dtype(
        events["rating"]
    )
    assert events["rating"].between(1, 5).all()
    assert "rating" not in generate(ratings=False, **SMALL).events.columns


# -- options -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"items": 5, "categories": 10}, "categories"),
        ({"successor": 1.5}, "probability"),
        ({"users": 0}, "users"),
        ({"min_length": 50, "mean_length": 10}, "min_length"),
        ({"users": "many"}, "users"),
        ({"colour": "red"}, "no option"),
    ],
)
def test_bad_options_are_one_line_usage_errors(options: dict, match: str) -> None:
    with pytest.raises(UsageError, match=match) as info:
        simulate(**options)
    assert "\n" not in str(info.value)


def test_string_options_are_coerced_and_path_refused() -> None:
    data = load(users="50", items="60", categories="5", mean_length="8", ratings="false")
    assert data.events["user_id"].nunique() == 50 and "rating" not in data.events.columns
    with pytest.raises(UsageError, match="no files"):
        load(path="/tmp/x")


def test_registered_spec_matches_generator_defaults() -> None:
    from zoo_plugins.synthetic import zoo_register_datasets

    (spec,) = zoo_register_datasets()
    defaults = {f.name: f.default for f in dataclasses.fields(SyntheticConfig)}
    assert dict(spec.options) == defaults
    assert spec.default_protocol == "loo"
    assert spec.load() is load


def test_registry_loads_the_dataset() -> None:
    from importlib.metadata import entry_points

    from zoo.plugins import PluginManager
    from zoo.registry import Registry

    if "synthetic" not in {ep.name for ep in entry_points(group="recall_zoo")}:
        pytest.skip("recall-zoo is not installed here, so its entry points are not declared")
    data = Registry(PluginManager()).load_dataset(
        "synthetic", users=40, items=50, categories=5, mean_length=6
    )
    assert isinstance(data, Interactions) and data.stats()["users"] == 40


def test_plugin_module_stays_light() -> None:
    code = (
        "import sys, zoo_plugins.synthetic; "
        "heavy = [m for m in ('numpy', 'pandas', 'torch') if m in sys.modules]; "
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# -- structure ---------------------------------------------------------------------------------
def test_popularity_is_heavy_tailed(default_sim: generator.Simulation) -> None:
    counts = np.sort(default_sim.interactions.events["item_id"].value_counts().to_numpy())[::-1]
    top_share = counts[: len(default_sim.interactions.items) // 10].sum() / counts.sum()
    assert top_share >= 0.25  # uniform popularity would give 0.10


def test_successor_signal_is_far_above_chance(default_sim: generator.Simulation) -> None:
    events = default_sim.interactions.events
    users, items = events["user_id"].to_numpy(), events["item_id"].to_numpy()
    same = users[1:] == users[:-1]
    prev, nxt = items[:-1][same], items[1:][same]
    succ = default_sim.successor[prev]
    has = succ >= 0
    rate = float((succ[has] == nxt[has]).mean())
    chance = 1.0 / len(default_sim.interactions.items)
    assert rate >= 0.15 and rate >= 50 * chance
    # the current interest persists: consecutive items share a category far more than at random
    cat = default_sim.item_category
    shares = np.bincount(cat[items]) / len(items)
    assert (cat[prev] == cat[nxt]).mean() >= 3 * float((shares**2).sum())


def test_side_features_predict_interests(default_sim: generator.Simulation) -> None:
    """A user's favourite category is predictable from age and gender on held-out users."""
    data = default_sim.interactions
    events = data.events.assign(category=default_sim.item_category[data.events["item_id"].to_numpy()])
    fav = events.groupby("user_id")["category"].agg(lambda c: c.value_counts().index[0])
    users = data.users.set_index("user_id").assign(fav=fav)
    users["segment"] = users["age_band"] + "/" + users["gender"]
    fit, held = users.iloc[: len(users) // 2], users.iloc[len(users) // 2 :]
    global_top = set(fit["fav"].value_counts().index[:3])
    segment_top = fit.groupby("segment")["fav"].agg(lambda f: set(f.value_counts().index[:3]))
    by_segment = np.mean(
        [f in segment_top.get(s, global_top) for s, f in zip(held["segment"], held["fav"], strict=True)]
    )
    by_global = np.mean([f in global_top for f in held["fav"]])
    assert by_segment >= 1.2 * by_global


def test_ratings_follow_interest_match(default_sim: generator.Simulation) -> None:
    events = default_sim.interactions.events
    users, items = events["user_id"].to_numpy(), events["item_id"].to_numpy()
    inside = (default_sim.user_interests[users] == default_sim.item_category[items][:, None]).any(axis=1)
    rating = events["rating"].to_numpy()
    assert rating[inside].mean() >= rating[~inside].mean() + 1.0


def test_structure_beats_popularity_on_leave_one_out(
    default_sim: generator.Simulation, loo: dict[str, np.ndarray]
) -> None:
    """A non-neural oracle built from the training part only clearly beats global popularity."""
    items = default_sim.interactions.items
    n_users, n_items = loo["seen"].shape
    category = items["category"].str[1:].astype(int).to_numpy()
    train_u, train_i = loo["train_u"], loo["train_i"]
    popularity = np.bincount(train_i, minlength=n_items).astype(np.float64)
    baseline = hit_rates(np.broadcast_to(popularity, (n_users, n_items)), loo)

    # p(category | user) from the user's history times p(item | category) from everyone's.
    user_cat = np.zeros((n_users, category.max() + 1))
    np.add.at(user_cat, (train_u, category[train_i]), 1.0)
    user_cat /= user_cat.sum(axis=1, keepdims=True)
    in_category = popularity / np.bincount(category, weights=popularity)[category]
    taste = user_cat[:, category] * in_category
    # p(next | last item) from consecutive training pairs (co-occurrence, no ground truth used).
    same = train_u[1:] == train_u[:-1]
    transition = np.zeros((n_items, n_items))
    np.add.at(transition, (train_i[:-1][same], train_i[1:][same]), 1.0)
    transition /= np.maximum(transition.sum(axis=1, keepdims=True), 1.0)
    last_item = np.zeros(n_users, dtype=np.int64)
    ends = np.r_[train_u[1:] != train_u[:-1], True]
    last_item[train_u[ends]] = train_i[ends]  # the last training item of each user
    oracle = hit_rates(taste + 0.5 * transition[last_item], loo)

    assert baseline["users"] == oracle["users"] == n_users
    assert oracle["hitrate@10"] >= 1.5 * baseline["hitrate@10"]
    assert oracle["hitrate@50"] >= 1.5 * baseline["hitrate@50"]
    assert hit_rates(taste, loo)["hitrate@10"] >= 1.5 * baseline["hitrate@10"]  # even without the sequence
