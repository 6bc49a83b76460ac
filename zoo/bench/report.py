"""Bench reports rendered from ``bench.json``: ``report.md`` and a self-contained ``report.html``.

Both open with the answer users come for (per model, the fastest setting that reaches the recall
target), then per model a quality table (one row per retriever, at its chosen setting, plus exact
search and the popularity baseline), the recall-vs-QPS Pareto plot (HTML), build time and memory
bars (HTML), every measured cell, and the protocol card with the machine and the load it was under.
The HTML has no external resource: charts are inline SVG, styles are inline.
"""

from __future__ import annotations

import math
from html import escape
from pathlib import Path
from typing import Any

from zoo.bench.schema import REPORT_HTML, REPORT_MD
from zoo.bench.summary import done_cells, point, recall_k, summarize
from zoo.bench.svg import Series, bar_chart, pareto_plot
from zoo.io import atomic_write_text

__all__ = ["render_html", "render_markdown", "write_reports"]

QUALITY = ("hitrate", "ndcg")


# -- formatting ------------------------------------------------------------------------------------------
def _num(value: Any, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _qps(value: Any) -> str:
    return "n/a" if value is None else f"{value:,.0f}"


def _ms(value: Any) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value:.3g}"


def _bytes(value: Any) -> str:
    if value is None:
        return "n/a"
    for unit, size in (("GB", 2**30), ("MB", 2**20), ("kB", 2**10)):
        if value >= size:
            return f"{value / size:.1f} {unit}"
    return f"{value} B"


def _params(params: dict[str, Any] | None) -> str:
    return " ".join(f"{k}={v}" for k, v in (params or {}).items()) or "defaults"


def _setting(cell: dict[str, Any]) -> str:
    build = {k: v for k, v in (cell.get("build") or {}).items()}
    query = cell.get("query") or {}
    parts = [_params(build) if build else "", _params(query) if query else ""]
    return " | ".join(p for p in parts if p) or "defaults"


def _speedup(value: Any) -> str:
    return "n/a" if value is None else f"{value:.1f}x"


def _cell_by_id(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c.get("id"): c for c in doc.get("cells", [])}


# -- shared views -------------------------------------------------------------------------------------------
def _models(doc: dict[str, Any]) -> list[str]:
    config = doc.get("config", {})
    return list(
        dict.fromkeys(
            [*config.get("models", []), *doc.get("models", {}), *(c["model"] for c in doc.get("cells", []))]
        )
    )


def _answer_rows(doc: dict[str, Any]) -> list[list[str]]:
    rows = []
    for model in _models(doc):
        info = doc.get("summary", {}).get(model)
        if not info:
            status = doc.get("models", {}).get(model, {})
            rows.append([model, f"no measurement ({status.get('error') or 'not run'})", "", "", "", ""])
            continue
        best = info.get("best")
        if best is None:
            rows.append(
                [
                    model,
                    f"no setting reaches recall@{info['recall_k']} >= {info['recall_target']:g}",
                    "",
                    "",
                    "",
                    "",
                ]
            )
            continue
        rows.append(
            [
                model,
                f"{best['retriever']} {_setting(best)}",
                _num(best["recall"], 3),
                _qps(best["qps"]),
                _speedup(best.get("speedup")),
                _ms(best.get("latency_p50_ms")),
            ]
        )
    return rows


ANSWER_HEADER = ["model", "fastest setting reaching the target", "recall", "queries/s", "vs exact", "p50 ms"]


