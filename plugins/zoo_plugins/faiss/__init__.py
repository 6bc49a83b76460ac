"""Built-in ``faiss`` retriever: Facebook AI Similarity Search (hookimpls only).

``faiss`` is an optional extra (``pip install "recall-zoo[faiss]"``, which installs ``faiss-cpu``).
It is imported only inside :mod:`zoo_plugins.faiss.retriever`, when an index is created; without it
the retriever is listed as unavailable with that install hint and nothing else is affected.
"""

from __future__ import annotations

from zoo import hookimpl
from zoo.specs import RetrieverSpec


@hookimpl
def zoo_register_retrievers() -> list[RetrieverSpec]:
    """Register the ``faiss`` retriever."""
    return [
        RetrieverSpec(
            name="faiss",
            factory="zoo_plugins.faiss.retriever:FaissRetriever",
            description="Faiss index from a factory string: Flat (exact), IVF, IVF-PQ, HNSW; nprobe / efSearch at query time",
            requires=("faiss",),
            extra="faiss",
            build_params={"index": "HNSW", "mips": "native", "rescore": "auto", "seed": 1234, "num_threads": -1},
            query_params={"nprobe": 32, "efSearch": 128, "k_factor": 1},
            supports_add=True,
        )
    ]
