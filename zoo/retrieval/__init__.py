"""Retrieval: the Retriever contract and the multi-interest merge shared by every backend.

Backend classes are resolved lazily through the plugin registry, so ``import zoo.retrieval`` never
imports an ANN library::

    from zoo.retrieval import Annoy        # the seed tutorial's name for the ``annoy`` retriever
    annoy = Annoy(n_trees=10)
    annoy.fit(item_embeddings)
    ids, scores = annoy.query(user_embeddings[0], topk=10)  # ours: scores, high to low
    ids, distances = annoy.query(v=user_embeddings[0], n=10)  # Torch-RecHub's: distances, low to high

Each retriever plugin names the classes it answers to in ``RetrieverSpec(aliases=...)`` (the
built-ins: ``Annoy``, ``Faiss``, ``Hnsw`` / ``HNSW``, ``Exact``); a backend whose library is missing
raises a PluginError with its install hint. ``Annoy`` and ``Faiss`` also take Torch-RecHub's
constructors; both query forms are described in docs/retrievers.md.
"""

from __future__ import annotations

from typing import Any

from zoo.retrieval.base import Retriever
from zoo.retrieval.merge import merge_interest_results, query_interests

__all__ = ["Retriever", "backend_names", "merge_interest_results", "query_interests"]


def backend_names(registry: Any = None) -> dict[str, str]:
    """Class-name alias -> retriever name, from the ``aliases`` of every registered retriever.

    Args:
        registry: the registry to read; defaults to :func:`zoo.registry.default_registry`.

    Raises:
        PluginError: two retrievers claim the same alias.
    """
    return {alias: spec.name for alias, spec in _alias_specs(registry).items()}


def _alias_specs(registry: Any = None) -> dict[str, Any]:
    from zoo.errors import PluginError

    if registry is None:
        from zoo.registry import default_registry

        registry = default_registry()
    specs: dict[str, Any] = {}
    for spec in registry.specs("retriever"):
        for alias in spec.aliases:
            known = specs.setdefault(alias, spec)
            if known.qualified_name != spec.qualified_name:
                raise PluginError(
                    f"zoo.retrieval.{alias} is claimed by retrievers '{known.qualified_name}' and"
                    f" '{spec.qualified_name}'; create one through the registry by its name instead"
                )
    return specs


def __getattr__(name: str) -> Any:
    """Resolve ``Annoy`` (and every other retriever alias) through the retriever registry."""
    spec = _alias_specs().get(name) if name[:1].isupper() else None  # aliases are class names
    if spec is None:
        raise AttributeError(f"module 'zoo.retrieval' has no attribute {name!r}")
    return spec.load()
