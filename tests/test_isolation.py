"""Isolation through the command line, with fake *installed* distributions (issue 5).

``tests/test_plugins.py`` proves each failure mode at the plugin-manager level; here each one is
installed as a distribution and seen through ``zoo``: the rest keeps working, ``zoo plugins`` says
what happened and why, the break costs exactly one warning line, and ``zoo --help`` still works in a
real subprocess. Warning lines are compared with a baseline taken without the fake plugins, so
plugins failing elsewhere in the environment do not disturb the counts.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from tests import test_plugins
from tests.test_plugins import GOOD_PLUGIN, Site
from zoo import hookimpl
from zoo.plugins import PluginManager
from zoo.registry import reset_default_registry
from zoo_cli.main import CORE_COMMANDS, build_app, main

pytest_plugins = ["zoo.testing.plugin"]

# fixtures shared with tests/test_plugins.py: bound here so that pytest finds them in this module
clean_env = test_plugins.clean_env
site = test_plugins.site

BROKEN = "raise RuntimeError('broken on purpose')\n"

MISSPELT = """
from zoo import hookimpl
from zoo.specs import ModelSpec

@hookimpl
def zoo_register_model():
    return [ModelSpec(name="typo-model", factory="a:b")]
"""

RAISING = """
from zoo import hookimpl

@hookimpl
def zoo_register_retrievers():
    raise KeyError("index table")
"""

SHADOWING = """
from zoo import hookimpl

@hookimpl
def zoo_register_commands(app):
    @app.command("models")
    def models():
        print("hijacked")

    @app.command("fake-hello")
    def hello(name: str = "world"):
        print(f"hello {name}")
