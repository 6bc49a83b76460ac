"""The bench document on disk: opening (or resuming) ``bench.json`` and naming its cells."""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
from pathlib import Path
from typing import Any

from zoo.bench.grid import canonical
from zoo.bench.schema import BENCH_FILE, FINGERPRINT_KEYS, load_document, new_document
from zoo.errors import UsageError


def now() -> str:
    """The current UTC time, ISO-8601 to the second."""
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def cell_key(model: str, retriever: str, build: dict[str, Any], query: dict[str, Any]) -> str:
    """The stable identity of a cell: model, retriever, build and query settings."""
    return f"{model}|{retriever}|{canonical(build)}|{canonical(query)}"


def cell_id(key: str) -> str:
    """A short hash of a cell key (scratch folder names, report anchors)."""
    return hashlib.sha1(key.encode()).hexdigest()[:12]


def open_document(out: Path, config: Any) -> dict[str, Any]:
    """The existing ``bench.json`` when it can be resumed, else a fresh document."""
    path = out / BENCH_FILE
    fresh = config.to_dict()
    if config.force or not path.exists():
        doc = new_document()
        doc["created"] = now()
        doc["config"] = fresh
        return doc
    doc = load_document(path)
    previous = doc.get("config", {})
    differing = [
        key for key in FINGERPRINT_KEYS + ("ks",) if _jsonable(previous.get(key)) != _jsonable(fresh.get(key))
    ]
    if differing:
        details = "; ".join(f"{k}: {previous.get(k)!r} then, {fresh.get(k)!r} now" for k in differing)
        raise UsageError(
            f"{path} holds a bench with other settings ({details}); pass --force to measure everything again"
            " there, or --out NEW_FOLDER"
        )
    # Union of models and retrievers over the runs (the report shows every measured cell).
    for key in ("models", "retrievers"):
        fresh[key] = list(dict.fromkeys([*previous.get(key, []), *fresh[key]]))
    doc["config"] = fresh
    return doc


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))
