"""A synthetic interaction log with learnable structure (the default dataset of ``zoo run``).

The world, built from one seed:

* **Items** belong to categories of varying size. Within a category popularity follows a power law
  (Zipf, exponent ``zipf``). Items are grouped into *series* (mean ``series_length`` items, inside one
  category): each item but the last of its series has a *successor* (a sequel). A series shares a
  ``brand``; ``price_band`` (1-5) depends on the category and the brand.
* **Users** have demographics (``age_band``, ``gender``, ``region``) that shift which categories they
  like (strength ``side_signal``), so the side features carry signal for cold users. Each user has a
  few interests (``1 + Poisson(interests - 1)`` categories, Dirichlet weights) and a price level set by
  their region; inside a category they prefer popular items near their price level.
* **Sequences** are simulated one time step at a time, vectorised across users. At each step a user
  continues the series of the previous item with probability ``successor``; otherwise they keep the
  current interest with probability ``stay`` (or re-draw it from their weights) and pick an item of
  that category, or with probability ``explore`` any item by global popularity. A user never sees the
  same item twice (a repeat is re-drawn a few times, then the step is dropped). Timestamps increase
  per user; ``rating`` (1-5) rises with how well the item matches the user's interests and price.

So there is signal for every model family: popularity, user-category affinity (collaborative),
demographics (two-tower side features), the current interest and series successors (sequential).
:func:`simulate` also returns the ground truth (successors, interests) for tests and diagnostics.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from zoo.data.interactions import Interactions
from zoo.errors import UsageError

AGE_BANDS = ("18-24", "25-34", "35-44", "45-54", "55+")
AGE_SHARES = (0.16, 0.30, 0.25, 0.17, 0.12)
GENDERS = ("f", "m")
PRICE_LEVELS = 5
RETRIES = 6
"""Draws per step while the item is one the user has seen: from the current interest, then from
another interest, last by global popularity; a step still on a repeat after that is dropped."""


@dataclass(frozen=True)
class SyntheticConfig:
    """Generator parameters (see the module docstring for what each one shapes)."""

    users: int = 2000
    items: int = 1000
    categories: int = 20
    mean_length: int = 40
    interests: int = 3
    seed: int = 0
    min_length: int = 5
    zipf: float = 1.0
    series_length: float = 4.0
    successor: float = 0.35
    stay: float = 0.8
    explore: float = 0.05
    brands: int = 4
    regions: int = 6
    side_signal: float = 1.5
    price_sensitivity: float = 0.6
    ratings: bool = True
    start_time: int = 1_600_000_000

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            object.__setattr__(self, f.name, _coerce(f.name, getattr(self, f.name), f.type))
        self.validate()

    def validate(self) -> None:
        """Raise a one-line :class:`UsageError` for any value the generator cannot use."""
        at_least = {
            "users": 1,
            "items": 1,
            "categories": 1,
            "mean_length": 1,
            "interests": 1,
            "min_length": 1,
            "brands": 1,
            "regions": 1,
            "start_time": 0,
            "seed": 0,
        }
        for name, low in at_least.items():
            if getattr(self, name) < low:
                raise UsageError(f"synthetic: {name} must be >= {low}, got {getattr(self, name)}")
        if self.items < self.categories:
            raise UsageError(
                f"synthetic: items ({self.items}) must be >= categories ({self.categories}); every category"
                " needs an item"
            )
        if self.min_length > self.mean_length:
            raise UsageError(
                f"synthetic: min_length ({self.min_length}) must be <= mean_length ({self.mean_length});"
                " lower min_length"
            )
        for name in ("successor", "stay", "explore"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise UsageError(f"synthetic: {name} is a probability in [0, 1], got {value}")
        for name in ("zipf", "side_signal", "price_sensitivity"):
            if getattr(self, name) < 0 or not math.isfinite(getattr(self, name)):
                raise UsageError(f"synthetic: {name} must be a finite number >= 0, got {getattr(self, name)}")
        if self.series_length < 1:
            raise UsageError(
                f"synthetic: series_length must be >= 1 (1 = no sequels), got {self.series_length}"
            )

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _coerce(name: str, value: Any, kind: Any) -> Any:
    """Accept option values given as strings (``--param users=500``) and check their type."""
    kind = {"int": int, "float": float, "bool": bool}.get(kind, kind) if isinstance(kind, str) else kind
    try:
        if kind is bool:
            if isinstance(value, str):
                lowered = value.strip().lower()
                if lowered not in ("1", "0", "true", "false", "yes", "no", "on", "off"):
                    raise ValueError(value)
                return lowered in ("1", "true", "yes", "on")
            return bool(value)
        if kind is int:
            if isinstance(value, bool):
                raise ValueError(value)
            number = float(value)
            if number != int(number):
                raise ValueError(value)
            return int(number)
        if isinstance(value, bool):
            raise ValueError(value)
        return float(value)
    except (TypeError, ValueError, OverflowError):
        raise UsageError(f"synthetic: option {name}={value!r} must be {kind.__name__}") from None


@dataclass
class Simulation:
    """The generated log plus the ground truth of the world that produced it (indices are item ids)."""

    interactions: Interactions
    item_category: np.ndarray
    """[items] category index of each item."""
    successor: np.ndarray
    """[items] the next item of the series, ``-1`` for the last of a series."""
    item_weight: np.ndarray
    """[items] global popularity weight used for exploration (sums to 1)."""
    user_interests: np.ndarray
    """[users, M] interest categories, ``-1`` padded."""
    user_weights: np.ndarray
    """[users, M] interest weights (rows sum to 1, 0 on padding)."""
    seconds: float
    """Wall time the generation took."""


def _segments(sorted_keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start offset of each element's run and its position inside the run, for sorted keys."""
    n = len(sorted_keys)
    starts = np.flatnonzero(np.concatenate([[True], sorted_keys[1:] != sorted_keys[:-1]]))
    run_start = np.repeat(starts, np.diff(np.concatenate([starts, [n]])))
    return run_start, np.arange(n) - run_start


