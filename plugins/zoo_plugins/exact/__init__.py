"""Built-in ``exact`` retriever: brute-force torch matmul + top-k, the ground truth (hookimpls only).

The backend lives in :mod:`zoo_plugins.exact.retriever`; it is imported (with torch) only when an
exact retriever is created, so listing plugins stays cheap.
"""

from __future__ import annotations

from zoo import hookimpl
from zoo.specs import RetrieverSpec


@hookimpl
def zoo_register_retrievers() -> list[RetrieverSpec]:
    """Register the ``exact`` retriever."""
    return [
        RetrieverSpec(
            name="exact",
            factory="zoo_plugins.exact.retriever:ExactRetriever",
            description=(
                "Exact top-k by torch matmul (grouped top-k selection), on CPU or GPU: the ground truth"
            ),
            requires=("torch",),
            build_params={"device": "cpu"},
            query_params={"chunk_size": "auto"},
            supports_add=True,
            supports_gpu=True,
            aliases=("Exact",),
            # Brute force has nothing to tune. Its `device` defaults to the bench's --device; list
            # devices in a --grid file to compare them, e.g. build = { device = ["cpu", "cuda"] }.
            bench_grid={"build": {}, "query": {}},
        )
    ]
