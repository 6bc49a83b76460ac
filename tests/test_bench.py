"""``zoo bench`` and ``zoo report``: grids, Pareto frontier, the runner (resume, force, failures), reports.

The end-to-end runs use a tiny synthetic log and a one-epoch DSSM, so the whole file stays fast.
Timings are recorded, never asserted.
"""

from __future__ import annotations

import json
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from zoo import hookimpl, testing
from zoo.bench.grid import BuildGroup, Grid, default_grid, load_grid_file, parse_grid, resolve_grid
from zoo.bench.pareto import fastest_at_recall, pareto_frontier
from zoo.bench.schema import BENCH_FORMAT, SCHEMA_VERSION, load_document
from zoo.errors import ModelFileError, PluginError, UsageError
from zoo.registry import default_registry
from zoo.specs import RetrieverSpec
from zoo_cli.main import build_app

TINY = [
    "--param",
    "data.users=200",
    "--param",
    "data.items=80",
    "--param",
    "data.categories=5",
    "--param",
    "data.mean_length=15",
    "--param",
    "embed_dim=8",
    "--param",
    "dims=16,8",
    "--epochs",
    "1",
    "--device",
    "cpu",
    "--k",
    "5,20",
    "--repeat",
    "1",
    "--latency-queries",
    "20",
]

GRID = """
[hnsw]
build = { M = [8], ef_construction = 40 }
query = { ef = [5, 40] }

[exact]
build = {}
"""


def invoke(*args: str):
    return CliRunner().invoke(build_app(), [str(a) for a in args])


# -- grids -------------------------------------------------------------------------------------------
def test_grid_keeps_build_and_query_apart(tmp_path: Path) -> None:
    path = tmp_path / "grid.toml"
    path.write_text(
        """
        [hnsw]
        build = { M = [8, 16], ef_construction = 100 }
        query = { ef = [10, 20] }

        [[faiss]]
        build = { index = "IVF" }
        query = { nprobe = [1, 4] }

        [[faiss]]
        build = { index = ["IVF", "HNSW"] }
        query = { nprobe = [4, 8] }
        """
    )
    grid = load_grid_file(path, registry=default_registry())
    hnsw = list(grid.settings("hnsw"))
    assert [b for b, _ in hnsw] == [{"M": 8, "ef_construction": 100}, {"M": 16, "ef_construction": 100}]
    assert all(q == [{"ef": 10}, {"ef": 20}] for _, q in hnsw)
    faiss = {b["index"]: q for b, q in grid.settings("faiss")}
    assert faiss["IVF"] == [{"nprobe": 1}, {"nprobe": 4}, {"nprobe": 8}]  # merged, each once
    assert faiss["HNSW"] == [{"nprobe": 4}, {"nprobe": 8}]
    assert grid.cell_count("hnsw") == 4 and grid.cell_count("faiss") == 5


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("[hnsw]\nbuild = { ef = [10] }", "'ef' is a query parameter of retriever 'hnsw'; put it under"),
        ("[hnsw]\nquery = { M = [10] }", "'M' is a build parameter"),
        ("[hnsw]\nquery = { eff = [10] }", "has no query parameter 'eff'"),
        ("[hnsw]\nbuild = { M = [] }", "empty list"),
        ("[hnsw]\nbiuld = { M = [8] }", "'biuld'"),
        ("[hnws]\nbuild = {}", "Did you mean 'hnsw'"),
        ("[hnsw\n", "invalid TOML"),
    ],
)
def test_bad_grids_say_what_is_wrong(tmp_path: Path, text: str, fragment: str) -> None:
    path = tmp_path / "grid.toml"
    path.write_text(text)
    with pytest.raises(UsageError) as info:
        load_grid_file(path, registry=default_registry())
    assert fragment in info.value.message


def test_grid_file_formats(tmp_path: Path) -> None:
    (tmp_path / "g.json").write_text(json.dumps({"hnsw": {"query": {"ef": [8, 9]}}}))
    assert load_grid_file(tmp_path / "g.json").cell_count("hnsw") == 2
    with pytest.raises(UsageError, match="no such file"):
        load_grid_file(tmp_path / "missing.toml")
    yaml = pytest.importorskip("yaml")
    (tmp_path / "g.yaml").write_text(yaml.safe_dump({"annoy": {"build": {"n_trees": [5, 10]}}}))
    assert load_grid_file(tmp_path / "g.yaml").cell_count("annoy") == 2


