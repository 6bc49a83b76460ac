"""``zoo serve``: a run's recommendations over HTTP (FastAPI), micro-batched.

Endpoints: ``POST /recommend`` (a known user by id, or a new user's features and history; ``k``,
``exclude_seen``, optional ``allow`` / ``exclude`` item lists), ``GET /items/{item_id}/similar``,
``GET /healthz``, ``GET /metadata``, and the OpenAPI docs at ``/docs``. The run is loaded once
(:class:`~zoo.serving.recommender.Recommender`); concurrent requests share tower calls and index
queries (:class:`~zoo.serving.batching.MicroBatcher`) on one worker thread, and known users' vectors
are computed once at start-up. ``POST /recommend``, the hot path, is answered by a small ASGI middleware
(:class:`RecommendFastPath`) with the route's validation, answer and errors. A bad request gets a 4xx
with a one-line JSON ``{"error": ...}``, never a 500.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from zoo._version import __version__
from zoo.errors import UsageError, ZooError
from zoo.serving.batching import MicroBatcher

MAX_K = 1000


class RecommendRequest(BaseModel):
    """``POST /recommend``: either ``user_id`` (a user the run knows) or ``features`` / ``history``
    (a new user: side features by name, items oldest first)."""

    model_config = ConfigDict(extra="forbid")

    user_id: str | int | None = Field(None, description="original id of a known user")
    features: dict[str, str | int | float] | None = Field(None, description="a new user's side features")
    history: list[str | int] | None = Field(None, description="a new user's items, oldest first")
    k: int = Field(10, ge=1, le=MAX_K, description="how many items")
    exclude_seen: bool = Field(True, description="leave out the items the user already has")
    allow: list[str | int] | None = Field(None, description="recommend only among these items")
    exclude: list[str | int] | None = Field(None, description="never recommend these items")


class RankedItem(BaseModel):
    rank: int
    item_id: Any
    score: float
    metadata: dict[str, Any]


class RecommendResponse(BaseModel):
    user: Any
    items: list[RankedItem]
    notes: list[str]


class NotFound(UsageError):
    """A user or item the run does not know (HTTP 404)."""


def create_app(
    recommender: Any,
    *,
    batching: bool = True,
    window_ms: float = 2.0,
    max_batch: int = 64,
    threaded: bool = True,
    fast_path: bool = True,
) -> FastAPI:
    """The FastAPI app over a loaded :class:`~zoo.serving.recommender.Recommender`.

    Known users' vectors are computed at start-up (the lifespan's first step), so a request for a known
    user runs no tower. ``threaded`` runs the recommender on one worker thread, else on the event loop
    (:class:`~zoo.serving.batching.MicroBatcher`). ``fast_path`` answers ``POST /recommend`` in a
    small ASGI middleware (:class:`RecommendFastPath`) instead of FastAPI's request machinery: the same
    validation, answer and errors, less work per request.
    """
    batcher = MicroBatcher(
        window_s=window_ms / 1000.0, max_batch=max_batch, batching=batching, threaded=threaded
    )
    item_ids = recommender.item_ids
    item_row = {str(item): row for row, item in enumerate(item_ids)}
    user_ids = {str(user): user for user in recommender.user_ids}
    code_row = {int(code): row for row, code in enumerate(recommender.catalogue.tolist())}

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> Any:
        recommender.known_user_vectors()  # every known user through the tower once, in batches
        await batcher.start()
        yield
        await batcher.stop()

    app = FastAPI(
        title="recall-zoo",
        version=__version__,
        description=(
            f"Recommendations from the run {recommender.run_dir.name}"
            f" (model {recommender.model.registry_name})"
        ),
        lifespan=lifespan,
    )

    @app.exception_handler(ZooError)
    async def zoo_error(request: Request, exc: ZooError) -> JSONResponse:
        return JSONResponse({"error": exc.message}, status_code=404 if isinstance(exc, NotFound) else 400)

    @app.exception_handler(RequestValidationError)
    async def bad_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"error": validation_message(exc.errors())}, status_code=422)

    def known(payloads: Sequence[dict[str, Any]]) -> list[bytes]:
        """One call for a group of known users (same options; the largest k, each cut to its own)."""
        options = payloads[0]["options"]
        k = max(p["k"] for p in payloads)
        recs = recommender.recommend([p["user_id"] for p in payloads], k=k, **options)
        return [_json_bytes(_cut(rec, p["k"]).to_dict()) for rec, p in zip(recs, payloads, strict=True)]

    def new(payloads: Sequence[dict[str, Any]]) -> list[bytes]:
        options = payloads[0]["options"]
        k = max(p["k"] for p in payloads)
        users = [{"features": p["features"], "history": p["history"]} for p in payloads]
        recs = recommender.recommend_new_batch(users, k=k, **options)
        return [_json_bytes(_cut(rec, p["k"]).to_dict()) for rec, p in zip(recs, payloads, strict=True)]

    def similar_items(payloads: Sequence[tuple[int, int]]) -> list[bytes]:
        """One index query for a group of items (the largest k, each cut to its own)."""
        rows = [row for row, _ in payloads]
        k = max(k for _, k in payloads)
        codes, scores = recommender.retriever.query(recommender.item_matrix()[rows], k + 1)
        answers = []
        for (row, k_row), item_codes, item_scores in zip(payloads, codes, scores, strict=True):
            pairs = [
                (code_row[int(c)], float(s)) for c, s in zip(item_codes, item_scores, strict=True) if c >= 0
            ]
            pairs = [(r, s) for r, s in pairs if r != row][:k_row]
            metadata = recommender.items.metadata([r for r, _ in pairs])
            answers.append(_json_bytes({
                "user": None,
                "items": [{"rank": rank, "item_id": item_ids[r], "score": s, "metadata": meta}
                          for rank, ((r, s), meta) in enumerate(zip(pairs, metadata, strict=True), start=1)],
                "notes": [],
            }))  # fmt: skip
        return answers

    async def answer(body: RecommendRequest) -> bytes:
        """The JSON answer to a validated ``POST /recommend`` body (ZooError for a bad one)."""
        if body.k > recommender.num_items:
            raise UsageError(f"k={body.k}: the catalogue has only {recommender.num_items} items")
        options = {
            "exclude_seen": body.exclude_seen,
            "allow": body.allow,
            "exclude": body.exclude,
        }
        key_options = (body.exclude_seen, _frozen(body.allow), _frozen(body.exclude))
        if body.user_id is not None:
            if body.features is not None or body.history is not None:
                raise UsageError(
                    "give either user_id (a known user) or features/history (a new user), not both"
                )
            user = user_ids.get(str(body.user_id))  # JSON may send "42" for 42 or the reverse
            if user is None:
                raise NotFound(f"user {body.user_id!r} is not one of the run's {recommender.num_users} users")
            payload = {"user_id": user, "k": body.k, "options": options}
            return await batcher.submit(("known", key_options), payload, known)
        else:
            if body.features is None and body.history is None:
                raise UsageError("give user_id (a known user) or features and/or history (a new user)")
            payload = {"features": body.features or {}, "history": body.history or [], "k": body.k,
                       "options": options}  # fmt: skip
            return await batcher.submit(("new", key_options), payload, new)

    @app.post("/recommend", response_model=RecommendResponse, summary="Top-K items for a user")
    async def recommend(body: RecommendRequest) -> Response:
        return _json(await answer(body))

    @app.get("/items/{item_id}/similar", response_model=RecommendResponse, summary="Items like an item")
    async def similar(item_id: str, k: int = Query(10, ge=1, le=MAX_K)) -> Response:
        row = item_row.get(item_id)
        if row is None:
            raise NotFound(f"item {item_id!r} is not in the run's catalogue ({recommender.num_items} items)")
        k = min(k, recommender.num_items - 1)
        return _json(await batcher.submit(("similar",), (row, k), similar_items))

    if fast_path:
        app.add_middleware(RecommendFastPath, answer=answer)

    @app.get("/healthz", summary="Liveness")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/metadata", summary="What this service serves")
    async def metadata() -> dict[str, Any]:
        model = recommender.model
        return {
            "run": str(recommender.run_dir),
            "model": model.registry_name,
            "family": model.family,
            "users": recommender.num_users,
            "items": recommender.num_items,
            "dimension": int(recommender.item_vectors.shape[1]),
            "interests": int(getattr(model, "num_interests", 1)),
            "retriever": getattr(recommender.retriever, "name", type(recommender.retriever).__name__),
            "features": recommender.feature_names,
            "protocol": recommender.protocol.name,
            "batching": {"enabled": batcher.batching, "window_ms": batcher.window_s * 1000,
                         "max_batch": batcher.max_batch, "calls": batcher.calls, "requests": batcher.jobs,
                         "worker": "thread" if batcher.threaded else "event loop"},
            "recall_zoo": __version__,
        }  # fmt: skip

    return app


class RecommendFastPath:
    """ASGI middleware that answers ``POST /recommend`` itself: it reads the body, validates it with
    :class:`RecommendRequest` (pydantic, straight from the JSON bytes) and awaits the same ``answer``
    as the FastAPI route, which stays for the OpenAPI documentation. Errors are the route's: 422 with
    :func:`validation_message`, 404 / 400 for a ZooError; anything else goes on to FastAPI's handlers.
    """

    def __init__(self, app: Any, answer: Any) -> None:
        self.app = app
        self.answer = answer

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] != "/recommend" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        chunks = []
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        status = 200
        try:
            content = await self.answer(RecommendRequest.model_validate_json(b"".join(chunks)))
        except ValidationError as exc:
            status, content = 422, _json_bytes({"error": validation_message(exc.errors())})
        except ZooError as exc:
            status = 404 if isinstance(exc, NotFound) else 400
            content = _json_bytes({"error": exc.message})
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(content)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": content})


def validation_message(errors: Sequence[Any]) -> str:
    """One line for a request that failed validation: where (``k``, ``features.age``) and why."""
    first = errors[0] if errors else {}
    where = ".".join(str(part) for part in first.get("loc", ()) if part != "body") or "body"
    message = " ".join(str(first.get("msg", "invalid request")).split())
    return f"{where}: {message}"


def _json_bytes(content: Any) -> bytes:
    return json.dumps(content, separators=(",", ":")).encode()


def _json(content: bytes) -> Response:
    """A JSON response written directly (the route's ``response_model`` documents it; FastAPI does not
    validate a ``Response`` again)."""
    return Response(content, media_type="application/json")


def _frozen(values: list[Any] | None) -> tuple[Any, ...] | None:
    return None if values is None else tuple(values)


def _cut(rec: Any, k: int) -> Any:
    rec.items, rec.scores, rec.metadata = rec.items[:k], rec.scores[:k], rec.metadata[:k]
    return rec


def serve(
    run_dir: str,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    retriever: str | None = None,
    batching: bool = True,
    window_ms: float = 2.0,
    max_batch: int = 64,
    threads: int | None = None,
    threaded: bool = True,
    log_level: str = "warning",
) -> None:
    """Load ``run_dir`` once and serve it with uvicorn until interrupted (SIGINT/SIGTERM: graceful).

    ``threads``: torch's threads for the towers and exact ranking (default: the usable cores less the
    one the event loop needs, at least 1).
    """
    import torch
    import uvicorn

    from zoo.serving.recommender import Recommender

    torch.set_num_threads(threads or default_threads())
    recommender = Recommender.load(run_dir, retriever=retriever)
    app = create_app(
        recommender, batching=batching, window_ms=window_ms, max_batch=max_batch, threaded=threaded
    )
    uvicorn.run(app, host=host, port=port, log_level=log_level)


def default_threads() -> int:
    """Torch threads for serving: the usable cores less one for the event loop (HTTP parsing, JSON)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not on Linux
        cores = os.cpu_count() or 1
    return max(1, cores - 1)
