"""Shared fixtures: small generated logs and MovieLens-format files written by the tests themselves
(real MovieLens files are never copied into the repository)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from zoo.data.interactions import Interactions


def pytest_configure(config: pytest.Config) -> None:
    """Tests use tiny models: one torch thread avoids oversubscribing the CI machine's cores."""
    import os
    import tempfile

    import torch

    torch.set_num_threads(1)
    # With the zoo-mlflow example installed, every test run would log into ./mlruns of the checkout.
    os.environ.setdefault("ZOO_MLFLOW_URI", tempfile.mkdtemp(prefix="zoo-mlruns-"))


@pytest.fixture(scope="session")
def tiny_interactions() -> Interactions:
    """A small synthetic log (300 users, 120 items) with user and item side features."""
    from zoo_plugins.synthetic.generator import generate

    return generate(users=300, items=120, categories=6, mean_length=18, seed=7)


@pytest.fixture(autouse=True)
def _fresh_registry():
    """Every test starts with a registry built from the installed plugins only."""
    from zoo.registry import reset_default_registry
    from zoo_cli import state

    state.set_plugin_paths([])
    reset_default_registry()
    yield
    reset_default_registry()


def write_ml1m(folder: Path, interactions: Interactions) -> Path:
    """Write ``interactions`` in the ml-1m ``::`` format (ratings.dat, users.dat, movies.dat)."""
    folder.mkdir(parents=True, exist_ok=True)
    events = interactions.events
    rating = events["rating"] if "rating" in events else pd.Series(np.full(len(events), 4))
    lines = (
        events["user_id"].astype(str)
        + "::"
        + events["item_id"].astype(str)
        + "::"
        + rating.astype(int).astype(str)
        + "::"
        + events["timestamp"].astype(str)
    )
    (folder / "ratings.dat").write_text("\n".join(lines) + "\n")
    users = pd.DataFrame({"user_id": events["user_id"].unique()})
    genders = np.where(users["user_id"] % 2 == 0, "M", "F")
    user_lines = (
        users["user_id"].astype(str)
        + "::"
        + genders
        + "::25::"
        + (users["user_id"] % 21).astype(str)
        + "::12345"
    )
    (folder / "users.dat").write_text("\n".join(user_lines) + "\n")
    items = pd.DataFrame({"item_id": np.sort(events["item_id"].unique())})
    genre_names = np.array(["Action", "Comedy", "Drama", "Horror", "Romance", "Sci-Fi"])
    genres = genre_names[items["item_id"] % 6] + "|" + genre_names[(items["item_id"] // 6) % 6]
    movie_lines = (
        items["item_id"].astype(str) + "::Movie " + items["item_id"].astype(str) + " (1999)::" + genres
    )
    (folder / "movies.dat").write_text("\n".join(movie_lines) + "\n", encoding="latin-1")
    return folder


@pytest.fixture
def ml1m_dir(tmp_path: Path, tiny_interactions: Interactions) -> Path:
    """A MovieLens-1M-format folder built from the tiny synthetic log."""
    return write_ml1m(tmp_path / "ml-1m", tiny_interactions)


def write_seed_csv(path: Path, interactions: Interactions) -> Path:
    """The seed tutorial's ``movielens.csv`` layout (ml-1m sample columns), from a synthetic log."""
    events = interactions.events.copy()
    genre_names = np.array(["Action", "Comedy", "Drama", "Horror", "Romance", "Sci-Fi"])
    frame = pd.DataFrame(
        {
            "user_id": events["user_id"],
            "movie_id": events["item_id"],
            "rating": events.get("rating", 4),
            "timestamp": events["timestamp"],
            "title": "Movie " + events["item_id"].astype(str),
            "genres": genre_names[events["item_id"] % 6] + "|Drama",
            "gender": np.where(events["user_id"] % 2 == 0, "M", "F"),
            "age": (events["user_id"] % 7) * 10,
            "occupation": events["user_id"] % 21,
            "zip": "12345",
        }
    )
    frame.to_csv(path, index=False)
    return path