def test_default_grids_are_valid_for_every_builtin_retriever() -> None:
    registry = default_registry()
    cells = {"exact": 1, "hnsw": 21, "annoy": 8, "faiss": 15}  # the grids the plugins ship
    for name, count in cells.items():
        grid = default_grid(name, registry=registry)
        assert name in grid.groups, name
        assert grid.cell_count(name) == count, name
    assert [g.build for g in default_grid("faiss").groups["faiss"]] == [
        {"index": ["Flat"]}, {"index": ["IVF"]}, {"index": ["IVF-PQ"]}, {"index": ["HNSW"]}
    ]  # fmt: skip
    resolved = resolve_grid(["hnsw", "exact"], None, registry=registry)
    assert resolved.sources["hnsw"] == "default grid of hnsw"
    assert Grid().cell_count("anything") == 1  # no grid: the retriever's defaults, once
    assert list(Grid(groups={"x": [BuildGroup()]}).settings("x")) == [({}, [{}])]


def test_grid_file_replaces_the_default_of_retrievers_it_names(tmp_path: Path) -> None:
    path = tmp_path / "grid.toml"
    path.write_text("[hnsw]\nquery = { ef = [12] }\n[annoy]\nbuild = { n_trees = 3 }\n")
    grid = resolve_grid(["hnsw", "exact"], path, registry=default_registry())
    assert grid.cell_count("hnsw") == 1 and grid.sources["hnsw"] == str(path)
    assert grid.sources["exact"] == "default grid of exact"
    assert "annoy" not in grid.groups  # not requested: ignored
    parsed = parse_grid({"hnsw": [{"query": {"ef": 4}}, {"query": {"ef": 4}}]}, where="inline")
    assert parsed.cell_count("hnsw") == 1


def _third_party(bench_grid: object) -> RetrieverSpec:
    return RetrieverSpec(
        name="my-index", factory="my_index:MyIndex", build_params={"trees": 4}, query_params={"probe": 1},
        bench_grid=bench_grid,
    )  # fmt: skip


def test_a_third_party_retriever_ships_its_default_grid() -> None:
    class MyIndexPlugin:
        @hookimpl
        def zoo_register_retrievers(self) -> list[RetrieverSpec]:
            return [_third_party([{"build": {"trees": [4, 8]}, "query": {"probe": [1, 2, 3]}}])]

    with testing.register_plugin(MyIndexPlugin(), "my-index-plugin"):
        grid = resolve_grid(["my-index", "exact"], None)
        assert grid.cell_count("my-index") == 6 and grid.sources["my-index"] == "default grid of my-index"
        assert default_registry().retriever("my-index").summary()["bench_grid"] == [
            {"build": {"trees": [4, 8]}, "query": {"probe": [1, 2, 3]}}
        ]


def test_no_bench_grid_means_the_retriever_defaults() -> None:
    spec = _third_party(None)
    assert spec.bench_grid is None
    scalar = _third_party({"query": {"probe": 2}})  # a scalar stands for a one-element list
    assert scalar.bench_grid == (BuildGroup(build={}, query={"probe": [2]}),)


@pytest.mark.parametrize(
    ("bench_grid", "fragment"),
    [
        ({"build": {"probe": [1]}}, "'probe' is a query parameter"),
        ({"query": {"depth": [1]}}, "no query parameter 'depth'"),
        ({"build": {"trees": []}}, "empty list"),
        ({"builds": {}}, "holds only 'build' and 'query'"),
        ([], "empty list"),
        ("grid.toml", "must be a table"),
    ],
)
def test_bad_bench_grids_are_plugin_errors(bench_grid: object, fragment: str) -> None:
    with pytest.raises(PluginError, match=fragment):
        _third_party(bench_grid)


# -- Pareto ------------------------------------------------------------------------------------------
def test_pareto_frontier_and_fastest_at_recall() -> None:
    points = [
        (0.5, 1000.0),
        (0.8, 900.0),
        (0.7, 800.0),
        (0.95, 300.0),
        (0.99, 100.0),
        (0.95, 200.0),
        (float("nan"), 5.0),
    ]
    frontier = pareto_frontier(points, x=lambda p: p[0], y=lambda p: p[1])
    assert frontier == [(0.5, 1000.0), (0.8, 900.0), (0.95, 300.0), (0.99, 100.0)]
    assert fastest_at_recall(points, 0.95, recall=lambda p: p[0], speed=lambda p: p[1]) == (0.95, 300.0)
    assert fastest_at_recall(points, 0.999, recall=lambda p: p[0], speed=lambda p: p[1]) is None
    assert pareto_frontier([], x=lambda p: p, y=lambda p: p) == []