def _quality_rows(doc: dict[str, Any], model: str) -> tuple[list[str], list[list[str]]]:
    ks = [int(k) for k in doc.get("config", {}).get("ks", [10])]
    k_main = recall_k(doc)
    header = (
        ["retriever", "setting"]
        + [f"{m}@{k}" for k in ks for m in QUALITY]
        + [
            f"recall@{k_main}",
            "queries/s",
            "vs exact",
            "p50 ms",
            "p99 ms",
            "build s",
            "memory",
            "disk",
        ]
    )
    rows = []
    info = doc.get("models", {}).get(model, {})
    metrics = info.get("metrics", {})
    for baseline, label in (
        ("exact", "exact full ranking (evaluator)"),
        ("popularity", "popularity baseline"),
    ):
        if baseline in metrics:
            values = metrics[baseline]
            rows.append([label, ""] + [_num(values.get(f"{m}@{k}")) for k in ks for m in QUALITY] + [""] * 8)
    summary = doc.get("summary", {}).get(model, {})
    cells = _cell_by_id(doc)
    for name, entry in summary.get("per_retriever", {}).items():
        chosen = entry.get("best") or entry.get("highest_recall")
        cell = cells.get(chosen["cell"]) if chosen else None
        if cell is None:
            continue
        main = point(cell, k_main) or {}
        note = "" if entry.get("reaches_target") else " (below target: highest recall)"
        rows.append(
            [name, _setting(cell) + note]
            + [_num((point(cell, k) or {}).get("quality", {}).get(f"{m}@{k}")) for k in ks for m in QUALITY]
            + [
                _num(main.get("recall"), 3),
                _qps(main.get("qps")),
                _speedup(main.get("speedup")),
                _ms(main.get("latency_ms", {}).get("p50")),
                _ms(main.get("latency_ms", {}).get("p99")),
                _num(cell.get("build_s"), 3),
                _bytes(cell.get("memory_bytes")),
                _bytes(cell.get("disk_bytes")),
            ]
        )
    return header, rows


def _all_cell_rows(doc: dict[str, Any], model: str) -> tuple[list[str], list[list[str]]]:
    k_main = recall_k(doc)
    ks = [int(k) for k in doc.get("config", {}).get("ks", [k_main])]
    header = (
        ["retriever", "build", "query"]
        + [f"recall@{k}" for k in ks]
        + [
            f"q/s @{k_main}",
            "vs exact",
            "p50 ms",
            "p99 ms",
            f"ndcg@{k_main}",
            "build s",
            "memory",
        ]
    )
    rows = []
    cells = sorted(
        done_cells(doc, model), key=lambda c: (c["retriever"], -((point(c, k_main) or {}).get("recall") or 0))
    )
    for cell in cells:
        main = point(cell, k_main) or {}
        rows.append(
            [cell["retriever"], _params(cell.get("build")), _params(cell.get("query"))]
            + [_num((point(cell, k) or {}).get("recall"), 3) for k in ks]
            + [
                _qps(main.get("qps")),
                _speedup(main.get("speedup")),
                _ms(main.get("latency_ms", {}).get("p50")),
                _ms(main.get("latency_ms", {}).get("p99")),
                _num(main.get("quality", {}).get(f"ndcg@{k_main}")),
                _num(cell.get("build_s"), 3),
                _bytes(cell.get("memory_bytes")),
            ]
        )
    return header, rows


def _failures(doc: dict[str, Any]) -> list[str]:
    lines = [
        f"model {name}: {info.get('error')}"
        for name, info in doc.get("models", {}).items()
        if info.get("status") == "failed"
    ]
    lines += [
        f"{c['model']} x {c['retriever']} {_setting(c)}: {c.get('error')}"
        for c in doc.get("cells", [])
        if c.get("status") == "failed"
    ]
    return lines


