"""The plugin loader: find -> filter -> load -> validate -> collect (DESIGN section 5).

Two kinds of fixtures: in-memory plugin objects registered with ``PluginManager.register`` and fake
*installed distributions* (a ``NAME-VERSION.dist-info`` folder with ``METADATA`` and
``entry_points.txt`` on ``sys.path``), which ``importlib.metadata`` discovers exactly like a
pip-installed third-party plugin.
"""

from __future__ import annotations

import importlib.metadata as metadata
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

import zoo
from zoo import hookimpl
from zoo.errors import PluginError, UnknownNameError, UsageError
from zoo.plugins import (
    DISABLED,
    FAILED,
    INCOMPATIBLE,
    LOADED,
    SKIPPED,
    PluginManager,
    PluginRecord,
    normalize_dist,
)
from zoo.registry import Registry, reset_default_registry
from zoo.specs import DatasetSpec, ModelSpec, RetrieverSpec

ROOT = Path(__file__).resolve().parents[1]
BUILTIN_FOLDER = ROOT / "plugins" / "zoo_plugins"
MODULE_PREFIX = "zoo_fake_"  # every module a test writes starts with this; all are dropped afterwards
ZOO_ENV = ("ZOO_LOAD_PLUGINS", "ZOO_DISABLE_PLUGINS", "ZOO_STRICT_PLUGINS")

GOOD_PLUGIN = """
from zoo import hookimpl
from zoo.specs import ModelSpec

@hookimpl
def zoo_register_models():
    return [ModelSpec(name={model!r}, factory="{module}.model:Model", description={desc!r})]
"""


def _drop_fake_modules() -> None:
    for name in [m for m in sys.modules if m.startswith(MODULE_PREFIX)]:
        del sys.modules[name]


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for var in ZOO_ENV:
        monkeypatch.delenv(var, raising=False)
    reset_default_registry()
    yield
    _drop_fake_modules()
    reset_default_registry()


