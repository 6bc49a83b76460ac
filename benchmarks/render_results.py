"""Render docs/results.md from the measured runs in benchmarks/results/*.json.

    python benchmarks/render_results.py            # (re)write docs/results.md
    python benchmarks/render_results.py --check    # exit 1 when docs/results.md is stale or a file is invalid

The schema of a results file is in benchmarks/results/README.md. Floors and published anchors of the
quality benchmark come from benchmarks/results/anchors.json, so this script names no model itself.
Figures are read as decimals (``parse_float=Decimal``) and printed as stored: ``0.980`` stays ``0.980``.
Standard library only.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS_DIR = ROOT / "benchmarks" / "results"
OUTPUT = ROOT / "docs" / "results.md"
ANCHORS_FILE = "anchors.json"

KINDS = ("quality", "run", "bench", "benchmark")
REQUIRED = ("command", "machine", "versions", "date", "kind", "figures", "notes")
QUALITY_REQUIRED = ("model", "dataset", "protocol", "seed")
FILE_NAME = re.compile(r"^(\d{4}-\d{2}-\d{2})-(quality|run|bench|benchmark)-[a-z0-9][a-z0-9.-]*\.json$")
PRIVATE_PATH = re.compile(r"/(root|tmp|home)/|\.\./shared|\.gpu/")
SECTIONS = {
    "run": ("Runs", "ranking"),
    "bench": ("Retriever comparison (`zoo bench`)", "model"),
    "benchmark": ("Performance", "measurement"),
}


def load_json(path: Path) -> Any:
    """A JSON file with every non-integer number as a Decimal (printed exactly as written)."""
    return json.loads(path.read_text(encoding="utf-8"), parse_float=Decimal)


def validate(name: str, record: Any) -> list[str]:
    """What is wrong with one results file (empty when it follows the schema)."""
    if not isinstance(record, dict):
        return [f"{name}: the top level must be an object"]
    problems = [f"{name}: missing '{key}'" for key in REQUIRED if key not in record]
    match = FILE_NAME.match(name)
    if not match:
        problems.append(f"{name}: name it DATE-KIND-WHAT.json (e.g. 2026-11-28-quality-gru4rec-cpu.json)")
    kind = record.get("kind")
    if kind not in KINDS:
        problems.append(f"{name}: kind {kind!r} is not one of {', '.join(KINDS)}")
    elif match and match.group(2) != kind:
        problems.append(f"{name}: the file name says kind '{match.group(2)}', the file says '{kind}'")
    date = record.get("date")
    if not isinstance(date, str) or not re.fullmatch(r"\d{4}-\d{2}-\d{2}", date):
        problems.append(f"{name}: date must be YYYY-MM-DD, got {date!r}")
    elif match and match.group(1) != date:
        problems.append(f"{name}: the file name's date {match.group(1)} differs from date {date}")
    command = record.get("command")
    if command is not None and (not isinstance(command, str) or not command.strip()):
        problems.append(f"{name}: command must be a non-empty string, or null for a one-off script")
    for key in ("machine", "versions", "figures"):
        if key in record and (not isinstance(record[key], dict) or not record[key]):
            problems.append(f"{name}: {key} must be a non-empty object")
    if isinstance(record.get("versions"), dict) and "recall-zoo" not in record["versions"]:
        problems.append(f"{name}: versions must name the recall-zoo version")
    notes = record.get("notes")
    if not isinstance(notes, str) or not notes.strip():
        problems.append(f"{name}: notes must be one or two sentences")
    if kind == "quality":
        problems += [
            f"{name}: a quality result needs '{key}'" for key in QUALITY_REQUIRED if key not in record
        ]
    for text in (command, notes, record.get("title")):
        if isinstance(text, str) and PRIVATE_PATH.search(text):
            problems.append(
                f"{name}: a private path in {text!r}; write what a user types (--data ml-1m, $ZOO_DATA_DIR)"
            )
    return problems


def load_results(folder: Path) -> tuple[dict[str, dict[str, Any]], dict[str, Any], list[str]]:
    """``(results by file name, anchors, problems)`` of a results folder."""
    results: dict[str, dict[str, Any]] = {}
    problems: list[str] = []
    for path in sorted(folder.glob("*.json")):
        if path.name == ANCHORS_FILE:
            continue
        try:
            record = load_json(path)
        except (OSError, ValueError) as exc:
            problems.append(f"{path.name}: not readable JSON ({exc})")
            continue
        found = validate(path.name, record)
        problems += found
        if not found:
            results[path.name] = record
    anchors_path = folder / ANCHORS_FILE
    anchors: dict[str, Any] = {"columns": [], "models": {}}
    if anchors_path.is_file():
        anchors = load_json(anchors_path)
    return results, anchors, problems


# -- formatting ------------------------------------------------------------------------------------
def fmt(value: Any) -> str:
    """One figure as printed in the docs: integers with thousands separators, decimals as stored."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, (list, tuple)):
        return " / ".join(fmt(v) for v in value)
    if isinstance(value, dict):
        return ", ".join(f"{k} {fmt(v)}" for k, v in value.items())
    return str(value).replace("|", "\\|")


