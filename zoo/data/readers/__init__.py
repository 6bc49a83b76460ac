"""Readers that turn MovieLens folders and generic interaction logs into :class:`Interactions`.

Every reader returns canonical columns (``user_id``, ``item_id``, ``timestamp``, optional ``rating``;
side tables keyed by ``user_id`` / ``item_id``) and turns every kind of bad input into a one-line
:class:`~zoo.errors.DataError` that names the file, the line and the column at fault. Parsing is
vectorised (pandas' C parser plus column operations); nothing loops over ratings in Python.

One module per format, over two shared ones (:mod:`~zoo.data.readers.checks`: per-column checks
with line numbers; :mod:`~zoo.data.readers.csv`: delimited text):

* :mod:`~zoo.data.readers.ml1m`: ``ml-1m`` (and ``ml-10m``): ``ratings.dat``
  ``UserID::MovieID::Rating::Timestamp``, optional ``users.dat`` and ``movies.dat`` (latin-1).
* :mod:`~zoo.data.readers.ml100k`: ``ml-100k``: tab-separated ``u.data``, optional ``u.user``,
  ``u.item`` (and ``u.genre``).
* :mod:`~zoo.data.readers.ml_csv`: ``ml-latest-small`` / ``ml-20m`` / ``ml-25m``: ``ratings.csv``
  plus optional ``movies.csv``; :mod:`~zoo.data.readers.movielens` detects the release.
* :mod:`~zoo.data.readers.log` (with :mod:`~zoo.data.readers.parquet`): any CSV or Parquet
  interaction log with a column mapping (:func:`read_interactions`).
"""

from __future__ import annotations

from zoo.data.readers.log import read_interactions
from zoo.data.readers.ml100k import ML100K_GENRES
from zoo.data.readers.movielens import (
    MOVIELENS_LAYOUTS,
    read_ml1m,
    read_ml100k,
    read_movielens,
    read_ratings_csv,
)
from zoo.data.readers.movielens_common import GENRE_SEP, NO_GENRES
from zoo.data.readers.parquet import PARQUET_SUFFIXES

__all__ = [
    "GENRE_SEP",
    "ML100K_GENRES",
    "MOVIELENS_LAYOUTS",
    "NO_GENRES",
    "PARQUET_SUFFIXES",
    "read_interactions",
    "read_ml1m",
    "read_ml100k",
    "read_movielens",
    "read_ratings_csv",
]
