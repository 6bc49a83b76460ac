"""``zoo serve`` (issue "From a run to recommendations", item 3): the HTTP answers equal
``zoo recommend``'s, concurrent requests are micro-batched, bad requests get a one-line 4xx JSON error
(never a 500, also under fuzzing), and the real server on 127.0.0.1 shuts down gracefully."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from zoo_cli.main import build_app

pytest.importorskip("fastapi", reason='zoo serve needs FastAPI: pip install "recall-zoo[serve]"')
httpx = pytest.importorskip(
    "httpx", reason='the tests talk HTTP through httpx: pip install "recall-zoo[serve]"'
)

SMALL = ["--param", "data.users=150", "--param", "data.items=80", "--param", "data.categories=5",
         "--param", "embed_dim=8", "--param", "dims=16,8",
         "--epochs", "2", "--device", "cpu", "--quiet"]  # fmt: skip


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("serve") / "run"
    result = CliRunner().invoke(build_app(), ["run", "dssm", "-r", "hnsw", *SMALL, "--out", str(out)])
    assert result.exit_code == 0, result.stderr
    return out


@pytest.fixture(scope="module")
def recommender(run_dir: Path):
    from zoo.serving import Recommender

    return Recommender.load(run_dir)


@pytest.fixture
def client(recommender):
    from fastapi.testclient import TestClient

    from zoo.serving.app import create_app

    with TestClient(create_app(recommender), raise_server_exceptions=False) as test_client:
        yield test_client


def cli_recommend(run_dir: Path, user: str, k: int = 10) -> dict:
    result = CliRunner().invoke(
        build_app(), ["recommend", str(run_dir), "--user", user, "--k", str(k), "--format", "json"]
    )
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)[0]


def test_recommend_equals_zoo_recommend(client, recommender, run_dir: Path) -> None:
    for user in recommender.user_ids[:5]:
        answer = client.post("/recommend", json={"user_id": user, "k": 10})
        assert answer.status_code == 200, answer.text
        assert answer.json() == cli_recommend(run_dir, str(user))


def test_new_user_similar_items_health_and_metadata(client, recommender) -> None:
    history = recommender.item_ids[:3]
    answer = client.post("/recommend", json={"history": history, "k": 5, "features": {}})
    assert answer.status_code == 200, answer.text
    items = [entry["item_id"] for entry in answer.json()["items"]]
    assert len(items) == 5 and not set(items) & set(history)  # the given history is excluded
    expected = recommender.recommend_new(history=history, k=5)
    assert items == expected.items
    item = recommender.item_ids[0]
    similar = client.get(f"/items/{item}/similar", params={"k": 4}).json()
    assert len(similar["items"]) == 4 and item not in [e["item_id"] for e in similar["items"]]
    scores = [e["score"] for e in similar["items"]]
    assert scores == sorted(scores, reverse=True)
    assert client.get("/healthz").json() == {"status": "ok"}
    meta = client.get("/metadata").json()
    assert (meta["model"], meta["users"], meta["items"]) == (
        "dssm",
        recommender.num_users,
        recommender.num_items,
    )
    assert (
        client.get("/docs").status_code == 200 and "/recommend" in client.get("/openapi.json").json()["paths"]
    )


def test_filters(client, recommender) -> None:
    unknown = client.post("/recommend", json={"user_id": recommender.user_ids[0], "allow": ["no-such-item"]})
    assert unknown.status_code == 200 and "no-such-item" in unknown.json()["notes"][0]
    user = recommender.user_ids[0]
    allowed = recommender.item_ids[10:30]
    answer = client.post(
        "/recommend", json={"user_id": user, "k": 5, "allow": allowed, "exclude_seen": False}
    )
    assert answer.status_code == 200, answer.text
    assert {e["item_id"] for e in answer.json()["items"]} <= set(allowed)
    first = client.post("/recommend", json={"user_id": user, "k": 5}).json()["items"][0]["item_id"]
    answer = client.post("/recommend", json={"user_id": user, "k": 5, "exclude": [first]})
    assert first not in [e["item_id"] for e in answer.json()["items"]]


@pytest.mark.parametrize(
    ("request_kwargs", "status", "fragment"),
    [
        ({"json": {"user_id": "no-such-user"}}, 404, "is not one of the run's"),
        ({"json": {"user_id": 1, "k": 0}}, 422, "k: Input should be greater than or equal to 1"),
        ({"json": {"user_id": 1, "k": 100000}}, 422, "k: Input should be less than or equal to"),
        ({"json": {"user_id": 1, "colour": "red"}}, 422, "colour: Extra inputs are not permitted"),
        ({"json": {}}, 400, "give user_id"),
        ({"json": {"user_id": 1, "history": [1]}}, 400, "not both"),
        ({"json": {"features": {"no_such_feature": 1}}}, 400, "no_such_feature"),
        ({"content": b"{not json", "headers": {"content-type": "application/json"}}, 422, "JSON"),
    ],
)
def test_bad_requests_are_one_line_4xx(client, recommender, request_kwargs, status, fragment) -> None:
    body = request_kwargs.get("json")
    if isinstance(body, dict) and body.get("user_id") == 1:
        body["user_id"] = recommender.user_ids[0]
    answer = client.post("/recommend", **request_kwargs)
    assert answer.status_code == status, answer.text
    error = answer.json()["error"]
    assert fragment in error and "\n" not in error
    assert client.get("/items/no-such-item/similar").status_code == 404


def test_request_bodies_never_get_a_500(client) -> None:
    """Fuzzing the request body (issue "Nothing lost", item 8): a 4xx with a one-line error or a 200."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    values = st.recursive(
        st.one_of(
            st.none(),
            st.booleans(),
            st.integers(-(2**40), 2**40),
            st.floats(allow_nan=False, allow_infinity=False),  # JSON has no infinity
            st.text(max_size=5),
        ),
        lambda inner: st.one_of(
            st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=5), inner, max_size=3)
        ),
        max_leaves=8,
    )
    keys = st.sampled_from(["user_id", "features", "history", "k", "exclude_seen", "allow", "exclude", "x"])

    @settings(
        max_examples=80,
        deadline=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.function_scoped_fixture],
    )
    @given(body=st.one_of(st.dictionaries(keys, values, max_size=4), values))
    def check(body) -> None:
        answer = client.post("/recommend", json=body)
        assert answer.status_code < 500, answer.text
        if answer.status_code >= 400:
            assert "\n" not in answer.json()["error"]

    check()


