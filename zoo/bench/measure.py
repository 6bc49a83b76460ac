"""What one bench cell measures on a fitted index: recall against exact search, throughput, single-query
latency and task quality at every K; and the index's size in memory and on disk."""

from __future__ import annotations

import shutil
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

from zoo.bench.models import ModelData
from zoo.environment import rss_bytes
from zoo.errors import one_line


def _percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values, dtype=np.float64), q)) if values else float("nan")


def measure_queries(
    retriever: Any, data: ModelData, ks: tuple[int, ...], *, repeat: int, latency_rows: np.ndarray
) -> dict[str, dict[str, Any]]:
    """Recall, throughput, latency and task quality of a fitted retriever at every K."""
    from zoo.evaluate import ann_recall
    from zoo.pipeline import evaluate_index
    from zoo.retrieval.merge import query_interests

    vectors = data.embedded.user_matrix()
    users = int(vectors.shape[0])
    at: dict[str, dict[str, Any]] = {}
    for k in ks:
        evaluated = evaluate_index(retriever, data.embedded, (k,), data.exact)  # also warms the index up
        times: list[float] = []
        found = None
        for _ in range(repeat):
            started = time.perf_counter()
            ids, _ = query_interests(retriever, vectors, k)
            times.append(time.perf_counter() - started)
            found = ids if found is None else found
        latencies = []
        for row in latency_rows:
            one = vectors[row : row + 1]
            started = time.perf_counter()
            query_interests(retriever, one, k)
            latencies.append(time.perf_counter() - started)
        median = statistics.median(times)
        at[str(k)] = {
            "recall": ann_recall(found[:, :k], data.exact_raw[:, :k]),
            "qps": users / max(median, 1e-12),
            "qps_best": users / max(min(times), 1e-12),
            "query_s": times,
            "latency_ms": {
                "p50": _percentile(latencies, 50) * 1e3,
                "p99": _percentile(latencies, 99) * 1e3,
                "mean": float(np.mean(latencies)) * 1e3 if latencies else float("nan"),
                "samples": len(latencies),
            },
            "quality": dict(evaluated.metrics),
            "recall_masked": evaluated.recall_vs_exact.get(f"recall@{k}"),
            "eval_qps": evaluated.users_per_s,
        }
    return at


def fit_and_size(retriever: Any, data: ModelData, scratch: Path, warn: Any = None) -> dict[str, Any]:
    """Fit ``retriever`` on the model's item vectors; its build time and size in memory and on disk.

    Memory is what the backend reports, else the process's resident-memory growth while building.
    A failed save (full disk, a backend that cannot save) leaves the disk size unknown and is
    reported through ``warn``; the index itself is still measured.
    """
    before = rss_bytes()
    started = time.perf_counter()
    retriever.fit(data.embedded.item_matrix(), ids=data.embedded.catalogue)
    build_s = time.perf_counter() - started
    after = rss_bytes()
    disk = None
    try:
        retriever.save(scratch)
        disk = sum(f.stat().st_size for f in scratch.rglob("*") if f.is_file())
    except Exception as exc:  # noqa: BLE001 - only the disk size is lost
        if warn is not None:
            warn(
                f"warning: could not save the {retriever.name} index to measure its size on disk"
                f" ({one_line(exc)})"
            )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    memory, method = None, "reported"
    reporter = getattr(retriever, "memory_bytes", None)
    if callable(reporter):
        memory = reporter()
    if memory is None and before is not None and after is not None:
        memory, method = max(0, after - before), "rss"
    return {
        "build_s": build_s,
        "memory_bytes": None if memory is None else int(memory),
        "memory_method": method,
        "disk_bytes": disk,
    }