# -- measuring multi-interest users ---------------------------------------------------------------------
def test_queries_per_second_counts_users_not_interests() -> None:
    import torch

    from zoo.bench.measure import measure_queries
    from zoo.bench.models import ModelData
    from zoo.data.match import RankingTask
    from zoo.pipeline import Embedded, Ranking
    from zoo.registry import create_retriever
    from zoo.testing.retrievers import make_vectors

    users, interests, dim, n_items = 40, 3, 8, 300
    user_vectors = np.array(make_vectors(users * interests, dim, 1)).reshape(users, interests, dim)
    items = np.array(make_vectors(n_items, dim, 2))
    catalogue = np.arange(n_items, dtype=np.int64) + 10
    best = np.einsum("ukd,nd->ukn", user_vectors, items).max(axis=1)
    exact_top = catalogue[np.argsort(-best, axis=1, kind="stable")[:, :10]]
    task = RankingTask(
        users={}, targets=exact_top[:, 0].copy(), catalogue=torch.from_numpy(catalogue), exclude=None
    )
    embedded = Embedded(
        task=task, user_vectors=torch.from_numpy(user_vectors), item_vectors=torch.from_numpy(items)
    )
    exact = Ranking(top=exact_top, metrics={}, seconds=0.0, users_per_s=0.0)
    retriever = create_retriever("exact").fit(items, ids=catalogue)
    data = ModelData(embedded=embedded, exact=exact, exact_raw=exact_top)
    at = measure_queries(retriever, data, (5, 10), repeat=2, latency_rows=np.arange(7))
    assert set(at) == {"5", "10"}
    for k, measured in at.items():
        assert measured["recall"] == pytest.approx(1.0)
        assert measured["quality"]["hitrate@" + k] == pytest.approx(
            1.0
        )  # each user's target is its best item
        assert len(measured["query_s"]) == 2
        assert measured["qps"] == pytest.approx(users / float(np.median(measured["query_s"])))
        assert measured["latency_ms"]["samples"] == 7


# -- end to end -----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def bench_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("bench")
    (folder / "grid.toml").write_text(GRID)
    result = invoke(
        "bench",
        "dssm",
        "--retriever",
        "exact,hnsw",
        "--grid",
        folder / "grid.toml",
        *TINY,
        "--out",
        folder / "out",
        "--format",
        "json",
    )
    assert result.exit_code == 0, result.stderr
    json.loads(result.stdout)  # --format json prints the document
    return folder


def test_bench_writes_a_versioned_document(bench_dir: Path) -> None:
    doc = load_document(bench_dir / "out")
    assert doc["format"] == BENCH_FORMAT and doc["schema_version"] == SCHEMA_VERSION
    assert (
        doc["config"]["models"] == ["dssm"]
        and doc["config"]["ks"] == [5, 20]
        and doc["config"]["recall_k"] == 5
    )
    assert {"cpu", "cores", "load_average", "torch_threads"} <= set(doc["machine"])
    assert {"recall-zoo", "python", "torch", "numpy", "hnsw"} <= set(
        doc["versions"]
    )  # backends under their names
    assert {r["name"] for r in doc["plugins"]["retrievers"]} == {"exact", "hnsw"}
    model = doc["models"]["dssm"]
    assert model["status"] == "done" and model["train_s"] > 0 and model["interests"] == 1
    assert {"exact", "popularity"} <= set(model["metrics"])
    cells = doc["cells"]
    assert len(cells) == 3 and all(c["status"] == "done" for c in cells)
    for cell in cells:
        assert {"build_s", "memory_bytes", "disk_bytes", "train_s", "at", "effective"} <= set(cell)
        assert cell["disk_bytes"] > 0 and cell["memory_bytes"] > 0
        for k in ("5", "20"):
            measured = cell["at"][k]
            assert 0.0 <= measured["recall"] <= 1.0 and measured["qps"] > 0
            assert {"p50", "p99", "mean", "samples"} <= set(measured["latency_ms"])
            assert f"hitrate@{k}" in measured["quality"] and f"ndcg@{k}" in measured["quality"]
    exact = next(c for c in cells if c["retriever"] == "exact")
    assert exact["build"] == {"device": "cpu"}  # GPU-capable retrievers follow --device
    assert exact["at"]["5"]["recall"] == pytest.approx(1.0) and exact["at"]["5"]["speedup"] == pytest.approx(
        1.0
    )
    summary = doc["summary"]["dssm"]
    assert summary["recall_k"] == 5 and summary["best"] is not None
    assert set(summary["per_retriever"]) == {"exact", "hnsw"} and summary["frontier"]
    assert (bench_dir / "out" / "models" / "dssm" / "embeddings.npz").is_file()
    assert (bench_dir / "out" / "models" / "dssm" / "model").is_dir()


