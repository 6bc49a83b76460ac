"""Built-in ``hnsw`` retriever: hnswlib graph index (hookimpls only).

``hnswlib`` is imported only inside :mod:`zoo_plugins.hnsw.retriever`, when an index is created.
"""

from __future__ import annotations

from zoo import hookimpl
from zoo.specs import RetrieverSpec


@hookimpl
def zoo_register_retrievers() -> list[RetrieverSpec]:
    """Register the ``hnsw`` retriever."""
    return [
        RetrieverSpec(
            name="hnsw",
            factory="zoo_plugins.hnsw.retriever:HnswRetriever",
            description="HNSW graph index (hnswlib, inner product); fast approximate top-k on CPU",
            requires=("hnswlib",),
            build_params={"M": 32, "ef_construction": 200, "seed": 100, "num_threads": -1},
            query_params={"ef": 64},
            supports_add=True,
            aliases=("Hnsw", "HNSW"),
            # Every build setting is built once; the query settings are swept on it without rebuilding.
            bench_grid={
                "build": {"M": [16, 32, 48], "ef_construction": [200]},
                "query": {"ef": [10, 16, 32, 64, 128, 256, 512]},
            },
        )
    ]
