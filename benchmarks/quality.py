"""Quality benchmark: every model on MovieLens-1M with its preset, under its published anchor's protocol.

    python benchmarks/quality.py --data ml-1m --device cpu --out quality-results

Writes ``results.json`` (every metric, the protocol cards, training histories, machine) and
``results.md`` (the README's results table). Each published number is only comparable under the
protocol that produced it, so each model runs under its anchor's protocol (see ANCHORS).

``--seeds 0,1,2`` trains each model once per seed and reports the mean and the spread (sample
standard deviation, minimum, maximum) of every metric; the floor holds on the mean, not on one seed.
Finished (model, seed) pairs are skipped on a rerun unless ``--force``, so an interrupted run resumes.
``--record benchmarks/results`` also writes one results file per model in the schema of
``benchmarks/results/README.md``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

#: the floors and published anchors, per model (benchmarks/results/anchors.json, shared with the renderer)
_ANCHORS_FILE = json.loads((Path(__file__).resolve().parent / "results" / "anchors.json").read_text())
#: model -> (protocol, headline metric, floor, published anchor)
ANCHORS: dict[str, tuple[str, str, float, str]] = {
    name: (entry["protocol"], entry["metric"], entry["floor"], entry["anchor"])
    for name, entry in _ANCHORS_FILE["models"].items()
}
COLUMNS = tuple(_ANCHORS_FILE["columns"])


def machine() -> dict[str, Any]:
    """Where the results were measured: the machine record every result carries, plus versions."""
    from zoo.environment import machine_info, versions

    return {**machine_info(), "versions": versions()}


def epoch_printer(name: str) -> Any:
    """A pipeline progress whose trainer callback prints one line per epoch (long runs show life)."""
    from zoo.pipeline import Progress
    from zoo.train.callbacks import Callback

    class EpochLine(Callback):
        def on_epoch_end(self, trainer: Any, epoch: int, logs: dict[str, Any]) -> None:
            valid = f" valid {logs['valid_metric']} {logs['valid']:.4f}" if "valid" in logs else ""
            print(
                f"  {name} epoch {logs['epoch']}: loss {logs['loss']:.4f}{valid} ({logs['seconds']:.1f} s)",
                flush=True,
            )

    class EpochProgress(Progress):
        def trainer_callbacks(self) -> list[Any]:
            return [EpochLine()]

    return EpochProgress()


KS = (10, 50)


def model_config(name: str, data: str, device: str, seed: int, params: list[str]) -> Any:
    """The RunConfig of one quality run: ``name``'s preset under its anchor protocol, ``params``
    (``key=value``) on top."""
    from zoo.pipeline import RunConfig
    from zoo_cli.params import parse_params

    parsed = parse_params(params)
    return RunConfig(
        model=name,
        dataset="movielens-1m",
        data_path=data,
        protocol=ANCHORS[name][0],
        device=device,
        seed=seed,
        params=parsed.model,
        protocol_overrides=parsed.protocol,
        ks=KS,
        save=False,
    )


def run_model(name: str, data: str, device: str, seed: int, params: list[str]) -> dict[str, Any]:
    """Train ``name`` with its preset under its anchor protocol; exact full-ranking metrics on test."""
    from zoo.pipeline import embed, evaluate_exact, evaluate_popularity, prepare, train

    protocol, headline, floor, anchor = ANCHORS[name]
    ks = KS
    config = model_config(name, data, device, seed, params)
    started = time.perf_counter()
    prepared = prepare(config)
    trained = train(prepared, progress=epoch_printer(name))
    embedded = embed(trained)
    metrics = evaluate_exact(embedded, ks).metrics
    return {
        "model": name,
        "protocol": protocol,
        "headline": headline,
        "floor": floor,
        "anchor": anchor,
        "passed": metrics[headline] >= floor,
        "metrics": metrics,
        "popularity": evaluate_popularity(embedded, ks).metrics,
        "training": trained.training_summary(),
        "params": {**trained.settings.trainer.to_dict(), **trained.settings.model, **trained.settings.data},
        "protocol_card": trained.data.card,
        "device": str(trained.device),
        "seed": seed,
        "train_s": trained.timings["train_s"],
        "total_s": time.perf_counter() - started,
    }


def aggregate(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One model's row from its per-seed runs: every metric's mean, its spread across seeds, and the
    floor judged on the mean of the headline metric."""
    runs = sorted(runs, key=lambda r: r["seed"])
    first = runs[-1]
    metrics: dict[str, float] = {}
    spread: dict[str, dict[str, float]] = {}
    for key in first["metrics"]:
        values = [float(r["metrics"][key]) for r in runs]
        mean = statistics.fmean(values)
        metrics[key] = mean
        spread[key] = {
            "std": statistics.stdev(values) if len(values) > 1 else 0.0,
            "min": min(values),
            "max": max(values),
        }
    row = {k: v for k, v in first.items() if k not in ("seed", "metrics", "passed")}
    row.update(
        seeds=[r["seed"] for r in runs],
        runs=runs,
        metrics=metrics,
        spread=spread,
        passed=metrics[first["headline"]] >= first["floor"],
        train_s=statistics.fmean(r["train_s"] for r in runs),
    )
    return row


