"""Training throughput per model preset on MovieLens-1M: samples/s and achieved FLOP/s against the
machine's measured matmul peak, all in one run.

    python benchmarks/throughput.py --device cpu
    python benchmarks/throughput.py --models dssm,mind --steps 20 --param dssm:compile=true
    python benchmarks/throughput.py --record benchmarks/results

For each model: its preset under its quality protocol (``benchmarks/results/anchors.json``), the real
trainer (``MatchTrainer.from_config``) over the real training batches (``training_batches``), as
``zoo.pipeline.train`` builds them. ``--warmup`` steps run first and are not timed; then ``--steps``
steps are timed over batches built beforehand (the step: forward, loss, backward, optimiser), and the
time to build those batches is reported on its own.

* samples/s: training rows per second of step time, as the trainer counts them: batch rows, and for
  models trained on every position of a sequence window (gru4rec, sasrec) the (position, target)
  pairs as well (``pairs_per_s``).
* achieved GFLOP/s: the floating-point operations of the timed steps (forward + backward, counted by
  ``torch.utils.flop_counter.FlopCounterMode`` on an eager fp32 copy of the model over the same
  batches; matrix products only, as FlopCounterMode counts) divided by the measured step time.
* matmul peak: the best fp32 ``torch.mm`` GFLOP/s over square sizes and each model's dominant matmul
  shapes, measured in the same run with the same thread count; ``peak_fraction`` is achieved / peak.

Trainer settings pass through ``--param MODEL:key=value`` (``compile=true``, ``precision=bf16`` where
the trainer has them; a trainer setting this trainer does not know is reported and left out).
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import os
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parent
_ANCHORS = json.loads((ROOT / "results" / "anchors.json").read_text())["models"]
DEFAULT_MODELS = ("dssm", "youtubednn", "gru4rec", "mind", "sasrec")
#: trainer settings that are passed through when the trainer has them and dropped (with a note) if not
OPTIONAL_TRAINER_KEYS = ("compile", "precision")
#: square sizes of the matmul micro-benchmark (the model's dominant shapes are added to these)
SQUARE_SIZES = (256, 512, 1024, 2048)
MATMUL_OPS = ("mm", "addmm", "bmm", "baddbmm")


# -- counting ------------------------------------------------------------------------------------------
def count_flops(fn: Callable[[], Any]) -> int:
    """Floating-point operations of ``fn()`` (forward and, if ``fn`` calls it, backward) as
    ``FlopCounterMode`` counts them: matrix products, convolutions and attention."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


class MatmulShapes(torch.utils._python_dispatch.TorchDispatchMode):
    """Records the (M, K, N) shape and FLOPs of every matrix product run under it (``bmm`` as its
    per-batch shape times the batch), to find a model's dominant shapes."""

    def __init__(self) -> None:
        super().__init__()
        self.flops: dict[tuple[int, int, int], int] = {}

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        name = func.__name__.split(".")[0]
        if name in MATMUL_OPS:
            a, b = (args[0], args[1]) if name in ("mm", "bmm") else (args[1], args[2])
            if a.dim() == 2:
                shape, repeat = (a.shape[0], a.shape[1], b.shape[1]), 1
            else:
                shape, repeat = (a.shape[1], a.shape[2], b.shape[2]), a.shape[0]
            key = tuple(int(s) for s in shape)
            self.flops[key] = self.flops.get(key, 0) + 2 * repeat * key[0] * key[1] * key[2]
        return func(*args, **(kwargs or {}))

    def dominant(self, count: int = 3) -> list[tuple[int, int, int]]:
        """The ``count`` shapes with the most FLOPs, largest first."""
        return [s for s, _ in sorted(self.flops.items(), key=lambda kv: -kv[1])[:count]]


def batch_samples(batch: Mapping[str, Any], user_key: str, history_key: str | None = None) -> tuple[int, int]:
    """``(rows, pairs)`` of one training batch as the trainer counts them: its rows, and for a
    sequence-window batch (one with ``next_item_id``) the (position, target) pairs it trains on,
    positions whose input is an item and whose target is not padding (``pairs == rows`` otherwise)."""
    from zoo.features import NEXT_ITEM

    rows = int(batch[user_key].shape[0])
    if NEXT_ITEM not in batch:
        return rows, rows
    targets = batch[NEXT_ITEM]
    keep = targets != 0
    if history_key is not None and history_key in batch:
        inputs = batch[history_key][:, -targets.shape[1] :]
        keep = keep & (inputs != 0)
    return rows, int(keep.sum())