def link(name: str, text: str | None = None) -> str:
    return f"[{text or name}](../benchmarks/results/{name})"


def machine_text(machine: Mapping[str, Any]) -> str:
    parts = []
    if "gpu" in machine:
        parts.append(str(machine["gpu"]) + (f" (CUDA {machine['cuda']})" if "cuda" in machine else ""))
    if "cpu" in machine:
        parts.append(str(machine["cpu"]) + (f", {machine['cores']} cores" if "cores" in machine else ""))
    if "memory_gb" in machine:
        parts.append(f"{fmt(machine['memory_gb'])} GB")
    if "note" in machine:
        parts.append(f"machine {machine['note']}")
    return ", ".join(parts)


def versions_text(versions: Mapping[str, Any]) -> str:
    return ", ".join(f"{name} {version}" for name, version in versions.items())


def table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def provenance(name: str, record: Mapping[str, Any]) -> list[str]:
    """Command, machine, versions, date and notes of one results file, as a short block."""
    command = record["command"]
    one_off = "No single command: a one-off script (see the notes)."
    lines = [f"```bash\n{command}\n```" if command else one_off]
    lines.append("")
    lines.append(
        f"{machine_text(record['machine'])}; {versions_text(record['versions'])}; {record['date']}. "
        f"{record['notes']} ({link(name, 'result file')})"
    )
    return lines


# -- sections --------------------------------------------------------------------------------------
def quality_order(results: Mapping[str, dict[str, Any]], anchors: Mapping[str, Any]) -> list[str]:
    known = list(anchors.get("models", {}))
    names = [n for n, r in results.items() if r["kind"] == "quality"]

    def key(name: str) -> tuple[int, str, int, str]:
        model = results[name]["model"]
        position = known.index(model) if model in known else len(known)
        seed = results[name]["seed"]
        return position, model, int(seed[0] if isinstance(seed, list) else seed), name

    return sorted(names, key=key)


def quality_section(results: Mapping[str, dict[str, Any]], anchors: Mapping[str, Any]) -> list[str]:
    names = quality_order(results, anchors)
    if not names:
        return []
    columns = list(anchors.get("columns", []))
    lines = [
        "## Quality (MovieLens-1M, full ranking)",
        "",
        "`python benchmarks/quality.py` trains each model with its preset and fixed seeds, under the "
        "protocol of its published anchor, and ranks the whole catalogue exactly. The headline metric of "
        "each model is in bold; the floor is the level the project holds the preset to. A row over several "
        "seeds shows each metric's mean ± sample standard deviation (the floor is judged on the mean) "
        "and the epochs of each seed.",
        "",
    ]
    rows = []
    for name in names:
        record = results[name]
        figures = record["figures"]
        anchor = anchors.get("models", {}).get(record["model"], {})
        headline = anchor.get("metric")
        seed = record["seed"]
        cells = [f"`{record['model']}`", ", ".join(map(str, seed)) if isinstance(seed, list) else fmt(seed)]
        cells.append(f"`{record['protocol']}`")
        for column in columns:
            value = fmt(figures.get(column))
            if value and f"{column}_std" in figures:
                value += f" ± {fmt(figures[f'{column}_std'])}"
            cells.append(f"**{value}**" if column == headline and value else value)
        floor = f"{headline} >= {fmt(anchor['floor'])}" if "floor" in anchor else ""
        cited = anchor.get("anchor", "")
        if "anchor_url" in anchor:
            cited = f"[{cited}]({anchor['anchor_url']})"
        epochs = fmt(figures.get("epochs"))
        if "best_epoch" in figures:
            epochs += f" ({fmt(figures['best_epoch'])})"
        cells += [
            floor,
            cited,
            epochs,
            fmt(figures.get("train_minutes")),
            fmt(record.get("device")),
            link(name, record["date"]),
        ]
        rows.append(cells)
    header = [
        "model",
        "seed",
        "protocol",
        *columns,
        "floor",
        "anchor",
        "epochs (best)",
        "train min",
        "device",
        "result",
    ]
    lines += table(header, rows)
    lines += ["", "How each row was measured:", ""]
    for name in names:
        record = results[name]
        command = f"`{record['command']}`" if record["command"] else "a one-off script"
        lines.append(
            f"- {link(name)}: {command} on {machine_text(record['machine'])} "
            f"({versions_text(record['versions'])}). {record['notes']}"
        )
    lines += popularity_section(results, names)
    return lines


