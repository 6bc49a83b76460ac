"""Load test of ``zoo serve`` on 127.0.0.1: requests/s and p50/p99 latency at several concurrencies, per
retriever, with and without micro-batching, against the in-process Recommender at batch 1.

    python benchmarks/serve_load.py RUN_DIR --requests 10000 --concurrency 1,8,32 --retrievers exact,hnsw \\
        --out benchmarks/results/DATE-benchmark-serve-cpu.json

The client is bounded: a fixed number of requests, at most ``concurrency`` in flight, and a time cap
per setting. Each setting starts its own server (a subprocess, loopback only) and stops it after.
Client and server share the machine, as they would on a 2-core box.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return (
        ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))] if ordered else float("nan")
    )


async def drive(
    port: int, users: list[Any], requests: int, concurrency: int, cap_s: float, k: int
) -> dict[str, Any]:
    """Send ``requests`` POST /recommend with at most ``concurrency`` in flight; latencies and errors."""
    import httpx

    latencies: list[float] = []
    errors = 0
    sent = 0
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", limits=limits, timeout=30) as client:
        deadline = time.monotonic() + cap_s

        async def worker() -> None:
            nonlocal sent, errors
            while sent < requests and time.monotonic() < deadline:
                user = users[sent % len(users)]
                sent += 1
                started = time.perf_counter()
                try:
                    answer = await client.post("/recommend", json={"user_id": user, "k": k})
                    ok = answer.status_code == 200
                except httpx.HTTPError:
                    ok = False
                latencies.append(time.perf_counter() - started)
                errors += not ok

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return {
        "requests": len(latencies),
        "errors": errors,
        "seconds": elapsed,
        "requests_per_s": len(latencies) / elapsed,
        "p50_ms": percentile(latencies, 50) * 1e3,
        "p99_ms": percentile(latencies, 99) * 1e3,
    }


def start_server(run_dir: str, port: int, retriever: str, batching: bool) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "zoo_cli.main", "serve", run_dir, "--host", "127.0.0.1",
               "--port", str(port), "--retriever", retriever,
               "--batching" if batching else "--no-batching"]  # fmt: skip
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    import httpx

    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return server
        except httpx.HTTPError:
            time.sleep(0.2)
        if server.poll() is not None:
            raise SystemExit(f"zoo serve failed: {server.stderr.read()}")
    server.kill()
    raise SystemExit("zoo serve did not start within 180 s")


def in_process(run_dir: str, users: list[Any], requests: int, k: int) -> dict[str, Any]:
    """The reference: the Recommender called in this process, one user per call."""
    from zoo.serving import Recommender

    recommender = Recommender.load(run_dir)
    recommender.recommend(users[0], k)  # warm-up
    latencies = []
    started = time.perf_counter()
    for i in range(requests):
        t = time.perf_counter()
        recommender.recommend(users[i % len(users)], k)
        latencies.append(time.perf_counter() - t)
    elapsed = time.perf_counter() - started
    return {"requests": requests, "seconds": elapsed, "requests_per_s": requests / elapsed,
            "p50_ms": percentile(latencies, 50) * 1e3, "p99_ms": percentile(latencies, 99) * 1e3}  # fmt: skip


def _label(result: dict[str, Any]) -> str:
    on = "on" if result["batching"] else "off"
    return f"{result['retriever']}, batching {on}, concurrency {result['concurrency']}"


def _row(result: dict[str, Any]) -> dict[str, Any]:
    """A results-file table row: the figures as reported (rounded as printed)."""
    row = {
        "requests_per_s": round(result["requests_per_s"]),
        "p50_ms": round(result["p50_ms"], 2),
        "p99_ms": round(result["p99_ms"], 2),
        "requests": result["requests"],
    }
    if "errors" in result:
        row["errors"] = result["errors"]
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("run_dir")
    parser.add_argument("--requests", type=int, default=10000)
    parser.add_argument("--concurrency", default="1,8,32")
    parser.add_argument("--retrievers", default="exact,hnsw")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--cap-s", type=float, default=300.0, help="time cap per setting")
    parser.add_argument("--out", default=None, help="results JSON file (benchmarks/results/...)")
    args = parser.parse_args(argv)

    from zoo.environment import machine_info, versions
    from zoo.serving import Recommender

    users = Recommender.load(args.run_dir).user_ids
    random.Random(0).shuffle(users)
    rows = []
    reference = in_process(args.run_dir, users, min(args.requests, 2000), args.k)
    print(f"in-process Recommender, batch 1: {reference['requests_per_s']:,.0f} requests/s", flush=True)
    for retriever in args.retrievers.split(","):
        for batching in (True, False):
            port = free_port()
            server = start_server(args.run_dir, port, retriever, batching)
            try:
                for concurrency in (int(c) for c in args.concurrency.split(",")):
                    result = asyncio.run(drive(port, users, args.requests, concurrency, args.cap_s, args.k))
                    result.update(retriever=retriever, batching=batching, concurrency=concurrency)
                    rows.append(result)
                    print(
                        f"{retriever:6} batching={'on ' if batching else 'off'} c={concurrency:3}:"
                        f" {result['requests_per_s']:8,.0f} req/s  p50 {result['p50_ms']:7.2f} ms"
                        f"  p99 {result['p99_ms']:7.2f} ms  errors {result['errors']}/{result['requests']}",
                        flush=True,
                    )
            finally:
                server.send_signal(signal.SIGTERM)
                server.wait(timeout=60)
    if args.out:
        document = {
            "kind": "benchmark",
            "date": time.strftime("%Y-%m-%d"),
            "command": "python benchmarks/serve_load.py "
            + " ".join(argv if argv is not None else sys.argv[1:]),
            "machine": machine_info(),
            "versions": versions(),
            "figures": {
                "in-process Recommender, batch 1": _row(reference),
                **{_label(r): _row(r) for r in rows},
            },
            "notes": "Client and server on the same machine, loopback only; users in a fixed shuffled order.",
        }
        Path(args.out).write_text(json.dumps(document, indent=2) + "\n")
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    sys.exit(main())