def busy_cpu_seconds() -> float | None:
    """CPU seconds the whole machine has spent busy since boot (``/proc/stat``; None elsewhere)."""
    try:
        fields = [float(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0.0)
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def rate(count: float, seconds: float) -> float:
    """``count`` per second (0 when no time was measured)."""
    return count / seconds if seconds > 0 else 0.0


# -- the matmul micro-benchmark --------------------------------------------------------------------------
def matmul_gflops(m: int, k: int, n: int, *, device: Any, seconds: float = 0.25) -> float:
    """Best fp32 ``torch.mm`` GFLOP/s of an [m, k] x [k, n] product over repeats lasting ``seconds``."""
    a = torch.randn(m, k, device=device)
    b = torch.randn(k, n, device=device)
    out = torch.empty(m, n, device=device)
    flops = 2.0 * m * k * n
    sync = torch.cuda.synchronize if torch.device(device).type == "cuda" else (lambda: None)
    for _ in range(2):
        torch.mm(a, b, out=out)
    sync()
    best = float("inf")
    deadline = time.perf_counter() + seconds
    while True:
        reps = max(1, min(1000, int(2e8 // flops)))
        started = time.perf_counter()
        for _ in range(reps):
            torch.mm(a, b, out=out)
        sync()
        best = min(best, (time.perf_counter() - started) / reps)
        if time.perf_counter() > deadline:
            break
    return flops / best / 1e9


def matmul_peak(
    shapes: Iterable[tuple[int, int, int]], device: Any, seconds: float = 0.25
) -> dict[str, float]:
    """GFLOP/s of each shape (``MxKxN``) and of the square sizes; the best is the peak."""
    measured: dict[str, float] = {}
    for shape in [(s, s, s) for s in SQUARE_SIZES] + list(shapes):
        label = "x".join(map(str, shape))
        if label not in measured:
            measured[label] = round(matmul_gflops(*shape, device=device, seconds=seconds), 2)
    return measured


# -- one model --------------------------------------------------------------------------------------------
def split_optional(params: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(params, dropped)``: trainer keys in :data:`OPTIONAL_TRAINER_KEYS` that this trainer's
    TrainerConfig does not have are dropped instead of failing as unknown model parameters."""
    from zoo.train.config import TrainerConfig

    known = {f.name for f in dataclasses.fields(TrainerConfig)}
    dropped = {k: v for k, v in params.items() if k in OPTIONAL_TRAINER_KEYS and k not in known}
    return {k: v for k, v in params.items() if k not in dropped}, dropped


def eager_fp32(config: Any) -> Any:
    """The trainer config with compilation off and fp32 math (FLOPs are counted on an eager copy)."""
    names = {f.name for f in dataclasses.fields(config)}
    changes: dict[str, Any] = {}
    if "compile" in names:
        changes["compile"] = False
    if "precision" in names:
        changes["precision"] = "fp32"
    return dataclasses.replace(config, **changes) if changes else config


def measure_model(
    name: str,
    data: str | None,
    device: str,
    steps: int,
    warmup: int,
    params: Sequence[str],
    seed: int = 0,
    *,
    dataset: str = "movielens-1m",
    dataset_options: Mapping[str, Any] | None = None,
    protocol: str | None = None,
) -> dict[str, Any]:
    """Time ``steps`` training steps of ``name``'s preset after ``warmup`` untimed ones; count their
    FLOPs; return the row (without the peak, which the caller measures once). ``dataset``,
    ``dataset_options`` and ``protocol`` (default: the model's quality protocol) exist for tests
    (``synthetic``); the benchmark measures MovieLens-1M."""
    from zoo.pipeline import RunConfig, prepare
    from zoo.pipeline.stages import build_model
    from zoo.train.trainer import MatchTrainer
    from zoo_cli.params import parse_params

    parsed = parse_params(params)
    model_params, dropped = split_optional(dict(parsed.model))
    prepared = prepare(
        RunConfig(
            model=name,
            dataset=dataset,
            data_path=data,
            dataset_options=dict(dataset_options or {}),
            protocol=protocol or _ANCHORS[name]["protocol"],
            device=device,
            seed=seed,
            params=model_params,
            protocol_overrides=parsed.protocol,
            save=False,
        )
    )
    settings = prepared.settings
    model = build_model(prepared)
    trainer = MatchTrainer.from_config(
        model, settings.trainer, device=prepared.device, item_counts=prepared.data.item_counts
    )
    batches = prepared.data.training_batches(
        model, settings.trainer.batch_size, seed=seed, window_stride=settings.data.get("window_stride")
    )
    started = time.perf_counter()
    built = list(itertools.islice(iter(batches), warmup + steps))
    build_s = time.perf_counter() - started
    if len(built) < warmup + steps:
        raise SystemExit(f"error: {name}: only {len(built)} batches per epoch; lower --steps/--warmup to fit")
    timed = built[warmup:]
    user_key = prepared.data.schema.user_id
    history_key = prepared.data.schema.history_name
    counts = [batch_samples(b, user_key, history_key) for b in timed]
    rows, pairs = sum(c[0] for c in counts), sum(c[1] for c in counts)

    sync = torch.cuda.synchronize if prepared.device.type == "cuda" else (lambda: None)
    if warmup:
        trainer.train_one_epoch(built[:warmup])
    sync()
    started, cpu_started, busy_started = time.perf_counter(), time.process_time(), busy_cpu_seconds()
    trainer.train_one_epoch(timed)
    sync()
    step_s = time.perf_counter() - started
    cpu_s = time.process_time() - cpu_started
    busy_ended = busy_cpu_seconds()
    # CPU time other processes took while the steps were timed (a figure taken beside another job is
    # not valid; this makes it visible)
    others_s = (
        None if busy_started is None or busy_ended is None else max(0.0, busy_ended - busy_started - cpu_s)
    )

    # FLOPs and matmul shapes of the same steps, on an eager fp32 copy (compilation and autocast would
    # hide or change what FlopCounterMode sees; the arithmetic is the same).
    twin = build_model(prepared)
    counter = MatchTrainer.from_config(
        twin, eager_fp32(settings.trainer), device=prepared.device, item_counts=prepared.data.item_counts
    )
    shapes = MatmulShapes()
    with shapes:
        flops = count_flops(lambda: counter.train_one_epoch(timed))
    return {
        "model": name,
        "protocol": prepared.data.protocol.name,
        "training_data": getattr(model, "training_data", "samples"),
        "batch_size": settings.trainer.batch_size,
        "steps": steps,
        "warmup": warmup,
        "rows": rows,
        "pairs": pairs,
        "step_s": step_s,
        "cpu_s": cpu_s,
        "others_cpu_s": others_s,
        "build_s": build_s,
        "samples_per_s": rate(rows, step_s),
        "pairs_per_s": rate(pairs, step_s),
        "samples_per_s_with_batching": rate(rows, step_s + build_s * steps / len(built)),
        "flops": flops,
        "flops_per_step": flops / steps,
        "achieved_gflop_s": rate(flops, step_s) / 1e9,
        "dominant_shapes": [list(s) for s in shapes.dominant()],
        "trainer": {
            k: v
            for k, v in settings.trainer.to_dict().items()
            if k in ("mode", "negatives", "num_negatives", "batch_size", *OPTIONAL_TRAINER_KEYS)
        },
        "dropped_params": dropped,
        "parameters": int(sum(p.numel() for p in model.parameters())),
    }


# -- reporting --------------------------------------------------------------------------------------------
def add_peak(rows: list[dict[str, Any]], peak: dict[str, float]) -> float:
    """The best measured GFLOP/s; sets each row's ``peak_fraction`` and its dominant shape's rate."""
    best = max(peak.values())
    for row in rows:
        row["peak_fraction"] = row["achieved_gflop_s"] / best if best else 0.0
        shape = row["dominant_shapes"][0] if row["dominant_shapes"] else None
        row["dominant_shape_gflop_s"] = peak.get("x".join(map(str, shape))) if shape else None
    return best


def table(rows: list[dict[str, Any]], peak: float) -> str:
    """The printed table: one line per model."""
    lines = [
        f"{'model':<11} {'batch':>6} {'step ms':>9} {'samples/s':>11} {'pairs/s':>11}"
        f" {'GFLOP/step':>11} {'GFLOP/s':>9} {'of peak':>8} {'cpu/wall':>8} {'others':>6}"
        "  dominant matmul (its GFLOP/s)"
    ]
    for r in rows:
        shape = "x".join(map(str, r["dominant_shapes"][0])) if r["dominant_shapes"] else "-"
        lines.append(
            f"{r['model']:<11} {r['batch_size']:>6} {1000 * r['step_s'] / r['steps']:>9.1f}"
            f" {r['samples_per_s']:>11,.0f} {r['pairs_per_s']:>11,.0f}"
            f" {r['flops_per_step'] / 1e9:>11.3f} {r['achieved_gflop_s']:>9.2f}"
            f" {100 * r['peak_fraction']:>7.1f}% {r['cpu_s'] / max(r['step_s'], 1e-9):>8.2f}"
            f" {(r['others_cpu_s'] or 0.0) / max(r['step_s'], 1e-9):>6.2f}"
            f"  {shape} ({r['dominant_shape_gflop_s']})"
        )
    lines.append(f"fp32 matmul peak: {peak:.1f} GFLOP/s, torch threads {torch.get_num_threads()}")
    return "\n".join(lines)


def public_command(argv: Sequence[str]) -> str:
    """The command as a user types it: ``--data`` left out (``$ZOO_DATA_DIR`` finds MovieLens-1M),
    ``--record``/``--json`` folders named by their last part, no private paths."""
    words = ["python", "benchmarks/throughput.py"]
    pending = ""
    for word in argv:
        option, equals, value = word.partition("=")
        if pending:
            if pending != "--data":
                words += [pending, Path(word).name]
            pending = ""
        elif option in ("--data", "--record", "--json"):
            if not equals:
                pending = option
            elif option != "--data":
                words.append(f"{option}={Path(value).name}")
        else:
            words.append(word)
    return " ".join(words)


def record(
    rows: list[dict[str, Any]], measured: dict[str, float], peak: float, command: str, date: str, device: str
) -> dict[str, Any]:
    """The run as a ``benchmarks/results`` file (schema in its README), kind ``benchmark``."""
    from zoo.environment import machine_info, versions

    info = machine_info()
    figures: dict[str, Any] = {}
    for r in rows:
        entry = {
            "batch": r["batch_size"],
            "step_ms": round(1000 * r["step_s"] / r["steps"], 1),
            "samples_per_s": round(r["samples_per_s"]),
            "pairs_per_s": round(r["pairs_per_s"]),
            "gflop_per_step": round(r["flops_per_step"] / 1e9, 3),
            "achieved_gflop_s": round(r["achieved_gflop_s"], 2),
            "peak_fraction": round(r["peak_fraction"], 4),
            "batch_build_ms": round(1000 * r["build_s"] / (r["steps"] + r["warmup"]), 1),
            "dominant_matmul": "x".join(map(str, r["dominant_shapes"][0])) if r["dominant_shapes"] else "",
            "cpu_per_wall": round(r["cpu_s"] / r["step_s"], 2) if r["step_s"] else None,
            "others_cpu_per_wall": (
                round(r["others_cpu_s"] / r["step_s"], 2) if r.get("others_cpu_s") is not None else None
            ),
        }
        figures[r["model"]] = entry
    figures["matmul_peak_gflop_s"] = round(peak, 1)
    figures["matmul_gflop_s_by_shape"] = ", ".join(f"{k} {v}" for k, v in measured.items())
    figures["torch_threads"] = torch.get_num_threads()
    steps = rows[0]["steps"] if rows else 0
    dropped = sorted({k for r in rows for k in r["dropped_params"]})
    notes = (
        f"{steps} timed training steps per preset after {rows[0]['warmup'] if rows else 0} warm-up steps,"
        f" batches built beforehand (batch_build_ms apart); FLOPs are FlopCounterMode's count"
        f" (matrix products, forward + backward) over the same steps, and peak_fraction divides the"
        f" achieved rate by the best fp32 torch.mm rate measured in the same run; pairs_per_s counts the"
        f" (position, target) pairs of per-position sequence training (= samples_per_s otherwise);"
        f" cpu_per_wall is this process's CPU seconds per wall second while timing (near the thread"
        f" count when nothing else ran), others_cpu_per_wall the CPU other processes took meanwhile"
        f" (near 0 for a valid figure)."
    )
    if dropped:
        notes += f" Trainer settings this trainer lacks were left out: {', '.join(dropped)}."
    return {
        "kind": "benchmark",
        "date": date,
        "title": f"Training throughput per preset (MovieLens-1M, {device})",
        "command": command,
        "machine": {
            k: info.get(k)
            for k in ("cpu", "cores", "memory_gb", "gpu", "torch_threads")
            if info.get(k) is not None
        },
        "versions": {k: v for k, v in versions().items() if k in ("recall-zoo", "torch", "python", "numpy")},
        "figures": figures,
        "notes": notes,
        "device": device,
    }


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--models", default=",".join(DEFAULT_MODELS), help="comma-separated model presets")
    parser.add_argument("--steps", type=int, default=10, help="timed training steps per model (default 10)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first (default 2)")
    parser.add_argument("--data", default=None, help="MovieLens-1M folder (default: $ZOO_DATA_DIR/ml-1m)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N (default cpu)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument(
        "--param", action="append", default=[], help="MODEL:key=value, e.g. dssm:compile=true (repeatable)"
    )
    parser.add_argument("--record", default=None, metavar="DIR", help="write a results file into DIR")
    parser.add_argument(
        "--label",
        default="",
        help="names a variant run's results file, e.g. compile: ...-throughput-compile-cpu.json",
    )
    parser.add_argument("--json", default=None, metavar="FILE", help="write every measured row to FILE")
    args = parser.parse_args(argv)
    if args.steps < 1 or args.warmup < 0:
        parser.error("--steps must be >= 1 and --warmup >= 0")
    args.model_list = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = [m for m in args.model_list if m not in _ANCHORS]
    if unknown:
        parser.error(f"--models: no quality protocol for {', '.join(unknown)}; known: {', '.join(_ANCHORS)}")
    for item in args.param:
        model, colon, rest = item.partition(":")
        if not colon or "=" not in rest or model not in args.model_list:
            parser.error(f"--param {item!r}: give MODEL:key=value with MODEL one of --models")
    if args.record is not None and not Path(args.record).is_dir():
        parser.error(f"--record {args.record}: no such folder; create it or name another")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    from zoo.data.locate import resolve_data_path
    from zoo.errors import ZooError
    from zoo.io import atomic_write_json
    from zoo.registry import default_registry

    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        data = str(resolve_data_path(default_registry().dataset("movielens-1m"), args.data))
    except ZooError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return exc.exit_code
    rows = []
    for name in args.model_list:
        params = [p.split(":", 1)[1] for p in args.param if p.split(":", 1)[0] == name]
        print(f"{name}: {args.warmup} warm-up + {args.steps} timed steps ...", flush=True)
        try:
            row = measure_model(name, data, args.device, args.steps, args.warmup, params)
        except ZooError as exc:
            print(f"error: {name}: {exc.message}", file=sys.stderr)
            return exc.exit_code
        for key, value in row["dropped_params"].items():
            print(f"  note: {key}={value} left out (this trainer has no '{key}' setting)")
        rows.append(row)
    shapes = [tuple(s) for r in rows for s in r["dominant_shapes"]]
    measured = matmul_peak(shapes, args.device)
    peak = add_peak(rows, measured)
    print(table(rows, peak))
    date = time.strftime("%Y-%m-%d")
    if args.json:
        atomic_write_json(Path(args.json), {"peak": peak, "matmul": measured, "rows": rows})
    if args.record:
        command = public_command(argv if argv is not None else sys.argv[1:])
        where = "gpu" if args.device.startswith("cuda") else "cpu"
        label = f"-{args.label}" if args.label else ""
        target = Path(args.record) / f"{date}-benchmark-throughput{label}-{where}.json"
        atomic_write_json(target, record(rows, measured, peak, command, date, args.device))
        print(f"recorded {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
