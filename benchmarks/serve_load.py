"""Load test of ``zoo serve`` on 127.0.0.1: requests/s and p50/p99 latency at several concurrencies, per
retriever, with and without micro-batching, against the in-process Recommender at batch 1.

    python benchmarks/serve_load.py RUN_DIR --requests 10000 --concurrency 1,8,32 --retrievers exact,hnsw \\
        --cap-s 35 --out benchmarks/results/DATE-benchmark-serve-cpu.json

The client is bounded: a fixed number of requests, at most ``concurrency`` in flight (one keep-alive
connection each), a time cap per setting, and a timeout per request; it talks to 127.0.0.1 only. It is
a small asyncio HTTP/1.1 client written for this test, so that the client takes as little as possible
of the CPU it shares with the server; every response is checked (status 200, a JSON body with ``k``
items) and anything else counts as an error. Each retriever / batching pair starts its own server (a
subprocess, loopback only) and stops it after.
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

HOST = "127.0.0.1"
#: seconds one request may take before it counts as an error (and its connection is replaced)
REQUEST_TIMEOUT_S = 30.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return (
        ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))] if ordered else float("nan")
    )


def request_bytes(path: str, body: dict[str, Any]) -> bytes:
    """One HTTP/1.1 POST with a JSON body, keep-alive."""
    payload = json.dumps(body, separators=(",", ":")).encode()
    head = (
        f"POST {path} HTTP/1.1\r\nhost: {HOST}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(payload)}\r\n\r\n"
    )
    return head.encode("ascii") + payload


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bytes, bool]:
    """(status, body, keep-alive) of one HTTP/1.1 response (content-length or chunked body)."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if "content-length" in headers:
        body = await reader.readexactly(int(headers["content-length"]))
    elif headers.get("transfer-encoding", "").lower() == "chunked":
        parts = []
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            parts.append(await reader.readexactly(size + 2))
            if size == 0:
                break
        body = b"".join(part[:-2] for part in parts)
    else:
        raise ValueError("response without a length")
    return status, body, headers.get("connection", "").lower() != "close"


def valid(status: int, body: bytes, k: int) -> bool:
    """A 200 whose JSON body holds exactly ``k`` ranked items."""
    if status != 200:
        return False
    try:
        items = json.loads(body)["items"]
    except (ValueError, KeyError, TypeError):
        return False
    return isinstance(items, list) and len(items) == k


async def drive(
    port: int, users: list[Any], requests: int, concurrency: int, cap_s: float, k: int
) -> dict[str, Any]:
    """Send up to ``requests`` POST /recommend with at most ``concurrency`` in flight, for at most
    ``cap_s`` seconds; latencies of the answered ones, and errors (anything but a valid answer)."""
    bodies = [request_bytes("/recommend", {"user_id": user, "k": k}) for user in users]
    latencies: list[float] = []
    errors = 0
    sent = 0
    deadline = time.monotonic() + cap_s

    async def exchange(
        connection: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None, body: bytes
    ) -> tuple[tuple[asyncio.StreamReader, asyncio.StreamWriter], int, bytes, bool]:
        if connection is None:
            connection = await asyncio.open_connection(HOST, port)
        connection[1].write(body)
        status, answer, keep = await read_response(connection[0])
        return connection, status, answer, keep

    async def worker() -> None:
        nonlocal sent, errors
        connection = None
        while sent < requests and time.monotonic() < deadline:
            body = bodies[sent % len(bodies)]
            sent += 1
            started = time.perf_counter()
            try:
                connection, status, answer, keep = await asyncio.wait_for(
                    exchange(connection, body), REQUEST_TIMEOUT_S
                )
                ok = valid(status, answer, k)
            except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError,
                    asyncio.TimeoutError):  # fmt: skip
                ok = keep = False
            latencies.append(time.perf_counter() - started)
            errors += not ok
            if not keep and connection is not None:
                connection[1].close()
                connection = None
        if connection is not None:
            connection[1].close()

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


