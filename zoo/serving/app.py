"""``zoo serve``: a run's recommendations over HTTP (FastAPI), micro-batched.

Endpoints: ``POST /recommend`` (a known user by id, or a new user's features and history; ``k``,
``exclude_seen``, optional ``allow`` / ``exclude`` item lists), ``GET /items/{item_id}/similar``,
``GET /healthz``, ``GET /metadata``, and the OpenAPI docs at ``/docs``. The run is loaded once
(:class:`~zoo.serving.recommender.Recommender`); concurrent requests share tower calls and index
queries (:class:`~zoo.serving.batching.MicroBatcher`). A bad request gets a 4xx with a one-line JSON
``{"error": ...}``, never a 500.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

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
    recommender: Any, *, batching: bool = True, window_ms: float = 2.0, max_batch: int = 64
) -> FastAPI:
    """The FastAPI app over a loaded :class:`~zoo.serving.recommender.Recommender`."""
    batcher = MicroBatcher(window_s=window_ms / 1000.0, max_batch=max_batch, batching=batching)
    item_ids = recommender.item_ids
    item_row = {str(item): row for row, item in enumerate(item_ids)}
    user_ids = {str(user): user for user in recommender.user_ids}
    code_row = {int(code): row for row, code in enumerate(recommender.catalogue.tolist())}

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> Any:
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
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(part) for part in first.get("loc", ()) if part != "body") or "body"
        message = " ".join(str(first.get("msg", "invalid request")).split())
        return JSONResponse({"error": f"{where}: {message}"}, status_code=422)

    def known(payloads: Sequence[dict[str, Any]]) -> list[Any]:
        """One call for a group of known users (same options; the largest k, each cut to its own)."""
        options = payloads[0]["options"]
        k = max(p["k"] for p in payloads)
        recs = recommender.recommend([p["user_id"] for p in payloads], k=k, **options)
        return [_cut(rec, p["k"]) for rec, p in zip(recs, payloads, strict=True)]

    def new(payloads: Sequence[dict[str, Any]]) -> list[Any]:
        options = payloads[0]["options"]
        k = max(p["k"] for p in payloads)
        users = [{"features": p["features"], "history": p["history"]} for p in payloads]
        recs = recommender.recommend_new_batch(users, k=k, **options)
        return [_cut(rec, p["k"]) for rec, p in zip(recs, payloads, strict=True)]

    @app.post("/recommend", response_model=RecommendResponse, summary="Top-K items for a user")
    async def recommend(body: RecommendRequest) -> dict[str, Any]:
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
            rec = await batcher.submit(("known", key_options), payload, known)
        else:
            if body.features is None and body.history is None:
                raise UsageError("give user_id (a known user) or features and/or history (a new user)")
            payload = {"features": body.features or {}, "history": body.history or [], "k": body.k,
                       "options": options}  # fmt: skip
            rec = await batcher.submit(("new", key_options), payload, new)
        return rec.to_dict()

    @app.get("/items/{item_id}/similar", response_model=RecommendResponse, summary="Items like an item")
    async def similar(item_id: str, k: int = Query(10, ge=1, le=MAX_K)) -> dict[str, Any]:
        row = item_row.get(item_id)
        if row is None:
            raise NotFound(f"item {item_id!r} is not in the run's catalogue ({recommender.num_items} items)")
        k = min(k, recommender.num_items - 1)
        vectors = recommender.item_matrix()[row : row + 1]
        codes, scores = recommender.retriever.query(vectors, k + 1)
        pairs = [(code_row[int(c)], float(s)) for c, s in zip(codes[0], scores[0], strict=True) if c >= 0]
        pairs = [(r, s) for r, s in pairs if r != row][:k]
        rows = [r for r, _ in pairs]
        return {
            "user": None,
            "items": [
                {"rank": rank, "item_id": item_ids[r], "score": s, "metadata": meta}
                for rank, ((r, s), meta) in enumerate(
                    zip(pairs, recommender.items.metadata(rows), strict=True), start=1
                )
            ],
            "notes": [],
        }

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
                         "max_batch": batcher.max_batch, "calls": batcher.calls, "requests": batcher.jobs},
            "recall_zoo": __version__,
        }  # fmt: skip

    return app


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
    log_level: str = "warning",
) -> None:
    """Load ``run_dir`` once and serve it with uvicorn until interrupted (SIGINT/SIGTERM: graceful)."""
    import uvicorn

    from zoo.serving.recommender import Recommender

    recommender = Recommender.load(run_dir, retriever=retriever)
    app = create_app(recommender, batching=batching, window_ms=window_ms, max_batch=max_batch)
    uvicorn.run(app, host=host, port=port, log_level=log_level)