def runs_of(row: dict[str, Any]) -> list[dict[str, Any]]:
    """The per-seed runs of a results.json row (a row written before ``--seeds`` is its own run)."""
    return list(row["runs"]) if "runs" in row else [row]


def results_record(row: dict[str, Any], info: dict[str, Any], command: str, date: str) -> dict[str, Any]:
    """One model's row as a ``benchmarks/results`` file (schema in its README): the mean of every
    metric column, each column's values per seed and its sample standard deviation."""
    figures: dict[str, Any] = {}
    for column in COLUMNS:
        figures[column] = round(row["metrics"][column], 4)
    if len(row["seeds"]) > 1:
        for column in COLUMNS:
            figures[f"{column}_by_seed"] = [round(float(r["metrics"][column]), 4) for r in row["runs"]]
            figures[f"{column}_std"] = round(row["spread"][column]["std"], 4)
    figures["epochs"] = [r["training"]["epochs_run"] for r in row["runs"]]
    figures["best_epoch"] = [r["training"]["best_epoch"] for r in row["runs"]]
    figures["train_minutes"] = round(row["train_s"] / 60, 1)
    for column in ("hitrate@10", "hitrate@50"):
        if column in row.get("popularity", {}):
            figures[f"popularity_{column}"] = round(float(row["popularity"][column]), 4)
    if len(row["seeds"]) == 1:
        figures["epochs"], figures["best_epoch"] = figures["epochs"][0], figures["best_epoch"][0]
    versions = dict(info.get("versions", {}))
    versions.setdefault("recall-zoo", versions.get("recall_zoo", "unknown"))
    seeds = ", ".join(map(str, row["seeds"]))
    return {
        "kind": "quality",
        "date": date,
        "model": row["model"],
        "dataset": "movielens-1m",
        "protocol": row["protocol"],
        "seed": row["seeds"][0] if len(row["seeds"]) == 1 else row["seeds"],
        "device": row["device"],
        "command": command,
        "machine": {k: v for k, v in info.items() if k != "versions"},
        "versions": versions,
        "figures": figures,
        "notes": f"The {row['model']} preset at seed{'s' if len(row['seeds']) > 1 else ''} {seeds}; metric"
        f" columns are the mean over seeds. Floor {row['headline']} >= {row['floor']}"
        f" {'met' if row['passed'] else 'NOT met'} on the mean.",
    }


def stop_note(training: dict[str, Any]) -> str:
    """Table note for a training cut short by ``--time-limit`` (not converged: say so)."""
    return ", time limit" if training.get("stopped") == "time_limit" else ""


