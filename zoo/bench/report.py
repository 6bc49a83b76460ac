"""Bench reports rendered from ``bench.json``: ``report.md`` and a self-contained ``report.html``.

Both open with the answer users come for (per model, the fastest setting that reaches the recall
target, with its users/s and its one-user p50/p99 latency beside exact search's) and the caveats
that temper it (:func:`zoo.bench.summary.caveats`), then per model a quality table (one row per
retriever, at its chosen setting, plus exact search and the popularity baseline), the
recall-vs-users/s Pareto plot (HTML), build time and memory bars (HTML), every measured cell, and the
protocol card (a list) with the machine and the load it was under.

The HTML has no external resource (charts are inline SVG, styles are inline) and reads from a phone
to a desktop and in print: a viewport meta, charts that scale to their container (a narrower drawing
of the Pareto plot for phones), tables that scroll inside their own box, long words that wrap.
"""

from __future__ import annotations

import math
import re
from html import escape
from pathlib import Path
from typing import Any

from zoo.bench.schema import REPORT_HTML, REPORT_MD
from zoo.bench.summary import caveat_lines, done_cells, point, recall_k, summarize
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


def _pair(p50: Any, p99: Any) -> str:
    return "n/a" if p50 is None and p99 is None else f"{_ms(p50)} / {_ms(p99)}"


def _answer_rows(doc: dict[str, Any]) -> list[list[str]]:
    rows = []
    for model in _models(doc):
        info = doc.get("summary", {}).get(model)
        if not info:
            status = doc.get("models", {}).get(model, {})
            rows.append([model, f"no measurement ({status.get('error') or 'not run'})", "", "", "", "", ""])
            continue
        best = info.get("best")
        exact = info.get("exact") or {}
        if best is None:
            rows.append(
                [
                    model,
                    f"no setting reaches recall@{info['recall_k']} >= {info['recall_target']:g}",
                    "",
                    "",
                    "",
                    "",
                    _pair(exact.get("latency_p50_ms"), exact.get("latency_p99_ms")),
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
                _pair(best.get("latency_p50_ms"), best.get("latency_p99_ms")),
                _pair(exact.get("latency_p50_ms"), exact.get("latency_p99_ms")),
            ]
        )
    return rows


ANSWER_HEADER = [
    "model",
    "fastest setting reaching the target",
    "recall",
    "users/s",
    "vs exact",
    "one user p50 / p99 ms",
    "exact search p50 / p99 ms",
]


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def _answer_sentences(doc: dict[str, Any]) -> list[str]:
    """Per model, the answer in words: throughput (batched) and single-user latency against exact search."""
    lines = []
    for model in _models(doc):
        info = doc.get("summary", {}).get(model) or {}
        best, exact = info.get("best"), info.get("exact") or {}
        if not best:
            continue
        p50, p99 = best.get("latency_p50_ms"), best.get("latency_p99_ms")
        e50, e99 = exact.get("latency_p50_ms"), exact.get("latency_p99_ms")
        if best.get("retriever") == "exact":
            lines.append(
                f"{model}: exact search is the fastest setting reaching the target:"
                f" {_qps(best.get('qps'))} users/s batched; one user at a time (online serving)"
                f" {_ms(p50)} ms p50, {_ms(p99)} ms p99."
            )
            continue
        text = (
            f"{model}: {best['retriever']} {_setting(best)} reaches recall@{info.get('recall_k')}"
            f" {_num(best.get('recall'), 3)} at {_qps(best.get('qps'))} users/s batched"
        )
        if exact.get("qps") is not None:
            text += f", {_speedup(best.get('speedup'))} exact search's {_qps(exact.get('qps'))}"
        text += f". One user at a time (online serving): {_ms(p50)} ms p50, {_ms(p99)} ms p99"
        if _finite(e50):
            text += f" against exact search's {_ms(e50)} ms p50, {_ms(e99)} ms p99"
            if _finite(p50) and p50 > 0:
                text += f" ({e50 / p50:,.1f}x faster at p50)"
        lines.append(text + ".")
    return lines


