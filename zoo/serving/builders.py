"""Torch-RecHub's serving builders (``torch_rechub.serving``), thin over recall-zoo's retrievers.

Torch-RecHub builds a vector index for serving with ``builder_factory("annoy" | "faiss" | "milvus",
**config)``; its code runs here unchanged::

    builder = builder_factory("faiss", index_type="HNSW", metric="IP")
    with builder.from_embeddings(item_embeddings) as indexer:
        ids, scores = indexer.query(user_embeddings, top_k=10)
        indexer.save("items.index")

    with builder.from_index_file("items.index") as indexer:
        ...

and so does the shorter form this module adds: ``builder.from_embeddings(embeddings, ids=item_ids)``
(the caller's item ids instead of row numbers), ``builder.save(path)`` (the index last built or
loaded), and ``indexer.query(..., allow=..., exclude=...)`` (filtered retrieval, see
:mod:`zoo.retrieval.filtering`).

Every builder creates its retriever through the plugin registry by name (``annoy``, ``faiss``,
``milvus``, or any other registered retriever through :func:`builder_factory`), so this module
imports no backend library and a missing one is the registry's one-line install hint. Index files
are recall-zoo index folders (``Retriever.save``), not the libraries' raw files.

Torch-RecHub's metric names are accepted: ``angular`` / ``COSINE`` (cosine), ``dot`` / ``IP`` (inner
product). Euclidean distance (``euclidean``, ``L2``) is not a recall score here and is refused.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from zoo.errors import ModelFileError, UsageError

__all__ = [
    "AnnoyBuilder",
    "FaissBuilder",
    "IndexBuilder",
    "Indexer",
    "MilvusBuilder",
    "builder_factory",
]

METRICS = {"angular": "cosine", "cosine": "cosine", "dot": "ip", "ip": "ip"}


def resolve_metric(metric: str) -> str:
    """recall-zoo's metric (``ip`` / ``cosine``) for a Torch-RecHub or recall-zoo metric name."""
    resolved = METRICS.get(str(metric).lower())
    if resolved is None:
        raise UsageError(
            f"metric {metric!r} is not supported: use 'IP' / 'dot' (inner product) or 'COSINE' / 'angular'"
            " (recall scores are similarities; euclidean distance is not one)"
        )
    return resolved


