"""Preparing (and training on) logs that outgrow memory: wall time and peak RSS, each in a child process.

    python benchmarks/prepare_scale.py                              # 25M events shaped like MovieLens-25M
    python benchmarks/prepare_scale.py --events 100000000 --only cold,train --max-steps 300
    python benchmarks/prepare_scale.py --record benchmarks/results   # also write a results file

A synthetic log shaped like MovieLens-25M (``--users`` 162,000, ``--items`` 59,000, ``--events``
25,000,000: log-normal user activity, Zipf item popularity, per-user increasing timestamps, half-star
ratings; rows shuffled within each block so that preparing really sorts) is written as a CSV
(``userId,movieId,rating,timestamp``) block by block to a temporary folder, never held in memory.
Then each measurement runs in a fresh child process through the pipeline's own ``prepare`` stage
(``zoo run --dataset csv`` does the same) and reports its wall time and peak RSS
(``getrusage(RUSAGE_SELF).ru_maxrss``, which counts the memory-mapped pages it touched):

* ``memory``: the in-memory path (no ``prepared_dir``), the default;
* ``cold``: the streaming path building the prepared-data folder;
* ``warm``: the same, reusing the folder;
* ``train``: DSSM trained from the folder for one epoch, or its first ``--max-steps`` steps, with the
  epoch's validation (the trainer's own loop over the memory-mapped data).

The log and the folder are deleted at the end unless ``--keep``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
KINDS = ("memory", "cold", "warm", "train")
#: rows generated and written per block
BLOCK_ROWS = 2_000_000
TITLES = {
    "memory": "in memory",
    "cold": "streamed into a prepared folder",
    "warm": "reused",
    "train": "DSSM training from it",
}
COLUMNS = {"user_col": "userId", "item_col": "movieId", "time_col": "timestamp", "rating_col": "rating"}


# -- the synthetic log -----------------------------------------------------------------------------------
def user_counts(users: int, events: int, rng: Any, min_events: int = 5) -> Any:
    """Events per user: log-normal activity (a long tail of heavy users), at least ``min_events``,
    summing to ``events``."""
    import numpy as np

    raw = rng.lognormal(mean=0.0, sigma=1.1, size=users)
    counts = np.maximum(min_events, np.floor(raw / raw.sum() * events)).astype(np.int64)
    diff = int(events - counts.sum())
    order = np.argsort(-counts)
    step = int(np.sign(diff))
    i = 0
    while diff != 0:  # spread the rounding over the heaviest users
        user = order[i % users]
        if step > 0 or counts[user] > min_events:
            counts[user] += step
            diff -= step
        i += 1
    return counts


def write_log(path: Path, *, users: int, items: int, events: int, seed: int = 0) -> dict[str, Any]:
    """Write the synthetic log to ``path`` block by block; returns its size and shape."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.csv as pacsv

    rng = np.random.default_rng(seed)
    counts = user_counts(users, events, rng)
    popularity = 1.0 / (np.arange(items) + 10.0) ** 1.05  # Zipf-like, flattened at the head
    cdf = np.cumsum(popularity / popularity.sum())
    item_ids = rng.permutation(np.arange(1, items + 1))  # popular items are not the small ids
    schema = pa.schema(
        [("userId", pa.int64()), ("movieId", pa.int64()), ("rating", pa.float64()), ("timestamp", pa.int64())]
    )
    start = 0
    written = 0
    with pacsv.CSVWriter(str(path), schema) as writer:
        while start < users:
            stop = start + 1
            while stop < users and counts[start:stop].sum() < BLOCK_ROWS:
                stop = min(users, stop + 1000)
            block_counts = counts[start:stop]
            n = int(block_counts.sum())
            owner = np.repeat(np.arange(start, stop), block_counts)
            first = np.cumsum(block_counts) - block_counts  # each user's first row in the block
            gaps = rng.exponential(6 * 3600.0, size=n).astype(np.int64) + 1
            elapsed = np.cumsum(gaps)
            elapsed -= np.repeat(elapsed[first] - gaps[first], block_counts)
            begin = rng.integers(789_652_009, 1_500_000_000, size=stop - start)
            timestamps = np.repeat(begin, block_counts) + elapsed
            picked = np.minimum(np.searchsorted(cdf, rng.random(n)), items - 1)
            shuffle = rng.permutation(n)
            table = pa.table(
                {
                    "userId": owner[shuffle] + 1,
                    "movieId": item_ids[picked][shuffle],
                    "rating": rng.integers(1, 11, size=n)[shuffle] / 2.0,
                    "timestamp": timestamps[shuffle],
                },
                schema=schema,
            )
            writer.write_table(table)
            written += n
            start = stop
    return {"events": written, "users": users, "items": items, "bytes": path.stat().st_size}