def _quality_rows(doc: dict[str, Any], model: str) -> tuple[list[str], list[list[str]]]:
    ks = [int(k) for k in doc.get("config", {}).get("ks", [10])]
    k_main = recall_k(doc)
    header = (
        ["retriever", "setting"]
        + [f"{m}@{k}" for k in ks for m in QUALITY]
        + [
            f"recall@{k_main}",
            "users/s",
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
            f"users/s @{k_main}",
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
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_flat(v) for v in value) + "]"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _protocol_items(doc: dict[str, Any]) -> list[tuple[str, str | list[str]]]:
    """The protocol card: ``(name, text)`` or ``(name, [one line per part])`` for the long entries."""
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
        f"{r.get('started', '?')}: {_flat(r.get('load_average_start'))} -> {_flat(r.get('load_average_end'))}"
        f" ({r.get('cells_measured', 0)} cells measured)"
        for r in runs
        if isinstance(r, dict)
    ]
    items: list[tuple[str, str | list[str]]] = [
        ("dataset", f"{config.get('dataset')} ({config.get('data_path') or 'generated'})"),
        (
            "protocol",
            [f"{k}: {_flat(v)}" for k, v in card.items()]
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
            "users/s",
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
        ("speed-up", "users/s over exact search's users/s for the same model, K and device"),
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
        ("load average (1, 5, 15 min) per run", loads or "n/a"),
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
    sentences = _answer_sentences(doc)
    if sentences:
        parts += [""] + [f"- {line}" for line in sentences]
    notes = caveat_lines(doc)
    if notes:
        parts += ["", "**Caveats**", ""] + [f"- {line}" for line in notes]
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
    parts += ["", "## Protocol card", ""]
    for name, value in _protocol_items(doc):
        if isinstance(value, list):
            parts.append(f"- **{name}**:")
            parts += [f"  - {line}" for line in value]
        else:
            parts.append(f"- **{name}**: {value}")
    return "\n".join(parts) + "\n"


# -- html ----------------------------------------------------------------------------------------------------
CSS = """
*,*::before,*::after{box-sizing:border-box}
html{-webkit-text-size-adjust:100%;text-size-adjust:100%}
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:0 auto;max-width:1200px;\
padding:1.2em 1em 3em;color:#222;line-height:1.45}
h1{font-size:1.6em;margin:.3em 0}h2{margin-top:2em;border-bottom:1px solid #ddd;padding-bottom:.2em}
h1,h2,h3,p,li,dt,dd,summary,code{overflow-wrap:anywhere}
.scroll{overflow-x:auto;max-width:100%;margin:.8em 0}
table{border-collapse:collapse;font-size:13px}
th,td{border:1px solid #ddd;padding:3px 7px;text-align:right;vertical-align:top}
td{white-space:nowrap}td:first-child,td:nth-child(2){white-space:normal;min-width:7em}
th{background:#f3f3f3;font-weight:600}
td:first-child,td:nth-child(2),th:first-child,th:nth-child(2){text-align:left}
figure{margin:1em 0}.note,figcaption{color:#555;font-size:13px}
.narrow{display:none}@media (max-width:600px){.wide{display:none}.narrow{display:block}}
.charts{display:grid;grid-template-columns:repeat(auto-fit,minmax(min(100%,380px),1fr));gap:1em 2.5em;\
margin:1em 0}
.answer{margin:.8em 0;padding-left:1.2em;font-size:15px}.answer li{margin:.3em 0}
.caveats{border-left:4px solid #d9a400;background:#fff8e1;padding:.4em 1em;margin:1em 0;font-size:14px}
.caveats ul{margin:.3em 0;padding-left:1.2em}.caveats li{margin:.25em 0}
.card{font-size:13px}.card dt{font-weight:600;margin-top:.6em}.card dd{margin:0 0 0 1.2em}
.card ul{margin:.1em 0;padding-left:1.1em}
details summary{cursor:pointer;margin:.6em 0}
@media (max-width:600px){body{padding:.8em .7em 2em}h1{font-size:1.35em}h2{font-size:1.25em}}
@media print{body{max-width:none;padding:0}.wide{display:block}.narrow{display:none}\
.scroll{overflow:visible}h2,h3{break-after:avoid}svg,tr{break-inside:avoid}}
"""


#: width of the Pareto plot drawn for phones (its text stays legible at that size); wider screens get 560
NARROW_PLOT = 360


def _html_table(header: list[str], rows: list[list[str]], label: str = "table") -> str:
    """A table in its own horizontally scrolling box (wide tables never widen the page)."""
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return (
        f"<div class='scroll' role='region' tabindex='0' aria-label='{escape(label, quote=True)}'>"
        f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>"
    )


def _point_labels(cells: list[dict[str, Any]], name: str) -> list[str]:
    """Per cell, the parameters that vary among ``cells`` (one retriever's), e.g. ``M=16 ef=32``;
    the retriever's name when nothing varies."""
    merged = [{**(c.get("build") or {}), **(c.get("query") or {})} for c in cells]
    keys = dict.fromkeys(k for params in merged for k in params)
    varying = [k for k in keys if len({repr(params.get(k)) for params in merged}) > 1]
    return [" ".join(f"{k}={params[k]}" for k in varying if k in params) or name for params in merged]


def _pareto_svg(doc: dict[str, Any], model: str, width: int = 560, height: int = 300) -> str:
    from zoo.bench.pareto import pareto_frontier

    k_main = recall_k(doc)
    target = float(doc.get("config", {}).get("recall_target", 0.95))
    summary = doc.get("summary", {}).get(model, {})
    series = []
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
                    f"{_setting(c)}: recall {m['recall']:.3f}, {m['qps']:,.0f} users/s",
                )
            )
        frontier_cells = pareto_frontier(
            own, x=lambda c: point(c, k_main)["recall"], y=lambda c: point(c, k_main)["qps"]
        )
        ids = {id(c) for c in frontier_cells}
        series.append(
            Series(
                name=name,
                points=pts,
                frontier=[i for i, c in enumerate(own) if id(c) in ids],
                labels=_point_labels(own, name),
            )
        )
    highlight = None
    best = summary.get("best")
    if best and best.get("recall") is not None and best.get("qps") is not None:
        highlight = (
            float(best["recall"]),
            float(best["qps"]),
            f"fastest reaching the target: {best['retriever']} {_setting(best)}",
        )
    return pareto_plot(
        series,
        title=f"{model}: recall@{k_main} vs users/s",
        x_label=f"recall@{k_main} against exact search",
        target=target,
        highlight=highlight,
        width=width,
        plot_height=height,
    )


