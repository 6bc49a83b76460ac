"""``zoo bench MODELS --retriever LIST`` and ``zoo report DIR``: measure every combination, draw the
answer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from zoo.errors import UsageError
from zoo_cli import state
from zoo_cli.commands.run import NNODES, NODE_RANK, NPROC, PREPARED_DIR, RDZV_ENDPOINT, relaunched
from zoo_cli.output import (
    OutputFormat,
    fmt,
    handle_errors,
    print_json,
    protocol_option,
    stderr,
    stdout,
    table,
)
from zoo_cli.params import parse_ks, settings

MODEL_STAGES = ("load", "prepare", "train", "embed")


def _split(text: str, what: str) -> list[str]:
    names = [part.strip() for part in text.split(",") if part.strip()]
    if not names:
        raise UsageError(f"{what} {text!r} names nothing; give comma-separated names, e.g. dssm,gru4rec")
    return names


class CliBenchProgress:
    """A bar over the bench's cells on stderr, paused while a model trains (its own bar shows then)."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self._bar: Any = None
        self._task: Any = None
        self._total = 0
        self._done = 0

    # zoo.pipeline.Progress
    def stage(self, name: str, detail: str = "") -> None:
        if name in MODEL_STAGES:
            self._pause()
        if not self.quiet:
            stderr.print(f"[dim]{name:>8}[/] {detail}", highlight=False, markup=True)

    def trainer_callbacks(self) -> list[Any]:
        self._pause()
        if self.quiet:
            return []
        from zoo.train.progress import RichProgress

        return [RichProgress(console=stderr)]

    # zoo.bench.runner.BenchProgress
    def start(self, total_cells: int) -> None:
        self._total = total_cells

    def advance(self, label: str, *, skipped: bool = False, failed: bool = False) -> None:
        self._done += 1
        if self.quiet:
            return
        self._ensure_bar()
        self._bar.update(self._task, completed=self._done, description=label[:60])

    def warning(self, line: str) -> None:
        stderr.print(line, highlight=False, markup=False)

    def finish(self) -> None:
        self._pause()

    def _ensure_bar(self) -> None:
        if self._bar is not None:
            return
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self._bar = Progress(
            TextColumn("[bold]cells"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.description}"),
            console=stderr,
            transient=True,
        )
        self._bar.start()
        self._task = self._bar.add_task("", total=self._total, completed=self._done)

    def _pause(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None


def _default_retrievers() -> list[str]:
    specs = [s for s in state.registry().specs("retriever") if s.available]
    names = sorted({s.name for s in specs}, key=lambda n: (n != "exact", n))
    return names


@handle_errors
def bench(
    models: str | None = typer.Argument(
        None, help="Models to compare, comma-separated (see 'zoo models'); or [run] model in --config."
    ),
    config_file: Path | None = typer.Option(
        None, "--config", "-c", help="TOML/YAML settings file, as for 'zoo run' ([run] model may be a list)."
    ),
    retriever: str | None = typer.Option(
        None, "--retriever", "-r", help="Retrievers, comma-separated (default: every installed one)."
    ),
    dataset: str | None = typer.Option(
        None, "--dataset", "-d", help="Dataset (see 'zoo datasets'; default synthetic)."
    ),
    data: Path | None = typer.Option(
        None, "--data", help="Folder (or file) the dataset reads; else ZOO_DATA_DIR."
    ),
    protocol: str | None = protocol_option(),
    device: str | None = typer.Option(
        None, "--device", help="Training device (default auto), and the default of GPU-capable retrievers."
    ),
    grid: Path | None = typer.Option(
        None, "--grid", help="TOML/YAML grid file; replaces the default grid of each retriever it names."
    ),
    k: str | None = typer.Option(
        None,
        "--k",
        help="Cut-offs, comma-separated (default 10,50,100); the smallest is the recall target's K.",
    ),
    repeat: int = typer.Option(
        3, "--repeat", min=1, help="Timed passes per measurement (users/s is their median)."
    ),
    out: Path | None = typer.Option(
        None, "--out", help="Bench folder (default runs/bench-DATASET); reruns resume there."
    ),
    force: bool = typer.Option(
        False, "--force", help="Retrain and measure every cell again, even those already finished."
    ),
    output_format: OutputFormat = typer.Option(
        OutputFormat.human, "--format", help="human or json (bench.json on stdout)."
    ),
    param: list[str] = typer.Option(
        [], "--param", "-p", help="key=value for every model; 'data.KEY=V', 'protocol.KEY=V' go there."
    ),
    epochs: int | None = typer.Option(
        None, "--epochs", min=1, help="Maximum epochs (default: each model's preset)."
    ),
    seed: int | None = typer.Option(
        None, "--seed", help="Random seed, default 0 (training, latency sample)."
    ),
    recall_target: float = typer.Option(
        0.95, "--recall-target", help="Recall against exact search the answer must reach."
    ),
    latency_queries: int = typer.Option(
        1000, "--latency-queries", min=0, help="One-user queries timed per measurement."
    ),
    prepared_dir: Path | None = PREPARED_DIR,
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress output."),
    nproc: int = NPROC,
    nnodes: int = NNODES,
    node_rank: int | None = NODE_RANK,
    rdzv_endpoint: str | None = RDZV_ENDPOINT,
) -> None:
    """Train each model once, build each index once per build setting, sweep query settings, and write
    bench.json, report.md and report.html.

    Example: zoo bench dssm,gru4rec --retriever exact,hnsw,faiss --dataset movielens-1m --data ml-1m
    """
    from zoo.bench.report import write_reports
    from zoo.bench.runner import BenchConfig, run_bench

    run, (model_params, retriever_params, dataset_options, protocol_overrides) = settings(config_file, param)
    listed = run.get("model")
    models = models or (",".join(listed) if isinstance(listed, list) else listed)
    if not models:
        raise UsageError(
            "give MODELS (e.g. 'zoo bench dssm,gru4rec') or a --config file whose [run] names them"
        )
    if retriever is None and run.get("retriever"):
        listed = run["retriever"]
        retriever = ",".join(listed) if isinstance(listed, list) else listed
    dataset = dataset or run.get("dataset") or "synthetic"
    if retriever_params:
        names = ", ".join(f"retriever.{key}" for key in retriever_params)
        raise UsageError(
            f"--param {names}: zoo bench takes retriever parameters from a grid file (--grid FILE)"
        )
    config = BenchConfig(
        models=_split(models, "MODELS"),
        retrievers=_split(retriever, "--retriever") if retriever is not None else _default_retrievers(),
        dataset=dataset,
        data_path=str(data) if data is not None else run.get("data_path"),
        protocol=protocol or run.get("protocol"),
        device=device or run.get("device") or "auto",
        grid_file=str(grid) if grid is not None else None,
        ks=parse_ks(k, "10,50,100") if k is not None else tuple(run.get("ks") or (10, 50, 100)),
        repeat=repeat,
        out=str(out) if out is not None else str(Path("runs") / f"bench-{dataset}"),
        force=force,
        seed=seed if seed is not None else run.get("seed", 0),
        epochs=epochs,
        params=model_params,
        dataset_options=dataset_options,
        protocol_overrides=protocol_overrides,
        recall_target=recall_target,
        latency_queries=latency_queries,
        prepared_dir=str(prepared_dir) if prepared_dir is not None else None,
    )
    if relaunched(nproc, nnodes, node_rank, rdzv_endpoint):
        return
    from zoo.pipeline.stages import lead_training

    doc = lead_training(
        lambda: run_bench(
            config,
            registry=state.registry(),
            progress=CliBenchProgress(quiet or output_format is OutputFormat.json),
        ),  # type: ignore[arg-type]
        config.run_config,
        config.device,
        registry=state.registry(),
    )
    if doc is None:  # another rank of a distributed bench: it trained each model with rank 0
        return
    paths = write_reports(doc, config.out)
    if output_format is OutputFormat.json:
        print_json(doc)
    else:
        render_summary(doc, paths, Path(config.out) / "bench.json")
    failures = doc["runs"][-1].get("failures", 0) if doc.get("runs") else 0
    if failures:
        stderr.print(
            f"error: {failures} model(s) or cell(s) failed; see the warnings above and"
            f" {Path(config.out) / 'report.md'}",
            highlight=False,
            markup=False,
        )
        raise typer.Exit(1)


def _ms(value: Any) -> str:
    return "n/a" if not isinstance(value, (int, float)) else f"{value:.3g}"


def render_summary(doc: dict[str, Any], paths: list[Path], bench_file: Path | None = None) -> None:
    """Per model: each retriever's fastest setting reaching the target (or its highest recall), with
    users/s and one-user latency; the answer against exact search; the caveats."""
    from zoo.bench.summary import caveat_lines

    summary = doc.get("summary", {})
    for model, info in summary.items():
        rows = []
        for name, entry in info.get("per_retriever", {}).items():
            chosen = entry.get("best") or entry.get("highest_recall") or {}
            setting = " ".join(
                f"{k}={v}" for k, v in {**(chosen.get("build") or {}), **(chosen.get("query") or {})}.items()
            )
            speedup = chosen.get("speedup")
            rows.append(
                [
                    name,
                    (setting or "defaults") + ("" if entry.get("reaches_target") else " (below target)"),
                    fmt(chosen.get("recall"), 3),
                    f"{chosen.get('qps') or 0:,.0f}",
                    "n/a" if speedup is None else f"{speedup:.1f}x",
                    _ms(chosen.get("latency_p50_ms")),
                    _ms(chosen.get("latency_p99_ms")),
                ]
            )
        best = info.get("best")
        title = f"{model}: fastest setting with recall@{info['recall_k']} >= {info['recall_target']:g}"
        header = ["retriever", "setting", "recall", "users/s", "vs exact", "p50 ms", "p99 ms"]
        stdout.print(table(title, header, rows))
        if best:
            exact = info.get("exact") or {}
            speedup = best.get("speedup")
            line = (
                f"  answer: {best['retriever']} ({best.get('qps') or 0:,.0f} users/s"
                + ("" if speedup is None or best["retriever"] == "exact" else f", {speedup:.1f}x exact")
                + f"; one user p50 {_ms(best.get('latency_p50_ms'))} ms,"
                f" p99 {_ms(best.get('latency_p99_ms'))} ms"
            )
            if exact and best["retriever"] != "exact":
                line += (
                    f" against exact's {_ms(exact.get('latency_p50_ms'))} ms,"
                    f" {_ms(exact.get('latency_p99_ms'))} ms"
                )
            stdout.print(line + ")", highlight=False)
        else:
            stdout.print("  answer: no setting reaches the target", highlight=False)
    for line in caveat_lines(doc):
        stdout.print(f"caveat: {line}", highlight=False)
    for unavailable in doc.get("unavailable", []):
        stdout.print(f"unavailable: {unavailable['name']} ({unavailable['install']})", highlight=False)
    run = doc.get("runs", [{}])[-1]
    stdout.print(
        f"cells measured {run.get('cells_measured', 0)}, skipped (finished before)"
        f" {run.get('cells_skipped', 0)}; load average {run.get('load_average_start')} ->"
        f" {run.get('load_average_end')}",
        highlight=False,
    )
    written = ([str(bench_file)] if bench_file is not None else []) + [str(p) for p in paths]
    stdout.print("written: " + ", ".join(written), highlight=False)


@handle_errors
def report(
    directory: Path = typer.Argument(..., help="A bench folder (holding bench.json)."),
    recall_target: float | None = typer.Option(
        None, "--recall-target", help="Re-answer for another recall target."
    ),
    out: Path | None = typer.Option(None, "--out", help="Where to write the reports (default: DIRECTORY)."),
    output_format: OutputFormat = typer.Option(
        OutputFormat.human, "--format", help="human or json (the summary on stdout)."
    ),
) -> None:
    """Re-render report.md and report.html from DIRECTORY/bench.json (bench.json is not modified).

    Example: zoo report runs/bench-movielens-1m --recall-target 0.9
    """
    from zoo.bench.report import write_reports
    from zoo.bench.schema import load_document
    from zoo.errors import ModelFileError, one_line

    doc = load_document(directory)
    if recall_target is not None:
        if not 0.0 < recall_target <= 1.0:
            raise UsageError(f"--recall-target must be in (0, 1], got {recall_target}")
        doc["config"]["recall_target"] = recall_target
    target = out if out is not None else (directory if directory.is_dir() else directory.parent)
    try:
        paths = write_reports(doc, target)
        if output_format is OutputFormat.json:
            print_json(doc["summary"])
            return
        render_summary(doc, paths)
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:  # an edited or foreign file
        source = directory / "bench.json" if directory.is_dir() else directory
        raise ModelFileError(
            f"{source}: unexpected structure ({one_line(exc)}); it was edited or written by another"
            " program: run the bench again"
        ) from None