def popularity_section(results: Mapping[str, dict[str, Any]], names: Sequence[str]) -> list[str]:
    """Popularity baseline per protocol, from the first quality file of each protocol that has it."""
    seen: dict[str, str] = {}
    for name in names:
        protocol = results[name]["protocol"]
        if protocol not in seen and any(k.startswith("popularity_") for k in results[name]["figures"]):
            seen[protocol] = name
    if not seen:
        return []
    metrics: list[str] = []
    for name in seen.values():
        metrics += [k for k in results[name]["figures"] if k.startswith("popularity_") and k not in metrics]
    rows = [
        [
            f"`{protocol}`",
            *(fmt(results[name]["figures"].get(m)) for m in metrics),
            link(name, results[name]["date"]),
        ]
        for protocol, name in seen.items()
    ]
    header = ["protocol", *(m.removeprefix("popularity_") for m in metrics), "result"]
    return ["", "Popularity (most popular items first) under each protocol:", "", *table(header, rows)]


def figures_block(name: str, record: Mapping[str, Any], row_label: str) -> list[str]:
    """A results file's figures: object entries as table rows (each linking the file), the rest as a list."""
    figures = record["figures"]
    grouped = {k: v for k, v in figures.items() if isinstance(v, dict)}
    single = {k: v for k, v in figures.items() if not isinstance(v, dict)}
    lines: list[str] = []
    if grouped:
        columns: list[str] = []
        for values in grouped.values():
            columns += [c for c in values if c not in columns]
        rows = [
            [link(name, label), *(fmt(values.get(c)) for c in columns)] for label, values in grouped.items()
        ]
        lines += table([row_label, *columns], rows)
        lines.append("")
    if single:
        lines.append("; ".join(f"{key}: {fmt(value)}" for key, value in single.items()) + ".")
        lines.append("")
    return lines


def kind_section(results: Mapping[str, dict[str, Any]], kind: str) -> list[str]:
    title, row_label = SECTIONS[kind]
    # Newest first; runs with a command before one-off scripts.
    names = [n for n, r in results.items() if r["kind"] == kind]
    names.sort(key=lambda n: (results[n]["date"], n), reverse=True)
    names.sort(key=lambda n: results[n]["command"] is None)
    if not names:
        return []
    lines = [f"## {title}", ""]
    for name in names:
        record = results[name]
        lines += [f"### {record.get('title') or name}", ""]
        lines += figures_block(name, record, row_label)
        lines += provenance(name, record)
        lines.append("")
    return lines


def render(folder: Path = RESULTS_DIR) -> tuple[str, list[str]]:
    """``(docs/results.md text, problems)`` from a results folder."""
    results, anchors, problems = load_results(folder)
    lines = [
        "# Results",
        "",
        "<!-- Generated by benchmarks/render_results.py from benchmarks/results/*.json: edit those files and",
        "     rerun `python benchmarks/render_results.py`; never edit this page by hand. -->",
        "",
        "The measured runs that the README and the docs report, one results file each; every row links "
        "its file (command, machine, versions, date, notes; schema in "
        "[benchmarks/results/README.md](../benchmarks/results/README.md)). Single runs on a shared 2-core "
        "machine move by 10-20%: compare figures within a table, not across machines.",
        "",
    ]
    lines += quality_section(results, anchors)
    lines.append("")
    for kind in ("run", "bench", "benchmark"):
        lines += kind_section(results, kind)
    text = "\n".join(lines)
    text = re.sub(r"\n{3,}", "\n\n", text).rstrip("\n") + "\n"
    return text, problems


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--check", action="store_true", help="exit 1 when docs/results.md is stale or a file is invalid"
    )
    parser.add_argument("--results", type=Path, default=RESULTS_DIR, help="the results folder")
    parser.add_argument("--output", type=Path, default=OUTPUT, help="the page to write or check")
    args = parser.parse_args(argv)
    text, problems = render(args.results)
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    if args.check:
        current = args.output.read_text(encoding="utf-8") if args.output.is_file() else ""
        if current != text:
            print(f"error: {args.output} is stale: run python benchmarks/render_results.py", file=sys.stderr)
            return 1
        return 1 if problems else 0
    if problems:
        return 2
    args.output.write_text(text, encoding="utf-8")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
