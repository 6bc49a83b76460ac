"""Milvus retrieval through ``pymilvus.MilvusClient``: embedded Milvus Lite or any Milvus server.

The same client code serves both; ``uri`` picks where the collection lives:

* ``uri=None`` (default): a private Milvus Lite database (a ``.db`` folder in a temporary directory,
  removed with the retriever): nothing to run, for tests and laptops;
* ``uri="./items.db"``: a Milvus Lite database at that path (one process opens it at a time);
* ``uri="http://host:19530"``: a Milvus server (standalone, cluster, or ``milvus_lite server``);
  a token, if the server needs one, is read from the ``ZOO_MILVUS_TOKEN`` environment variable.

The collection (``collection``, default ``items`` in a Lite database and a fresh ``zoo_<hex>`` name
on a server) has two fields: ``id`` (INT64 primary key, the caller's item ids) and ``vector``
(FLOAT_VECTOR). ``fit`` drops and recreates it; ``add`` inserts into it. Both metrics use Milvus's
``IP``: the base class normalises vectors for ``cosine``, as for every backend, so a zero query
vector scores 0 instead of dividing by zero.

Index types (``index_type``, build parameter) and their parameters:

============  =================================  =====================================
type          build                              query (changed without rebuilding)
============  =================================  =====================================
``HNSW``      ``M``, ``efConstruction``          ``ef`` (raised to ``k``, as Milvus requires)
``IVF_FLAT``  ``nlist`` (at most ``count / 39``)   ``nprobe`` (at most ``nlist``)
``FLAT``      none                               none (exact)
============  =================================  =====================================

Filtered queries (``allow`` / ``exclude``) become filter expressions on the id field
(``id in [...]`` / ``id not in [...]``), one search per distinct list (one for a list shared by every
query). A batch of more than four per-query exclude-lists (an evaluation over many users) is instead
over-fetched in batched searches, since every expression costs a search. A row Milvus returns short
although enough items pass is completed exactly: the passing items' vectors are fetched and scored.

``save(dir)`` writes the header and the ids; for Milvus Lite also the database itself, as one tar
file (``milvus.db.tar``), which ``load(dir)`` unpacks into a private temporary copy. For a server
it records the URI and collection name only: the collection stays on the server, shared by every
retriever that loads the folder, and ``load`` checks that it still holds the saved count and
dimension. :meth:`MilvusRetriever.drop_collection` removes a server collection.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import os
import re
import shutil
import tarfile
import tempfile
import threading
import time
import uuid
import weakref
from pathlib import Path
from typing import Any

import numpy as np
from pymilvus import DataType, MilvusClient, MilvusException

from zoo.errors import ModelFileError, UsageError
from zoo.retrieval.base import Retriever
from zoo.retrieval.filtering import LabelFilter

DEFAULTS: dict[str, Any] = {
    "uri": None,
    "collection": None,
    "index_type": "HNSW",
    "M": 16,
    "efConstruction": 200,
    "nlist": 128,
    "ef": 64,
    "nprobe": 16,
}
INDEX_TYPES = ("HNSW", "IVF_FLAT", "FLAT")
LITE_ARCHIVE = "milvus.db.tar"
LITE_FOLDER = "milvus.db"
LITE_COLLECTION = "items"
ID_FIELD = "id"
VECTOR_FIELD = "vector"
TOKEN_ENV = "ZOO_MILVUS_TOKEN"
#: Milvus answers at most this many results per query (its ``topk`` limit)
MAX_TOPK = 16384
_INSERT_BATCH = 4096
_QUERY_BATCH = 1024
_FETCH_BATCH = 1024
#: longest wait for the server to index inserted rows
INDEX_WAIT_S = 3600.0
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,254}$")
_SCHEMES = ("http://", "https://", "tcp://", "unix:")


def _int_param(name: str, value: Any, *, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise UsageError(f"retriever 'milvus': {name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def is_lite(uri: str | None) -> bool:
    """Whether ``uri`` names a Milvus Lite database (None, or a path ending in ``.db``)."""
    return uri is None or (not str(uri).startswith(_SCHEMES) and str(uri).endswith(".db"))


# Retrievers of this process per open Milvus Lite database: pymilvus runs one in-process Lite server
# per database path and shares it, so the last retriever to close it stops it.
_LITE_USERS: dict[str, int] = {}
_LITE_LOCK = threading.Lock()


def _lite_users(path: str) -> int:
    with _LITE_LOCK:
        return _LITE_USERS.get(path, 0)


def _release(state: dict[str, Any]) -> None:
    """Close the client, stop the Lite server of a database no other retriever uses, remove a copy."""
    client, state["client"] = state.get("client"), None
    if client is not None:
        with contextlib.suppress(Exception):  # closing never raises (it runs from a finalizer too)
            client.close()
    lite_path, state["lite_path"] = state.get("lite_path"), None
    if lite_path is not None:
        with _LITE_LOCK:
            users = _LITE_USERS.pop(lite_path, 1) - 1
            if users > 0:
                _LITE_USERS[lite_path] = users
        if users <= 0:
            with contextlib.suppress(Exception):
                from milvus_lite.server_manager import server_manager_instance

                server_manager_instance.release_server(lite_path)
    scratch, state["scratch"] = state.get("scratch"), None
    if scratch is not None:
        shutil.rmtree(scratch, ignore_errors=True)


class MilvusRetriever(Retriever):
    """Approximate (or exact) top-k in a Milvus collection; ``supports_add``.

    Args:
        metric: ``"ip"`` or ``"cosine"``.
        uri: None (a private Milvus Lite database), a Lite ``.db`` path, or a server URI
            (``http://host:19530``); build parameter.
        collection: collection name (default: ``items`` in Lite, ``zoo_<hex>`` on a server); build
            parameter. ``fit`` replaces a collection of that name.
        index_type: ``HNSW`` (default), ``IVF_FLAT`` or ``FLAT``; build parameter.
        M, efConstruction: HNSW graph degree and build candidate list; build parameters.
        nlist: IVF_FLAT lists; build parameter.
        ef: HNSW search candidate list (query parameter; raised to ``k``).
        nprobe: IVF_FLAT lists searched (query parameter).
    """

    name = "milvus"
    build_param_names = ("uri", "collection", "index_type", "M", "efConstruction", "nlist")
    query_param_names = ("ef", "nprobe")
    supports_add = True
    native_filters = True
    # Each filter expression is a search (a round trip): a batch of more per-query exclude-lists than
    # this is over-fetched in batched searches instead (Retriever._filtered_search).
    filter_batch_rows = 4
    max_search_k = MAX_TOPK

    def __init__(self, metric: str = "ip", **params: Any) -> None:
        super().__init__(metric, **params)
        for key in self.build_param_names:
            self.build_params.setdefault(key, DEFAULTS[key])
        for key in self.query_param_names:
            self.query_params.setdefault(key, DEFAULTS[key])
        uri = self.build_params["uri"]
        if uri is not None and (not isinstance(uri, str) or not (is_lite(uri) or uri.startswith(_SCHEMES))):
            raise UsageError(
                f"retriever 'milvus': uri must be a Milvus Lite path ending in .db or a server URI such as"
                f" http://127.0.0.1:19530, got {uri!r}"
            )
        collection = self.build_params["collection"]
        if collection is not None and (not isinstance(collection, str) or not _NAME.match(collection)):
            raise UsageError(
                "retriever 'milvus': collection must be a name of letters, digits and underscores starting"
                f" with a letter or underscore, got {collection!r}"
            )
        index_type = self.build_params["index_type"]
        if not isinstance(index_type, str) or index_type.upper() not in INDEX_TYPES:
            raise UsageError(
                f"retriever 'milvus': index_type must be one of {', '.join(INDEX_TYPES)}, got {index_type!r}"
            )
        self._index_type = index_type.upper()
        self._m = _int_param("M", self.build_params["M"], minimum=2)
        self._ef_construction = _int_param("efConstruction", self.build_params["efConstruction"], minimum=1)
        self._nlist = _int_param("nlist", self.build_params["nlist"], minimum=1)
        self._check_query_params()
        self._collection: str | None = collection
        self._lists = self._nlist  # IVF lists actually built (nlist, at most count / 39)
        self._lock = threading.Lock()
        self._state: dict[str, Any] = {"client": None, "lite_path": None, "scratch": None}
        self._finalizer = weakref.finalize(self, _release, self._state)

    @classmethod
    def backend_version(cls) -> str:
        versions = []
        for package in ("pymilvus", "milvus-lite"):
            with contextlib.suppress(importlib.metadata.PackageNotFoundError):  # a server-only install
                versions.append(f"{package} {importlib.metadata.version(package)}")
        return ", ".join(versions) or "pymilvus"

    # -- connection ---------------------------------------------------------------------------------
    @property
    def lite(self) -> bool:
        """The collection lives in a Milvus Lite database (else on a server)."""
        return is_lite(self.build_params["uri"])

    @property
    def collection_name(self) -> str | None:
        """The collection's name (None before the first ``fit``)."""
        return self._collection

    @property
    def client(self) -> MilvusClient:
        """The connected ``pymilvus.MilvusClient`` (opened on first use)."""
        client = self._state["client"]
        if client is None:
            with self._lock:
                client = self._state["client"] or self._open()
        return client

    def _open(self, lite_path: str | None = None) -> MilvusClient:
        uri = self.build_params["uri"]
        if self.lite:
            if lite_path is None:
                if uri is None:
                    self._state["scratch"] = tempfile.mkdtemp(prefix="zoo-milvus-")
                    lite_path = os.path.join(self._state["scratch"], LITE_FOLDER)
                else:
                    lite_path = os.path.abspath(uri)
            target = lite_path
        else:
            target = str(uri)
        try:
            client = MilvusClient(uri=target, token=os.environ.get(TOKEN_ENV, ""), dedicated=True)
        except ImportError as exc:  # pragma: no cover - pymilvus without milvus-lite
            raise UsageError(
                "retriever 'milvus': Milvus Lite is not installed: pip install \"recall-zoo[milvus]\", or"
                " pass a server as --param retriever.uri=http://host:19530"
            ) from exc
        except MilvusException as exc:
            where = f"Milvus Lite database {target}" if self.lite else f"Milvus server {target}"
            raise UsageError(
                f"retriever 'milvus': cannot open the {where} ({_reason(exc)}); is it running, and not"
                " open in another process?"
            ) from None
        self._state["client"] = client
        if self.lite:
            with _LITE_LOCK:
                _LITE_USERS[target] = _LITE_USERS.get(target, 0) + 1
            self._state["lite_path"] = target
        return client

    def close(self) -> None:
        """Disconnect; a Lite database this retriever opened is closed (a private one removed)."""
        _release(self._state)

    def drop_collection(self) -> None:
        """Delete the collection (on a server it outlives the retriever otherwise)."""
        if self._collection is not None and self.client.has_collection(self._collection):
            self.client.drop_collection(self._collection)

    # -- building ---------------------------------------------------------------------------------------
    def _index_params(self) -> Any:
        params = self.client.prepare_index_params()
        if self._index_type == "HNSW":
            build: dict[str, Any] = {"M": self._m, "efConstruction": self._ef_construction}
        elif self._index_type == "IVF_FLAT":
            build = {"nlist": self._lists}
        else:
            build = {}
        # pymilvus sends the parameters as flat keys (Milvus 2.4+); Milvus Lite reads the older nested
        # "params" key. Both carry the same values.
        nested = {"params": dict(build)} if build else {}
        params.add_index(
            field_name=VECTOR_FIELD, index_type=self._index_type, metric_type="IP", params={**build, **nested}
        )
        return params

    def _build(self, vectors: np.ndarray) -> None:
        client = self.client
        if self._collection is None:
            self._collection = LITE_COLLECTION if self.lite else f"zoo_{uuid.uuid4().hex[:16]}"
        name = self._collection
        try:
            if client.has_collection(name):
                client.drop_collection(name)
            schema = client.create_schema(auto_id=False, enable_dynamic_field=False)
            schema.add_field(ID_FIELD, DataType.INT64, is_primary=True)
            schema.add_field(VECTOR_FIELD, DataType.FLOAT_VECTOR, dim=int(vectors.shape[1]))
            client.create_collection(name, schema=schema)
            # faiss (inside Milvus Lite, and Milvus's knowhere) wants 39 training points per list
            self._lists = max(1, min(self._nlist, vectors.shape[0] // 39))
            # The index is created over the flushed data (IVF lists are trained on all of it) and
            # waited for, so that the first query already searches it.
            self._insert(vectors, 0)
            client.create_index(name, self._index_params())
            self._wait_for_index()
            client.load_collection(name)
        except MilvusException as exc:
            raise UsageError(
                f"retriever 'milvus': cannot build collection {name!r} ({_reason(exc)})"
            ) from None

    def _add(self, vectors: np.ndarray, start: int) -> None:
        self._insert(vectors, start)
        self._wait_for_index()

    def _insert(self, vectors: np.ndarray, start: int) -> None:
        ids = self._ids[start : start + vectors.shape[0]].tolist()
        for lo in range(0, vectors.shape[0], _INSERT_BATCH):
            rows = [
                {ID_FIELD: item, VECTOR_FIELD: vector}
                for item, vector in zip(
                    ids[lo : lo + _INSERT_BATCH], vectors[lo : lo + _INSERT_BATCH], strict=True
                )
            ]
            self.client.insert(self._collection, rows)
        self.client.flush(self._collection)

    def _wait_for_index(self) -> None:
        """Poll until the server reports every row indexed (bounded by :data:`INDEX_WAIT_S`)."""
        deadline = time.monotonic() + INDEX_WAIT_S
        pause = 0.05
        while True:
            state = self.client.describe_index(self._collection, VECTOR_FIELD)
            pending = int(state.get("pending_index_rows", 0) or 0)
            if pending == 0 and int(state.get("indexed_rows", 0) or 0) >= int(
                state.get("total_rows", 0) or 0
            ):
                return
            if time.monotonic() > deadline:
                raise UsageError(
                    f"retriever 'milvus': collection {self._collection!r} still has {pending} rows to index"
                    f" after {INDEX_WAIT_S:.0f} s; check the Milvus server"
                )
            time.sleep(pause)
            pause = min(pause * 2, 2.0)

    # -- searching --------------------------------------------------------------------------------------
    def _check_query_params(self) -> None:
        self._ef = _int_param("ef", self.query_params["ef"], minimum=1)
        self._nprobe = _int_param("nprobe", self.query_params["nprobe"], minimum=1)

    def _apply_query_params(self) -> None:
        self._check_query_params()

    def _search_params(self, k: int) -> dict[str, Any]:
        if self._index_type == "HNSW":
            params: dict[str, Any] = {"ef": max(self._ef, k)}
        elif self._index_type == "IVF_FLAT":
            params = {"nprobe": min(self._nprobe, self._lists)}
        else:
            params = {}
        return {"metric_type": "IP", "params": params}

    def _milvus_search(
        self, queries: np.ndarray, k: int, expression: str = ""
    ) -> tuple[np.ndarray, np.ndarray]:
        """Labels and scores [q, k] of one filtered (or not) search, -1 / -inf where Milvus returned fewer."""
        if k > MAX_TOPK:
            raise UsageError(
                f"retriever 'milvus': Milvus returns at most {MAX_TOPK} results per query, asked for {k}"
            )
        n_queries = queries.shape[0]
        labels = np.full((n_queries, k), -1, dtype=np.int64)
        scores = np.full((n_queries, k), -np.inf, dtype=np.float32)
        for lo in range(0, n_queries, _QUERY_BATCH):
            results = self.client.search(
                self._collection,
                data=queries[lo : lo + _QUERY_BATCH],
                limit=k,
                filter=expression,
                search_params=self._search_params(k),
                output_fields=[ID_FIELD],
            )
            for offset, hits in enumerate(results):
                found = len(hits)
                if not found:
                    continue
                ids = np.fromiter((hit["id"] for hit in hits), dtype=np.int64, count=found)
                row_labels, known = self.labels_of(ids)
                row_scores = np.fromiter((hit["distance"] for hit in hits), dtype=np.float32, count=found)
                kept = int(known.sum())
                labels[lo + offset, :kept] = row_labels[known]
                scores[lo + offset, :kept] = row_scores[known]
        return labels, scores

    def _search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        labels, scores = self._milvus_search(queries, k)
        short = np.flatnonzero((labels < 0).any(axis=1))
        if short.size:
            labels[short], scores[short] = self._exact(queries[short], k, np.arange(self.count))
        return labels, scores

    def _search_filtered(
        self, queries: np.ndarray, k: int, label_filter: LabelFilter
    ) -> tuple[np.ndarray, np.ndarray]:
        """A filter expression on the id field, one search per distinct list (one for a shared list)."""

        def search(group: np.ndarray, take: int, listed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            if listed.size == 0:  # an empty exclude-list: nothing to filter
                expression = ""
            else:
                ids = ", ".join(map(str, self._ids[listed].tolist()))
                expression = f"{ID_FIELD} {'in' if label_filter.allow else 'not in'} [{ids}]"
            found, found_scores = self._milvus_search(group, take, expression)
            short = np.flatnonzero((found < 0).any(axis=1))
            if short.size:
                passing = label_filter.passing(listed)
                found[short], found_scores[short] = self._exact(group[short], take, passing)
            return found, found_scores

        return label_filter.search_groups(queries, k, search)

    def _exact(self, queries: np.ndarray, k: int, candidates: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Exact top-k over the ``candidates`` labels, their vectors fetched from the collection."""
        vectors = self._fetch(candidates)
        block = queries @ vectors.T
        top = np.lexsort((np.broadcast_to(np.arange(block.shape[1]), block.shape), -block), axis=1)[:, :k]
        return candidates[top].astype(np.int64), np.take_along_axis(block, top, axis=1).astype(np.float32)

    def _fetch(self, labels: np.ndarray) -> np.ndarray:
        """The stored vectors of ``labels`` (as indexed: normalised for cosine), ``[len(labels), dim]``."""
        vectors = np.empty((labels.size, int(self.dim or 0)), dtype=np.float32)
        ids = self._ids[labels]
        for lo in range(0, ids.size, _FETCH_BATCH):
            chunk = ids[lo : lo + _FETCH_BATCH]
            rows = self.client.query(
                self._collection,
                filter=f"{ID_FIELD} in [{', '.join(map(str, chunk.tolist()))}]",
                output_fields=[ID_FIELD, VECTOR_FIELD],
            )
            got = {int(row[ID_FIELD]): row[VECTOR_FIELD] for row in rows}
            vectors[lo : lo + chunk.size] = [got[int(i)] for i in chunk]
        return vectors

    # -- files ---------------------------------------------------------------------------------------------
    def header(self) -> dict[str, Any]:
        header = super().header()
        header["milvus"] = {
            "mode": "lite" if self.lite else "server",
            "collection": self._collection,
            "uri": None if self.lite else self.build_params["uri"],
            "nlist": self._lists,
        }
        return header

    def _save_index(self, directory: Path) -> None:
        self.client.flush(self._collection)
        if not self.lite:
            return  # the header records the server's URI and the collection name
        lite_path = self._state["lite_path"]
        others = _lite_users(lite_path) - 1
        if others > 0:
            raise UsageError(
                f"retriever 'milvus': save() closes the Milvus Lite database {lite_path} to copy it, and"
                f" {others} other retriever(s) of this process have it open; close() them first"
            )
        with self._lock:  # close the database so that its files are complete, copy it, reopen it
            scratch, self._state["scratch"] = self._state["scratch"], None  # keep the folder
            _release(self._state)
            self._state["scratch"] = scratch
            try:
                with tarfile.open(directory / LITE_ARCHIVE, "w") as archive:
                    archive.add(lite_path, arcname=LITE_FOLDER)
            finally:
                client = self._open(lite_path)
        client.load_collection(self._collection)

    def _load_index(self, directory: Path) -> None:
        info = self.read_header(directory).get("milvus")
        if (
            not isinstance(info, dict)
            or info.get("mode") not in ("lite", "server")
            or not info.get("collection")
        ):
            raise ModelFileError(f"{directory}: the header has no valid 'milvus' section; rebuild the index")
        if (info["mode"] == "lite") != self.lite:
            raise ModelFileError(f"{directory}: the header's uri and Milvus mode disagree; rebuild the index")
        self._collection = str(info["collection"])
        lists = info.get("nlist", self._nlist)
        self._lists = lists if isinstance(lists, int) and lists >= 1 else self._nlist
        if self.lite:
            self._state["scratch"] = tempfile.mkdtemp(prefix="zoo-milvus-")
            _unpack(directory / LITE_ARCHIVE, Path(self._state["scratch"]))
            client = self._open(os.path.join(self._state["scratch"], LITE_FOLDER))
        else:
            client = self.client
        try:
            self._check_collection(client, directory)
            client.load_collection(self._collection)
        except BaseException:
            self.close()
            raise

    def _check_collection(self, client: MilvusClient, directory: Path) -> None:
        name = self._collection
        where = "the saved Milvus Lite database" if self.lite else f"Milvus server {self.build_params['uri']}"
        if not client.has_collection(name):
            raise ModelFileError(
                f"{directory}: collection {name!r} is missing from {where}; rebuild the index"
            )
        fields = {f["name"]: f for f in client.describe_collection(name).get("fields", [])}
        dim = (fields.get(VECTOR_FIELD) or {}).get("params", {}).get("dim")
        count = int(client.get_collection_stats(name).get("row_count", -1))
        if dim is None or int(dim) != self.dim or count != self.count:
            raise ModelFileError(
                f"{directory}: collection {name!r} in {where} holds {count} vectors of dimension {dim}, the"
                f" header says {self.count} of dimension {self.dim}; rebuild the index"
            )


def _reason(exc: BaseException) -> str:
    message = getattr(exc, "message", None) or str(exc)
    return " ".join(str(message).split())[:300]


def _unpack(archive_path: Path, target: Path) -> None:
    """Extract the Lite database archive into ``target`` (regular files and folders under one root only)."""
    try:
        with tarfile.open(archive_path, "r") as archive:
            members = archive.getmembers()
            for member in members:
                parts = Path(member.name).parts
                if (
                    not parts
                    or parts[0] != LITE_FOLDER
                    or ".." in parts
                    or Path(member.name).is_absolute()
                    or not (member.isfile() or member.isdir())
                ):
                    raise ModelFileError(
                        f"{archive_path}: unexpected entry {member.name!r}; rebuild the index"
                    )
            if hasattr(tarfile, "data_filter"):
                archive.extractall(target, members=members, filter="data")
            else:  # pragma: no cover - Python without extraction filters; members were checked above
                archive.extractall(target, members=members)  # noqa: S202
    except (tarfile.TarError, OSError) as exc:
        raise ModelFileError(
            f"{archive_path}: unreadable Milvus Lite archive ({exc}); rebuild the index"
        ) from exc
