"""``zoo --version``, ``zoo models/retrievers/datasets/plugins``, ``zoo doctor`` and ``--plugin PATH``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

import zoo
from zoo.registry import reset_default_registry
from zoo_cli import state
from zoo_cli.main import build_app, main

MOVIELENS = ["movielens-100k", "movielens-1m", "movielens-20m", "movielens-25m", "movielens-latest-small"]

LOCAL_PLUGIN = """
from zoo import hookimpl
from zoo.specs import ModelSpec


@hookimpl
def zoo_register_models():
    return [ModelSpec(name="local-tower", factory="nowhere.model:Tower", description="from a local file",
                      family="sequential", train_modes=(2,), trainer_defaults={"mode": 2, "epochs": 1})]


@hookimpl
def zoo_register_commands(app):
    @app.command("hello")
    def hello(name: str = "world"):
        print(f"hello {name}")

    @app.command("models")
    def models():
        print("hijacked")
"""


@pytest.fixture(autouse=True)
def clean(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for var in ("ZOO_LOAD_PLUGINS", "ZOO_DISABLE_PLUGINS", "ZOO_STRICT_PLUGINS"):
        monkeypatch.delenv(var, raising=False)
    state.set_plugin_paths([])
    reset_default_registry()
    yield
    state.set_plugin_paths([])
    reset_default_registry()
    for name in [m for m in sys.modules if m.startswith("zoo_local_plugin_")]:
        del sys.modules[name]


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def invoke(runner: CliRunner, *args: str):
    result = runner.invoke(build_app(), list(args))
    return result


def ok_json(runner: CliRunner, *args: str):
    result = invoke(runner, *args)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_version(runner: CliRunner) -> None:
    result = invoke(runner, "--version")
    assert result.exit_code == 0
    assert result.stdout.strip() == f"recall-zoo {zoo.__version__}"


def test_no_arguments_shows_help(runner: CliRunner) -> None:
    result = invoke(runner)
    assert "models" in result.output
    assert "retrievers" in result.output


def test_models_table(runner: CliRunner) -> None:
    result = invoke(runner, "models")
    assert result.exit_code == 0, result.output
    assert "dssm" in result.stdout
    assert "two_tower" in result.stdout
    assert "recall-zoo" in result.stdout
    assert result.stderr == ""


def test_models_json_has_dssm_defaults(runner: CliRunner) -> None:
    models = ok_json(runner, "models", "--json")
    assert isinstance(models, list)
    (dssm,) = [m for m in models if m["name"] == "dssm"]
    assert dssm["family"] == "two_tower"
    assert dssm["train_modes"] == [0, 1, 2]
    assert (dssm["plugin"], dssm["dist"], dssm["available"]) == ("dssm", "recall-zoo", True)
    from zoo.registry import default_registry

    defaults = dssm["defaults"]
    assert defaults == dict(default_registry().model("dssm").defaults)  # the preset, as registered
    assert defaults["mode"] == 2
    assert {"epochs", "batch_size", "lr", "negatives", "temperature", "embed_dim", "dims"} <= set(defaults)
    assert [m["name"] for m in models] == sorted(m["name"] for m in models)


def test_models_pattern_json(runner: CliRunner) -> None:
    assert [m["name"] for m in ok_json(runner, "models", "d*ss*", "--json")] == ["dssm"]


def test_retrievers_json(runner: CliRunner) -> None:
    retrievers = {r["name"]: r for r in ok_json(runner, "retrievers", "--json")}
    assert {"exact", "hnsw"} <= set(retrievers)
    hnsw = retrievers["hnsw"]
    from zoo_plugins.hnsw.retriever import DEFAULTS

    assert hnsw["build_params"]["M"] == DEFAULTS["M"]  # the listing shows what a build uses
    assert hnsw["query_params"] == {"ef": DEFAULTS["ef"]}
    assert hnsw["supports_add"] is True
    assert set(hnsw["metrics"]) <= {"ip", "cosine"}
    assert retrievers["exact"]["supports_gpu"] is True
    for entry in retrievers.values():
        assert isinstance(entry["available"], bool)
        assert entry["available"] or "install" in entry


def test_retrievers_table(runner: CliRunner) -> None:
    result = invoke(runner, "retrievers")
    assert result.exit_code == 0, result.output
    assert "hnsw" in result.stdout
    assert "ef=64" in result.stdout


def test_datasets_movielens_json(runner: CliRunner) -> None:
    datasets = ok_json(runner, "datasets", "movielens-*", "--json")
    assert [d["name"] for d in datasets] == MOVIELENS
    assert all(d["needs_path"] for d in datasets)
    assert all(d["download"] == d["name"] for d in datasets)


def test_datasets_table(runner: CliRunner) -> None:
    result = invoke(runner, "datasets")
    assert result.exit_code == 0, result.output
    assert "synthetic" in result.stdout
    assert "--data PATH" in result.stdout


def test_plugins_json(runner: CliRunner) -> None:
    plugins = {p["name"]: p for p in ok_json(runner, "plugins", "--json")}
    builtins = {name: p for name, p in plugins.items() if p["dist"] == "recall-zoo"}
    assert {"dssm", "exact", "hnsw", "synthetic", "movielens", "csv"} <= set(builtins)
    for p in builtins.values():
        assert p["status"] == "loaded", p
        assert p["version"] == zoo.__version__
        assert p["source"] == "entry-point"
        assert p["reason"] == ""
    assert builtins["dssm"]["provides"] == {"model": ["dssm"]}
    assert builtins["dssm"]["hooks"] == ["zoo_register_models"]
    assert builtins["hnsw"]["provides"] == {"retriever": ["hnsw"]}
    assert sorted(builtins["movielens"]["provides"]["dataset"]) == MOVIELENS


def test_plugins_table(runner: CliRunner) -> None:
    result = invoke(runner, "plugins")
    assert result.exit_code == 0, result.output
    assert "loaded" in result.stdout
    assert "movielens" in result.stdout


def test_doctor(runner: CliRunner) -> None:
    result = invoke(runner, "doctor")
    assert result.exit_code == 0, result.output
    assert "versions" in result.stdout
    assert "plugins" in result.stdout
    assert "all plugins loaded" in result.stdout


@pytest.mark.parametrize("command", ["models", "retrievers", "datasets"])
def test_wildcard_matching_nothing(runner: CliRunner, command: str) -> None:
    result = invoke(runner, command, "zzz*")
    assert result.exit_code == 0, result.output
    assert f"no {command} match 'zzz*'" in result.stdout
    assert ok_json(runner, command, "zzz*", "--json") == []


def write_plugin(tmp_path: Path, name: str, source: str) -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(source))
    return path


def test_plugin_option_adds_a_model(runner: CliRunner, tmp_path: Path) -> None:
    path = write_plugin(tmp_path, "local_tower.py", LOCAL_PLUGIN)
    models = {m["name"]: m for m in ok_json(runner, "--plugin", str(path), "models", "--json")}
    assert {"dssm", "local-tower"} <= set(models)
    local = models["local-tower"]
    assert (local["family"], local["train_modes"], local["plugin"]) == (
        "sequential",
        [2],
        "path:local_tower.py",
    )
    assert local["defaults"] == {"mode": 2, "epochs": 1}


def test_plugin_option_through_main(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = write_plugin(tmp_path, "local_tower.py", LOCAL_PLUGIN)
    with pytest.raises(SystemExit) as exit_info:
        main(["--plugin", str(path), "models"])
    assert exit_info.value.code == 0
    captured = capsys.readouterr()
    assert "local-tower" in captured.out
    assert "dssm" in captured.out
    # the plugin's `models` command is refused (core command), its new `hello` command is kept
    assert "tried to replace core command 'zoo models'; ignored" in captured.err
    assert "hijacked" not in captured.out
    with pytest.raises(SystemExit) as exit_info:
        main([f"--plugin={path}", "hello", "--name", "zoo"])
    assert exit_info.value.code == 0
    assert "hello zoo" in capsys.readouterr().out


def test_broken_plugin_costs_one_warning_line(runner: CliRunner, tmp_path: Path) -> None:
    path = write_plugin(tmp_path, "broken.py", "raise RuntimeError('broken on purpose')\n")
    result = invoke(runner, "--plugin", str(path), "models", "--json")
    assert result.exit_code == 0, result.output
    assert "dssm" in [m["name"] for m in json.loads(result.stdout)]
    lines = result.stderr.splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("warning: plugin path:broken.py failed:")
    assert "RuntimeError: broken on purpose" in lines[0]
    plugins = {p["name"]: p for p in ok_json(runner, "--plugin", str(path), "plugins", "--json")}
    assert plugins["path:broken.py"]["status"] == "failed"
    doctor = invoke(runner, "--plugin", str(path), "doctor")
    assert doctor.exit_code == 0, doctor.output
    assert "Traceback" in doctor.stdout
    assert "broken on purpose" in doctor.stdout
    assert "all plugins loaded" not in doctor.stdout


def test_strict_plugins_exit_code(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    path = write_plugin(tmp_path, "broken.py", "raise RuntimeError('strict')\n")
    monkeypatch.setenv("ZOO_STRICT_PLUGINS", "1")
    with pytest.raises(SystemExit) as exit_info:
        main(["--plugin", str(path), "models"])
    assert exit_info.value.code == 4
    assert "ZOO_STRICT_PLUGINS" in capsys.readouterr().err


LISTING_IMPORTS = """
import sys
from zoo_cli.main import main

