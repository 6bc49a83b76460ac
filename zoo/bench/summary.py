"""The answers users bring to a bench: per model, the fastest setting that reaches a recall target,
per retriever and overall, the Pareto frontier, each cell's speed-up over exact search, and the
caveats that should temper the answer.

Caveats (:func:`caveats`), shown beside the answer in every report:

* **small catalogue**: the catalogue has fewer than :data:`SMALL_CATALOGUE_ITEMS` items, or the
  answer is an index that is less than :data:`MIN_SPEEDUP` times as fast as exact search (batched
  users/s). Exact search is then cheap, loses no recall and needs no index, and the ranking of the
  retrievers can change on a catalogue of production size;
* **machine load**: in a run that measured cells, the 1-minute load average moved by at least
  :data:`LOAD_CHANGE` between its start and its end, or exceeded the usable cores at either end: other
  work competed for the CPU while the timings were taken.
"""

from __future__ import annotations

from typing import Any

from zoo.bench.pareto import fastest_at_recall, pareto_frontier

__all__ = [
    "baseline_cell",
    "baseline_qps",
    "caveat_lines",
    "caveats",
    "done_cells",
    "load_caveats",
    "point",
    "summarize",
]

#: below this many catalogue items an ANN index rarely pays off against exact search
SMALL_CATALOGUE_ITEMS = 100_000
#: an answer less than this many times exact search's users/s is not worth an index on its own
MIN_SPEEDUP = 2.0
#: a change of the 1-minute load average (runnable processes) this large during a run is noticeable
LOAD_CHANGE = 1.0


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


def baseline_cell(doc: dict[str, Any], model: str, k: int) -> dict[str, Any] | None:
    """The exact-search cell of ``model`` measured at ``k``: the one on the bench's device, else any."""
    exact = [c for c in done_cells(doc, model) if c.get("retriever") == "exact" and point(c, k)]
    if not exact:
        return None
    device = doc.get("config", {}).get("device_resolved")
    preferred = [c for c in exact if (c.get("build") or {}).get("device") == device] or exact
    return preferred[0]


def baseline_qps(doc: dict[str, Any], model: str, k: int) -> float | None:
    """Users/s of exact search for ``model`` at ``k`` (see :func:`baseline_cell`)."""
    cell = baseline_cell(doc, model, k)
    return None if cell is None else float(point(cell, k)["qps"])


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
        "latency_p50_ms": (measured.get("latency_ms") or {}).get("p50"),
        "latency_p99_ms": (measured.get("latency_ms") or {}).get("p99"),
    }


def _load(value: Any) -> float | None:
    """The 1-minute figure of a recorded load average (a list of three, or None)."""
    if isinstance(value, (list, tuple)) and value and isinstance(value[0], (int, float)):
        return float(value[0])
    return None


def load_caveats(doc: dict[str, Any]) -> list[str]:
    """One line per run that measured cells while the machine's load moved or exceeded its cores."""
    cores = (doc.get("machine") or {}).get("usable_cores")
    lines = []
    for run in doc.get("runs") or []:
        if not isinstance(run, dict) or run.get("cells_measured") == 0:
            continue
        start, end = _load(run.get("load_average_start")), _load(run.get("load_average_end"))
        if start is None or end is None:
            continue
        moved = abs(end - start) >= LOAD_CHANGE
        busy = isinstance(cores, (int, float)) and cores > 0 and max(start, end) > cores
        if not (moved or busy):
            continue
        why = [f"the 1-minute load average went from {start:g} to {end:g}"]
        if busy:
            why.append(f"above the {cores:g} usable cores")
        lines.append(
            f"Machine load: during the run started {run.get('started', '?')} "
            + ", ".join(why)
            + "; other work competed for the CPU, so timings (users/s, latency, build time) are noisy."
            " Rerun with --force on a quiet machine before trusting close calls."
        )
    return lines


def caveats(doc: dict[str, Any], model: str, best: dict[str, Any] | None) -> list[str]:
    """What should temper ``model``'s answer ``best`` (an entry of the summary): see the module docstring."""
    items = (doc.get("models", {}).get(model) or {}).get("items")
    small = isinstance(items, int) and 0 < items < SMALL_CATALOGUE_ITEMS
    speedup = (best or {}).get("speedup")
    index = best is not None and best.get("retriever") != "exact"
    slim = index and isinstance(speedup, (int, float)) and speedup < MIN_SPEEDUP
    lines = []
    if small or slim:
        reasons = []
        if small:
            reasons.append(
                f"the catalogue has {items:,} items (ANN indexes usually pay off from about"
                f" {SMALL_CATALOGUE_ITEMS:,})"
            )
        if slim:
            reasons.append(f"{best['retriever']} is only {speedup:.1f}x exact search's users/s")
        advice = (
            " Exact search returns the true top-K with no index to build or tune, and the ranking of the"
            " retrievers can change on a catalogue of production size: bench on one before choosing."
        )
        subject = f"{best['retriever']} may not be worth an index" if index else "an index may not pay off"
        heading = "Small catalogue" if small else "Small speed-up"
        lines.append(f"{heading} ({model}): {subject} here: " + " and ".join(reasons) + "." + advice)
    return lines + load_caveats(doc)


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
        exact = baseline_cell(doc, model, k_main)
        answer = _entry(best, k_main) if best is not None else None
        summary[model] = {
            "recall_target": target,
            "recall_k": k_main,
            "best": answer,
            "exact": _entry(exact, k_main) if exact is not None else None,
            "per_retriever": per_retriever,
            "frontier": [c["id"] for c in frontier],
            "caveats": caveats(doc, model, answer),
        }
    return summary


def caveat_lines(doc: dict[str, Any]) -> list[str]:
    """The caveats of every model's answer in ``doc["summary"]`` (recomputed when absent), each once,
    the machine's load last."""
    load = load_caveats(doc)
    lines: list[str] = []
    for model, info in (doc.get("summary") or {}).items():
        if not isinstance(info, dict):
            continue
        found = info.get("caveats")
        if not isinstance(found, list):
            found = caveats(doc, model, info.get("best"))
        lines += [str(line) for line in found if line not in load]
    return list(dict.fromkeys(lines + load))