class Site:
    """A folder on sys.path that fake distributions are installed into."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def install(
        self,
        dist: str,
        entry_points: dict[str, str],
        modules: dict[str, str] | None = None,
        *,
        version: str = "1.0",
        requires: tuple[str, ...] = (),
    ) -> None:
        """Write ``modules`` (name -> source, as ``name/__init__.py``) and a dist-info for ``dist``."""
        for module, source in (modules or {}).items():
            assert module.startswith(MODULE_PREFIX), module
            package = self.root / module
            package.mkdir()
            (package / "__init__.py").write_text(textwrap.dedent(source))
        info = self.root / f"{dist.replace('-', '_')}-{version}.dist-info"
        info.mkdir()
        meta = ["Metadata-Version: 2.1", f"Name: {dist}", f"Version: {version}"]
        meta += [f"Requires-Dist: {r}" for r in requires]
        (info / "METADATA").write_text("\n".join(meta) + "\n")
        eps = "[recall_zoo]\n" + "".join(f"{name} = {value}\n" for name, value in entry_points.items())
        (info / "entry_points.txt").write_text(eps)

    def good(self, dist: str, ep: str, module: str, model: str, desc: str = "") -> None:
        self.install(dist, {ep: module}, {module: GOOD_PLUGIN.format(model=model, module=module, desc=desc)})


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Site:
    root = tmp_path / "site"
    root.mkdir()
    monkeypatch.syspath_prepend(str(root))
    return Site(root)


def record(manager: PluginManager, name: str) -> PluginRecord:
    found = [r for r in manager.records if r.name == name or r.name.endswith(f":{name}")]
    assert len(found) == 1, [r.name for r in manager.records]
    return found[0]


def model_names(manager: PluginManager) -> list[str]:
    return sorted(s.name for s in manager.collect("model"))


def builtin_records(manager: PluginManager) -> list[PluginRecord]:
    return [r for r in manager.records if r.builtin]


# -- in-memory plugin objects -------------------------------------------------------------------


class Good:
    def __init__(self, *names: str) -> None:
        self.names = names or ("good-model",)

    @hookimpl
    def zoo_register_models(self):
        return [ModelSpec(name=n, factory="pkg.mod:M") for n in self.names]


class GoodRetriever:
    @hookimpl
    def zoo_register_retrievers(self):
        return [RetrieverSpec(name="good-index", factory="pkg.idx:I")]


def memory_manager(*plugins: tuple[str, object]) -> PluginManager:
    manager = PluginManager(entry_points=False, env={})
    for name, obj in plugins:
        manager.register(obj, name=name, dist=f"{name}-dist", version="0.1")
    return manager


def test_in_memory_plugin_is_loaded_and_its_specs_stamped() -> None:
    manager = memory_manager(("alpha", Good("m1", "m2")), ("beta", GoodRetriever()))
    alpha = record(manager, "alpha")
    assert alpha.status == LOADED
    assert alpha.source == "object"
    assert alpha.hooks == ["zoo_register_models"]
    specs = manager.collect("model")
    assert [(s.name, s.plugin, s.dist) for s in specs] == [
        ("m1", "alpha", "alpha-dist"),
        ("m2", "alpha", "alpha-dist"),
    ]
    assert alpha.provides == {"model": ["m1", "m2"]}
    assert [s.name for s in manager.collect("retriever")] == ["good-index"]
    assert manager.collect("dataset") == []
    assert manager.failures == []
    assert manager.warning_lines() == []


def test_register_after_collect_invalidates_the_cache() -> None:
    manager = memory_manager(("alpha", Good("m1")))
    assert model_names(manager) == ["m1"]
    manager.register(Good("m2"), name="beta")
    assert model_names(manager) == ["m1", "m2"]
    manager.unregister("beta")
    assert model_names(manager) == ["m1"]
    assert [r.name for r in manager.records] == ["alpha"]


def test_collect_keeps_registration_order() -> None:
    manager = memory_manager(("first", Good("zz")), ("second", Good("aa")))
    assert [s.name for s in manager.collect("model")] == ["zz", "aa"]


class Misspelt:
    @hookimpl
    def zoo_register_model(self):  # missing the trailing "s"
        return [ModelSpec(name="never", factory="a:b")]

    @hookimpl
    def zoo_register_retrievers(self):
        return [RetrieverSpec(name="never-index", factory="a:b")]


def test_misspelt_hook_rejected_with_did_you_mean() -> None:
    manager = memory_manager(("ok", Good()), ("typo", Misspelt()))
    rec = record(manager, "typo")
    assert rec.status == FAILED
    assert "'zoo_register_model' is not a recall-zoo hook" in rec.reason
    assert "did you mean 'zoo_register_models'?" in rec.reason
    # the whole plugin is rolled back: its correctly spelt hook is not collected either
    assert manager.pm.get_plugin("typo") is None
    assert [s.name for s in manager.collect("retriever")] == []
    assert model_names(manager) == ["good-model"]
    assert manager.failures == [rec]
    assert manager.warning_lines() == [f"warning: plugin typo (typo-dist 0.1) failed: {rec.reason}"]


class Unmarked:
    def zoo_register_models(self):  # forgot @hookimpl
        return [ModelSpec(name="never", factory="a:b")]


def test_hook_without_hookimpl_marker_rejected() -> None:
    manager = memory_manager(("unmarked", Unmarked()))
    rec = record(manager, "unmarked")
    assert rec.status == FAILED
    assert "'zoo_register_models' is not decorated with @zoo.hookimpl" in rec.reason
    assert manager.collect("model") == []


class PlainHelpers:
    """Attributes that are neither hooks nor callables must not be mistaken for hooks."""

    zoo_version = "1"  # not callable: ignored

    def helper(self):
        return 1

    @hookimpl
    def zoo_register_datasets(self):
        return [DatasetSpec(name="tiny", factory="a:b")]


def test_non_hook_attributes_are_ignored() -> None:
    manager = memory_manager(("plain", PlainHelpers()))
    assert record(manager, "plain").status == LOADED
    assert [s.name for s in manager.collect("dataset")] == ["tiny"]


class WrongSignature:
    @hookimpl
    def zoo_register_models(self, registry):  # the hook takes no argument
        return []


class UnprefixedHook:
    @hookimpl
    def register_models(self):  # marked, but not a zoo_ hook at all
        return []


@pytest.mark.parametrize(
    ("plugin", "expected"),
    [(WrongSignature(), "registry"), (UnprefixedHook(), "register_models")],
)
def test_invalid_hookimpl_rejected_and_rolled_back(plugin: object, expected: str) -> None:
    manager = memory_manager(("bad", plugin))
    rec = record(manager, "bad")
    assert rec.status == FAILED
    assert rec.reason.startswith("invalid hook implementation")
    assert expected in rec.reason
    assert "Traceback" in rec.traceback
    assert manager.pm.get_plugin("bad") is None
    # the manager still works for plugins registered afterwards (check_pending is clean again)
    good = manager.register(Good(), name="later")
    assert good.status == LOADED
    assert model_names(manager) == ["good-model"]


class RaisingModels:
    def __init__(self) -> None:
        self.calls = 0

    @hookimpl
    def zoo_register_models(self):
        self.calls += 1
        raise RuntimeError("model table corrupt")

    @hookimpl
    def zoo_register_retrievers(self):
        return [RetrieverSpec(name="still-here", factory="a:b")]


def test_raising_hook_is_an_error_other_kinds_and_plugins_still_collected() -> None:
    raising = RaisingModels()
    manager = memory_manager(("before", Good("m-before")), ("raiser", raising), ("after", Good("m-after")))
    assert model_names(manager) == ["m-after", "m-before"]
    rec = record(manager, "raiser")
    assert rec.status == LOADED
    assert rec.display_status == "error"
    assert rec.hook_errors == {
        "zoo_register_models": "zoo_register_models raised RuntimeError: model table corrupt"
    }
    assert "model table corrupt" in rec.traceback
    assert [s.name for s in manager.collect("retriever")] == ["still-here"]
    assert rec.provides == {"retriever": ["still-here"]}
    assert manager.failures == [rec]
    assert rec.to_dict()["status"] == "error"
    assert "model table corrupt" in rec.to_dict()["reason"]
    (line,) = manager.warning_lines()
    assert line.startswith(
        "warning: plugin raiser (raiser-dist 0.1) error: zoo_register_models raised RuntimeError"
    )
    # collected once: the result is cached, the hook is not called again
    manager.collect("model")
    assert raising.calls == 1


class WrongKind:
    @hookimpl
    def zoo_register_models(self):
        return [RetrieverSpec(name="not-a-model", factory="a:b")]


class NotIterable:
    @hookimpl
    def zoo_register_models(self):
        return ModelSpec(name="single", factory="a:b")  # should be a list


class ReturnsNone:
    @hookimpl
    def zoo_register_models(self):
        return None


class MixedTypes:
    @hookimpl
    def zoo_register_models(self):
        return [ModelSpec(name="fine", factory="a:b"), {"name": "dict"}]


@pytest.mark.parametrize(
    ("plugin", "expected"),
    [
        (WrongKind(), "returned RetrieverSpec, expected zoo.specs.ModelSpec"),
        (NotIterable(), "TypeError"),
        (MixedTypes(), "returned dict, expected zoo.specs.ModelSpec"),
    ],
)
def test_hook_returning_wrong_type_is_reported(plugin: object, expected: str) -> None:
    manager = memory_manager(("ok", Good()), ("wrong", plugin))
    assert model_names(manager) == ["good-model"]  # nothing from "wrong", not even its valid items
    rec = record(manager, "wrong")
    assert rec.display_status == "error"
    assert expected in rec.hook_errors["zoo_register_models"]


def test_hook_returning_none_provides_nothing() -> None:
    manager = memory_manager(("none", ReturnsNone()))
    assert manager.collect("model") == []
    assert record(manager, "none").display_status == LOADED


class InvalidSpecInside:
    @hookimpl
    def zoo_register_models(self):
        return [ModelSpec(name="Bad Name", factory="a:b")]


def test_spec_validation_error_inside_a_hook_is_contained() -> None:
    manager = memory_manager(("ok", Good()), ("invalid", InvalidSpecInside()))
    assert model_names(manager) == ["good-model"]
    assert "PluginError" in record(manager, "invalid").hook_errors["zoo_register_models"]


def test_strict_manager_raises_on_hook_error() -> None:
    manager = PluginManager(entry_points=False, env={"ZOO_STRICT_PLUGINS": "1"})
    assert manager.strict
    manager.register(RaisingModels(), name="raiser")
    with pytest.raises(PluginError, match="ZOO_STRICT_PLUGINS is set and 1 plugin"):
        manager.collect("model")


# -- call_safely / register_commands ------------------------------------------------------------------


class Sink:
    def __init__(self, label: str, log: list[tuple[str, object]]) -> None:
        self.label = label
        self.log = log

    @hookimpl
    def zoo_run_finished(self, report):
        self.log.append((self.label, report))


class RaisingSink:
    @hookimpl
    def zoo_run_finished(self, report):
        raise ConnectionError("mlflow unreachable")


class ArglessSink:
    def __init__(self) -> None:
        self.called = False

    @hookimpl
    def zoo_run_finished(self):  # pluggy allows taking fewer arguments than the hookspec
        self.called = True


def test_call_safely_reports_a_raising_sink_and_calls_the_others() -> None:
    log: list[tuple[str, object]] = []
    first, last, argless = Sink("first", log), Sink("last", log), ArglessSink()
    manager = memory_manager(
        ("first", first), ("mlflow", RaisingSink()), ("last", last), ("argless", argless)
    )
    report = object()
    warnings = manager.call_safely("zoo_run_finished", report=report)
    assert warnings == ["warning: plugin mlflow zoo_run_finished raised ConnectionError: mlflow unreachable"]
    assert log == [("first", report), ("last", report)]  # registration order
    assert argless.called
    rec = record(manager, "mlflow")
    assert rec.display_status == "error"
    assert "mlflow unreachable" in rec.hook_errors["zoo_run_finished"]
    assert [r.name for r in manager.failures] == ["mlflow"]


def test_call_safely_strict_raises() -> None:
    manager = PluginManager(entry_points=False, strict=True)
    manager.register(RaisingSink(), name="mlflow")
    with pytest.raises(PluginError, match="mlflow unreachable"):
        manager.call_safely("zoo_run_finished", report=None)


class Commands:
    @hookimpl
    def zoo_register_commands(self, app):
        @app.command("models")
        def fake_models():
            print("hijacked")

        @app.command()
        def say_hello(name: str = "world"):
            print(f"hello {name}")

        sub = typer.Typer()

        @sub.command("x")
        def x():
            print("x")

        app.add_typer(sub, name="data")  # shadows a core group
        app.add_typer(sub, name="extras")


class RaisingCommands:
    @hookimpl
    def zoo_register_commands(self, app):
        @app.command("half-done")
        def half_done():
            pass

        raise RuntimeError("oops")


def core_app() -> typer.Typer:
    app = typer.Typer(add_completion=False)

    @app.command("models")
    def models():
        print("core models")

    @app.command("doctor")
    def doctor():
        print("core doctor")

    app.add_typer(typer.Typer(), name="data")
    return app


def test_register_commands_refuses_core_names_and_keeps_new_ones() -> None:
    from zoo_cli.plugin_commands import register_plugin_commands

    app = core_app()
    manager = memory_manager(("cmds", Commands()), ("broken", RaisingCommands()))
    warnings: list[str] = []
    register_plugin_commands(app, manager, ("models", "doctor", "data"), on_warning=warnings.append)
    assert "warning: plugin cmds tried to replace core command 'zoo models'; ignored" in warnings
    assert "warning: plugin cmds tried to replace core command 'zoo data'; ignored" in warnings
    broken = [w for w in warnings if "broken" in w]
    assert len(broken) == 1
    assert "zoo_register_commands raised RuntimeError: oops" in broken[0]
    assert len(warnings) == 3
    cmd_names = [c.name or c.callback.__name__ for c in app.registered_commands]
    assert cmd_names == ["models", "doctor", "say_hello"]  # half-done rolled back
    assert [g.name for g in app.registered_groups] == ["data", "extras"]
    assert record(manager, "cmds").provides == {"command": ["say-hello", "extras"]}
    assert record(manager, "broken").display_status == "error"

    runner = CliRunner()
    assert runner.invoke(app, ["models"]).stdout.strip() == "core models"
    result = runner.invoke(app, ["say-hello", "--name", "zoo"])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "hello zoo"


# -- fake installed distributions -------------------------------------------------------------------


def test_fake_distribution_is_discovered_and_loaded(site: Site) -> None:
    site.good("zoo-fake-good", "fakegood", "zoo_fake_good", "fake-model", desc="from a fake dist")
    manager = PluginManager()
    rec = record(manager, "fakegood")
    assert (rec.status, rec.source, rec.dist, rec.version, rec.target) == (
        LOADED,
        "entry-point",
        "zoo-fake-good",
        "1.0",
        "zoo_fake_good",
    )
    assert not rec.builtin
    spec = Registry(manager).model("fake-model")
    assert (spec.plugin, spec.dist, spec.description) == ("fakegood", "zoo-fake-good", "from a fake dist")
    # built-ins are loaded first, then third-party plugins
    assert [r.builtin for r in manager.records] == sorted((r.builtin for r in manager.records), reverse=True)


@pytest.mark.parametrize(
    ("source", "exc_text"),
    [
        (
            "import zoo_fake_no_such_dependency\n",
            "ModuleNotFoundError: No module named 'zoo_fake_no_such_dependency'",
        ),
        ("raise RuntimeError('boom at import')\n", "RuntimeError: boom at import"),
        ("import sys\nsys.exit(3)\n", "SystemExit: 3"),
        ("def broken(:\n", "SyntaxError"),
    ],
)
def test_plugin_failing_to_import_is_recorded_and_others_still_load(
    site: Site, source: str, exc_text: str
) -> None:
    site.install("zoo-fake-broken", {"fakebroken": "zoo_fake_broken"}, {"zoo_fake_broken": source})
    site.good("zoo-fake-good", "fakegood", "zoo_fake_good", "fake-model")
    manager = PluginManager()
    rec = record(manager, "fakebroken")
    assert rec.status == FAILED
    assert rec.reason.startswith("import of zoo_fake_broken failed:")
    assert exc_text in rec.reason
    assert "Traceback" in rec.traceback
    assert record(manager, "fakegood").status == LOADED
    assert all(r.status == LOADED for r in builtin_records(manager))
    assert {"dssm", "fake-model"} <= set(model_names(manager))
    assert manager.failures == [rec]
    (line,) = manager.warning_lines()
    assert line.startswith(
        "warning: plugin fakebroken (zoo-fake-broken 1.0) failed: import of zoo_fake_broken failed"
    )
    # an unknown name mentions the failed plugin
    with pytest.raises(UnknownNameError, match="1 plugin\\(s\\) failed to load"):
        Registry(manager).model("nope")


def test_entry_point_with_missing_attribute_fails(site: Site) -> None:
    site.install("zoo-fake-attr", {"fakeattr": "zoo_fake_attr:plugin"}, {"zoo_fake_attr": "x = 1\n"})
    rec = record(PluginManager(), "fakeattr")
    assert rec.status == FAILED
    assert "AttributeError" in rec.reason


def test_misspelt_hook_in_installed_plugin(site: Site) -> None:
    source = """
    from zoo import hookimpl
    from zoo.specs import ModelSpec

    @hookimpl
    def zoo_register_model():
        return [ModelSpec(name="typo-model", factory="a:b")]
    """
    site.install("zoo-fake-typo", {"faketypo": "zoo_fake_typo"}, {"zoo_fake_typo": source})
    manager = PluginManager()
    rec = record(manager, "faketypo")
    assert rec.status == FAILED
    assert "did you mean 'zoo_register_models'?" in rec.reason
    assert "typo-model" not in model_names(manager)
    assert "dssm" in model_names(manager)


def test_raising_hook_in_installed_plugin_does_not_hide_others(site: Site) -> None:
    source = """
    from zoo import hookimpl
    from zoo.specs import DatasetSpec

    @hookimpl
    def zoo_register_models():
        raise KeyError("defaults")

    @hookimpl
    def zoo_register_datasets():
        return [DatasetSpec(name="fake-data", factory="zoo_fake_raise.data:load")]
    """
    site.install("zoo-fake-raise", {"fakeraise": "zoo_fake_raise"}, {"zoo_fake_raise": source})
    site.good("zoo-fake-good", "fakegood", "zoo_fake_good", "fake-model")
    manager = PluginManager()
    registry = Registry(manager)
    assert {"dssm", "fake-model"} <= set(registry.names("model"))
    assert "fake-data" in registry.names("dataset")
    assert {"exact", "hnsw"} <= set(registry.names("retriever"))
    rec = record(manager, "fakeraise")
    assert rec.display_status == "error"
    assert "KeyError" in rec.problem


def test_two_distributions_with_the_same_model_name(site: Site) -> None:
    site.good("zoo-fake-a", "twina", "zoo_fake_a", "twin", desc="from a")
    site.good("zoo-fake-b", "twinb", "zoo_fake_b", "twin", desc="from b")
    registry = Registry(PluginManager())
    listed = registry.list("model", "twin")
    assert [(s.name, s.dist) for s in listed] == [("twin", "zoo-fake-a"), ("twin", "zoo-fake-b")]
    assert list(registry.conflicts("model")) == ["twin"]
    with pytest.raises(UsageError) as info:
        registry.model("twin")
    assert not isinstance(info.value, UnknownNameError)
    message = str(info.value)
    assert "zoo-fake-a" in message
    assert "zoo-fake-b" in message
    assert "'zoo-fake-a:twin'" in message
    assert "'zoo-fake-b:twin'" in message
    assert info.value.exit_code == 2
    assert registry.model("zoo-fake-a:twin").description == "from a"
    assert registry.model("zoo-fake-b:twin").description == "from b"
    assert registry.model("Zoo_Fake_B:twin").description == "from b"  # dist names are normalised
    assert registry.model("twinb:twin").description == "from b"  # the plugin (entry-point) name works too
    assert registry.list("model", "zoo-fake-b:*") == [registry.model("zoo-fake-b:twin")]
    with pytest.raises(UnknownNameError) as unknown:
        registry.model("zoo-fake-c:twin")
    assert "zoo-fake-a:twin" in str(unknown.value)


def test_two_distributions_reusing_an_entry_point_name_are_both_loaded(site: Site) -> None:
    # pluggy's load_setuptools_entrypoints silently drops the second one; we must not
    site.good("zoo-fake-a", "shared", "zoo_fake_a", "model-a")
    site.good("zoo-fake-b", "shared", "zoo_fake_b", "model-b")
    manager = PluginManager()
    recs = [r for r in manager.records if r.dist.startswith("zoo-fake-")]
    assert sorted(r.status for r in recs) == [LOADED, LOADED]
    assert len({r.name for r in recs}) == 2
    registry = Registry(manager)
    assert registry.model("model-a").dist == "zoo-fake-a"
    assert registry.model("model-b").dist == "zoo-fake-b"


def test_builtin_name_reused_by_a_third_party_model(site: Site) -> None:
    site.good("zoo-fake-dssm", "fakedssm", "zoo_fake_dssm", "dssm", desc="impostor")
    registry = Registry(PluginManager())
    with pytest.raises(UsageError) as info:
        registry.model("dssm")
    # built-ins are collected first, so they are named first
    assert "provided by both recall-zoo (plugin dssm) and zoo-fake-dssm (plugin fakedssm)" in str(info.value)
    assert [s.dist for s in registry.specs("model") if s.name == "dssm"] == ["recall-zoo", "zoo-fake-dssm"]
    assert registry.model("recall-zoo:dssm").factory == "zoo_plugins.dssm.model:DSSM"
    assert registry.model("zoo-fake-dssm:dssm").description == "impostor"


@pytest.mark.parametrize("disable", ["fakegood", "zoo-fake-good", "ZOO_FAKE_GOOD", " other , zoo.fake.good "])
def test_disable_third_party_by_entry_point_or_dist_name(
    site: Site, monkeypatch: pytest.MonkeyPatch, disable: str
) -> None:
    site.good("zoo-fake-good", "fakegood", "zoo_fake_good", "fake-model")
    monkeypatch.setenv("ZOO_DISABLE_PLUGINS", disable)
    manager = PluginManager()
    rec = record(manager, "fakegood")
    assert rec.status == DISABLED
    assert "ZOO_DISABLE_PLUGINS" in rec.reason
    assert "zoo_fake_good" not in sys.modules  # never imported
    assert "fake-model" not in model_names(manager)
    assert rec not in manager.failures  # disabling on purpose is not a failure
    assert manager.warning_lines() == []


def test_disable_builtin_by_entry_point_name() -> None:
    manager = PluginManager(env={"ZOO_DISABLE_PLUGINS": "hnsw"})
    assert record(manager, "hnsw").status == DISABLED
    assert record(manager, "exact").status == LOADED
    names = [s.name for s in manager.collect("retriever")]
    assert "hnsw" not in names and "exact" in names


def test_disable_builtins_by_dist_name(site: Site) -> None:
    site.good("zoo-fake-good", "fakegood", "zoo_fake_good", "fake-model")
    manager = PluginManager(env={"ZOO_DISABLE_PLUGINS": "recall_zoo"})
    builtins = builtin_records(manager)
    assert builtins
    assert {r.status for r in builtins} == {DISABLED}
    assert model_names(manager) == ["fake-model"]


def test_load_plugins_allow_list(site: Site) -> None:
    site.good("zoo-fake-a", "fakea", "zoo_fake_a", "model-a")
    site.good("zoo-fake-b", "fakeb", "zoo_fake_b", "model-b")
    site.good("zoo-fake-c", "fakec", "zoo_fake_c", "model-c")
    manager = PluginManager(
        env={"ZOO_LOAD_PLUGINS": "zoo_fake_a, fakec"}
    )  # a dist name and an entry-point name
    assert record(manager, "fakea").status == LOADED
    assert record(manager, "fakec").status == LOADED
    skipped = record(manager, "fakeb")
    assert skipped.status == SKIPPED
    assert "ZOO_LOAD_PLUGINS" in skipped.reason
    assert "zoo_fake_b" not in sys.modules
    assert all(r.status == LOADED for r in builtin_records(manager))
    assert {"dssm", "model-a", "model-c"} <= set(model_names(manager))
    assert "model-b" not in model_names(manager)
    assert manager.warning_lines() == []


def test_empty_allow_list_loads_no_third_party(site: Site, monkeypatch: pytest.MonkeyPatch) -> None:
    site.good("zoo-fake-a", "fakea", "zoo_fake_a", "model-a")
    monkeypatch.setenv("ZOO_LOAD_PLUGINS", "")
    manager = PluginManager()
    assert record(manager, "fakea").status == SKIPPED
    third_party = [r for r in manager.records if not r.builtin]
    assert third_party and {r.status for r in third_party} == {SKIPPED}
    builtins = builtin_records(manager)
    assert builtins and {r.status for r in builtins} == {LOADED}
    assert "model-a" not in model_names(manager) and "dssm" in model_names(manager)


def test_disable_wins_over_allow_list(site: Site) -> None:
    site.good("zoo-fake-a", "fakea", "zoo_fake_a", "model-a")
    manager = PluginManager(env={"ZOO_LOAD_PLUGINS": "zoo-fake-a", "ZOO_DISABLE_PLUGINS": "fakea"})
    assert record(manager, "fakea").status == DISABLED


def test_distribution_requiring_newer_recall_zoo_is_incompatible(site: Site) -> None:
    site.install(
        "zoo-fake-future",
        {"fakefuture": "zoo_fake_future"},
        {"zoo_fake_future": GOOD_PLUGIN.format(model="future-model", module="zoo_fake_future", desc="")},
        requires=("numpy>=1", "recall-zoo>=99"),
    )
    manager = PluginManager()
    rec = record(manager, "fakefuture")
    assert rec.status == INCOMPATIBLE
    assert "recall-zoo>=99" in rec.reason
    assert zoo.__version__ in rec.reason
    assert "zoo_fake_future" not in sys.modules  # never imported
    assert "future-model" not in model_names(manager)
    assert manager.failures == [rec]
    (line,) = manager.warning_lines()
    assert "incompatible" in line


@pytest.mark.parametrize(
    "requirement", ["recall-zoo>=0.1", "recall_zoo", "Recall.Zoo<99", 'recall-zoo>=99; extra == "dev"']
)
def test_satisfied_or_optional_recall_zoo_requirement_loads(site: Site, requirement: str) -> None:
    site.install(
        "zoo-fake-ok",
        {"fakeok": "zoo_fake_ok"},
        {"zoo_fake_ok": GOOD_PLUGIN.format(model="ok-model", module="zoo_fake_ok", desc="")},
        requires=(requirement,),
    )
    manager = PluginManager()
    assert record(manager, "fakeok").status == LOADED
    assert "ok-model" in model_names(manager)


def test_strict_mode_makes_a_failure_fatal(site: Site, monkeypatch: pytest.MonkeyPatch) -> None:
    site.install(
        "zoo-fake-broken", {"fakebroken": "zoo_fake_broken"}, {"zoo_fake_broken": "raise ImportError('x')\n"}
    )
    assert record(PluginManager(), "fakebroken").status == FAILED  # not fatal by default
    monkeypatch.setenv("ZOO_STRICT_PLUGINS", "1")
    with pytest.raises(PluginError) as info:
        PluginManager()
    assert "fakebroken" in str(info.value)
    assert info.value.exit_code == 4


def test_strict_mode_ignores_disabled_and_skipped(site: Site) -> None:
    site.good("zoo-fake-a", "fakea", "zoo_fake_a", "model-a")
    site.good("zoo-fake-b", "fakeb", "zoo_fake_b", "model-b")
    env = {"ZOO_STRICT_PLUGINS": "1", "ZOO_DISABLE_PLUGINS": "fakea", "ZOO_LOAD_PLUGINS": "zoo-fake-a"}
    manager = PluginManager(env=env)
    assert record(manager, "fakea").status == DISABLED
    assert record(manager, "fakeb").status == SKIPPED


# -- local plugin files -----------------------------------------------------------------------------


LOCAL_PLUGIN = """
from zoo import hookimpl
from zoo.specs import ModelSpec