def test_bench_reports_are_self_contained(bench_dir: Path) -> None:
    html = (bench_dir / "out" / "report.html").read_text()
    assert html.count("<svg") >= 3  # Pareto plot, build time and memory bars
    assert "src=" not in html and "href=" not in html and "<script" not in html
    for svg in html.split("<svg")[1:]:
        ET.fromstring("<svg" + svg.split("</svg>")[0] + "</svg>")  # well-formed
    assert "Protocol card" in html and "recall@5" in html
    md = (bench_dir / "out" / "report.md").read_text()
    assert (
        "## Fastest setting reaching the recall target" in md
        and "| hnsw |" in md
        and "## Protocol card" in md
    )


def test_rerun_skips_finished_cells_and_does_not_retrain(bench_dir: Path) -> None:
    stamp = (bench_dir / "out" / "models" / "dssm" / "embeddings.npz").stat().st_mtime_ns
    result = invoke(
        "bench",
        "dssm",
        "--retriever",
        "exact,hnsw",
        "--grid",
        bench_dir / "grid.toml",
        *TINY,
        "--out",
        bench_dir / "out",
    )
    assert result.exit_code == 0, result.stderr
    assert "cells measured 0, skipped (finished before) 3" in result.stdout
    assert "train" not in result.stderr
    assert (bench_dir / "out" / "models" / "dssm" / "embeddings.npz").stat().st_mtime_ns == stamp
    # a new query setting is measured on the saved model, without retraining
    (bench_dir / "grid2.toml").write_text(GRID.replace("ef = [5, 40]", "ef = [5, 40, 80]"))
    result = invoke(
        "bench",
        "dssm",
        "--retriever",
        "exact,hnsw",
        "--grid",
        bench_dir / "grid2.toml",
        *TINY,
        "--out",
        bench_dir / "out",
    )
    assert result.exit_code == 0, result.stderr
    assert "cells measured 1, skipped (finished before) 3" in result.stdout
    assert "   train" not in result.stderr and "load" in result.stderr
    assert len(load_document(bench_dir / "out")["cells"]) == 4


def test_rerun_with_other_settings_is_refused(bench_dir: Path) -> None:
    result = invoke(
        "bench", "dssm", "--retriever", "exact", *TINY[:-6], "--k", "5", "--out", bench_dir / "out"
    )
    assert result.exit_code == 2
    assert "holds a bench with other settings" in result.stderr and "--force" in result.stderr


def test_report_rerenders_from_bench_json(bench_dir: Path, tmp_path: Path) -> None:
    result = invoke(
        "report", bench_dir / "out", "--out", tmp_path, "--recall-target", "0.5", "--format", "json"
    )
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["dssm"]["recall_target"] == 0.5
    assert (tmp_path / "report.html").is_file() and (tmp_path / "report.md").is_file()
    assert load_document(bench_dir / "out")["config"]["recall_target"] == 0.95  # bench.json untouched
    missing = invoke("report", tmp_path / "nowhere")
    assert missing.exit_code == 5 and "no bench results" in missing.stderr


def test_report_summary_names_users_per_second_and_latency(bench_dir: Path, tmp_path: Path) -> None:
    result = invoke("report", bench_dir / "out", "--out", tmp_path)
    assert result.exit_code == 0, result.stderr
    assert "users/s" in result.stdout and "queries/s" not in result.stdout
    assert "p50 ms" in result.stdout and "p99 ms" in result.stdout
    answer = next(line for line in result.stdout.splitlines() if line.strip().startswith("answer:"))
    assert "users/s" in answer and "one user p50" in answer
    assert "caveat: Small catalogue (dssm)" in result.stdout  # 80 items


def test_bench_usage_errors(tmp_path: Path) -> None:
    for args, fragment in (
        (["bench", "dsm", "-r", "exact"], "Did you mean 'dssm'"),
        (["bench", "dssm", "-r", "exakt"], "Did you mean 'exact'"),
        (["bench", "dssm", "-r", "exact", "--k", "0"], "--k"),
        (["bench", "dssm", "-r", "exact", "--format", "xml"], "--format"),
        (["bench", "dssm", "-r", "exact", "--param", "retriever.ef=3"], "--grid"),
        (["bench", "dssm,dssm", "-r", "exact"], "listed twice"),
        (["bench", "dssm", "-r", "exact", "--recall-target", "1.5"], "--recall-target"),
    ):
        result = invoke(*args, "--out", tmp_path / "x")
        assert result.exit_code == 2, (args, result.stderr)
        assert fragment in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "x" / "models").exists()  # nothing trained