def _flat(value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k}={_flat(v)}" for k, v in value.items()) or "none"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _protocol_items(doc: dict[str, Any]) -> list[tuple[str, str]]:
    config = doc.get("config", {})
    machine = doc.get("machine", {})
    versions = doc.get("versions", {})
    k_main = recall_k(doc)
    card: dict[str, Any] = {}
    for info in doc.get("models", {}).values():
        if info.get("protocol"):
            card = info["protocol"]
            break
    runs = doc.get("runs", [])
    loads = [
        f"{r.get('started', '?')}: {r.get('load_average_start')} -> {r.get('load_average_end')}" for r in runs
    ]
    items = [
        ("dataset", f"{config.get('dataset')} ({config.get('data_path') or 'generated'})"),
        (
            "protocol",
            "; ".join(f"{k}: {_flat(v)}" for k, v in card.items())
            if card
            else str(config.get("protocol") or "dataset default"),
        ),
        ("models", ", ".join(config.get("models", []))),
        ("retrievers", ", ".join(config.get("retrievers", []))),
        ("cut-offs K", ", ".join(str(k) for k in config.get("ks", []))),
        (
            "recall",
            "search recall@K: share of the exact top-K (all items, no masking) that the index returns for"
            f" the same user vector; the plot and the target use K={k_main}, target"
            f" {config.get('recall_target')}",
        ),
        (
            "queries/s",
            "test users answered per second by one batched top-K query of every user (a K-interest user"
            f" counts once; interests merged in the core), median of {config.get('repeat')} passes after a"
            " warm-up pass",
        ),
        (
            "latency",
            f"one-user top-K queries, {config.get('latency_queries')} users sampled with seed"
            f" {config.get('seed')}",
        ),
        (
            "quality",
            "HitRate/NDCG@K of the list the index returns with the user's seen items excluded when the"
            " protocol masks them (the index is asked for K plus the exclusions, as zoo run does)",
        ),
        ("speed-up", "queries/s over exact search's queries/s for the same model, K and device"),
        (
            "training",
            f"each model trained once on {config.get('device_resolved') or config.get('device')}, seed"
            f" {config.get('seed')}",
        ),
        (
            "machine",
            f"{machine.get('cpu')}, {machine.get('usable_cores')} usable cores, {machine.get('memory_gb')}"
            f" GB, GPU {machine.get('gpu') or 'none'}, torch threads {machine.get('torch_threads')}",
        ),
        ("load average (1, 5, 15 min) per run", "; ".join(loads) or "n/a"),
        ("versions", ", ".join(f"{k} {v}" for k, v in versions.items())),
    ]
    return items