@hookimpl
def zoo_register_models():
    return [ModelSpec(name="local-model", factory="somewhere:Model", family="sequential", train_modes=(2,))]
"""


def test_load_path_local_plugin_file(tmp_path: Path) -> None:
    file = tmp_path / "zoo_fake_local.py"
    file.write_text(LOCAL_PLUGIN)
    manager = PluginManager(entry_points=False, paths=[file])
    rec = manager.records[0]
    assert (rec.name, rec.source, rec.status, rec.target) == (
        "path:zoo_fake_local.py",
        "path",
        LOADED,
        str(file),
    )
    spec = Registry(manager).model("local-model")
    assert spec.family == "sequential"
    assert spec.plugin == "path:zoo_fake_local.py"
    sys.modules.pop("zoo_local_plugin_zoo_fake_local", None)


def test_load_path_after_collect_is_visible(tmp_path: Path) -> None:
    file = tmp_path / "zoo_fake_late.py"
    file.write_text(LOCAL_PLUGIN)
    manager = memory_manager(("alpha", Good("m1")))
    assert model_names(manager) == ["m1"]
    assert manager.load_path(file).status == LOADED
    assert model_names(manager) == ["local-model", "m1"]
    sys.modules.pop("zoo_local_plugin_zoo_fake_late", None)


def test_load_path_missing_file(tmp_path: Path) -> None:
    manager = PluginManager(entry_points=False)
    rec = manager.load_path(tmp_path / "nope.py")
    assert rec.status == FAILED
    assert "no such file" in rec.reason
    assert manager.failures == [rec]
    directory = manager.load_path(tmp_path)  # a folder is not a plugin file
    assert directory.status == FAILED


def test_load_path_broken_file(tmp_path: Path) -> None:
    file = tmp_path / "zoo_fake_broken_local.py"
    file.write_text("import zoo_fake_nothing_here\n")
    manager = PluginManager(entry_points=False, paths=[file])
    rec = manager.records[0]
    assert rec.status == FAILED
    assert "ModuleNotFoundError" in rec.reason
    assert "Traceback" in rec.traceback
    assert "zoo_local_plugin_zoo_fake_broken_local" not in sys.modules


def test_load_path_strict(tmp_path: Path) -> None:
    with pytest.raises(PluginError, match="no such file"):
        PluginManager(entry_points=False, paths=[tmp_path / "nope.py"], strict=True)


# -- built-ins ------------------------------------------------------------------------------------------


def test_every_builtin_subpackage_has_an_entry_point() -> None:
    folders = sorted(p.name for p in BUILTIN_FOLDER.iterdir() if p.is_dir() and (p / "__init__.py").is_file())
    assert folders, BUILTIN_FOLDER
    eps = {
        ep.name: ep.value
        for ep in metadata.entry_points(group="recall_zoo")
        if ep.dist is not None and normalize_dist(ep.dist.metadata["Name"]) == "recall-zoo"
    }
    assert sorted(eps) == folders, (
        "pyproject.toml [project.entry-points.recall_zoo] and plugins/zoo_plugins differ"
    )
    assert eps == {name: f"zoo_plugins.{name}" for name in folders}


def test_every_builtin_loads_and_provides_something() -> None:
    manager = PluginManager(env={})
    for kind in ("model", "retriever", "dataset"):
        manager.collect(kind)
    builtins = builtin_records(manager)
    assert sorted(r.name for r in builtins) == sorted(
        p.name for p in BUILTIN_FOLDER.iterdir() if (p / "__init__.py").is_file()
    )
    for rec in builtins:
        assert rec.display_status == LOADED, (rec.name, rec.problem, rec.traceback)
        assert rec.provides or rec.hooks, rec.name  # specs, commands, or hooks such as trainer callbacks
        assert rec.version == zoo.__version__
    assert not [r for r in manager.failures if r.builtin]