def healthy(port: int) -> bool:
    """Whether GET /healthz answers 200 (one short connection)."""
    try:
        with socket.create_connection((HOST, port), timeout=1) as sock:
            sock.sendall(f"GET /healthz HTTP/1.1\r\nhost: {HOST}\r\nconnection: close\r\n\r\n".encode())
            return sock.recv(64).startswith(b"HTTP/1.1 200")
    except OSError:
        return False


def start_server(
    run_dir: str, port: int, retriever: str, batching: bool, extra: list[str]
) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "zoo_cli.main", "serve", run_dir, "--host", HOST,
               "--port", str(port), "--retriever", retriever,
               "--batching" if batching else "--no-batching", *extra]  # fmt: skip
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if healthy(port):
            return server
        if server.poll() is not None:
            raise SystemExit(f"zoo serve failed: {server.stderr.read()}")
        time.sleep(0.2)
    server.kill()
    raise SystemExit("zoo serve did not start within 180 s")


def in_process(run_dir: str, users: list[Any], requests: int, k: int, cap_s: float) -> dict[str, Any]:
    """The reference: the Recommender called in this process, one user per call (its known-user
    vectors computed before the clock starts, as ``zoo serve`` does at start-up)."""
    from zoo.serving import Recommender

    recommender = Recommender.load(run_dir)
    recommender.known_user_vectors()
    recommender.recommend(users[0], k)  # warm-up
    latencies = []
    started = time.perf_counter()
    deadline = time.monotonic() + cap_s
    for i in range(requests):
        if time.monotonic() >= deadline:
            break
        t = time.perf_counter()
        recommender.recommend(users[i % len(users)], k)
        latencies.append(time.perf_counter() - t)
    elapsed = time.perf_counter() - started
    return {"requests": len(latencies), "seconds": elapsed, "requests_per_s": len(latencies) / elapsed,
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


def _serving_versions() -> dict[str, str]:
    """The serving stack's versions (and whether uvicorn has its C parser, httptools)."""
    import importlib.metadata

    found = {}
    for name in ("fastapi", "uvicorn", "starlette", "pydantic", "hnswlib", "httptools"):
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("run_dir")
    parser.add_argument("--requests", type=int, default=10000)
    parser.add_argument("--concurrency", default="1,8,32")
    parser.add_argument("--retrievers", default="exact,hnsw")
    parser.add_argument("--batching", default="on,off", help="on, off or on,off")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--cap-s", type=float, default=35.0, help="time cap per setting")
    parser.add_argument("--serve-arg", action="append", default=[], help="extra zoo serve option (repeat)")
    parser.add_argument("--out", default=None, help="results JSON file (benchmarks/results/...)")
    parser.add_argument("--title", default="zoo serve load test", help="the results file's title")
    args = parser.parse_args(argv)

    from zoo.environment import machine_info, versions
    from zoo.serving import Recommender

    users = Recommender.load(args.run_dir).user_ids
    random.Random(0).shuffle(users)
    rows = []
    reference = in_process(args.run_dir, users, args.requests, args.k, args.cap_s)
    print(
        f"in-process Recommender, batch 1: {reference['requests_per_s']:,.0f} requests/s"
        f"  p50 {reference['p50_ms']:.2f} ms  p99 {reference['p99_ms']:.2f} ms",
        flush=True,
    )
    modes = [{"on": True, "off": False}[m.strip()] for m in args.batching.split(",")]
    for retriever in args.retrievers.split(","):
        for batching in modes:
            port = free_port()
            server = start_server(args.run_dir, port, retriever, batching, args.serve_arg)
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
            "title": args.title,
            "date": time.strftime("%Y-%m-%d"),
            "command": "python benchmarks/serve_load.py "
            + " ".join(argv if argv is not None else sys.argv[1:]),
            "machine": machine_info(),
            "versions": versions(_serving_versions()),
            "figures": {
                "in-process Recommender, batch 1": _row(reference),
                **{_label(r): _row(r) for r in rows},
            },
            "notes": (
                "Client and server shared the machine (loopback); users in a fixed shuffled order; a setting"
                f" stops at {args.requests:,} requests or after {args.cap_s:g} s."
            ),
        }
        Path(args.out).write_text(json.dumps(document, indent=2) + "\n")
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    sys.exit(main())