def machine_label(info: dict[str, Any]) -> str:
    """One line naming where a result was measured (the GPU, else the CPU and its cores)."""

    def version(name: str) -> Any:  # rows written before the shared machine record kept versions flat
        return info.get("versions", {}).get(name) or info.get(name)

    if info.get("gpu") and str(info.get("device", "cuda")).startswith("cuda"):
        return f"{info['gpu']} (CUDA {version('cuda')}), torch {version('torch')}"
    return (
        f"{info.get('cpu', '')} ({info.get('cores') or info.get('cpu_count')} cores),"
        f" torch {version('torch')}"
    )


def render_markdown(results: list[dict[str, Any]], info: dict[str, Any], command: str) -> str:
    """The results table; rows measured elsewhere (``--import``) keep their own command and machine,
    listed under the table with a mark per source."""
    sources: list[tuple[str, str]] = []

    def mark(row: dict[str, Any]) -> str:
        source = (
            row.get("command", command),
            machine_label({**row.get("machine", info), "device": row["device"]}),
        )
        if source not in sources:
            sources.append(source)
        return f"[{sources.index(source) + 1}]"

    lines = [
        "| model | protocol | "
        + " | ".join(COLUMNS)
        + " | floor | anchor | epochs (best) | train time | device |",
        "|---|---|" + "---|" * len(COLUMNS) + "---|---|---|---|---|",
    ]
    for r in results:
        m = r["metrics"]
        several = len(r.get("seeds", [0])) > 1

        def cell(column: str, m: dict[str, Any] = m, r: dict[str, Any] = r, several: bool = several) -> str:
            text = f"{m[column]:.4f}"
            if several:
                text += f" ± {r['spread'][column]['std']:.4f}"
            return f"**{text}**" if column == r["headline"] else text

        cells = [cell(c) for c in COLUMNS]
        training = r["training"]
        lines.append(
            f"| {r['model']} | {r['protocol']} | "
            + " | ".join(cells)
            + f" | {r['headline']} >= {r['floor']} {'(met)' if r['passed'] else '(NOT met)'} | {r['anchor']}"
            + f" | {epochs_cell(r)}{stop_note(training)}"
            + f" | {r['train_s'] / 60:.1f} min"
            + f" | {r['device']} {mark(r)} |"
        )
    lines.append("")
    for number, (run_command, where) in enumerate(sources, 1):
        lines.append(f"[{number}] `{run_command}` on {where}.")
    seeds = sorted({s for r in results for s in r.get("seeds", [r.get("seed", 0)])})
    lines += [
        "",
        f"Seed{'s' if len(seeds) > 1 else ''} {', '.join(map(str, seeds)) if seeds else 0}"
        + (
            "; each metric is the mean ± sample standard deviation over seeds, the floor judged on the mean"
            if len(seeds) > 1
            else ""
        )
        + "; full ranking over the whole catalogue.",
    ]
    return "\n".join(lines) + "\n"