# -- the measurements (each in a child process) --------------------------------------------------------
def _config(log: Path, prepared_dir: str | None, **extra: Any) -> Any:
    from zoo.pipeline import RunConfig

    return RunConfig(
        model="dssm",
        dataset="csv",
        data_path=str(log),
        device="cpu",
        dataset_options=dict(COLUMNS),
        prepared_dir=prepared_dir,
        **extra,
    )


class _Steps:
    """The first ``limit`` batches of each pass of ``batches`` (all of them when ``limit`` is None)."""

    def __init__(self, batches: Any, limit: int | None) -> None:
        self.batches, self.limit = batches, limit

    def __len__(self) -> int:
        return len(self.batches) if self.limit is None else min(self.limit, len(self.batches))

    def set_epoch(self, epoch: int) -> None:
        self.batches.set_epoch(epoch)

    def __iter__(self) -> Any:
        for step, batch in enumerate(self.batches):
            if self.limit is not None and step >= self.limit:
                return
            yield batch


def child(
    kind: str, log: Path, prepared_dir: str | None, max_steps: int | None, batch_size: int
) -> dict[str, Any]:
    """One measurement in this (fresh) process: wall time, peak RSS and what it produced."""
    from zoo.environment import rss_bytes
    from zoo.pipeline import prepare
    from zoo.pipeline.stages import build_model

    baseline = rss_bytes() or 0
    started = time.perf_counter()
    prepared = prepare(
        _config(log, prepared_dir if kind != "memory" else None, batch_size=batch_size, epochs=1)
    )
    out: dict[str, Any] = {
        "prepare_wall_s": round(time.perf_counter() - started, 2),
        "timings": {k: round(v, 2) for k, v in prepared.timings.items()},
        "summary": prepared.data.summary(),
        "import_rss_gb": round(baseline / 2**30, 3),
    }
    if kind == "train":
        from zoo.train.trainer import MatchTrainer

        settings = prepared.settings
        model = build_model(prepared)
        trainer = MatchTrainer.from_config(
            model, settings.trainer, device=prepared.device, item_counts=prepared.data.item_counts
        )
        batches = prepared.data.training_batches(model, settings.trainer.batch_size, seed=0)
        steps = _Steps(batches, max_steps)
        out["rss_before_train_gb"] = round((rss_bytes() or 0) / 2**30, 3)
        started = time.perf_counter()
        history = trainer.fit(steps, prepared.data.ranking_task("valid"))
        out.update(
            train_wall_s=round(time.perf_counter() - started, 2),
            steps=len(steps),
            steps_per_epoch=len(batches),
            batch_size=settings.trainer.batch_size,
            loss=round(float(history[-1]["loss"]), 4),
        )
    out["peak_rss_gb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 3)
    out["wall_s"] = out["train_wall_s"] if kind == "train" else out["prepare_wall_s"]
    return out


def measure(
    kind: str, log: Path, prepared_dir: Path, max_steps: int | None, batch_size: int
) -> dict[str, Any]:
    """Run :func:`child` in a fresh interpreter; its JSON result (or the error it printed)."""
    spec = json.dumps(
        {
            "kind": kind,
            "log": str(log),
            "prepared_dir": str(prepared_dir),
            "max_steps": max_steps,
            "batch_size": batch_size,
        }
    )
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, __file__, "--child", spec], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        return {"error": (done.stderr.strip().splitlines() or ["failed"])[-1], "returncode": done.returncode}
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["process_wall_s"] = round(time.perf_counter() - started, 2)
    return result


def _available_gb() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) / 2**20
    except (OSError, ValueError):
        pass
    return None


