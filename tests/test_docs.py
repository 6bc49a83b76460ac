"""The docs are complete, current and work as written.

docs/plugins.md:

* every hook in ``zoo/hookspecs.py`` is in the hook reference (and nothing else is);
* every spec field is in the spec-field tables; the core command names it lists are the real ones;
* a plugin written only from the guide's code blocks (the ones starting ``# file: PATH``) loads,
  passes the guide's own conformance tests, and runs: ``zoo run my-model --retriever my-index
  --dataset my-logs``, with the retriever discovered through the guide's ``pyproject.toml`` entry point.

docs/results.md and the rest:

* docs/results.md is what ``benchmarks/render_results.py`` renders from ``benchmarks/results/*.json``, and
  every results file follows the schema of ``benchmarks/results/README.md``;
* every quality anchor has a seed-0 result, and docs/retrievers.md and docs/models/ link results files;
* the user docs name no private path and every relative link in them resolves.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.test_plugins import Site
from zoo.hookspecs import HOOK_NAMES
from zoo.registry import reset_default_registry
from zoo.specs import DatasetSpec, ModelSpec, RetrieverSpec, Spec
from zoo_cli.main import CORE_COMMANDS, build_app

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parents[1]
GUIDE = ROOT / "docs" / "plugins.md"
RENDERER = ROOT / "benchmarks" / "render_results.py"
#: the user documents (docs/plugins.md's code blocks are checked above)
USER_DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
PRIVATE_PATH = re.compile(r"/(root|tmp)/[a-z]|\.\./shared")
FILE_MARK = re.compile(r"^# file: (\S+)\n")


def guide() -> str:
    return GUIDE.read_text(encoding="utf-8")


def section(title: str) -> str:
    text = guide()
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else len(text)]


def code_files() -> dict[str, str]:
    """``# file: PATH`` code blocks of the guide: path -> contents (without the marker line)."""
    files: dict[str, str] = {}
    for block in re.findall(r"```(?:python|toml)\n(.*?)```", guide(), flags=re.S):
        match = FILE_MARK.match(block)
        if match:
            assert match.group(1) not in files, f"two code blocks claim {match.group(1)}"
            files[match.group(1)] = block[match.end() :]
    return files


def test_every_hook_is_in_the_hook_reference() -> None:
    reference = section("Hook reference")
    missing = [hook for hook in HOOK_NAMES if f"`{hook}(" not in reference]
    assert not missing, f"docs/plugins.md's hook reference lacks {missing}"
    documented = set(re.findall(r"`(zoo_\w+)\(", reference))
    assert documented <= set(HOOK_NAMES), (
        f"the hook reference names hooks that do not exist: {documented - set(HOOK_NAMES)}"
    )


@pytest.mark.parametrize("spec_class", [Spec, ModelSpec, RetrieverSpec, DatasetSpec])
def test_every_spec_field_is_documented(spec_class: type) -> None:
    tables = section("Spec fields")
    own = {f.name for f in dataclasses.fields(spec_class)}
    if spec_class is not Spec:
        own -= {f.name for f in dataclasses.fields(Spec)}
    missing = sorted(name for name in own if f"| `{name}` |" not in tables)
    assert not missing, f"docs/plugins.md's spec fields lack {spec_class.__name__}.{missing}"


def test_the_core_command_list_is_current() -> None:
    text = guide()
    listed = re.search(r"core command name \((.*?)\)", text, flags=re.S)
    assert listed, "the guide no longer lists the core command names"
    assert set(re.findall(r"`([a-z]+)`", listed.group(1))) == set(CORE_COMMANDS)


def test_the_guide_has_a_walk_through_per_kind() -> None:
    files = code_files()
    for package, hook in (
        ("zoo_my_index", "zoo_register_retrievers"),
        ("zoo_my_model", "zoo_register_models"),
        ("zoo_my_data", "zoo_register_datasets"),
        ("zoo_my_sink", "zoo_register_commands"),
    ):
        assert hook in files[f"{package}/__init__.py"]
    assert {
        "tests/test_my_index.py",
        "tests/test_my_model.py",
        "tests/test_my_data.py",
        "pyproject.toml",
    } <= set(files)


