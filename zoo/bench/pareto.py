"""Recall-vs-speed trade-offs: the Pareto frontier and the fastest setting that reaches a recall target."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

T = TypeVar("T")

__all__ = ["fastest_at_recall", "pareto_frontier"]


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def pareto_frontier(points: Iterable[T], *, x: Callable[[T], float], y: Callable[[T], float]) -> list[T]:
    """The points not dominated by another (higher-or-equal ``x`` and ``y``, one strictly higher).

    Both axes are higher-is-better (recall, users/s). Returns the frontier sorted by ``x`` ascending
    (so ``y`` descends along it); points with a missing or non-finite coordinate are ignored.
    """
    usable = [p for p in points if _finite(x(p)) and _finite(y(p))]
    # Sort by x descending, then y descending: a point is on the frontier when its y beats every y
    # seen so far (all of which have x >= its x).
    ordered = sorted(usable, key=lambda p: (-x(p), -y(p)))
    frontier: list[T] = []
    best_y = -math.inf
    for point in ordered:
        if y(point) > best_y:
            frontier.append(point)
            best_y = y(point)
    frontier.reverse()
    return frontier


def fastest_at_recall(
    points: Sequence[T], target: float, *, recall: Callable[[T], float], speed: Callable[[T], float]
) -> T | None:
    """The fastest point whose recall is at least ``target`` (ties: higher recall), or None."""
    reaching = [p for p in points if _finite(recall(p)) and _finite(speed(p)) and recall(p) >= target]
    if not reaching:
        return None
    return max(reaching, key=lambda p: (speed(p), recall(p)))
