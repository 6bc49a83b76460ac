"""The ``milvus`` retriever: the conformance suite embedded (Milvus Lite) and against a Milvus server,
plus Milvus-specific checks.

The server is Milvus Lite's own gRPC server (``python -m milvus_lite server``) on a free port of
127.0.0.1, started once per session by :func:`milvus_server` and terminated at the end: the very
client code that talks to a Milvus standalone or cluster talks to it.
"""

from __future__ import annotations

import importlib.util
import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from zoo.errors import ModelFileError, UsageError
from zoo.registry import create_retriever
from zoo.retrieval.base import HEADER_FILE
from zoo.testing.retrievers import (
    RetrieverConformance,
    brute_force_topk,
    filtered_topk,
    make_vectors,
    recall_at_k,
)

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("pymilvus") is None or importlib.util.find_spec("milvus_lite") is None,
    reason='pymilvus / milvus-lite not installed (pip install "recall-zoo[milvus]")',
)

SERVER_START_S = 60.0
_SERVER: dict[str, str] = {}  # the session server's URI, for the suite's make_retriever


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until_answering(uri: str, process: subprocess.Popen[bytes], log: Path) -> None:
    """Poll the server (a bounded number of tries) until a client call succeeds."""
    from pymilvus import MilvusClient

    deadline = time.monotonic() + SERVER_START_S
    last: Exception | None = None
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"milvus_lite server exited with {process.returncode}: {log.read_text()[-2000:]}"
            )
        try:
            client = MilvusClient(uri=uri, timeout=5, dedicated=True)
            try:
                client.list_collections()
                return
            finally:
                client.close()
        except Exception as exc:  # noqa: BLE001 - not up yet
            last = exc
            time.sleep(0.5)
    raise RuntimeError(f"milvus_lite server did not answer at {uri} within {SERVER_START_S}s ({last})")