class Indexer:
    """A built or loaded index: Torch-RecHub's indexer over a :class:`zoo.retrieval.Retriever`.

    A context manager (``with builder.from_embeddings(x) as indexer``); leaving it calls
    :meth:`close`.
    """

    def __init__(self, retriever: Any) -> None:
        self.retriever = retriever
        self.saved_to: Path | None = None

    def query(
        self, embeddings: Any, top_k: int, *, allow: Any = None, exclude: Any = None
    ) -> tuple[Any, Any]:
        """Top-``top_k`` item ids and scores (higher is better) per query embedding.

        Torch tensors in, torch tensors out (as Torch-RecHub returns); numpy otherwise. ``[U, K, D]``
        multi-interest embeddings are merged by best score; ``allow`` / ``exclude`` filter per query.
        """
        from zoo.retrieval.merge import query_interests

        ids, scores = query_interests(self.retriever, embeddings, top_k, allow=allow, exclude=exclude)
        if hasattr(embeddings, "detach"):  # torch in, torch out
            import torch

            return torch.from_numpy(ids), torch.from_numpy(scores)
        return ids, scores

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the index to the folder ``path`` (a recall-zoo index folder; replaced atomically)."""
        self.saved_to = self.retriever.save(path)
        return self.saved_to

    def close(self) -> None:
        """Release what the backend holds open (a database connection); a no-op for in-memory indexes."""
        close = getattr(self.retriever, "close", None)
        if callable(close):
            close()

    def __enter__(self) -> Indexer:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class IndexBuilder:
    """Builds or loads an :class:`Indexer` over the registry's ``retriever`` with fixed settings.

    Args:
        retriever: registry name of the retriever.
        d: embedding dimension, checked against the embeddings when given (Torch-RecHub passes it).
        metric: ``ip`` / ``cosine`` (or a Torch-RecHub name: ``IP``, ``dot``, ``COSINE``, ``angular``).
        **params: the retriever's build and query parameters.
    """

    retriever_name: str = ""  #: the registry name (subclasses set it; the generic builder takes it)
    indexer_class: ClassVar[type[Indexer]] = Indexer

    def __init__(self, retriever: str | None = None, d: int | None = None, metric: str = "ip", **params: Any):
        self.retriever_name = retriever or type(self).retriever_name
        if not self.retriever_name:
            raise UsageError("IndexBuilder needs the retriever's registry name")
        if d is not None and (isinstance(d, bool) or not isinstance(d, (int, np.integer)) or d <= 0):
            raise UsageError(f"d (the embedding dimension) must be a positive integer, got {d!r}")
        self.d = None if d is None else int(d)
        self.metric = resolve_metric(metric)
        self.params = params
        self.indexer: Indexer | None = None

    def create(self) -> Any:
        """A fresh, unfitted retriever with this builder's settings."""
        from zoo.registry import create_retriever

        return create_retriever(self.retriever_name, metric=self.metric, **self.params)

    def from_embeddings(self, embeddings: Any, ids: Any = None) -> Indexer:
        """Index ``embeddings`` ``[N, D]`` (numpy or torch) under ``ids`` (default ``0..N-1``)."""
        shape = tuple(getattr(embeddings, "shape", np.shape(embeddings)))
        if self.d is not None and (len(shape) != 2 or shape[1] != self.d):
            raise UsageError(f"embeddings have shape {shape}, the builder was made for dimension d={self.d}")
        self.indexer = self.indexer_class(self.create().fit(embeddings, ids=ids))
        return self.indexer

    def from_index_file(self, path: str | os.PathLike[str]) -> Indexer:
        """Load an index folder written by :meth:`save` (or ``Retriever.save``) with this backend."""
        from zoo.registry import default_registry
        from zoo.retrieval.base import Retriever

        header = Retriever.read_header(path)
        if header.get("backend") != self.retriever_name:
            raise ModelFileError(
                f"{path}: index was built by backend '{header.get('backend')}', not '{self.retriever_name}';"
                f" load it with builder_factory({header.get('backend')!r})"
            )
        if self.d is not None and header.get("dim") != self.d:
            raise ModelFileError(f"{path}: index holds dimension {header.get('dim')}, the builder d={self.d}")
        retriever = default_registry().retriever(self.retriever_name).load().load(path)
        self.indexer = self.indexer_class(retriever)
        self.indexer.saved_to = Path(path)
        return self.indexer

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Save the index last built or loaded by this builder to the folder ``path``."""
        if self.indexer is None:
            raise UsageError("nothing to save: call from_embeddings() or from_index_file() first")
        return self.indexer.save(path)


class AnnoyBuilder(IndexBuilder):
    """Torch-RecHub's ``AnnoyBuilder(d, metric="angular", n_trees=10, threads=-1, searchk=-1)`` over the
    ``annoy`` retriever; ``**params`` are further ``annoy`` parameters (``mips``, ``seed``)."""

    retriever_name = "annoy"

    def __init__(
        self,
        d: int | None = None,
        metric: str = "angular",
        *,
        n_trees: int = 10,
        threads: int = -1,
        searchk: int = -1,
        **params: Any,
    ) -> None:
        super().__init__(None, d, metric, n_trees=n_trees, num_threads=threads, search_k=searchk, **params)


class FaissBuilder(IndexBuilder):
    """Torch-RecHub's ``FaissBuilder(index_type="Flat", metric, m=32, nlists=100, efSearch, nprobe)``
    over the ``faiss`` retriever: ``Flat``, ``HNSW`` (``HNSW{m}``) or ``IVF`` (``IVF{nlists},Flat``), or
    any faiss factory string; ``**params`` are further ``faiss`` parameters. The metric defaults to
    inner product (Torch-RecHub's default, L2, is not a recall score)."""

    retriever_name = "faiss"

    def __init__(
        self,
        index_type: str = "Flat",
        metric: str = "IP",
        *,
        m: int = 32,
        nlists: int = 100,
        efSearch: int | None = None,  # noqa: N803 - Torch-RecHub's name
        nprobe: int | None = None,
        d: int | None = None,
        **params: Any,
    ) -> None:
        kind = str(index_type)
        factory = {"flat": "Flat", "hnsw": f"HNSW{m}", "ivf": f"IVF{nlists},Flat"}.get(kind.lower(), kind)
        query = {k: v for k, v in (("efSearch", efSearch), ("nprobe", nprobe)) if v is not None}
        super().__init__(None, d, metric, index=factory, **query, **params)


class _MilvusIndexer(Indexer):
    """An indexer over a collection it created: on close, a server collection never saved is dropped."""

    def close(self) -> None:
        if self.saved_to is None and not self.retriever.lite:
            self.retriever.drop_collection()
        super().close()


class MilvusBuilder(IndexBuilder):
    """Torch-RecHub's ``MilvusBuilder(d, index_type="FLAT", metric="COSINE", m=30, nlist=128, ef, nprobe,
    host, port)`` over the ``milvus`` retriever.

    Without ``host`` or ``uri`` the index is a private Milvus Lite database; ``host`` / ``port`` (or
    ``uri="http://host:19530"``) use a Milvus server. Leaving an indexer's ``with`` block drops a server
    collection that was never saved (as Torch-RecHub does) and closes the connection."""

    retriever_name = "milvus"
    indexer_class = _MilvusIndexer

    def __init__(
        self,
        d: int | None = None,
        index_type: str = "FLAT",
        metric: str = "COSINE",
        *,
        m: int = 30,
        nlist: int = 128,
        ef: int | None = None,
        nprobe: int | None = None,
        host: str | None = None,
        port: int = 19530,
        uri: str | None = None,
        collection: str | None = None,
        **params: Any,
    ) -> None:
        if host is not None and uri is not None:
            raise UsageError("MilvusBuilder: pass host/port or uri, not both")
        uri = f"http://{host}:{int(port)}" if host is not None else uri
        query = {k: v for k, v in (("ef", ef), ("nprobe", nprobe)) if v is not None}
        super().__init__(
            None,
            d,
            metric,
            uri=uri,
            collection=collection,
            index_type=str(index_type).upper(),
            M=m,
            nlist=nlist,
            **query,
            **params,
        )


BUILDERS: dict[str, type[IndexBuilder]] = {
    "annoy": AnnoyBuilder,
    "faiss": FaissBuilder,
    "milvus": MilvusBuilder,
}


def builder_factory(name: str, **builder_config: Any) -> IndexBuilder:
    """Torch-RecHub's ``builder_factory``: ``annoy``, ``faiss`` and ``milvus`` take Torch-RecHub's
    builder arguments; any other registered retriever (``hnsw``, ``exact``...) gets a generic
    :class:`IndexBuilder` with ``metric`` and the retriever's own parameters.

    Raises:
        UnknownNameError: no retriever of that name is registered.
    """
    builder = BUILDERS.get(name)
    if builder is not None:
        return builder(**builder_config)
    from zoo.registry import default_registry

    default_registry().retriever(name)  # an unknown name: one line with the available names
    return IndexBuilder(name, **builder_config)