@pytest.fixture
def guide_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The guide's files written out; its ``pyproject.toml`` "installed" as a dist-info."""
    tomllib = pytest.importorskip("tomllib", reason="reading pyproject.toml needs Python 3.11+ (tomllib)")
    root = tmp_path / "from-the-guide"
    for path, text in code_files().items():
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    site = tmp_path / "site"
    site.mkdir()
    Site(site).install(
        project["name"],
        project["entry-points"]["recall_zoo"],
        version=project["version"],
        requires=tuple(project["dependencies"]),
    )
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.syspath_prepend(str(root))
    for var in ("ZOO_DISABLE_PLUGINS", "ZOO_STRICT_PLUGINS"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("ZOO_LOAD_PLUGINS", project["name"])  # other installed plugins stay out
    reset_default_registry()
    yield root
    for name in [m for m in sys.modules if m.startswith("zoo_my_")]:
        del sys.modules[name]
    reset_default_registry()


def test_a_plugin_written_from_the_guide_loads_and_runs(guide_project: Path, tmp_path: Path) -> None:
    import zoo_my_data
    import zoo_my_model
    import zoo_my_sink

    from zoo.registry import default_registry
    from zoo.testing import register_plugin

    runner = CliRunner()
    listed = runner.invoke(build_app(), ["retrievers", "--json"])  # found through the entry point
    assert {"name": "my-index", "dist": "zoo-my-index"}.items() <= next(
        r for r in json.loads(listed.stdout) if r["name"] == "my-index"
    ).items()
    data = tmp_path / "logs"
    data.mkdir()
    rows = [f"u{u},i{(u % 6) * 8 + (t * 3 + u) % 8},{t}" for u in range(120) for t in range(14)]
    (data / "clicks.csv").write_text("user,item,time\n" + "\n".join(rows) + "\n")
    registry = default_registry()
    with (
        register_plugin(zoo_my_model, registry=registry),
        register_plugin(zoo_my_data, registry=registry),
        register_plugin(zoo_my_sink, registry=registry),
    ):
        result = runner.invoke(
            build_app(),
            [
                "run",
                "my-model",
                "--retriever",
                "my-index",
                "--dataset",
                "my-logs",
                "--data",
                str(data),
                "--epochs",
                "2",
                "--device",
                "cpu",
                "--format",
                "json",
                "--out",
                str(tmp_path / "run"),
            ],
        )
        assert result.exit_code == 0, result.output
        assert str(tmp_path / "run") in result.stderr  # the guide's zoo_run_finished ran
        hello = runner.invoke(build_app(), ["my-sink", "status", "--verbose"])
        assert hello.exit_code == 0 and hello.stdout.strip() == "ok"
    report = json.loads(result.stdout)  # the guide's run sink writes to stderr, as it says
    assert (report["config"]["model"], report["retriever"]["name"], report["data"]["dataset"]) == (
        "my-model",
        "my-index",
        "my-logs",
    )
    assert report["retriever"]["recall_vs_exact"]["recall@10"] >= 0.99


@pytest.mark.slow
def test_the_guides_own_tests_pass(guide_project: Path, pytester: pytest.Pytester) -> None:
    import torch  # noqa: F401 - imported before pytester snapshots sys.modules

    import zoo.pipeline  # noqa: F401
    import zoo.testing.datasets  # noqa: F401
    import zoo.testing.models  # noqa: F401
    import zoo.testing.retrievers  # noqa: F401
    import zoo.train.trainer  # noqa: F401

    pytester.chdir()
    result = pytester.runpytest_inprocess(
        str(guide_project / "tests"),
        "-q",
        "-p",
        "zoo.testing.plugin",
        "-p",
        "no:cacheprovider",
        "--rootdir",
        str(guide_project),
    )
    assert result.ret == 0, result.stdout.str()[-3000:]
    outcomes = result.parseoutcomes()
    assert outcomes.get("passed", 0) > 40 and not outcomes.get("failed")


# -- results as data ------------------------------------------------------------------------------
def renderer():
    """benchmarks/render_results.py as a module (benchmarks/ is not a package)."""
    spec = importlib.util.spec_from_file_location("render_results", RENDERER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_results_page_is_current() -> None:
    done = subprocess.run(
        [sys.executable, str(RENDERER), "--check"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr


def test_every_results_file_follows_the_schema() -> None:
    module = renderer()
    results, anchors, problems = module.load_results(module.RESULTS_DIR)
    assert not problems, "\n".join(problems)
    assert {r["kind"] for r in results.values()} == set(module.KINDS)
    seed0 = {r["model"] for r in results.values() if r["kind"] == "quality" and r["seed"] == 0}
    missing = set(anchors["models"]) - seed0
    assert not missing, f"anchors without a seed-0 quality result: {missing}"


def test_the_schema_check_catches_what_it_promises() -> None:
    module = renderer()
    good = {
        "kind": "run",
        "date": "2026-11-28",
        "command": "zoo run dssm --retriever hnsw",
        "machine": {"cores": 2},
        "versions": {"recall-zoo": "0.1.0"},
        "figures": {"x": 1},
        "notes": "n.",
    }
    assert module.validate("2026-11-28-run-dssm.json", good) == []
    assert module.validate("2026-11-28-run-dssm.json", {**good, "command": "zoo run --data /tmp/x"})
    assert module.validate("2026-11-27-run-dssm.json", good)  # the name's date differs
    assert module.validate("2026-11-28-bench-dssm.json", good)  # the name's kind differs
    # a quality result names its model, protocol and seed
    assert module.validate("2026-11-28-quality-dssm.json", {**good, "kind": "quality"})
    assert module.validate("2026-11-28-run-dssm.json", {k: v for k, v in good.items() if k != "notes"})


def test_the_renderer_prints_figures_as_stored(tmp_path: Path) -> None:
    module = renderer()
    (tmp_path / "2026-01-02-bench-x-cpu.json").write_text(
        json.dumps(
            {
                "kind": "bench",
                "date": "2026-01-02",
                "command": "zoo bench x --retriever exact",
                "machine": {"cores": 2},
                "versions": {"recall-zoo": "0.1.0"},
                "notes": "n.",
                "figures": {"x": {"users/s": 104803}},
            }
        ).replace('"users/s": 104803', '"users/s": 104803, "recall@10": 0.980')
    )
    text, problems = module.render(tmp_path)
    assert not problems
    assert "| [x](../benchmarks/results/2026-01-02-bench-x-cpu.json) | 104,803 | 0.980 |" in text
    out = tmp_path / "results.md"
    assert module.main(["--results", str(tmp_path), "--output", str(out), "--check"]) == 1  # missing: stale
    assert module.main(["--results", str(tmp_path), "--output", str(out)]) == 0
    assert module.main(["--results", str(tmp_path), "--output", str(out), "--check"]) == 0


@pytest.mark.parametrize(
    "page",
    [
        "docs/retrievers.md",
        *sorted(
            str(p.relative_to(ROOT)) for p in (ROOT / "docs" / "models").glob("*.md") if p.name != "README.md"
        ),
    ],
)
def test_measurement_pages_link_their_results_files(page: str) -> None:
    text = (ROOT / page).read_text(encoding="utf-8")
    linked = re.findall(r"benchmarks/results/([\w.-]+\.json)", text)
    assert linked, f"{page} links no results file"
    missing = [name for name in linked if not (ROOT / "benchmarks" / "results" / name).is_file()]
    assert not missing, f"{page} links missing results files: {missing}"


def test_retrievers_page_does_not_grade_targets() -> None:
    text = (ROOT / "docs" / "retrievers.md").read_text(encoding="utf-8")
    graded = re.findall(r"[^.\n]*(?:\bmet\b|\bnot reached\b|\(target:)[^.\n]*", text)
    assert not graded, f"docs/retrievers.md grades targets: {graded[:3]}"


@pytest.mark.parametrize("page", [str(p.relative_to(ROOT)) for p in USER_DOCS])
def test_user_docs_have_no_private_paths_and_no_broken_links(page: str) -> None:
    path = ROOT / page
    text = path.read_text(encoding="utf-8")
    leaks = sorted(set(PRIVATE_PATH.findall(text)))
    assert not PRIVATE_PATH.search(text), f"{page} names machine-specific paths ({leaks}): users have none"
    broken = []
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+:", target) or target.startswith("#"):
            continue
        if not (path.parent / target.split("#")[0]).exists():
            broken.append(target)
    assert not broken, f"{page} links to missing files: {broken}"
