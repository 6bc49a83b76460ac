"""Built-in ``annoy`` retriever: Spotify's Annoy random-projection forest (hookimpls only).

``annoy`` is an optional extra (``pip install "recall-zoo[annoy]"``). It is imported only inside
:mod:`zoo_plugins.annoy.retriever`, when an index is created; without it the retriever is listed as
unavailable with that install hint and nothing else is affected.
"""

from __future__ import annotations

from zoo import hookimpl
from zoo.specs import RetrieverSpec


@hookimpl
def zoo_register_retrievers() -> list[RetrieverSpec]:
    """Register the ``annoy`` retriever."""
    return [
        RetrieverSpec(
            name="annoy",
            factory="zoo_plugins.annoy.retriever:AnnoyRetriever",
            description=(
                "Annoy forest of random-projection trees (the seed's Annoy); inner product via MIPS-to-L2"
            ),
            requires=("annoy",),
            extra="annoy",
            build_params={"n_trees": 10, "mips": "l2", "seed": 42, "num_threads": -1},
            query_params={"search_k": -1},
            supports_add=False,
            aliases=("Annoy",),
            # search_k = -1 means n_trees * k (Annoy's default). Annoy answers one query per call:
            # large search_k values are slow to measure on big test sets.
            bench_grid={"build": {"n_trees": [10, 50]}, "query": {"search_k": [-1, 1000, 3000, 10000]}},
        )
    ]
