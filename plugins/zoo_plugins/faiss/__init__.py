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
            description=(
                "Faiss index from a factory string: Flat (exact), IVF, IVF-PQ, HNSW;"
                " nprobe / efSearch at query time"
            ),
            requires=("faiss",),
            extra="faiss",
            build_params={
                "index": "HNSW",
                "mips": "native",
                "rescore": "auto",
                "seed": 1234,
                "num_threads": -1,
            },  # fmt: skip
            query_params={"nprobe": 32, "efSearch": 128, "k_factor": 1},
            supports_add=True,
            aliases=("Faiss",),
            # One build group per index family, each with the query parameter that family uses.
            # IVF lists and PQ sizes follow the catalogue (see docs/retrievers.md).
            bench_grid=[
                {"build": {"index": ["Flat"]}},
                {"build": {"index": ["IVF"]}, "query": {"nprobe": [1, 4, 16, 64, 256]}},
                {"build": {"index": ["IVF-PQ"]}, "query": {"nprobe": [16, 64], "k_factor": [1, 4]}},
                {"build": {"index": ["HNSW"]}, "query": {"efSearch": [16, 32, 64, 128, 256]}},
            ],
        )
    ]
