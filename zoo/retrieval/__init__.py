"""Retrieval: the Retriever contract and the multi-interest merge shared by every backend.

Backend classes are resolved lazily through the plugin registry, so ``import zoo.retrieval`` never
imports an ANN library::

    from zoo.retrieval import Annoy        # the seed tutorial's name for the ``annoy`` retriever
    annoy = Annoy(n_trees=10)
    annoy.fit(item_embeddings)
    ids, scores = annoy.query(user_embeddings[0], topk=10)

``Annoy``, ``Faiss``, ``Hnsw`` and ``Exact`` name the retrievers registered as ``annoy``, ``faiss``,
``hnsw`` and ``exact``; a backend whose library is missing raises a PluginError with its install hint.
"""

from __future__ import annotations

from typing import Any

from zoo.retrieval.base import Retriever
from zoo.retrieval.merge import merge_interest_results, query_interests

__all__ = ["Retriever", "merge_interest_results", "query_interests"]

#: lazily resolved class names -> registered retriever names
BACKEND_NAMES = {"Annoy": "annoy", "Faiss": "faiss", "Hnsw": "hnsw", "HNSW": "hnsw", "Exact": "exact"}


def __getattr__(name: str) -> Any:
    """Resolve ``Annoy`` (and the other backend names) through the retriever registry."""
    registered = BACKEND_NAMES.get(name)
    if registered is None:
        raise AttributeError(f"module 'zoo.retrieval' has no attribute {name!r}")
    from zoo.registry import default_registry

    return default_registry().retriever(registered).load()