# -- the command -----------------------------------------------------------------------------------------
def figures_of(results: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The results file's figures: one table row per measurement."""
    rows: dict[str, Any] = {}
    labels = {
        "memory": "in-memory prepare (default)",
        "cold": "streamed prepare, building the folder",
        "warm": "streamed prepare, reusing the folder",
        "train": "DSSM training from the folder",
    }
    for kind, result in results.items():
        if "error" in result:
            continue
        row = {"wall_s": result["wall_s"], "peak_rss_gb": result["peak_rss_gb"]}
        if kind == "train":
            row.update(
                steps=result["steps"],
                steps_per_epoch=result["steps_per_epoch"],
                batch_size=result["batch_size"],
            )
            row["rss_before_train_gb"] = result["rss_before_train_gb"]
        else:
            row.update({k: v for k, v in result["timings"].items()})
        rows[labels[kind]] = row
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=25_000_000)
    parser.add_argument("--users", type=int, default=162_000)
    parser.add_argument("--items", type=int, default=59_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", default=None, help=f"measurements, comma-separated: {','.join(KINDS)}")
    parser.add_argument("--max-steps", type=int, default=None, help="train: stop the epoch after N steps")
    parser.add_argument("--batch-size", type=int, default=1024, help="train: batch size")
    parser.add_argument(
        "--workdir", type=Path, default=None, help="where the log and folder go (default: a temp dir)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the log and the prepared folder")
    parser.add_argument("--record", type=Path, default=None, help="write a results file into this folder")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child is not None:
        spec = json.loads(args.child)
        result = child(
            spec["kind"], Path(spec["log"]), spec["prepared_dir"], spec["max_steps"], spec["batch_size"]
        )
        print(json.dumps(result))
        return 0

    kinds = [k.strip() for k in (args.only or "memory,cold,warm").split(",") if k.strip()]
    unknown = sorted(set(kinds) - set(KINDS))
    if unknown:
        parser.error(f"--only: unknown {', '.join(unknown)}; use {', '.join(KINDS)}")
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="zoo-prepare-scale-"))
    workdir.mkdir(parents=True, exist_ok=True)
    log = workdir / f"log-{args.events}.csv"
    prepared_dir = workdir / "prepared"
    results: dict[str, dict[str, Any]] = {}
    try:
        if not log.exists():
            started = time.perf_counter()
            shape = write_log(log, users=args.users, items=args.items, events=args.events, seed=args.seed)
            shape["generate_s"] = round(time.perf_counter() - started, 1)
        else:
            shape = {
                "events": args.events,
                "users": args.users,
                "items": args.items,
                "bytes": log.stat().st_size,
            }
        print(f"log: {shape}", flush=True)
        for kind in kinds:
            if kind == "memory":
                available = _available_gb()
                needed = args.events * 250 / 2**30  # bytes per event the in-memory path peaks at, roughly
                if available is not None and available < needed:
                    results[kind] = {
                        "error": f"skipped: {available:.1f} GB available, about {needed:.1f} GB needed"
                    }
                    print(f"{kind}: {results[kind]}", flush=True)
                    continue
            results[kind] = measure(kind, log, prepared_dir, args.max_steps, args.batch_size)
            print(f"{kind}: {json.dumps(results[kind])}", flush=True)
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    if args.record is not None:
        path = record(args, shape, results, kinds)
        print(f"wrote {path}")
    return 0 if all("error" not in r or r["error"].startswith("skipped") for r in results.values()) else 1


def record(
    args: argparse.Namespace, shape: dict[str, Any], results: dict[str, Any], kinds: list[str]
) -> Path:
    """Write the results file (benchmarks/results/README.md's schema)."""
    sys.path.insert(0, str(ROOT))
    from zoo.environment import machine_info, versions

    info = machine_info()
    machine = {k: info[k] for k in ("cpu", "cores", "memory_gb", "gpu") if info[k] is not None}
    millions = args.events / 1e6
    what = f"{millions:g}m"
    date = dt.date.today().isoformat()
    command = "python benchmarks/prepare_scale.py" + (
        f" --events {args.events}" if args.events != 25_000_000 else ""
    )
    if args.only:
        command += f" --only {args.only}"
    if args.max_steps is not None:
        command += f" --max-steps {args.max_steps}"
    skipped = [f"{k} ({r['error']})" for k, r in results.items() if "error" in r]
    train = results.get("train", {})
    notes = (
        f"Synthetic log shaped like MovieLens-25M ({shape['events']:,} events, {shape['users']:,} users,"
        f" {shape['items']:,} items, {shape['bytes'] / 1e9:.2f} GB of CSV), each measurement in a fresh"
        " process on the shared 2-core machine; peak RSS is ru_maxrss and counts the mapped pages touched;"
        " wall_s is the whole prepare stage (plugin discovery included), load_s and prepare_s its reading"
        " and its encoding (and folder writing) parts."
    )
    if "train" in results and "error" not in train:
        notes += (
            f" Training ran {train['steps']:,} of the epoch's {train['steps_per_epoch']:,} steps"
            f" (batch {train['batch_size']}) plus the epoch's full validation"
            + (", not the whole epoch." if train["steps"] < train["steps_per_epoch"] else ".")
        )
    if skipped:
        notes += " Not run: " + "; ".join(skipped) + "."
    document = {
        "kind": "benchmark",
        "date": date,
        "title": f"Preparing a {millions:g}M-event log: "
        + ", ".join(TITLES[k] for k in kinds if k in TITLES),
        "command": command,
        "machine": machine,
        "versions": versions({"pyarrow": _version("pyarrow")}),
        "figures": figures_of(results),
        "notes": notes,
    }
    out = Path(args.record) / f"{date}-benchmark-prepare-scale-{what}-cpu.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(document, indent=2) + "\n")
    os.replace(tmp, out)
    return out


def _version(name: str) -> str:
    import importlib.metadata

    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return ""


if __name__ == "__main__":
    sys.exit(main())
