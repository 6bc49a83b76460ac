"""``report.html`` reads on any screen: rendered in headless Chromium at 390 px (a phone) and 1,400 px
(a desktop), nothing widens the page, chart text stays inside its chart without overlapping, and the
answer states latency and its caveats. Also the report content those checks rely on (no browser).

The bench document is synthetic but shaped like a real ``bench.json`` (the case of the issue: a
999-item catalogue, hnsw at 1.7x exact, load rising from 2.3 to 4.2), so this file runs in seconds.
The browser tests skip when no Chromium is installed (``apt-get install chromium``; CI installs it).
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from zoo.bench.report import write_reports
from zoo.bench.schema import BENCH_FORMAT, SCHEMA_VERSION
from zoo.bench.summary import summarize
from zoo.bench.svg import Series, bar_chart, pareto_plot

KS = (10, 50, 100)
ITEMS = 999
LOAD_START, LOAD_END = [2.3, 2.0, 1.8], [4.2, 2.6, 2.0]


# -- a synthetic bench document ----------------------------------------------------------------------
def _at(recall: float, qps: float, p50: float, p99: float) -> dict[str, Any]:
    at = {}
    for i, k in enumerate(KS):
        quality = {
            f"{m}@{k}": round(v * (1 + 0.4 * i), 4)
            for m, v in (
                ("hitrate", 0.31),
                ("recall", 0.31),
                ("ndcg", 0.16),
                ("mrr", 0.12),
                ("precision", 0.03),
            )
        }
        at[str(k)] = {
            "recall": min(1.0, recall + 0.01 * i),
            "qps": qps * (1 - 0.1 * i),
            "qps_best": qps * 1.05,
            "query_s": [3000 / qps] * 3,
            "latency_ms": {"p50": p50, "p99": p99, "mean": (p50 + p99) / 2, "samples": 1000},
            "quality": {**quality, "users": 3000},
            "recall_masked": min(1.0, recall + 0.005),
            "eval_qps": qps / 3,
        }
    return at


def _cell(model: str, retriever: str, build: dict, query: dict, measured: tuple, build_s: float, mem: int):
    key = f"{model}|{retriever}|{json.dumps(build, sort_keys=True)}|{json.dumps(query, sort_keys=True)}"
    return {
        "key": key,
        "id": f"{abs(hash(key)) % 16**12:012x}",
        "model": model,
        "retriever": retriever,
        "build": build,
        "query": query,
        "effective": {"build": {**build, "seed": 1}, "query": dict(query)},
        "status": "done",
        "error": None,
        "finished": "2026-12-01T10:00:00+00:00",
        "backend_version": f"{retriever}lib 1.0",
        "index_info": {},
        "train_s": 120.5,
        "build_s": build_s,
        "memory_bytes": mem,
        "memory_method": "reported",
        "disk_bytes": int(mem * 1.05),
        "at": _at(*measured),
    }


def bench_document(items: int = ITEMS, load_end: list[float] | None = None) -> dict[str, Any]:
    """A two-model bench over exact, hnsw, annoy and faiss (IVF, IVF-PQ), with long names and paths."""
    cells = []
    models = ["dssm", "a-plugin-model-with-a-rather-long-name"]
    for model in models:
        cells.append(
            _cell(model, "exact", {"device": "cpu"}, {}, (1.0, 10_000, 8.08, 9.6), 0.0011, 4_100_000)
        )
        for m_index, m in enumerate((16, 32)):
            for j, ef in enumerate((10, 16, 32, 64, 128)):
                recall = min(1.0, (0.91, 0.955, 0.975, 0.99, 0.998)[j] + 0.003 * m_index)
                qps = (24_000, 17_000, 12_000, 8_000, 5_000)[j] / (1 + 0.2 * m_index)
                measured = (recall, qps, 0.007 * (1 + j), 0.05)
                build = {"M": m, "ef_construction": 200}
                cells.append(_cell(model, "hnsw", build, {"ef": ef}, measured, 0.09, 5_300_000))
        for t, trees in enumerate((10, 50)):
            for j, search_k in enumerate((-1, 1000, 10000)):
                recall = min(1.0, 0.80 + 0.06 * j + 0.03 * t)
                measured = (recall, 9000 / (1 + 1.5 * j) / (1 + t), 0.3 * (1 + j), 4.6)
                cells.append(
                    _cell(
                        model, "annoy", {"n_trees": trees}, {"search_k": search_k}, measured, 0.02, 2_000_000
                    )
                )
        for j, nprobe in enumerate((1, 4, 16, 64)):
            measured = (min(1.0, 0.75 + 0.08 * j), 12_000 / (1 + j), 0.2, 8.6)
            cells.append(
                _cell(model, "faiss", {"index": "IVF"}, {"nprobe": nprobe}, measured, 0.03, 1_000_000)
            )
        for j, ef_search in enumerate((16, 32, 64, 128, 256)):  # crowds the corner at recall 1.0
            measured = (min(1.0, 0.975 + 0.006 * j), 11_000 / (1 + 0.3 * j), 0.02 * (1 + j), 0.1)
            query = {"efSearch": ef_search}
            cells.append(_cell(model, "faiss", {"index": "HNSW"}, query, measured, 0.2, 6_000_000))
        for nprobe in (16, 64):
            for k_factor in (1, 4):
                measured = (0.85 + 0.02 * k_factor, 8000 / k_factor, 0.4, 5.0)
                query = {"nprobe": nprobe, "k_factor": k_factor}
                cells.append(_cell(model, "faiss", {"index": "IVF-PQ"}, query, measured, 0.5, 300_000))
    card = {
        "protocol": "loo",
        "description": "time-ordered leave-one-out, full ranking, the user's earlier items masked",
        "filters": {"min_rating": None, "user_core": 5, "item_core": 5, "min_user_events": 3},
        "split": "time-ordered leave-one-out per user: last event = test, second last = valid, the rest"
        " = train",
        "candidates": "full ranking over every item of the training vocabulary (no sampled candidates)",
        "before_filters": {"interactions": 1000209, "users": 6040, "items": 3706},
        "catalogue_items": items,
    }
    model_info = {
        "status": "done",
        "error": None,
        "family": "two_tower",
        "train_s": 120.5,
        "training": {
            "epochs_run": 2,
            "best_epoch": 2,
            "valid_metric": "recall@50",
            "best_valid": 0.31,
            "samples_per_s": 41_000.0,
            "parameters": 1_200_000,
        },
        "protocol": card,
        "users": 3000,
        "items": items,
        "dim": 64,
        "interests": 1,
        "metrics": {
            "exact": {f"{m}@{k}": 0.3 for k in KS for m in ("hitrate", "ndcg", "recall")},
            "popularity": {f"{m}@{k}": 0.07 for k in KS for m in ("hitrate", "ndcg", "recall")},
        },
    }
    return {
        "format": BENCH_FORMAT,
        "schema_version": SCHEMA_VERSION,
        "created": "2026-12-01T09:58:00+00:00",
        "updated": "2026-12-01T10:04:00+00:00",
        "config": {
            "models": models,
            "retrievers": ["exact", "hnsw", "annoy", "faiss", "scann"],
            "dataset": "movielens-1m",
            "data_path": "/home/someone/datasets/movielens/ml-1m/a-rather-deep/folder/with/long-names/"
            "ratings.dat",
            "protocol": None,
            "device": "cpu",
            "device_resolved": "cpu",
            "seed": 0,
            "epochs": 2,
            "ks": list(KS),
            "repeat": 3,
            "latency_queries": 1000,
            "recall_target": 0.95,
            "recall_k": 10,
            "metric": "ip",
        },
        "machine": {
            "cpu": "AMD EPYC 7B13 64-Core Processor",
            "cores": 16,
            "usable_cores": 16,
            "memory_gb": 62.8,
            "platform": "Linux-6.18.44-fc-v1252-x86_64-with-glibc2.36-and-a-long-unbreakable-platform-tag",
            "torch_threads": 16,
            "gpu": None,
            "load_average": LOAD_START,
        },
        "versions": {
            "recall-zoo": "0.1.0",
            "python": "3.11.7",
            "torch": "2.13.0+cpu",
            "hnsw": "hnswlib 0.8.0",
        },
        "runs": [
            {
                "started": "2026-12-01T09:58:00+00:00",
                "load_average_start": LOAD_START,
                "finished": "2026-12-01T10:04:00+00:00",
                "load_average_end": load_end or LOAD_END,
                "cells_measured": len(cells),
                "cells_skipped": 0,
                "failures": 0,
            }
        ],
        "plugins": {"retrievers": [], "models": []},
        "grid": {},
        "models": {model: dict(model_info) for model in models},
        "cells": cells,
        "summary": {},
        "unavailable": [
            {
                "name": "scann",
                "reason": "scann not installed",
                "install": 'pip install "recall-zoo[scann-with-a-long-extra-name-that-does-not-break]"',
            }
        ],
    }


@pytest.fixture(scope="module")
def report_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("report")
    write_reports(bench_document(), folder)
    return folder


# -- content (no browser) ----------------------------------------------------------------------------
def test_answer_states_latency_beside_throughput(report_dir: Path) -> None:
    md = (report_dir / "report.md").read_text()
    page = html.unescape((report_dir / "report.html").read_text())
    for text in (md, page):
        assert "users/s" in text and "queries/s" not in text
        assert "one user p50 / p99 ms" in text and "exact search p50 / p99 ms" in text
        # the contrast that matters for online serving, in words
        assert "0.014 ms p50" in text and "exact search's 8.08 ms p50" in text
        assert "1.7x exact search's 10,000" in text


def test_caveats_for_a_small_catalogue_and_a_moving_load(report_dir: Path) -> None:
    md = (report_dir / "report.md").read_text()
    page = html.unescape((report_dir / "report.html").read_text())
    for text in (md, page):
        assert "Small catalogue (dssm)" in text and "999 items" in text and "only 1.7x" in text
        assert "went from 2.3 to 4.2" in text
        assert text.count("Machine load:") == 1  # once, not once per model


def test_caveat_rules() -> None:
    def notes(doc: dict[str, Any]) -> list[str]:
        return summarize(doc)["dssm"]["caveats"]

    quiet = [2.3, 2.0, 1.8]
    big = bench_document(items=500_000, load_end=quiet)
    assert len(notes(big)) == 1 and notes(big)[0].startswith("Small speed-up (dssm): hnsw may not be")
    assert "hnsw is only 1.7x exact" in notes(big)[0] and "items" not in notes(big)[0]
    for cell in big["cells"]:  # a 4x faster index on a big catalogue, under a steady load: no caveat
        if cell["retriever"] == "hnsw":
            for measured in cell["at"].values():
                measured["qps"] *= 2.5
    assert notes(big) == []
    small = bench_document(items=ITEMS, load_end=quiet)
    assert len(notes(small)) == 1 and "999 items" in notes(small)[0]
    busy = bench_document(items=500_000, load_end=[16.5, 9.0, 4.0])
    assert any("above the 16 usable cores" in line for line in notes(busy))
    idle_run = bench_document(items=500_000, load_end=[9.0, 4.0, 2.0])
    idle_run["runs"][0]["cells_measured"] = 0  # a rerun that measured nothing took no timings
    assert not any(line.startswith("Machine load") for line in notes(idle_run))


def test_protocol_card_is_a_list_and_html_is_self_contained(report_dir: Path) -> None:
    page = (report_dir / "report.html").read_text()
    assert "<meta name='viewport' content='width=device-width, initial-scale=1'>" in page
    for external in ("src=", "href=", "<script", "url(", "@import", "<link"):
        assert external not in page
    card = page.split("Protocol card", 1)[1]
    assert "<dt>protocol</dt><dd><ul><li>protocol: loo</li><li>description:" in card
    md = (report_dir / "report.md").read_text()
    assert "- **protocol**:\n  - protocol: loo\n  - description:" in md


def test_charts_scale_to_their_box_and_bars_are_linear() -> None:
    bars = bar_chart([("exact", 0.0011, ""), ("hnsw", 0.09, "")], title="build <time>", unit="s")
    root = ET.fromstring(bars)
    assert root.get("width") == "100%" and root.get("viewBox") and root.get("height") is None
    widths = [float(r.get("width")) for r in root.iter("{http://www.w3.org/2000/svg}rect")]
    assert widths[0] / widths[1] == pytest.approx(0.0011 / 0.09, rel=0.02)  # lengths compare as values do
    assert "&lt;time&gt;" in bars


def test_pareto_pads_past_one_and_labels_the_frontier() -> None:
    series = [
        Series("exact", [(1.0, 100.0, "exact")], [0], ["exact"]),
        Series(
            "hnsw",
            [(0.9, 900.0, "ef=10"), (0.97, 500.0, "ef=20"), (0.95, 300.0, "dominated")],
            [0, 1],
            ["ef=10", "ef=20", "ef=<30>"],
        ),
    ]
    svg = pareto_plot(series, title="t", x_label="recall", target=0.95, highlight=(0.97, 500.0, "best"))
    root = ET.fromstring(svg)
    ns = "{http://www.w3.org/2000/svg}"
    frame = next(r for r in root.iter(f"{ns}rect") if r.get("fill") == "#fafafa")
    right = float(frame.get("x")) + float(frame.get("width"))
    exact = next(c for c in root.iter(f"{ns}circle") if "exact" in (c.findtext(f"{ns}title") or ""))
    assert right - float(exact.get("cx")) > 8  # the point at recall 1.0 is off the frame
    texts = ["".join(t.itertext()) for t in root.iter(f"{ns}text")]
    assert "1.00" in texts and not any(t.startswith("1.0") and t != "1.00" for t in texts)  # no tick past 1
    for label in ("exact", "ef=10", "ef=20"):  # frontier points: labelled in place or keyed by number
        assert any(t == label or t.endswith(f" {label}") for t in texts), label
    assert "ef=&lt;30&gt;" not in svg and "ef=<30>" not in texts  # dominated points: tooltip only


# -- in a browser ---------------------------------------------------------------------------------------
MEASURE = """
<script>
(function () {
  const de = document.documentElement, vw = de.clientWidth, out = {};
  out.innerWidth = window.innerWidth; out.clientWidth = vw; out.scrollWidth = de.scrollWidth;
  out.overflow = [getComputedStyle(de).overflowX, getComputedStyle(document.body).overflowX];
  const clipper = (el) => {
    for (let p = el.parentElement; p && p !== document.body; p = p.parentElement) {
      if (getComputedStyle(p).overflowX !== 'visible') return p;
    }
    return null;
  };
  const name = (el) => el.tagName.toLowerCase() + (el.className && el.className.baseVal === undefined
    ? '.' + el.className : '') + ' ' + (el.textContent || '').trim().slice(0, 40);
  out.widest = 0; out.widestElement = '';
  for (const el of document.body.querySelectorAll('*')) {
    const r = el.getBoundingClientRect();
    if (r.width === 0 && r.height === 0) continue;
    const box = clipper(el);
    const right = box ? Math.min(r.right, box.getBoundingClientRect().right) : r.right;
    if (right > out.widest) { out.widest = right; out.widestElement = name(el); }
  }
  out.svgs = [];
  for (const svg of document.querySelectorAll('svg')) {
    const s = svg.getBoundingClientRect();
    if (s.width === 0) continue;
    const texts = [...svg.querySelectorAll('text')].map((t) => [t.getBoundingClientRect(), t.textContent]);
    const outside = texts.filter(([r]) => r.left < s.left - 1 || r.right > s.right + 1 ||
      r.top < s.top - 1 || r.bottom > s.bottom + 1).map(([, t]) => t);
    const overlapping = [];
    for (let i = 0; i < texts.length; i++) for (let j = i + 1; j < texts.length; j++) {
      const [a, ta] = texts[i], [b, tb] = texts[j];
      const w = Math.min(a.right, b.right) - Math.max(a.left, b.left);
      const h = Math.min(a.bottom, b.bottom) - Math.max(a.top, b.top);
      if (w > 1 && h > 1) overlapping.push(ta + ' / ' + tb);
    }
    const heights = texts.map(([r]) => r.height).filter((h) => h > 0);
    out.svgs.push({label: svg.getAttribute('aria-label'), width: s.width, right: s.right,
      parent: svg.parentElement.getBoundingClientRect().width, outside, overlapping,
      minTextHeight: Math.min(...heights)});
  }
  out.tables = [...document.querySelectorAll('.scroll')].map((b) => {
    const r = b.getBoundingClientRect();
    return {right: r.right, scroll: b.scrollWidth, client: b.clientWidth};
  });
  parent.postMessage(JSON.stringify(out), '*');
})();
</script>
"""


def chromium() -> str | None:
    """The Chromium (or Chrome) binary: $ZOO_CHROMIUM, else the first on PATH."""
    if os.environ.get("ZOO_CHROMIUM"):
        return os.environ["ZOO_CHROMIUM"]
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        if shutil.which(name):
            return shutil.which(name)
    return None


def chromium_args(binary: str, profile: Path, width: int, height: int) -> list[str]:
    return [
        binary,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
        f"--user-data-dir={profile}",
        f"--window-size={width},{height}",
        "--virtual-time-budget=2000",
    ]


def measure(page: Path, width: int, tmp_path: Path) -> dict[str, Any]:
    """Load ``page`` (plus :data:`MEASURE`) in a ``width`` px frame and return what the script measured.

    Headless windows are at least 500 px wide, so the page is shown in an iframe of exactly ``width``
    px (its viewport); the script there posts its numbers to the outer page, which ``--dump-dom``
    prints."""
    binary = chromium()
    if binary is None:
        pytest.skip("no Chromium installed (apt-get install chromium)")
    probe = tmp_path / f"probe-{width}.html"
    probe.write_text(page.read_text().replace("</body>", MEASURE + "</body>"))
    outer = tmp_path / f"outer-{width}.html"
    outer.write_text(
        "<!DOCTYPE html><html><body style='margin:0'><pre id='zoo-measure'></pre>"
        f"<iframe src='{probe.name}' style='border:0;width:{width}px;height:900px'></iframe><script>"
        "addEventListener('message', (e) => {"
        " document.getElementById('zoo-measure').textContent = e.data; });"
        "</script></body></html>"
    )
    args = chromium_args(binary, tmp_path / f"profile-{width}", width + 100, 1000)
    result = subprocess.run(
        [*args, "--dump-dom", outer.as_uri()], capture_output=True, text=True, timeout=180, check=False
    )
    found = re.search(r"<pre id=\"zoo-measure\">(.+?)</pre>", result.stdout, re.S)
    assert found, f"no measurement from Chromium (exit {result.returncode}): {result.stderr[-2000:]}"
    return json.loads(html.unescape(found.group(1)))


@pytest.mark.parametrize("width", [390, 1400])
def test_report_fits_the_screen(report_dir: Path, tmp_path: Path, width: int) -> None:
    m = measure(report_dir / "report.html", width, tmp_path)
    assert m["innerWidth"] == width and m["clientWidth"] == width  # the page was laid out at that width
    assert m["overflow"] == ["visible", "visible"]  # overflow is not merely hidden
    assert m["scrollWidth"] <= width, m
    assert m["widest"] <= width + 0.5, f"{m['widestElement']} ends at {m['widest']} px"
    visible = m["svgs"]
    assert len(visible) >= 5  # one Pareto plot (of two drawings) and two bar charts per model
    for svg in visible:
        assert svg["right"] <= width + 0.5 and svg["width"] <= svg["parent"] + 0.5, svg
        assert not svg["outside"], f"{svg['label']}: text outside the chart: {svg['outside']}"
        assert not svg["overlapping"], f"{svg['label']}: overlapping text: {svg['overlapping']}"
        assert svg["minTextHeight"] >= 9, f"{svg['label']}: text {svg['minTextHeight']:.1f} px high"
    for box in m["tables"]:
        assert box["right"] <= width + 0.5, box
    if width == 390:
        assert any(box["scroll"] > box["client"] for box in m["tables"])  # wide tables scroll in their box