"""

TINY_RUN = [
    "run",
    "dssm",
    "--epochs",
    "1",
    "--device",
    "cpu",
    "--param",
    "data.users=120",
    "--param",
    "data.items=50",
    "--param",
    "data.mean_length=10",
    "--param",
    "embed_dim=8",
    "--param",
    "dims=16,8",
    "--quiet",
]


def invoke(*args: object, env: dict[str, str] | None = None):
    return CliRunner().invoke(build_app(), [str(a) for a in args], env=env)


def lines_about(text: str, name: str) -> list[str]:
    return [line for line in text.splitlines() if name in line]


def plugins_json(env: dict[str, str] | None = None) -> dict[str, dict]:
    reset_default_registry()
    result = invoke("plugins", "--json", env=env)
    assert result.exit_code == 0, result.output
    return {p["name"]: p for p in json.loads(result.stdout)}


# -- every failure mode, through `zoo plugins` ------------------------------------------------------------

Installer = Callable[[Site], None]

CASES: dict[str, tuple[Installer, dict[str, str], str, str, int]] = {
    # case: (install, env, plugin, expected status, warning lines about it)
    "import failure": (
        lambda s: s.install(
            "zoo-fake-broken", {"fakebroken": "zoo_fake_broken"}, {"zoo_fake_broken": BROKEN}
        ),
        {},
        "fakebroken",
        "failed",
        1,
    ),
    "misspelt hook": (
        lambda s: s.install("zoo-fake-typo", {"faketypo": "zoo_fake_typo"}, {"zoo_fake_typo": MISSPELT}),
        {},
        "faketypo",
        "failed",
        1,
    ),
    "raising hook": (
        lambda s: s.install("zoo-fake-raise", {"fakeraise": "zoo_fake_raise"}, {"zoo_fake_raise": RAISING}),
        {},
        "fakeraise",
        "error",
        1,
    ),
    "needs newer recall-zoo": (
        lambda s: s.install(
            "zoo-fake-future",
            {"fakefuture": "zoo_fake_future"},
            {"zoo_fake_future": GOOD_PLUGIN.format(model="future", module="zoo_fake_future", desc="")},
            requires=("recall-zoo>=99",),
        ),
        {},
        "fakefuture",
        "incompatible",
        1,
    ),
    "blocked": (
        lambda s: s.good("zoo-fake-blocked", "fakeblocked", "zoo_fake_blocked", "blocked-model"),
        {"ZOO_DISABLE_PLUGINS": "zoo-fake-blocked"},
        "fakeblocked",
        "disabled",
        0,
    ),
    "not in the allow-list": (
        lambda s: s.good("zoo-fake-other", "fakeother", "zoo_fake_other", "other-model"),
        {"ZOO_LOAD_PLUGINS": "zoo-fake-nothing"},
        "fakeother",
        "skipped",
        0,
    ),
}

REASONS = {
    "import failure": "RuntimeError: broken on purpose",
    "misspelt hook": "did you mean 'zoo_register_models'?",
    "raising hook": "zoo_register_retrievers raised KeyError",
    "needs newer recall-zoo": "needs recall-zoo>=99",
    "blocked": "ZOO_DISABLE_PLUGINS",
    "not in the allow-list": "ZOO_LOAD_PLUGINS",
}


#: the listing command that collects what the fake plugin provides
COMMAND = {"raising hook": "retrievers"}


def run_main(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """``zoo ARGS`` through the console entry point (``main``), as a user runs it."""
    reset_default_registry()
    with pytest.raises(SystemExit) as info:
        main(args)
    out, err = capsys.readouterr()
    return int(info.value.code or 0), out, err


@pytest.mark.parametrize("case", list(CASES))
def test_each_failure_mode_is_shown_and_the_rest_works(
    site: Site,
    case: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    command = COMMAND.get(case, "models")
    _, _, baseline = run_main([command, "--json"], capsys)
    install, env, plugin, status, warnings = CASES[case]
    install(site)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    code, out, _ = run_main(["plugins", "--json"], capsys)
    entry = {p["name"]: p for p in json.loads(out)}[plugin]
    assert entry["status"] == status
    assert REASONS[case] in entry["reason"]
    code, out, err = run_main([command, "--json"], capsys)
    assert code == 0, err
    assert json.loads(out), "the rest keeps working"
    new_lines = [line for line in err.splitlines() if line not in baseline.splitlines()]
    assert len(new_lines) == warnings, new_lines
    if warnings:
        assert new_lines[0].startswith(f"warning: plugin {plugin} (") and REASONS[case] in new_lines[0]
        code, out, _ = run_main(["doctor"], capsys)
        assert code == 0 and REASONS[case] in out


def test_strict_mode_makes_any_command_fail_in_one_line(
    site: Site,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    CASES["import failure"][0](site)
    monkeypatch.setenv("ZOO_STRICT_PLUGINS", "1")
    for args in (["models"], ["--help"]):
        code, out, err = run_main(args, capsys)
        assert code == 4 and out == ""
        (line,) = err.strip().splitlines()
        assert line.startswith("error: ZOO_STRICT_PLUGINS is set") and "fakebroken" in line


def test_two_distributions_with_the_same_name_through_the_cli(site: Site) -> None:
    site.good("zoo-fake-a", "twina", "zoo_fake_a", "twin", desc="from a")
    site.good("zoo-fake-b", "twinb", "zoo_fake_b", "twin", desc="from b")
    reset_default_registry()
    listed = invoke("models")
    assert listed.exit_code == 0
    assert (
        "'twin' is provided by several plugins; pick one as zoo-fake-a:twin, zoo-fake-b:twin" in listed.stdout
    )
    plugins = plugins_json()
    assert plugins["twina"]["status"] == plugins["twinb"]["status"] == "loaded"
    ambiguous = invoke("run", "twin")
    assert ambiguous.exit_code == 2
    (line,) = [x for x in ambiguous.stderr.splitlines() if x.strip()]
    assert "zoo-fake-a" in line and "zoo-fake-b" in line and "'zoo-fake-a:twin'" in line


def test_installed_command_shadowing_a_core_command(site: Site, capsys: pytest.CaptureFixture[str]) -> None:
    site.install("zoo-fake-cmd", {"fakecmd": "zoo_fake_cmd"}, {"zoo_fake_cmd": SHADOWING})
    code, out, err = run_main(["models"], capsys)
    assert code == 0
    assert "hijacked" not in out and "dssm" in out
    (line,) = lines_about(err, "fakecmd")
    assert line == "warning: plugin fakecmd tried to replace core command 'zoo models'; ignored"
    code, out, _ = run_main(["fake-hello", "--name", "zoo"], capsys)
    assert code == 0 and out.strip() == "hello zoo"
    code, out, _ = run_main(["plugins", "--json"], capsys)
    assert {p["name"]: p for p in json.loads(out)}["fakecmd"]["provides"] == {"command": ["fake-hello"]}


# -- every core command with a broken plugin installed -------------------------------------------------------


def _core_invocations(tmp_path: Path) -> list[list[str]]:
    app = build_app()
    names = [c.name or c.callback.__name__.replace("_", "-") for c in app.registered_commands]
    names += [g.name for g in app.registered_groups if g.name]
    core = [n for n in names if n in CORE_COMMANDS]
    assert {"run", "models", "retrievers", "datasets", "plugins", "doctor", "data", "plugin"} <= set(core)
    calls = [[name, "--help"] for name in core]  # every core command, `bench`/`report` included once added
    calls += [
        ["--help"],
        ["--version"],
        ["models"],
        ["retrievers", "--json"],
        ["datasets"],
        ["plugins"],
        ["doctor"],
        ["data", "list"],
        [*TINY_RUN, "--out", str(tmp_path / "run")],
        ["plugin", "init", "fine", "--kind", "retriever", "--dir", str(tmp_path)],
    ]
    return calls


def test_every_core_command_works_with_a_broken_plugin_installed(
    site: Site,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)  # whatever an installed run sink writes next to the run stays here
    site.install("zoo-fake-broken", {"fakebroken": "zoo_fake_broken"}, {"zoo_fake_broken": BROKEN})
    for args in _core_invocations(tmp_path):
        code, _, err = run_main(args, capsys)
        assert code == 0, (args, err)
        about = lines_about(err, "fakebroken")
        assert len(about) == 1, (args, err)
        assert about[0].startswith(
            "warning: plugin fakebroken (zoo-fake-broken 1.0) failed: import of zoo_fake_broken"
        )
    assert (tmp_path / "run" / "run.json").is_file()
    assert (tmp_path / "fine" / "pyproject.toml").is_file()


def test_help_in_a_subprocess_with_a_broken_plugin_installed(site: Site) -> None:
    site.install("zoo-fake-broken", {"fakebroken": "zoo_fake_broken"}, {"zoo_fake_broken": BROKEN})
    script = Path(sys.executable).with_name("zoo")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZOO_")}
    env["PYTHONPATH"] = os.pathsep.join([str(site.root), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env["COLUMNS"] = "120"
    for args in (["--help"], ["plugins", "--json"]):
        proc = subprocess.run([str(script), *args], capture_output=True, text=True, env=env, timeout=120)
        assert proc.returncode == 0, proc.stderr
        about = lines_about(proc.stderr, "fakebroken")
        assert len(about) == 1, proc.stderr
        assert "RuntimeError: broken on purpose" in about[0]
        assert "Traceback" not in proc.stderr
    assert (
        "plugins"
        in subprocess.run(
            [str(script), "--help"], capture_output=True, text=True, env=env, timeout=120
        ).stdout
    )
    plugins = {p["name"]: p for p in json.loads(proc.stdout)}
    assert plugins["fakebroken"]["status"] == "failed"


# -- plugin commands get a typer.Typer -------------------------------------------------------------------


class TyperCommands:
    """A plugin adding a plain command and a Typer sub-app with options."""

    def __init__(self) -> None:
        self.apps: list[object] = []

    @hookimpl
    def zoo_register_commands(self, app):
        self.apps.append(app)

        @app.command("greet")
        def greet(name: str = typer.Argument("world"), shout: bool = typer.Option(False, "--shout")):
            text = f"hello {name}"
            print(text.upper() if shout else text)

        group = typer.Typer(help="An extra group.")

        @group.command("count")
        def count(n: int = typer.Option(3, "--n", min=1)):
            print(" ".join(str(i) for i in range(1, n + 1)))

        app.add_typer(group, name="extras")


def test_plugin_commands_receive_a_typer_app(register_plugin, zoo_cli) -> None:
    plugin = TyperCommands()
    with register_plugin(plugin, name="typer-commands"):
        assert zoo_cli("greet", "zoo", "--shout").stdout.strip() == "HELLO ZOO"
        assert zoo_cli("extras", "count", "--n", "4").stdout.strip() == "1 2 3 4"
        bad = zoo_cli("extras", "count", "--n", "0")
        assert bad.exit_code == 2  # Typer validated the option
        assert "greet" in zoo_cli("--help").stdout
    assert plugin.apps and all(type(app) is typer.Typer for app in plugin.apps)
    assert not any(hasattr(app, "list_commands") for app in plugin.apps)  # not a Click group


def test_raising_run_sink_is_one_warning_line_and_the_run_succeeds(
    register_plugin, zoo_cli, tmp_path: Path
) -> None:
    class Sink:
        @hookimpl
        def zoo_run_finished(self, report):
            raise ConnectionError("tracking server down")

    with register_plugin(Sink(), name="sink"):
        result = zoo_cli(*TINY_RUN, "--out", tmp_path / "run")
    assert result.exit_code == 0, result.output
    (line,) = lines_about(result.stderr, "tracking server down")
    assert line == "warning: plugin sink zoo_run_finished raised ConnectionError: tracking server down"
    assert (tmp_path / "run" / "run.json").is_file()


def test_fresh_manager_ignores_installed_plugins(site: Site) -> None:
    from zoo.testing import fresh_manager

    site.install("zoo-fake-broken", {"fakebroken": "zoo_fake_broken"}, {"zoo_fake_broken": BROKEN})
    assert "fakebroken" in {r.name for r in PluginManager().failures}
    manager = fresh_manager()
    assert {r.name: r.status for r in manager.records}["fakebroken"] == "skipped"
    assert "zoo_fake_broken" not in sys.modules
    assert fresh_manager(builtins=False).records == []