def _build_rows(doc: dict[str, Any], model: str) -> list[dict[str, Any]]:
    """One row per built index (build setting) of ``model``."""
    seen: dict[tuple[str, str], dict[str, Any]] = {}
    for cell in done_cells(doc, model):
        key = (cell["retriever"], _params(cell.get("build")))
        seen.setdefault(key, cell)
    return [{"label": f"{r} {b}", "cell": c} for (r, b), c in seen.items()]


def _bars(doc: dict[str, Any], model: str) -> str:
    builds = _build_rows(doc, model)
    if not builds:
        return ""
    build_bars = bar_chart(
        [
            (b["label"], b["cell"].get("build_s"), f"{b['label']}: {b['cell'].get('build_s')} s")
            for b in builds
        ],
        title=f"{model}: index build time",
        unit="s",
    )
    memory_bars = bar_chart(
        [
            (
                b["label"],
                b["cell"]["memory_bytes"] / 2**20 if _finite(b["cell"].get("memory_bytes")) else None,
                f"{b['label']}: memory {_bytes(b['cell'].get('memory_bytes'))}"
                f" ({b['cell'].get('memory_method')}), disk {_bytes(b['cell'].get('disk_bytes'))}",
            )
            for b in builds
        ],
        title=f"{model}: index memory",
        unit="MB",
        color="#f58518",
    )
    return f"<div class='charts'><figure>{build_bars}</figure><figure>{memory_bars}</figure></div>"