def test_concurrent_requests_share_calls(recommender) -> None:
    from zoo.serving.app import create_app

    async def burst(batching: bool) -> tuple[list[dict], dict]:
        app = create_app(recommender, batching=batching, window_ms=20.0)
        transport = httpx.ASGITransport(app=app)
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=transport, base_url="http://t") as c,
        ):
            users = recommender.user_ids[:24]
            answers = await asyncio.gather(
                *(c.post("/recommend", json={"user_id": u, "k": 7}) for u in users)
            )
            meta = (await c.get("/metadata")).json()["batching"]
        return [a.json() for a in answers], meta

    batched, meta = asyncio.run(burst(True))
    alone, alone_meta = asyncio.run(burst(False))
    for together, single in zip(batched, alone, strict=True):  # batching changes how, not what
        assert [e["item_id"] for e in together["items"]] == [e["item_id"] for e in single["items"]]
        assert [e["score"] for e in together["items"]] == pytest.approx(
            [e["score"] for e in single["items"]], abs=1e-5
        )
    assert meta["requests"] == 24 and meta["calls"] < 24 / 2
    assert alone_meta["calls"] == 24


BODIES = [
    {"user_id": 0, "k": 7},
    {"user_id": 0, "k": 3, "exclude_seen": False, "exclude": [0]},
    {"history": [0, 1], "features": {}, "k": 4},
    {"user_id": "no-such-user"},
    {"user_id": 0, "k": 0},
    {"user_id": 0, "colour": "red"},
    {},
    "not an object",
]


