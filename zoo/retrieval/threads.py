"""Thread counts for retrieval backends.

Backends take ``num_threads=-1`` to mean "every core this process may use". Libraries disagree on
what a non-positive count means (hnswlib 0.8 runs a query batch on one thread when its default is
set to -1), so backends resolve -1 here and hand the library a positive count.
"""

from __future__ import annotations

import os

__all__ = ["available_cores", "resolve_threads"]


def available_cores() -> int:
    """CPU cores this process may use (its affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - macOS / Windows
        return os.cpu_count() or 1


def resolve_threads(requested: int) -> int:
    """``requested`` threads, with ``-1`` replaced by :func:`available_cores`."""
    return available_cores() if requested == -1 else requested