# -- markdown ------------------------------------------------------------------------------------------------
def _md_table(header: list[str], rows: list[list[str]]) -> str:
    def clean(text: str) -> str:
        return str(text).replace("|", "\\|")

    lines = ["| " + " | ".join(clean(h) for h in header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(clean(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def render_markdown(doc: dict[str, Any]) -> str:
    """``report.md`` for a bench document."""
    config = doc.get("config", {})
    k_main = recall_k(doc)
    parts = [
        f"# recall-zoo bench: {config.get('dataset')}",
        "",
        f"Schema {doc.get('schema_version')}, created {doc.get('created')}, updated {doc.get('updated')}."
        f" Recall target {config.get('recall_target')} at K={k_main} against exact search.",
        "",
        "## Fastest setting reaching the recall target",
        "",
        _md_table(ANSWER_HEADER, _answer_rows(doc)),
    ]
    for model in _models(doc):
        info = doc.get("models", {}).get(model, {})
        parts += ["", f"## {model}", ""]
        if info.get("status") == "failed":
            parts.append(f"Training failed: {info.get('error')}")
            continue
        training = info.get("training", {})
        if training:
            parts.append(
                f"Trained in {_num(info.get('train_s'), 1)} s ({training.get('epochs_run')} epochs, best"
                f" {training.get('best_epoch')}, valid {training.get('valid_metric')}"
                f" {_num(training.get('best_valid'))}, {_qps(training.get('samples_per_s'))} samples/s);"
                f" {info.get('users')} test users, {info.get('items')} items, dim {info.get('dim')},"
                f" {info.get('interests')} vector(s) per user."
            )
            parts.append("")
        header, rows = _quality_rows(doc, model)
        parts += [
            "### Quality through each retriever (its fastest setting reaching the target)",
            "",
            _md_table(header, rows),
        ]
        header, rows = _all_cell_rows(doc, model)
        parts += ["", "### Every measured setting", "", _md_table(header, rows)]
    unavailable = doc.get("unavailable", [])
    if unavailable:
        parts += ["", "## Unavailable retrievers", ""]
        parts += [f"- {u['name']}: {u['reason']}; install with `{u['install']}`" for u in unavailable]
    failures = _failures(doc)
    if failures:
        parts += ["", "## Failures", ""] + [f"- {line}" for line in failures]
    parts += ["", "## Protocol card", ""] + [f"- **{k}**: {v}" for k, v in _protocol_items(doc)]
    return "\n".join(parts) + "\n"


# -- html ----------------------------------------------------------------------------------------------------
CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:2em auto;max-width:1200px;\
padding:0 1em;color:#222}
h1{font-size:1.6em}h2{margin-top:2em;border-bottom:1px solid #ddd;padding-bottom:.2em}
table{border-collapse:collapse;margin:.8em 0;font-size:13px}\
th,td{border:1px solid #ddd;padding:3px 7px;text-align:right}
th{background:#f3f3f3}td:first-child,td:nth-child(2),th:first-child,th:nth-child(2){text-align:left}
.charts{display:flex;flex-wrap:wrap;gap:1em}.note{color:#555;font-size:13px}\
dl{font-size:13px}dt{font-weight:600;margin-top:.4em}
details summary{cursor:pointer;margin:.6em 0}
"""


def _html_table(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _pareto_svg(doc: dict[str, Any], model: str) -> str:
    k_main = recall_k(doc)
    target = float(doc.get("config", {}).get("recall_target", 0.95))
    summary = doc.get("summary", {}).get(model, {})
    series = []
    from zoo.bench.pareto import pareto_frontier

    cells = [c for c in done_cells(doc, model) if point(c, k_main)]
    for name in dict.fromkeys(c["retriever"] for c in cells):
        own = [c for c in cells if c["retriever"] == name]
        pts = []
        for c in own:
            m = point(c, k_main)
            pts.append(
                (
                    float(m["recall"]),
                    float(m["qps"]),
                    f"{_setting(c)}: recall {m['recall']:.3f}, {m['qps']:,.0f} q/s",
                )
            )
        frontier_cells = pareto_frontier(
            own, x=lambda c: point(c, k_main)["recall"], y=lambda c: point(c, k_main)["qps"]
        )
        ids = {id(c) for c in frontier_cells}
        series.append(Series(name=name, points=pts, frontier=[i for i, c in enumerate(own) if id(c) in ids]))
    highlight = None
    best = summary.get("best")
    if best and best.get("recall") is not None:
        highlight = (
            float(best["recall"]),
            float(best["qps"]),
            f"fastest reaching the target: {best['retriever']} {_setting(best)}",
        )
    return pareto_plot(
        series,
        title=f"{model}: recall@{k_main} vs queries/s",
        x_label=f"recall@{k_main} against exact search",
        target=target,
        highlight=highlight,
    )


def _build_rows(doc: dict[str, Any], model: str) -> list[dict[str, Any]]:
    """One row per built index (build setting) of ``model``."""
    seen: dict[tuple[str, str], dict[str, Any]] = {}
    for cell in done_cells(doc, model):
        key = (cell["retriever"], _params(cell.get("build")))
        seen.setdefault(key, cell)
    return [{"label": f"{r} {b}", "cell": c} for (r, b), c in seen.items()]


def render_html(doc: dict[str, Any]) -> str:
    """``report.html``: self-contained (inline CSS and SVG)."""
    config = doc.get("config", {})
    k_main = recall_k(doc)
    title = f"recall-zoo bench: {config.get('dataset')}"
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>{escape(title)}</title><style>{CSS}</style></head><body>",
        f"<h1>{escape(title)}</h1>",
        f"<p class='note'>Schema {doc.get('schema_version')}, created {escape(str(doc.get('created')))},"
        f" updated {escape(str(doc.get('updated')))}. Recall target"
        f" {escape(str(config.get('recall_target')))} at K={k_main} against exact search. Hover a point for"
        " its setting.</p>",
        "<h2>Fastest setting reaching the recall target</h2>",
        _html_table(ANSWER_HEADER, _answer_rows(doc)),
    ]
    for model in _models(doc):
        info = doc.get("models", {}).get(model, {})
        parts.append(f"<h2>{escape(model)}</h2>")
        if info.get("status") == "failed":
            parts.append(f"<p>Training failed: {escape(str(info.get('error')))}</p>")
            continue
        training = info.get("training", {})
        if training:
            parts.append(
                f"<p class='note'>Trained in {_num(info.get('train_s'), 1)} s ({training.get('epochs_run')}"
                f" epochs, best {training.get('best_epoch')}, valid"
                f" {escape(str(training.get('valid_metric')))} {_num(training.get('best_valid'))},"
                f" {_qps(training.get('samples_per_s'))} samples/s); {info.get('users')} test users,"
                f" {info.get('items')} items, dim {info.get('dim')}, {info.get('interests')} vector(s) per"
                " user.</p>"
            )
        parts.append(_pareto_svg(doc, model))
        header, rows = _quality_rows(doc, model)
        parts += ["<h3>Quality through each retriever</h3>", _html_table(header, rows)]
        builds = _build_rows(doc, model)
        if builds:
            build_bars = bar_chart(
                [
                    (b["label"], b["cell"].get("build_s"), f"{b['label']}: {b['cell'].get('build_s')} s")
                    for b in builds
                ],
                title=f"{model}: index build time (log scale)",
                unit="s",
                log=True,
            )
            memory_bars = bar_chart(
                [
                    (
                        b["label"],
                        (b["cell"].get("memory_bytes") or 0) / 2**20
                        if b["cell"].get("memory_bytes") is not None
                        else None,
                        f"{b['label']}: memory {_bytes(b['cell'].get('memory_bytes'))}"
                        f" ({b['cell'].get('memory_method')}), disk {_bytes(b['cell'].get('disk_bytes'))}",
                    )
                    for b in builds
                ],
                title=f"{model}: index memory (log scale)",
                unit="MB",
                color="#f58518",
                log=True,
            )
            parts.append(f"<div class='charts'>{build_bars}{memory_bars}</div>")
        header, rows = _all_cell_rows(doc, model)
        parts.append(
            "<details><summary>Every measured setting"
            f" ({len(rows)})</summary>{_html_table(header, rows)}</details>"
        )
    unavailable = doc.get("unavailable", [])
    if unavailable:
        parts.append("<h2>Unavailable retrievers</h2><ul>")
        parts += [
            f"<li>{escape(u['name'])}: {escape(u['reason'])}; install with"
            f" <code>{escape(u['install'])}</code></li>"
            for u in unavailable
        ]
        parts.append("</ul>")
    failures = _failures(doc)
    if failures:
        parts.append(
            "<h2>Failures</h2><ul>" + "".join(f"<li>{escape(line)}</li>" for line in failures) + "</ul>"
        )
    parts.append("<h2>Protocol card</h2><dl>")
    parts += [f"<dt>{escape(k)}</dt><dd>{escape(str(v))}</dd>" for k, v in _protocol_items(doc)]
    parts.append("</dl></body></html>")
    return "\n".join(parts) + "\n"


def write_reports(doc: dict[str, Any], directory: str | Path) -> list[Path]:
    """Recompute the summary and write ``report.md`` and ``report.html`` into ``directory``."""
    doc["summary"] = summarize(doc)
    directory = Path(directory)
    md = atomic_write_text(directory / REPORT_MD, render_markdown(doc))
    html = atomic_write_text(directory / REPORT_HTML, render_html(doc))
    return [md, html]
