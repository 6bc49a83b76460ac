"""Factories of the MovieLens datasets: ``factory(path) -> Interactions``.

``path`` is the folder (or ratings file) that :func:`zoo.data.locate.resolve_data_path` found.
Each factory reads exactly its release's layout, so pointing ``movielens-1m`` at an
``ml-latest-small`` folder fails with a clear message instead of silently reading other data.
"""

from __future__ import annotations

from pathlib import Path

from zoo.data.interactions import Interactions
from zoo.data.readers import read_ml1m, read_ml100k, read_ratings_csv


def load_ml1m(path: Path) -> Interactions:
    """MovieLens 1M from its ``ml-1m`` folder (``ratings.dat``, ``users.dat``, ``movies.dat``)."""
    return read_ml1m(path)


def load_ml100k(path: Path) -> Interactions:
    """MovieLens 100K from its ``ml-100k`` folder (``u.data``, ``u.user``, ``u.item``)."""
    return read_ml100k(path)


def load_ratings_csv(path: Path) -> Interactions:
    """MovieLens latest-small / 20M / 25M from their folder (``ratings.csv``, ``movies.csv``)."""
    return read_ratings_csv(path)
