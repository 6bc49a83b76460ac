"""``zoo plugin init``: names, the rendered files, and the generated package working end to end.

Install-free: the generated package's ``src`` goes on ``sys.path`` and a ``.dist-info`` folder made
from its own ``pyproject.toml`` stands in for ``pip install``, so ``importlib.metadata`` finds its
entry point exactly as after a real install. The generated tests then run in-process (pytester).
The real ``pip install`` in a fresh virtual environment is the issue's manual acceptance check.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

import zoo
from tests.test_plugins import Site
from zoo.errors import UsageError
from zoo.plugins import LOADED, PluginManager
from zoo.registry import reset_default_registry
from zoo_cli.commands.plugin import KINDS, PluginNames, create_package, render_files, zoo_requirement
from zoo_cli.main import build_app

pytest_plugins = ["pytester"]

tomllib = pytest.importorskip("tomllib", reason="reading pyproject.toml needs Python 3.11+ (tomllib)")

IMPLEMENTATION = {"model": "model.py", "retriever": "index.py", "dataset": "loader.py"}


@pytest.fixture(autouse=True)
def _clean(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for var in ("ZOO_LOAD_PLUGINS", "ZOO_DISABLE_PLUGINS", "ZOO_STRICT_PLUGINS"):
        monkeypatch.delenv(var, raising=False)
    before = set(sys.modules)
    yield
    for name in set(sys.modules) - before:
        if name.startswith("zoo_my_"):
            del sys.modules[name]
    reset_default_registry()


def invoke(*args: str):
    return CliRunner().invoke(build_app(), [str(a) for a in args])


# -- names ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "dist", "module", "class_name"),
    [
        ("my-index", "zoo-my-index", "zoo_my_index", "MyIndex"),
        ("my_model", "zoo-my-model", "zoo_my_model", "MyModel"),
        ("zoo-faiss-ivf", "zoo-faiss-ivf", "zoo_faiss_ivf", "ZooFaissIvf"),
        ("2tower", "zoo-2tower", "zoo_2tower", "Zoo2tower"),
    ],
)
def test_names(name: str, dist: str, module: str, class_name: str) -> None:
    names = PluginNames.from_name(name, "model")
    assert (names.name, names.dist, names.module, names.class_name) == (name, dist, module, class_name)
    assert names.module.isidentifier() and names.class_name.isidentifier()


@pytest.mark.parametrize("name", ["My-Index", "-index", "my index", "my.index", ""])
def test_invalid_name_refused(name: str) -> None:
    with pytest.raises(UsageError, match="invalid"):
        PluginNames.from_name(name, "retriever")


def test_unknown_kind_refused() -> None:
    with pytest.raises(UsageError, match="model, retriever, dataset"):
        PluginNames.from_name("x", "index")


def test_zoo_requirement_range() -> None:
    from packaging.requirements import Requirement

    assert zoo_requirement("0.1.0") == "recall-zoo>=0.1,<0.2"
    assert zoo_requirement("0.4.2") == "recall-zoo>=0.4,<0.5"
    assert zoo_requirement("1.3.0") == "recall-zoo>=1.3,<2"
    assert Requirement(zoo_requirement()).specifier.contains(zoo.__version__)


# -- rendered files ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_rendered_package_is_complete(kind: str) -> None:
    names = PluginNames.from_name(f"my-{kind}", kind)
    rendered = render_files(names)
    module = names.module
    expected = {
        "pyproject.toml",
        "README.md",
        ".gitignore",
        f"src/{module}/__init__.py",
        f"src/{module}/{IMPLEMENTATION[kind]}",
        f"tests/test_{module}.py",
    }
    assert {p.as_posix() for p in rendered} == expected
    for path, text in rendered.items():
        assert "{{" not in text and "}}" not in text.replace("}}}", ""), path
        if path.suffix == ".py":
            compile(text, str(path), "exec")
    pyproject = tomllib.loads(rendered[Path("pyproject.toml")])
    project = pyproject["project"]
    assert project["name"] == names.dist
    assert project["entry-points"]["recall_zoo"] == {names.name: module}
    assert zoo_requirement() in project["dependencies"]
    assert pyproject["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"] == [f"src/{module}"]
    assert "-p zoo.testing.plugin" in pyproject["tool"]["pytest"]["ini_options"]["addopts"]
    readme = rendered[Path("README.md")]
    assert names.dist in readme and f"--kind {kind}" in readme
    hooks = rendered[Path(f"src/{module}/__init__.py")]
    assert "import torch" not in hooks and "import numpy" not in hooks and "import pandas" not in hooks


def test_templates_show_how_to_ship_a_grid_and_an_archive() -> None:
    retriever = render_files(PluginNames.from_name("my-index", "retriever"))[
        Path("src/zoo_my_index/__init__.py")
    ]
    assert '"query": {"chunk_size": [256, 1024, 4096]},' in retriever and "bench_grid=BENCH_GRID" in retriever
    dataset = render_files(PluginNames.from_name("my-data", "dataset"))[Path("src/zoo_my_data/__init__.py")]
    assert "# archive=Archive(" in dataset and "from zoo.data.archive import Archive" in dataset


def test_cli_writes_the_package(tmp_path: Path) -> None:
    result = invoke("plugin", "init", "my-index", "--kind", "retriever", "--dir", tmp_path)
    assert result.exit_code == 0, result.output
    assert f"created {tmp_path / 'my-index'}/" in result.stdout
    assert "pip install -e" in result.stdout
    assert (tmp_path / "my-index" / "src" / "zoo_my_index" / "index.py").is_file()
    again = invoke("plugin", "init", "my-index", "--kind", "retriever", "--dir", tmp_path)
    assert again.exit_code == 2
    assert "already exists" in again.stderr and len(again.stderr.strip().splitlines()) == 1
    bad = invoke("plugin", "init", "My-Index", "--kind", "retriever", "--dir", tmp_path)
    assert bad.exit_code == 2 and "invalid" in bad.stderr
    kind = invoke("plugin", "init", "ok", "--kind", "ann", "--dir", tmp_path)
    assert kind.exit_code == 2 and "--kind 'ann'" in kind.stderr


def test_plugin_group_is_listed_in_help() -> None:
    result = invoke("plugin", "--help")
    assert result.exit_code == 0
    assert "init" in result.stdout


# -- the generated package, "installed" --------------------------------------------------------------------


def fake_install(package: Path, site: Path) -> None:
    """What ``pip install ./package`` leaves behind, without pip: its code importable and a
    ``.dist-info`` with the pyproject's name, version, requirements and entry points."""
    project = tomllib.loads((package / "pyproject.toml").read_text())["project"]
    Site(site).install(
        project["name"],
        project["entry-points"]["recall_zoo"],
        version=project["version"],
        requires=tuple(project["dependencies"]),
    )