for argv in (["models", "--json"], ["retrievers"], ["datasets"], ["plugins"]):
    try:
        main(argv)
    except SystemExit as exc:
        assert exc.code in (0, None), (argv, exc.code)
heavy = [m for m in ("torch", "hnswlib", "pandas", "numpy") if m in sys.modules]
print("HEAVY=" + ",".join(heavy), file=sys.stderr)
"""


def test_listing_never_imports_heavy_modules() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZOO_")}
    proc = subprocess.run(
        [sys.executable, "-c", LISTING_IMPORTS], capture_output=True, text=True, env=env, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    (heavy_line,) = [line for line in proc.stderr.splitlines() if line.startswith("HEAVY=")]
    heavy = set(filter(None, heavy_line[len("HEAVY=") :].split(",")))
    assert "torch" not in heavy
    assert "hnswlib" not in heavy
    assert "pandas" not in heavy
    assert '"dssm"' in proc.stdout


def test_installed_console_script(tmp_path: Path) -> None:
    script = Path(sys.executable).with_name("zoo")
    assert script.is_file(), "the `zoo` console script is not installed next to the interpreter"
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZOO_")}
    env["COLUMNS"] = "120"
    version = subprocess.run([str(script), "--version"], capture_output=True, text=True, env=env, timeout=120)
    assert version.returncode == 0, version.stderr
    assert version.stdout.strip() == f"recall-zoo {zoo.__version__}"
    assert version.stderr == ""

    broken = write_plugin(tmp_path, "broken.py", "import zoo_no_such_dependency_anywhere\n")
    help_run = subprocess.run(
        [str(script), "--plugin", str(broken), "--help"], capture_output=True, text=True, env=env, timeout=120
    )
    assert help_run.returncode == 0, help_run.stderr
    assert "models" in help_run.stdout
    lines = help_run.stderr.splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("warning: plugin path:broken.py failed:")
    assert "zoo_no_such_dependency_anywhere" in lines[0]