def launched_as() -> list[str]:
    """Under torchrun: the launch options the ranks no longer see (``--nproc N``, ``--nnodes M``), so
    a results file names how it was trained; nothing in a single process."""
    import os

    local = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return []
    return ["--nproc", str(local)] + (["--nnodes", str(world // local)] if world != local else [])


def public_command(argv: list[str]) -> str:
    """The command as a user types it, for results files: ``--data`` left out (the default finds
    MovieLens-1M through ``$ZOO_DATA_DIR``), folders named by their last part, no private paths."""
    words = ["python", "benchmarks/quality.py"]
    pending = ""
    for word in argv:
        option, equals, value = word.partition("=")
        if pending:
            if pending != "--data":
                words += [pending, word if not Path(word).is_absolute() else Path(word).name]
            pending = ""
        elif option in ("--data", "--out", "--record", "--import") and not equals:
            pending = option
        elif option == "--data":
            continue
        elif option in ("--out", "--record", "--import"):
            words.append(f"{option}={value if not Path(value).is_absolute() else Path(value).name}")
        else:
            words.append(word)
    return " ".join(words)


def epochs_cell(row: dict[str, Any]) -> str:
    """Epochs run (best epoch) per seed, ``/``-separated when there are several."""
    return " / ".join(f"{r['training']['epochs_run']} ({r['training']['best_epoch']})" for r in runs_of(row))


def import_results(paths: list[str], done: dict[str, dict[str, Any]]) -> None:
    """Merge the rows of other ``results.json`` files (another machine's, say) into ``done``; each row
    keeps the command and machine that produced it."""
    for path in paths:
        try:
            payload = json.loads(Path(path).read_text())
            rows = payload["results"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise SystemExit(f"error: --import {path}: not a quality results.json ({exc})") from None
        for row in rows:
            row.setdefault("command", payload.get("command", ""))
            row.setdefault("machine", payload.get("machine", {}))
            done[row["model"]] = row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--models", default="all", help="comma-separated model names, or 'all' (default)")
    parser.add_argument(
        "--data",
        default=None,
        help="MovieLens-1M folder (default: $ZOO_DATA_DIR/ml-1m or the download cache)",
    )
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N")
    parser.add_argument("--seed", type=int, default=None, help="one seed (default 0); same as --seeds N")
    parser.add_argument(
        "--seeds",
        default=None,
        help="comma-separated seeds, e.g. 0,1,2: one training per seed, mean and spread reported",
    )
    parser.add_argument(
        "--record",
        default=None,
        metavar="DIR",
        help="also write one results file per model into DIR (e.g. benchmarks/results)",
    )
    parser.add_argument("--param", action="append", default=[], help="MODEL:key=value override (repeatable)")
    parser.add_argument(
        "--time-limit",
        type=float,
        default=None,
        metavar="MINUTES",
        help="stop each model's training after the epoch that passes this many minutes"
        " (best epoch kept; the table says so)",
    )
    parser.add_argument(
        "--nproc", type=int, default=1, help="train each model on N processes (DDP under torchrun)"
    )
    parser.add_argument("--nnodes", type=int, default=1, help="machines taking part (each runs the command)")
    parser.add_argument("--node-rank", type=int, default=None, help="this machine's rank (with --nnodes)")
    parser.add_argument("--rdzv-endpoint", default=None, help="HOST:PORT of node 0 (with --nnodes)")
    parser.add_argument("--out", default="quality-results", help="output folder")
    parser.add_argument("--force", action="store_true", help="rerun models already in results.json")
    parser.add_argument(
        "--import",
        dest="imports",
        action="append",
        default=[],
        metavar="RESULTS_JSON",
        help="merge the rows of another results.json (e.g. measured on a GPU machine), repeatable",
    )
    args = parser.parse_args(argv)
    if args.seed is not None and args.seeds is not None:
        parser.error("--seed and --seeds: give one of them")
    try:
        seeds = [int(s) for s in (args.seeds or str(args.seed or 0)).split(",")]
    except ValueError:
        parser.error(f"--seeds {args.seeds!r}: give comma-separated integers, e.g. 0,1,2")
    if len(set(seeds)) != len(seeds):
        parser.error(f"--seeds {args.seeds!r}: a seed is repeated")

    from zoo.data.locate import resolve_data_path
    from zoo.errors import ZooError
    from zoo.io import atomic_write_json, atomic_write_text
    from zoo.registry import default_registry

    try:
        data = str(resolve_data_path(default_registry().dataset("movielens-1m"), args.data))
    except ZooError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return exc.exit_code
    installed = set(default_registry().names("model"))
    names = [n for n in ANCHORS if n in installed] if args.models == "all" else args.models.split(",")
    unknown = [n for n in names if n not in ANCHORS or n not in installed]
    if unknown:
        print(
            f"error: no anchor or no installed model for {', '.join(unknown)}; known: {', '.join(ANCHORS)}",
            file=sys.stderr,
        )
        return 2
    record_dir = Path(args.record) if args.record else None
    if record_dir is not None and not record_dir.is_dir():
        print(f"error: --record {record_dir}: no such folder; create it or name another", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results_file = out / "results.json"
    previous = json.loads(results_file.read_text()).get("results", []) if results_file.is_file() else []
    done = {r["model"]: r for r in previous if not args.force}
    info = machine()
    command = "python benchmarks/quality.py " + " ".join(argv if argv is not None else sys.argv[1:])
    import_results(args.imports, done)

    def save() -> None:
        ordered = [done[n] for n in ANCHORS if n in done]
        atomic_write_json(
            results_file, {"schema": 2, "machine": info, "command": command, "results": ordered}
        )
        atomic_write_text(out / "results.md", render_markdown(ordered, info, command))

    def overrides_for(name: str) -> list[str]:
        overrides = [p.split(":", 1)[1] for p in args.param if p.startswith(f"{name}:")]
        if args.time_limit is not None and not any(o.startswith("time_limit=") for o in overrides):
            overrides.append(f"time_limit={args.time_limit * 60:g}")
        return overrides

    from zoo.distributed import LaunchOptions, relaunch, under_launcher
    from zoo.pipeline.stages import lead_training

    try:
        launch = LaunchOptions(
            nproc=args.nproc, nnodes=args.nnodes, node_rank=args.node_rank, rdzv_endpoint=args.rdzv_endpoint
        )
        if launch.distributed and not under_launcher():
            relaunch(launch, sys.argv[1:] if argv is None else argv, program=__file__)
            return 0
        args.raw_argv = list(sys.argv[1:] if argv is None else argv) + launched_as()
        status = lead_training(
            lambda: measure(names, seeds, data, args, overrides_for, done, save, info, command, record_dir),
            lambda name: model_config(name, data, args.device, seeds[0], overrides_for(name)),
            args.device,
        )
    except ZooError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return exc.exit_code
    return 0 if status is None else status


def measure(
    names: list[str],
    seeds: list[int],
    data: str,
    args: argparse.Namespace,
    overrides_for: Any,
    done: dict[str, Any],
    save: Any,
    info: dict[str, Any],
    command: str,
    record_dir: Path | None,
) -> int:
    """Train and evaluate each model under each seed not measured yet, saving after every run."""
    from zoo.io import atomic_write_json

    results_file = Path(args.out) / "results.json"
    if args.imports:
        save()
    for name in names:
        runs = {r["seed"]: r for r in runs_of(done[name])} if name in done else {}
        missing = [s for s in seeds if s not in runs]
        if not missing:
            print(
                f"{name}: seeds {', '.join(map(str, seeds))} already in {results_file} (use --force to rerun)"
            )
        overrides = overrides_for(name)
        for seed in missing:
            print(
                f"{name}: training under protocol {ANCHORS[name][0]} on {args.device}, seed {seed} ...",
                flush=True,
            )
            result = run_model(name, data, args.device, seed, overrides)
            result.update(command=command, machine=info)
            runs[seed] = result
            done[name] = aggregate([runs[s] for s in sorted(runs)])
            m = result["metrics"]
            print(
                f"{name} seed {seed}: HR@10 {m['hitrate@10']:.4f} HR@50 {m['hitrate@50']:.4f}"
                f" NDCG@10 {m['ndcg@10']:.4f} ({result['training']['epochs_run']} epochs,"
                f" {result['train_s']:.0f} s)",
                flush=True,
            )
            save()
        row = aggregate([runs[s] for s in seeds])
        headline = row["headline"]
        print(
            f"{name}: {headline} mean {row['metrics'][headline]:.4f} ± {row['spread'][headline]['std']:.4f}"
            f" over seeds {', '.join(map(str, seeds))}; floor {headline} >= {row['floor']}:"
            f" {'met' if row['passed'] else 'NOT met'}",
            flush=True,
        )
        if record_dir is not None:
            date = time.strftime("%Y-%m-%d")
            device = "gpu" if str(row["device"]).startswith("cuda") else "cpu"
            label = "-seeds-" + "-".join(map(str, seeds)) if len(seeds) > 1 else f"-seed{seeds[0]}"
            target = record_dir / f"{date}-quality-{name}{label}-{device}.json"
            public = public_command(args.raw_argv)
            atomic_write_json(target, results_record(row, info, public, date))
            print(f"{name}: recorded {target}")
    print(f"wrote {results_file} and {Path(args.out) / 'results.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