BROKEN_PLUGIN = """
from zoo import hookimpl
from zoo.specs import RetrieverSpec
from zoo_plugins.exact.retriever import ExactRetriever


class Broken(ExactRetriever):
    name = "broken"

    def _search(self, queries, k):
        raise RuntimeError("index exploded")


@hookimpl
def zoo_register_retrievers():
    return [RetrieverSpec(name="broken", factory=Broken, build_params={"device": "cpu"},
                          query_params={"chunk_size": "auto"}),
            RetrieverSpec(name="missing-lib", factory="nowhere:Nothing", requires=("zoo_no_such_module",),
                          extra="nothing")]
"""


def test_failures_and_missing_backends_do_not_stop_the_bench(tmp_path: Path) -> None:
    plugin = tmp_path / "broken_plugin.py"
    plugin.write_text(BROKEN_PLUGIN)
    result = invoke(
        "--plugin",
        plugin,
        "bench",
        "dssm",
        "--retriever",
        "exact,broken,missing-lib",
        *TINY,
        "--out",
        tmp_path / "out",
    )
    assert result.exit_code == 1, result.stderr
    assert (
        "retriever 'missing-lib' is unavailable" in result.stderr and "recall-zoo[nothing]" in result.stderr
    )
    assert "index exploded" in result.stderr and "Traceback" not in result.stderr
    doc = load_document(tmp_path / "out")
    status = {c["retriever"]: c["status"] for c in doc["cells"]}
    assert status == {"exact": "done", "broken": "failed"}
    assert doc["unavailable"] == [
        {
            "name": "missing-lib",
            "reason": "zoo_no_such_module not installed",
            "install": 'pip install "recall-zoo[nothing]"',
        }
    ]
    md = (tmp_path / "out" / "report.md").read_text()
    assert "## Failures" in md and "index exploded" in md and "## Unavailable retrievers" in md


def test_bench_documents_are_validated(tmp_path: Path) -> None:
    (tmp_path / "bench.json").write_text(
        json.dumps({"format": BENCH_FORMAT, "schema_version": SCHEMA_VERSION + 1})
    )
    with pytest.raises(ModelFileError, match="newer"):
        load_document(tmp_path)
    (tmp_path / "bench.json").write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(ModelFileError, match="not a recall-zoo bench"):
        load_document(tmp_path)


def test_bench_package_imports_no_torch() -> None:
    import subprocess

    code = "import sys, zoo.bench, zoo.bench.grid, zoo.bench.report; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_svg_charts_handle_edge_cases() -> None:
    from zoo.bench.svg import Series, bar_chart, pareto_plot

    charts = [
        pareto_plot([], title="empty", x_label="recall"),
        pareto_plot(
            [Series("one", [(1.0, 500.0, "only")], [0])], title="one point", x_label="recall", target=0.95
        ),
        pareto_plot(
            [Series("flat", [(0.5, 10.0, "a"), (0.5, 10.0, "b"), (float("nan"), 1.0, "c")], [0])],
            title="ties & <nan>",
            x_label="recall",
            highlight=(0.5, 10.0, "best"),
        ),
        bar_chart([("a", None, ""), ("b", float("nan"), "")], title="nothing", unit="s"),
        bar_chart([("a", 0.0, ""), ("b", 3.0, "x"), ("c", 3000.0, "y")], title="linear", unit="MB"),
    ]
    for svg in charts:
        root = ET.fromstring(svg)
        assert root.tag.endswith("svg")
    assert "&lt;nan&gt;" in charts[2]  # text is escaped


def test_each_cell_runs_at_its_own_query_settings(tmp_path: Path) -> None:
    """Groups sharing a build are merged: a cell that sets no query parameter must run at the backend's
    defaults, not at the previous cell's settings (the order a resumed run visits cells differs)."""
    grid = tmp_path / "grid.toml"
    grid.write_text("[[hnsw]]\nbuild = { M = [8] }\nquery = { ef = [5] }\n\n[[hnsw]]\nbuild = { M = [8] }\n")
    result = invoke("bench", "dssm", "--retriever", "hnsw", "--grid", grid, *TINY, "--out", tmp_path / "out")
    assert result.exit_code == 0, result.stderr
    cells = {json.dumps(c["query"], sort_keys=True): c for c in load_document(tmp_path / "out")["cells"]}
    assert set(cells) == {"{}", '{"ef": 5}'}
    default_ef = default_registry().retriever("hnsw").query_params["ef"]
    assert cells["{}"]["effective"]["query"]["ef"] == default_ef != 5
    assert cells['{"ef": 5}']["effective"]["query"]["ef"] == 5
