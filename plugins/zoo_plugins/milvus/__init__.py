"""Built-in ``milvus`` retriever: the Milvus vector database through pymilvus (hookimpls only).

``pymilvus`` (with the embedded Milvus Lite) is an optional extra (``pip install
"recall-zoo[milvus]"``). It is imported only inside :mod:`zoo_plugins.milvus.retriever`, when a
retriever is created; without it the retriever is listed as unavailable with that install hint.
"""

from __future__ import annotations

from zoo import hookimpl
from zoo.specs import RetrieverSpec


@hookimpl
def zoo_register_retrievers() -> list[RetrieverSpec]:
    """Register the ``milvus`` retriever."""
    return [
        RetrieverSpec(
            name="milvus",
            factory="zoo_plugins.milvus.retriever:MilvusRetriever",
            description=(
                "Milvus vector database: embedded Milvus Lite file or a server by URI; HNSW, IVF_FLAT, FLAT;"
                " filters as expressions"
            ),
            requires=("pymilvus",),
            extra="milvus",
            build_params={
                "uri": None,
                "collection": None,
                "index_type": "HNSW",
                "M": 16,
                "efConstruction": 200,
                "nlist": 128,
            },
            query_params={"ef": 64, "nprobe": 16},
            supports_add=True,
            aliases=("Milvus",),
            # One build group per index type, each with the search parameter that type uses.
            bench_grid=[
                {"build": {"index_type": ["FLAT"]}},
                {"build": {"index_type": ["IVF_FLAT"]}, "query": {"nprobe": [1, 8, 32]}},
                {"build": {"index_type": ["HNSW"]}, "query": {"ef": [16, 64, 256]}},
            ],
        )
    ]