def _anchor(model: str) -> str:
    """An element id for a model's section: ``model-`` and its name with anything unusual as ``-``."""
    return "model-" + re.sub(r"[^A-Za-z0-9_-]", "-", model)


def _card_html(items: list[tuple[str, str | list[str]]]) -> str:
    parts = ["<dl class='card'>"]
    for name, value in items:
        if isinstance(value, list):
            inner = "<ul>" + "".join(f"<li>{escape(line)}</li>" for line in value) + "</ul>"
        else:
            inner = escape(str(value))
        parts.append(f"<dt>{escape(name)}</dt><dd>{inner}</dd>")
    parts.append("</dl>")
    return "".join(parts)


def render_html(doc: dict[str, Any]) -> str:
    """``report.html``: self-contained (inline CSS and SVG), readable from phone to desktop and in print."""
    config = doc.get("config", {})
    k_main = recall_k(doc)
    title = f"recall-zoo bench: {config.get('dataset')}"
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        "<meta name='viewport' content='width=device-width, initial-scale=1'>",
        f"<title>{escape(title)}</title><style>{CSS}</style></head><body>",
        f"<h1>{escape(title)}</h1>",
        f"<p class='note'>Schema {doc.get('schema_version')}, created {escape(str(doc.get('created')))},"
        f" updated {escape(str(doc.get('updated')))}. Recall target"
        f" {escape(str(config.get('recall_target')))} at K={k_main} against exact search. Users/s: test"
        " users answered per second by one batched query of all of them; p50 / p99: one user at a time, as"
        " an online service queries.</p>",
        "<h2 id='answer'>Fastest setting reaching the recall target</h2>",
        _html_table(ANSWER_HEADER, _answer_rows(doc), "the answer per model"),
    ]
    sentences = _answer_sentences(doc)
    if sentences:
        parts.append("<ul class='answer'>" + "".join(f"<li>{escape(s)}</li>" for s in sentences) + "</ul>")
    notes = caveat_lines(doc)
    if notes:
        parts.append(
            "<div class='caveats' role='note'><strong>Caveats</strong><ul>"
            + "".join(f"<li>{escape(line)}</li>" for line in notes)
            + "</ul></div>"
        )
    for model in _models(doc):
        info = doc.get("models", {}).get(model, {})
        parts.append(f"<h2 id='{_anchor(model)}'>{escape(model)}</h2>")
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
        parts.append(
            f"<figure><div class='wide'>{_pareto_svg(doc, model)}</div><div class='narrow'>"
            f"{_pareto_svg(doc, model, NARROW_PLOT, 340)}</div><figcaption>Filled points: each retriever's"
            " Pareto frontier, labelled with the parameters that vary (a number where a label would not fit,"
            " keyed below the plot); faded points are beaten on both axes by another setting of the same"
            " retriever. Every setting is in the last table.</figcaption></figure>"
        )
        header, rows = _quality_rows(doc, model)
        parts += [
            "<h3>Quality through each retriever</h3>",
            _html_table(header, rows, f"{model}: quality through each retriever"),
        ]
        parts.append(_bars(doc, model))
        header, rows = _all_cell_rows(doc, model)
        parts.append(
            f"<details><summary>Every measured setting ({len(rows)})</summary>"
            f"{_html_table(header, rows, f'{model}: every measured setting')}</details>"
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
    parts += ["<h2 id='protocol-card'>Protocol card</h2>", _card_html(_protocol_items(doc)), "</body></html>"]
    return "\n".join(parts) + "\n"


def write_reports(doc: dict[str, Any], directory: str | Path) -> list[Path]:
    """Recompute the summary and write ``report.md`` and ``report.html`` into ``directory``."""
    doc["summary"] = summarize(doc)
    directory = Path(directory)
    md = atomic_write_text(directory / REPORT_MD, render_markdown(doc))
    html = atomic_write_text(directory / REPORT_HTML, render_html(doc))
    return [md, html]
