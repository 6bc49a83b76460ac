"""The answers users bring to a bench: per model, the fastest setting that reaches a recall target,
per retriever and overall, the Pareto frontier, and each cell's speed-up over exact search."""

from __future__ import annotations

from typing import Any

from zoo.bench.pareto import fastest_at_recall, pareto_frontier

__all__ = ["baseline_qps", "done_cells", "point", "summarize"]


def done_cells(doc: dict[str, Any], model: str | None = None) -> list[dict[str, Any]]:
    return [
        c
        for c in doc.get("cells", [])
        if c.get("status") == "done" and (model is None or c.get("model") == model)
    ]


def point(cell: dict[str, Any], k: int) -> dict[str, Any] | None:
    """The measurement of ``cell`` at cut-off ``k`` (None when it was not measured)."""
    return cell.get("at", {}).get(str(k))


def recall_k(doc: dict[str, Any]) -> int:
    config = doc.get("config", {})
    if config.get("recall_k"):
        return int(config["recall_k"])
    ks = config.get("ks") or [10]
    return int(min(ks))


def baseline_qps(doc: dict[str, Any], model: str, k: int) -> float | None:
    """Queries/s of exact search for ``model`` at ``k``: the exact cell on the bench's device, else any."""
    exact = [c for c in done_cells(doc, model) if c.get("retriever") == "exact" and point(c, k)]
    if not exact:
        return None
    device = doc.get("config", {}).get("device_resolved")
    preferred = [c for c in exact if c.get("build", {}).get("device") == device] or exact
    return float(point(preferred[0], k)["qps"])


def _entry(cell: dict[str, Any], k: int) -> dict[str, Any]:
    measured = point(cell, k) or {}
    return {
        "cell": cell.get("id"),
        "retriever": cell.get("retriever"),
        "build": cell.get("build"),
        "query": cell.get("query"),
        "recall": measured.get("recall"),
        "qps": measured.get("qps"),
        "speedup": measured.get("speedup"),
        "latency_p50_ms": measured.get("latency_ms", {}).get("p50"),
    }


def summarize(doc: dict[str, Any]) -> dict[str, Any]:
    """Fill each cell's ``speedup`` and return the ``summary`` section (see :mod:`zoo.bench.schema`)."""
    config = doc.get("config", {})
    target = float(config.get("recall_target", 0.95))
    k_main = recall_k(doc)
    ks = [int(k) for k in config.get("ks", [k_main])]
    models = list(dict.fromkeys([*config.get("models", []), *(c.get("model") for c in doc.get("cells", []))]))
    summary: dict[str, Any] = {}
    for model in models:
        cells = done_cells(doc, model)
        for k in ks:
            base = baseline_qps(doc, model, k)
            for cell in cells:
                measured = point(cell, k)
                if measured is not None:
                    measured["speedup"] = (measured["qps"] / base) if base else None
        if not cells:
            continue
        measured_cells = [c for c in cells if point(c, k_main)]

        def recall(c: dict[str, Any]) -> float:
            return point(c, k_main)["recall"]

        def speed(c: dict[str, Any]) -> float:
            return point(c, k_main)["qps"]

        best = fastest_at_recall(measured_cells, target, recall=recall, speed=speed)
        per_retriever = {}
        for name in dict.fromkeys(c["retriever"] for c in measured_cells):
            own = [c for c in measured_cells if c["retriever"] == name]
            found = fastest_at_recall(own, target, recall=recall, speed=speed)
            best_recall = max(own, key=lambda c: (recall(c), speed(c)))
            per_retriever[name] = {
                "reaches_target": found is not None,
                "best": _entry(found, k_main) if found is not None else None,
                "highest_recall": _entry(best_recall, k_main),
                "cells": len(own),
            }
        frontier = pareto_frontier(measured_cells, x=recall, y=speed)
        summary[model] = {
            "recall_target": target,
            "recall_k": k_main,
            "best": _entry(best, k_main) if best is not None else None,
            "per_retriever": per_retriever,
            "frontier": [c["id"] for c in frontier],
        }
    return summary