@pytest.fixture(scope="session")
def milvus_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Milvus Lite gRPC server on 127.0.0.1:<free port> over its own data folder (one process may
    open a Lite folder at a time), for the whole session; terminated at the end."""
    folder = tmp_path_factory.mktemp("milvus-server")
    log = folder / "server.log"
    port = free_port()
    command = [sys.executable, "-m", "milvus_lite", "server", "--data-dir", str(folder / "data")]
    command += ["--host", "127.0.0.1", "--port", str(port)]
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    uri = f"http://127.0.0.1:{port}"
    try:
        wait_until_answering(uri, process, log)
        _SERVER["uri"] = uri
        yield uri
    finally:
        _SERVER.pop("uri", None)
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=15)


# -- conformance ---------------------------------------------------------------------------------------------
class TestMilvusLiteConformance(RetrieverConformance):
    """Embedded: every retriever opens its own Milvus Lite database (the default, ``uri=None``)."""

    retriever_name = "milvus"
    params = {"ef": 128, "M": 16, "efConstruction": 100}
    recall_floor = 0.95
    n_items = 1000
    n_queries = 100
    filter_queries = 24
    deterministic_params = {}


@pytest.mark.usefixtures("milvus_server")
class TestMilvusServerConformance(RetrieverConformance):
    """The same suite against a Milvus server over gRPC (each retriever its own collection)."""

    retriever_name = "milvus"
    params = {"ef": 128, "M": 16, "efConstruction": 100}
    recall_floor = 0.95
    n_items = 1000
    n_queries = 100
    filter_queries = 24

    def make_retriever(self, metric: str = "ip", **params: Any) -> Any:
        return create_retriever("milvus", metric=metric, **{**self.params, "uri": _SERVER["uri"], **params})


# -- milvus specifics ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(("index_type", "params"), [("FLAT", {}), ("IVF_FLAT", {"nlist": 16, "nprobe": 16})])
def test_exact_index_types_equal_brute_force(index_type: str, params: dict[str, Any]) -> None:
    items = make_vectors(800, 16, 1)
    queries = np.array(make_vectors(30, 16, 2))
    retriever = create_retriever("milvus", index_type=index_type, **params).fit(items)
    truth, truth_scores = brute_force_topk(items, queries, 10)
    ids, scores = retriever.query(queries, 10)
    assert recall_at_k(ids, truth) == 1.0  # FLAT, and IVF_FLAT probing every list, are exact
    np.testing.assert_allclose(scores, truth_scores, rtol=1e-4, atol=1e-4)
    allow = [truth[row, 3:8].tolist() + [int(truth[row, 0])] for row in range(len(queries))]
    ids, _ = retriever.query(queries, 10, allow=allow)
    np.testing.assert_array_equal(ids, filtered_topk(items, queries, 10, allow=allow))
    retriever.close()


def test_nprobe_and_ef_change_answers_without_rebuild() -> None:
    items = make_vectors(3000, 16, 11)  # isotropic noise: hard for any index, so parameters show
    queries = np.array(make_vectors(60, 16, 12))
    truth, _ = brute_force_topk(items, queries, 10)
    ivf = create_retriever("milvus", index_type="IVF_FLAT", nlist=64, nprobe=1).fit(items)
    low = recall_at_k(ivf.query(queries, 10)[0], truth)
    high = recall_at_k(ivf.set_query_params(nprobe=64).query(queries, 10)[0], truth)
    assert high == 1.0 and low < 0.5
    hnsw = create_retriever("milvus", M=4, efConstruction=8, ef=1).fit(items)
    ids, _ = hnsw.query(queries, 50)  # ef is raised to k, as Milvus requires: every row is full
    assert (ids >= 0).all()
    low = recall_at_k(hnsw.query(queries, 10)[0], truth)
    assert recall_at_k(hnsw.set_query_params(ef=256).query(queries, 10)[0], truth) > max(low, 0.9)
    ivf.close()
    hnsw.close()


def test_cosine_and_ip_scores() -> None:
    items = make_vectors(500, 16, 4, spread_norms=True)
    queries = np.array(make_vectors(20, 16, 5))
    for metric in ("ip", "cosine"):
        retriever = create_retriever("milvus", metric=metric, index_type="FLAT").fit(items)
        truth, truth_scores = brute_force_topk(items, queries, 10, metric)
        ids, scores = retriever.query(queries, 10)
        np.testing.assert_array_equal(ids, truth)
        np.testing.assert_allclose(scores, truth_scores, rtol=1e-4, atol=1e-4 * np.abs(truth_scores).max())


def test_lite_file_uri_and_lite_save_layout(tmp_path: Path) -> None:
    items = make_vectors(300, 8, 6)
    queries = np.array(make_vectors(10, 8, 7))
    retriever = create_retriever("milvus", uri=str(tmp_path / "items.db"), collection="catalogue").fit(items)
    assert retriever.lite and retriever.collection_name == "catalogue"
    assert (tmp_path / "items.db").is_dir()  # Milvus Lite keeps a folder at the .db path
    # a second retriever of this process on the same file shares its server; save() needs it alone
    other = create_retriever("milvus", uri=str(tmp_path / "items.db"), collection="other").fit(items[:50])
    with pytest.raises(UsageError, match="close"):
        retriever.save(tmp_path / "index")
    other.close()
    folder = retriever.save(tmp_path / "index")
    assert sorted(p.name for p in folder.iterdir()) == ["ids.npy", "index.json", "milvus.db.tar"]
    header = json.loads((folder / HEADER_FILE).read_text())
    assert header["milvus"] == {"mode": "lite", "collection": "catalogue", "uri": None, "nlist": 7}
    loaded = type(retriever).load(folder)  # a private copy: the saved folder is never written to
    loaded.add(make_vectors(5, 8, 8), ids=np.arange(1000, 1005))
    assert loaded.count == 305 and retriever.count == 300
    np.testing.assert_array_equal(loaded.query(queries, 5)[0], retriever.query(queries, 5)[0])
    assert type(retriever).load(folder).count == 300
    retriever.close()
    loaded.close()


def test_server_save_records_the_collection(milvus_server: str, tmp_path: Path) -> None:
    items = make_vectors(400, 8, 9)
    queries = np.array(make_vectors(10, 8, 10))
    retriever = create_retriever("milvus", uri=milvus_server).fit(items, ids=np.arange(400) * 2 + 1)
    folder = retriever.save(tmp_path / "index")
    assert sorted(p.name for p in folder.iterdir()) == ["ids.npy", "index.json"]
    header = json.loads((folder / HEADER_FILE).read_text())
    expected = {"mode": "server", "collection": retriever.collection_name, "uri": milvus_server, "nlist": 10}
    assert header["milvus"] == expected
    loaded = type(retriever).load(folder)
    np.testing.assert_array_equal(loaded.query(queries, 7)[0], retriever.query(queries, 7)[0])
    retriever.drop_collection()
    with pytest.raises(ModelFileError, match="missing"):
        type(retriever).load(folder)


def test_unreachable_server_is_a_usage_error() -> None:
    retriever = create_retriever("milvus", uri=f"http://127.0.0.1:{free_port()}")
    with pytest.raises(UsageError, match="cannot open the Milvus server"):
        retriever.fit(make_vectors(10, 4, 0))


def test_params_validated() -> None:
    for bad in (
        {"index_type": "IVF_PQ"},
        {"M": 1},
        {"efConstruction": 0},
        {"nlist": 0},
        {"ef": 0},
        {"nprobe": True},
        {"uri": "items.sqlite"},
        {"collection": "1 bad name"},
    ):
        with pytest.raises(UsageError):
            create_retriever("milvus", **bad)
    retriever = create_retriever("milvus", index_type="FLAT").fit(make_vectors(20, 4, 0))
    with pytest.raises(UsageError, match="ef"):
        retriever.set_query_params(ef=0)
    assert retriever.query_params == {"ef": 64, "nprobe": 16}
    with pytest.raises(UsageError, match="16384"):  # Milvus's topk limit (reached above 16384 items)
        retriever._milvus_search(np.array(make_vectors(1, 4, 1)), 20000)
    retriever.close()


def test_close_releases_the_private_database() -> None:
    from milvus_lite.server_manager import server_manager_instance

    retriever = create_retriever("milvus", index_type="FLAT").fit(make_vectors(20, 4, 0))
    path = retriever._state["lite_path"]
    scratch = Path(retriever._state["scratch"])
    assert path in server_manager_instance._servers and scratch.is_dir()
    retriever.close()
    assert path not in server_manager_instance._servers and not scratch.exists()
    del retriever  # closing twice (the finalizer) is harmless