def test_the_fast_path_answers_like_the_fastapi_route(recommender) -> None:
    """POST /recommend through the ASGI fast path and through FastAPI's route: same status, same JSON."""
    from fastapi.testclient import TestClient

    from zoo.serving.app import create_app

    def fill(body):
        if not isinstance(body, dict):
            return body
        body = dict(body)
        if body.get("user_id") == 0:
            body["user_id"] = recommender.user_ids[0]
        for key in ("history", "exclude"):
            if key in body:
                body[key] = [recommender.item_ids[i] for i in body[key]]
        return body

    answers = []
    for fast_path in (True, False):
        app = create_app(recommender, fast_path=fast_path)
        with TestClient(app, raise_server_exceptions=False) as test_client:
            sent = [test_client.post("/recommend", json=fill(body)) for body in BODIES]
            sent.append(
                test_client.post(
                    "/recommend", content=b"{not json", headers={"content-type": "application/json"}
                )
            )
            answers.append([(a.status_code, a.json()) for a in sent])
    fast, route = answers
    assert [status for status, _ in fast] == [200, 200, 200, 404, 422, 422, 400, 422, 422]
    for (fast_status, fast_json), (route_status, route_json) in zip(fast[:-2], route[:-2], strict=True):
        assert (fast_status, fast_json) == (route_status, route_json)
    for (_, fast_json), (_, route_json) in zip(fast[-2:], route[-2:], strict=True):
        # not an object / not JSON: the same one-line 422, worded by pydantic or by FastAPI's parser
        assert "\n" not in fast_json["error"] and "\n" not in route_json["error"]
    assert "JSON" in fast[-1][1]["error"] and "JSON" in route[-1][1]["error"]


@pytest.mark.parametrize("threaded", [True, False])
def test_micro_batches_are_first_in_first_out(threaded: bool) -> None:
    """Jobs are answered in arrival order, at most max_batch per call, each with its own answer."""
    from zoo.serving.batching import MicroBatcher

    calls: list[list[int]] = []

    def runner(payloads):
        calls.append(list(payloads))
        return [p * 10 for p in payloads]

    async def main() -> list[int]:
        batcher = MicroBatcher(window_s=0.05, max_batch=4, threaded=threaded)
        await batcher.start()
        try:
            first = await batcher.submit("g", -1, runner)  # a lone request: answered without the window
            started = time.monotonic()
            rest = await asyncio.gather(*(batcher.submit("g", i, runner) for i in range(10)))
            assert time.monotonic() - started < 5
            return [first, *rest]
        finally:
            await batcher.stop()

    answers = asyncio.run(main())
    assert answers == [-10, *[i * 10 for i in range(10)]]
    assert calls[0] == [-1] and [p for call in calls[1:] for p in call] == list(range(10))
    assert all(len(call) <= 4 for call in calls) and len(calls) <= 1 + 4


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_the_real_server_answers_like_zoo_recommend_and_stops_gracefully(run_dir: Path, recommender) -> None:
    port = free_port()
    command = [sys.executable, "-m", "zoo_cli.main", "serve", str(run_dir), "--host", "127.0.0.1"]
    command += ["--threads", "1"]
    server = subprocess.Popen(
        [*command, "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        else:
            pytest.fail(
                f"zoo serve did not start: {server.stderr.read() if server.poll() is not None else ''}"
            )
        user = recommender.user_ids[3]
        answer = httpx.post(f"http://127.0.0.1:{port}/recommend", json={"user_id": user, "k": 10}, timeout=30)
        assert answer.status_code == 200 and answer.json() == cli_recommend(run_dir, str(user))
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            code = server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            raise
    # uvicorn finishes its requests, shuts down, then re-raises the SIGTERM it caught (exit -15)
    errors = server.stderr.read()
    assert code in (0, -signal.SIGTERM) and "Traceback" not in errors, errors