def _categorical(rng: np.random.Generator, weights: np.ndarray) -> np.ndarray:
    """One draw per row of an (unnormalised, non-negative) weight matrix."""
    cum = np.cumsum(weights, axis=1)
    u = rng.random(len(weights)) * cum[:, -1]
    return np.minimum((u[:, None] >= cum).sum(axis=1), weights.shape[1] - 1)


class _World:
    """Items, users and the sampling tables of one seeded world."""

    def __init__(self, cfg: SyntheticConfig, rng: np.random.Generator) -> None:
        n_items, n_cats = cfg.items, cfg.categories
        # -- items: category, within-category Zipf popularity, series, brand, price --------------
        share = rng.dirichlet(np.full(n_cats, 4.0))
        category = np.concatenate([np.arange(n_cats), rng.choice(n_cats, size=n_items - n_cats, p=share)])
        self.category = rng.permutation(category)
        by_pop = np.lexsort((rng.random(n_items), self.category))
        _, rank = _segments(self.category[by_pop])
        zipf_w = np.empty(n_items)
        zipf_w[by_pop] = (rank + 1.0) ** -cfg.zipf
        cat_total = np.bincount(self.category, weights=zipf_w, minlength=n_cats)
        self.cat_popularity = rng.dirichlet(np.full(n_cats, 2.0))
        self.weight = self.cat_popularity[self.category] * zipf_w / cat_total[self.category]
        self.weight /= self.weight.sum()

        by_series = np.lexsort((rng.random(n_items), self.category))
        cats_sorted = self.category[by_series]
        new_series = np.concatenate([[True], cats_sorted[1:] != cats_sorted[:-1]])
        new_series |= rng.random(n_items) < 1.0 / cfg.series_length
        series_id = np.cumsum(new_series) - 1
        self.successor = np.full(n_items, -1, dtype=np.int64)
        continues = ~new_series[1:]
        self.successor[by_series[:-1][continues]] = by_series[1:][continues]
        series_of = np.empty(n_items, dtype=np.int64)
        series_of[by_series] = series_id
        series_cat = cats_sorted[new_series]
        series_brand = series_cat * cfg.brands + rng.integers(0, cfg.brands, size=len(series_cat))
        self.brand = series_brand[series_of]
        brand_offset = rng.normal(0.0, 0.7, size=n_cats * cfg.brands)
        cat_price = rng.uniform(0.5, PRICE_LEVELS - 1.5, size=n_cats)
        price = cat_price[self.category] + brand_offset[self.brand] + rng.normal(0.0, 0.5, size=n_items)
        self.price = np.clip(np.rint(price), 0, PRICE_LEVELS - 1).astype(np.int64)

        # -- per (category, user price level) sampling tables over the category's members -------
        members_order = np.lexsort((np.arange(n_items), self.category))
        _, pos = _segments(self.category[members_order])
        sizes = np.bincount(self.category, minlength=n_cats)
        width = int(sizes.max())
        self.members = np.full((n_cats, width), -1, dtype=np.int64)
        self.members[self.category[members_order], pos] = members_order
        self.sizes = sizes
        member_w = np.zeros((n_cats, width))
        member_w[self.category[members_order], pos] = zipf_w[members_order]
        member_price = np.zeros((n_cats, width))
        member_price[self.category[members_order], pos] = self.price[members_order]
        levels = np.arange(PRICE_LEVELS, dtype=np.float64)
        affinity = np.exp(-cfg.price_sensitivity * np.abs(member_price[:, None, :] - levels[None, :, None]))
        table = member_w[:, None, :] * affinity  # [C, P, width]; zero on padding
        cdf = np.cumsum(table, axis=2)
        cdf /= cdf[:, :, -1:]
        cdf = cdf.reshape(n_cats * PRICE_LEVELS, width)
        cdf[np.arange(n_cats * PRICE_LEVELS), np.repeat(sizes, PRICE_LEVELS) - 1] = 1.0
        self.width = width
        self.flat_cdf = (cdf + np.arange(n_cats * PRICE_LEVELS)[:, None]).ravel()
        self.global_cdf = np.cumsum(self.weight)

        # -- users: demographics -> interests, region -> price level -------------------------------
        n_users = cfg.users
        self.age = rng.choice(len(AGE_BANDS), size=n_users, p=np.array(AGE_SHARES))
        self.gender = rng.integers(0, len(GENDERS), size=n_users)
        self.region = rng.choice(cfg.regions, size=n_users, p=rng.dirichlet(np.full(cfg.regions, 5.0)))
        effect = (
            rng.normal(0.0, 1.0, size=(len(AGE_BANDS), n_cats))[self.age]
            + rng.normal(0.0, 0.8, size=(len(GENDERS), n_cats))[self.gender]
            + rng.normal(0.0, 0.5, size=(cfg.regions, n_cats))[self.region]
        )
        logits = np.log(self.cat_popularity)[None, :] + cfg.side_signal * effect
        most = min(n_cats, 3 * cfg.interests)
        count = np.clip(1 + rng.poisson(cfg.interests - 1, size=n_users), 1, most)
        gumbel = logits - np.log(-np.log(rng.random((n_users, n_cats))))
        top = np.argsort(-gumbel, axis=1)[:, :most]
        real = np.arange(most)[None, :] < count[:, None]
        weights = rng.gamma(1.0, size=(n_users, most)) * real
        weights /= weights.sum(axis=1, keepdims=True)
        order = np.argsort(-weights, axis=1, kind="stable")  # slot 0 = main interest
        self.interests = np.where(real, top, -1)
        self.interests = np.take_along_axis(self.interests, order, axis=1)
        self.interest_w = np.take_along_axis(weights, order, axis=1)
        region_price = rng.uniform(0.5, PRICE_LEVELS - 1.5, size=cfg.regions)
        self.user_price = region_price[self.region] + rng.normal(0.0, 0.7, size=n_users)
        self.price_level = np.clip(np.rint(self.user_price), 0, PRICE_LEVELS - 1).astype(np.int64)
        affinity_u = np.zeros((n_users, n_cats))
        np.add.at(affinity_u, (np.arange(n_users)[:, None], np.maximum(self.interests, 0)), self.interest_w)
        self.affinity = affinity_u / affinity_u.max(axis=1, keepdims=True)  # 1 = main interest

    def sample_in_category(
        self, rng: np.random.Generator, cats: np.ndarray, levels: np.ndarray
    ) -> np.ndarray:
        """One item per (category, price level) pair, by Zipf popularity times price affinity."""
        rows = cats * PRICE_LEVELS + levels
        flat = np.searchsorted(self.flat_cdf, rows + rng.random(len(rows)), side="right")
        pos = np.clip(flat - rows * self.width, 0, self.sizes[cats] - 1)
        return self.members[cats, pos]

    def sample_global(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """``n`` items by global popularity (exploration)."""
        found = np.searchsorted(self.global_cdf, rng.random(n) * self.global_cdf[-1], side="right")
        return np.minimum(found, len(self.global_cdf) - 1)


def _seen(history: np.ndarray, active: np.ndarray, pick: np.ndarray, t: int, where: np.ndarray) -> np.ndarray:
    """Mask over ``active``: True where ``where`` holds and the user already has ``pick`` before step
    ``t``."""
    out = np.zeros(len(active), dtype=bool)
    if t and where.any():
        rows = np.flatnonzero(where)
        out[rows] = (history[active[rows], :t] == pick[rows, None]).any(axis=1)
    return out


def _sequence_lengths(cfg: SyntheticConfig, rng: np.random.Generator) -> np.ndarray:
    sigma = 0.6
    raw = rng.lognormal(math.log(cfg.mean_length) - sigma**2 / 2, sigma, size=cfg.users)
    longest = max(cfg.min_length, min(cfg.items, 4 * cfg.mean_length))
    return np.clip(np.rint(raw), cfg.min_length, longest).astype(np.int64)


def simulate(**options: Any) -> Simulation:
    """Generate the log and return it with the world's ground truth. Options: :class:`SyntheticConfig`."""
    unknown = sorted(set(options) - {f.name for f in dataclasses.fields(SyntheticConfig)})
    if unknown:
        raise UsageError(
            f"synthetic has no option {', '.join(repr(u) for u in unknown)};"
            f" its options are {', '.join(f.name for f in dataclasses.fields(SyntheticConfig))}"
        )
    cfg = SyntheticConfig(**options)
    began = time.perf_counter()
    rng = np.random.default_rng(cfg.seed)
    world = _World(cfg, rng)
    lengths = _sequence_lengths(cfg, rng)
    n_users, horizon = cfg.users, int(lengths.max())
    history = np.full((n_users, horizon), -1, dtype=np.int64)
    in_series = np.zeros((n_users, horizon), dtype=bool)
    slot = np.zeros(n_users, dtype=np.int64)
    prev = np.full(n_users, -1, dtype=np.int64)

    for t in range(horizon):
        active = np.flatnonzero(lengths > t)
        n = len(active)
        # Where the user's attention goes: series continuation, current interest, or exploration.
        follow = world.successor[np.maximum(prev[active], 0)]
        series = (prev[active] >= 0) & (follow >= 0) & (rng.random(n) < cfg.successor)
        switch = ~series & ((rng.random(n) >= cfg.stay) if t else np.ones(n, dtype=bool))
        if switch.any():
            slot[active[switch]] = _categorical(rng, world.interest_w[active[switch]])
        explore = ~series & (rng.random(n) < cfg.explore)
        cats = world.interests[active, slot[active]]
        levels = world.price_level[active]

        pick = np.where(series, follow, -1)
        series &= ~_seen(history, active, pick, t, series)  # a sequel already seen falls back
        todo = ~series
        for attempt in range(RETRIES):
            if not todo.any():
                break
            if attempt == RETRIES - 1:
                explore |= todo  # last resort: anything unseen by global popularity
            elif attempt >= RETRIES // 2:
                # this interest looks exhausted: move to another one
                slot[active[todo]] = _categorical(rng, world.interest_w[active[todo]])
                cats[todo] = world.interests[active[todo], slot[active[todo]]]
            wild, tame = todo & explore, todo & ~explore
            if wild.any():
                pick[wild] = world.sample_global(rng, int(wild.sum()))
            if tame.any():
                pick[tame] = world.sample_in_category(rng, cats[tame], levels[tame])
            todo = _seen(history, active, pick, t, todo)
        kept = ~todo  # still a repeat after the retries: the step is dropped
        history[active[kept], t] = pick[kept]
        in_series[active[kept], t] = series[kept]
        prev[active[kept]] = pick[kept]

    user_idx, step = np.nonzero(history >= 0)  # row-major: grouped by user, in time order
    item_idx = history[user_idx, step]
    gaps = 1 + np.floor(rng.exponential(6 * 3600.0, size=len(user_idx))).astype(np.int64)
    run_start, _ = _segments(user_idx)
    total = np.cumsum(gaps)
    start = cfg.start_time + rng.integers(0, 90 * 86400, size=n_users)
    timestamp = start[user_idx] + total - total[run_start] + gaps[run_start]

    columns: dict[str, np.ndarray] = {"user_id": user_idx, "item_id": item_idx, "timestamp": timestamp}
    if cfg.ratings:
        match = world.affinity[user_idx, world.category[item_idx]]
        price_gap = np.abs(world.price[item_idx] - world.user_price[user_idx])
        score = 1.6 + 2.6 * match + 0.5 * in_series[user_idx, step] - 0.35 * price_gap
        score += rng.normal(0.0, 0.7, size=len(score))
        columns["rating"] = np.clip(np.rint(score), 1, 5).astype(np.int64)
    events = pd.DataFrame(columns)

    users = pd.DataFrame(
        {
            "user_id": np.arange(n_users, dtype=np.int64),
            "age_band": np.array(AGE_BANDS, dtype=object)[world.age],
            "gender": np.array(GENDERS, dtype=object)[world.gender],
            "region": np.char.add("r", world.region.astype(str)).astype(object),
        }
    )
    items = pd.DataFrame(
        {
            "item_id": np.arange(cfg.items, dtype=np.int64),
            "category": np.char.add("c", np.char.zfill(world.category.astype(str), 2)).astype(object),
            "brand": np.char.add("b", np.char.zfill(world.brand.astype(str), 3)).astype(object),
            "price_band": world.price + 1,
        }
    )
    seconds = time.perf_counter() - began
    interactions = Interactions(
        events=events,
        users=users,
        items=items,
        name="synthetic",
        source="synthetic",
        meta={"generator": "zoo_plugins.synthetic", "params": cfg.as_dict()},
    )
    return Simulation(
        interactions=interactions,
        item_category=world.category,
        successor=world.successor,
        item_weight=world.weight,
        user_interests=world.interests,
        user_weights=world.interest_w,
        seconds=seconds,
    )


def generate(
    users: int = 2000,
    items: int = 1000,
    categories: int = 20,
    mean_length: int = 40,
    interests: int = 3,
    seed: int = 0,
    **options: Any,
) -> Interactions:
    """A seeded synthetic :class:`Interactions` (same options, identical frames).

    Args:
        users, items, categories: sizes of the world.
        mean_length: mean interactions per user (lengths are log-normal, at least ``min_length``).
        interests: mean number of interest categories per user (1 + Poisson).
        seed: the random seed.
        **options: the other knobs of :class:`SyntheticConfig` (``zipf``, ``successor``, ``stay``,
            ``explore``, ``series_length``, ``side_signal``, ``ratings``...).
    """
    return simulate(
        users=users,
        items=items,
        categories=categories,
        mean_length=mean_length,
        interests=interests,
        seed=seed,
        **options,
    ).interactions


def load(path: Any = None, **options: Any) -> Interactions:
    """Dataset factory used by the registry: ``load_dataset("synthetic", users=500)``."""
    if path is not None:
        raise UsageError("the synthetic dataset is generated, it reads no files; drop --data / path")
    return simulate(**options).interactions