@pytest.fixture
def installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Install generated packages; only they load besides the built-ins (``ZOO_LOAD_PLUGINS``), so
    third-party plugins of the environment (a real zoo-my-index, zoo-mlflow...) stay out."""
    dists: list[str] = []

    def install(name: str, kind: str) -> Path:
        target, names, _ = create_package(name, kind, tmp_path)
        dists.append(names.dist)
        monkeypatch.setenv("ZOO_LOAD_PLUGINS", ",".join(dists))
        site = tmp_path / "site"
        site.mkdir(exist_ok=True)
        fake_install(target, site)
        monkeypatch.syspath_prepend(str(site))
        monkeypatch.syspath_prepend(str(target / "src"))
        reset_default_registry()
        return target

    return install


def test_installed_retriever_is_listed_and_runs(installed, tmp_path: Path) -> None:
    installed("my-index", "retriever")
    record = [r for r in PluginManager().records if r.name == "my-index" and r.status != "skipped"]
    assert [(r.status, r.dist, r.version) for r in record] == [(LOADED, "zoo-my-index", "0.1.0")]
    listed = invoke("retrievers", "--json")
    assert listed.exit_code == 0, listed.output
    (entry,) = [r for r in json.loads(listed.stdout) if r["name"] == "my-index"]
    assert (entry["dist"], entry["available"], entry["query_params"]) == (
        "zoo-my-index",
        True,
        {"chunk_size": 1024},
    )
    result = invoke(
        "run",
        "dssm",
        "--retriever",
        "my-index",
        "--epochs",
        "1",
        "--device",
        "cpu",
        "--param",
        "data.users=150",
        "--param",
        "data.items=60",
        "--param",
        "data.mean_length=12",
        "--param",
        "embed_dim=8",
        "--param",
        "dims=16,8",
        "--format",
        "json",
        "--out",
        tmp_path / "run",
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["retriever"]["name"] == "my-index"
    assert report["retriever"]["recall_vs_exact"]["recall@10"] >= 0.99
    assert (tmp_path / "run" / "index" / "matrix.npy").is_file()


def test_installed_model_and_dataset_are_listed(installed) -> None:
    installed("my-model", "model")
    installed("my-data", "dataset")
    models = {m["name"]: m for m in json.loads(invoke("models", "--json").stdout)}
    assert models["my-model"]["dist"] == "zoo-my-model" and models["my-model"]["family"] == "two_tower"
    datasets = {d["name"]: d for d in json.loads(invoke("datasets", "--json").stdout)}
    assert datasets["my-data"]["needs_path"] is True
    plugins = {p["name"]: p for p in json.loads(invoke("plugins", "--json").stdout)}
    assert plugins["my-model"]["status"] == plugins["my-data"]["status"] == "loaded"


def test_package_needing_another_recall_zoo_is_incompatible(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target, _, _ = create_package("my-index", "retriever", tmp_path)
    pyproject = target / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace(zoo_requirement(), "recall-zoo>=99"))
    fake_install(target, tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    records = PluginManager(env={"ZOO_LOAD_PLUGINS": "zoo-my-index"}).records
    (record,) = [
        r for r in records if r.name == "my-index" and r.target == "zoo_my_index" and r.status != "skipped"
    ]
    assert record.status == "incompatible" and "recall-zoo>=99" in record.reason


# -- the generated tests pass as generated ---------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("kind", KINDS)
def test_generated_tests_pass(pytester: pytest.Pytester, kind: str) -> None:
    """The package's own tests (conformance suite + wiring), run in-process from its folder."""
    import torch  # noqa: F401 - imported before pytester snapshots sys.modules

    import zoo.pipeline  # noqa: F401
    import zoo.testing.datasets  # noqa: F401
    import zoo.testing.models  # noqa: F401
    import zoo.testing.retrievers  # noqa: F401
    import zoo.train.trainer  # noqa: F401

    target, names, _ = create_package(f"my-{kind}", kind, pytester.path)
    pytester.chdir()
    result = pytester.runpytest_inprocess(
        str(target), "-q", "-p", "no:cacheprovider", "--rootdir", str(target)
    )
    outcomes = result.parseoutcomes()
    assert result.ret == 0, result.stdout.str()[-3000:]
    assert outcomes.get("passed", 0) >= 5 and not outcomes.get("failed")
