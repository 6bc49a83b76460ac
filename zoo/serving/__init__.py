"""Serving: recommendations out of a run folder (:class:`Recommender`), and the Torch-RecHub serving
builders (:mod:`zoo.serving.builders`).

::

    from zoo.serving import Recommender

    recommender = Recommender.load("runs/my-run")
    for rec in recommender.recommend(["42", "7"], k=10):
        print(rec.user, rec.items, rec.scores, rec.metadata)
"""

from __future__ import annotations

from typing import Any

__all__ = ["NewUser", "Recommendation", "Recommender"]


def __getattr__(name: str) -> Any:
    """Import the recommender lazily (``import zoo.serving`` stays free of torch)."""
    if name in __all__:
        from zoo.serving import recommender

        return getattr(recommender, name)
    raise AttributeError(f"module 'zoo.serving' has no attribute {name!r}")
