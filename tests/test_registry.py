"""Name -> spec lookup: wildcards, sorting, did-you-mean, parameter checks, the default registry."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import zoo.registry as registry_module
from zoo import hookimpl
from zoo.errors import DataError, PluginError, UnknownNameError, UsageError
from zoo.plugins import PluginManager
from zoo.registry import (
    Registry,
    default_registry,
    list_datasets,
    list_models,
    list_retrievers,
    reset_default_registry,
)
from zoo.specs import DatasetSpec, ModelSpec, RetrieverSpec

MOVIELENS = ["movielens-100k", "movielens-1m", "movielens-20m", "movielens-25m", "movielens-latest-small"]


@pytest.fixture(autouse=True)
def clean(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for var in ("ZOO_LOAD_PLUGINS", "ZOO_DISABLE_PLUGINS", "ZOO_STRICT_PLUGINS"):
        monkeypatch.delenv(var, raising=False)
    reset_default_registry()
    yield
    reset_default_registry()


@pytest.fixture(scope="module")
def builtin() -> Registry:
    return Registry(PluginManager(env={}))


class Calls:
    """Callable factory that records its keyword arguments."""

    def __init__(self) -> None:
        self.calls: list[tuple[tuple[Any, ...], dict[str, Any]]] = []

    def __call__(self, *args: Any, **kwargs: Any) -> tuple[tuple[Any, ...], dict[str, Any]]:
        self.calls.append((args, kwargs))
        return args, kwargs


class Provider:
    def __init__(self, models=(), retrievers=(), datasets=()) -> None:
        self.models, self.retrievers, self.datasets = list(models), list(retrievers), list(datasets)

    @hookimpl
    def zoo_register_models(self):
        return self.models

    @hookimpl
    def zoo_register_retrievers(self):
        return self.retrievers

    @hookimpl
    def zoo_register_datasets(self):
        return self.datasets


def make_registry(*providers: tuple[str, Provider]) -> Registry:
    manager = PluginManager(entry_points=False, env={})
    for name, provider in providers:
        manager.register(provider, name=name, dist=f"{name}-dist")
    return Registry(manager)


def model(name: str) -> ModelSpec:
    return ModelSpec(name=name, factory="pkg.models:M")


# -- listing -------------------------------------------------------------------------------------


def test_list_star_includes_builtins(builtin: Registry) -> None:
    assert "dssm" in [s.name for s in builtin.list("model", "*")]
    assert {"exact", "hnsw"} <= {s.name for s in builtin.list("retriever")}
    assert {"synthetic", "csv", *MOVIELENS} <= {s.name for s in builtin.list("dataset", "")}  # "" means "*"


def test_list_inner_wildcard(builtin: Registry) -> None:
    assert [s.name for s in builtin.list("model", "d*ss*")] == ["dssm"]
    assert [s.name for s in builtin.list("retriever", "h?sw")] == ["hnsw"]
    assert [s.name for s in builtin.list("retriever", "[eh]*")] == ["exact", "hnsw"]


def test_list_prefix_wildcard_is_sorted(builtin: Registry) -> None:
    assert [s.name for s in builtin.list("dataset", "movielens-*")] == MOVIELENS


def test_list_no_match_and_exact_name(builtin: Registry) -> None:
    assert builtin.list("model", "zzz*") == []
    assert builtin.list("model", "dss") == []  # a pattern without wildcards is an exact name
    assert [s.name for s in builtin.list("model", "dssm")] == ["dssm"]


def test_list_matches_qualified_names(builtin: Registry) -> None:
    listed = [s.name for s in builtin.list("retriever", "recall-zoo:*")]
    assert {"exact", "hnsw"} <= set(listed) and listed == sorted(listed)
    assert builtin.list("retriever", "other-dist:*") == []


def test_list_and_names_are_sorted() -> None:
    registry = make_registry(
        ("p1", Provider(models=[model("zeta"), model("alpha")])),
        ("p2", Provider(models=[model("mid"), model("alpha")])),
    )
    listed = registry.list("model")
    assert [(s.name, s.dist) for s in listed] == [
        ("alpha", "p1-dist"),
        ("alpha", "p2-dist"),
        ("mid", "p2-dist"),
        ("zeta", "p1-dist"),
    ]
    assert registry.names("model") == ["alpha", "mid", "zeta"]
    assert list(registry.conflicts("model")) == ["alpha"]
    assert registry.conflicts("retriever") == {}


def test_unknown_kind_is_a_usage_error(builtin: Registry) -> None:
    with pytest.raises(UsageError, match="unknown kind 'models'"):
        builtin.list("models")


# -- lookup -----------------------------------------------------------------------------------------


def test_get_known_names(builtin: Registry) -> None:
    assert builtin.model("dssm").factory == "zoo_plugins.dssm.model:DSSM"
    assert builtin.retriever("hnsw").query_params["ef"] == 64
    assert builtin.dataset("movielens-1m").needs_path
    assert builtin.get("model", "recall-zoo:dssm") is not None
    assert builtin.get("model", "recall_zoo:dssm").name == "dssm"


def test_get_unknown_name_did_you_mean(builtin: Registry) -> None:
    with pytest.raises(UnknownNameError) as info:
        builtin.model("dsm")
    err = info.value
    assert isinstance(err, UsageError)
    assert err.exit_code == 2
    assert err.suggestions[0] == "dssm"  # the closest first
    message = str(err)
    assert message.startswith("unknown model 'dsm'.")
    assert "Did you mean 'dssm'" in message
    available = message.split("Available: ", 1)[1].rstrip(".").split(", ")
    assert available == sorted(builtin.names("model")) and "dssm" in available
    assert "\n" not in message


def test_get_unknown_retriever_lists_all(builtin: Registry) -> None:
    with pytest.raises(UnknownNameError) as info:
        builtin.retriever("hsnw")
    message = str(info.value)
    assert "Did you mean 'hnsw'?" in message
    assert "Available: " + ", ".join(builtin.names("retriever")) + "." in message


def test_get_unrelated_name_has_no_suggestion(builtin: Registry) -> None:
    with pytest.raises(UnknownNameError) as info:
        builtin.dataset("qqqqqqqq")
    assert "Did you mean" not in str(info.value)
    assert info.value.suggestions == []
    assert "movielens-1m" in str(info.value)


def test_get_unknown_qualified_name(builtin: Registry) -> None:
    with pytest.raises(UnknownNameError, match="recall-zoo:dssm"):
        builtin.model("other-dist:dssm")
    with pytest.raises(UnknownNameError):
        builtin.model("recall-zoo:no-such-model")


def test_get_in_empty_registry() -> None:
    with pytest.raises(UnknownNameError, match="Available: none"):
        make_registry().model("dssm")


def test_unknown_name_mentions_failed_plugins() -> None:
    class Typo:
        @hookimpl
        def zoo_register_model(self):
            return []

    registry = make_registry(("ok", Provider(models=[model("two-tower")])), ("typo", Typo()))
    with pytest.raises(UnknownNameError) as info:
        registry.model("dssm")
    assert "1 plugin(s) failed to load; run 'zoo plugins' to see why." in str(info.value)


def test_conflict_names_both_and_qualified_pick() -> None:
    registry = make_registry(
        ("first", Provider(models=[ModelSpec(name="twin", factory="a:A")])),
        ("second", Provider(models=[ModelSpec(name="twin", factory="b:B")])),
    )
    with pytest.raises(UsageError) as info:
        registry.model("twin")
    assert not isinstance(info.value, UnknownNameError)
    assert "first-dist (plugin first) and second-dist (plugin second)" in str(info.value)
    assert registry.model("first-dist:twin").factory == "a:A"
    assert registry.model("second:twin").factory == "b:B"


# -- creation ---------------------------------------------------------------------------------------


def retriever_registry(factory: Calls) -> Registry:
    spec = RetrieverSpec(
        name="fake-index",
        factory=factory,
        metrics=("ip",),
        build_params={"m": 16, "seed": 1},
        query_params={"ef": 64},
    )
    return make_registry(("idx", Provider(retrievers=[spec])))


def test_create_retriever_merges_defaults() -> None:
    factory = Calls()
    registry = retriever_registry(factory)
    args, kwargs = registry.create_retriever("fake-index", ef=10)
    assert args == ()
    assert kwargs == {"metric": "ip", "m": 16, "seed": 1, "ef": 10}


def test_create_retriever_unknown_parameter() -> None:
    factory = Calls()
    registry = retriever_registry(factory)
    with pytest.raises(UsageError) as info:
        registry.create_retriever("fake-index", ef_search=10, M=3)
    message = str(info.value)
    assert "'M', 'ef_search'" in message
    assert "its parameters are ef, m, seed" in message
    assert info.value.exit_code == 2
    assert factory.calls == []


def test_create_retriever_unsupported_metric() -> None:
    factory = Calls()
    registry = retriever_registry(factory)
    with pytest.raises(UsageError, match="does not support metric 'cosine'; it supports ip"):
        registry.create_retriever("fake-index", metric="cosine")
    assert factory.calls == []


def test_create_retriever_unknown_name() -> None:
    with pytest.raises(UnknownNameError, match="Did you mean 'fake-index'"):
        retriever_registry(Calls()).create_retriever("fake-indx")


def test_create_retriever_builtin_parameter_checks(builtin: Registry) -> None:
    with pytest.raises(UsageError, match="has no parameter 'efSearch'"):
        builtin.create_retriever("hnsw", efSearch=10)
    with pytest.raises(UsageError, match="metric 'l2'"):
        builtin.create_retriever("exact", metric="l2")


def test_create_retriever_missing_requirement_is_a_plugin_error() -> None:
    spec = RetrieverSpec(
        name="needs-lib", factory="zoo_test_nowhere.index:I", requires=("zoo_test_nowhere_lib",)
    )
    registry = make_registry(("idx", Provider(retrievers=[spec])))
    with pytest.raises(PluginError, match="pip install zoo_test_nowhere_lib"):
        registry.create_retriever("needs-lib")


def dataset_registry(factory: Calls, needs_path: bool = False) -> Registry:
    spec = DatasetSpec(
        name="fake-data", factory=factory, needs_path=needs_path, options={"users": 10, "seed": 0}
    )
    return make_registry(("data", Provider(datasets=[spec])))


def test_load_dataset_unknown_option() -> None:
    factory = Calls()
    with pytest.raises(UsageError) as info:
        dataset_registry(factory).load_dataset("fake-data", user=5)
    message = str(info.value)
    assert "dataset 'fake-data' has no option 'user'" in message
    assert "its options are seed, users" in message
    assert factory.calls == []


def test_load_dataset_unknown_option_of_builtin(builtin: Registry) -> None:
    with pytest.raises(UsageError, match="has no option 'nusers'"):
        builtin.load_dataset("synthetic", nusers=5)


def test_load_dataset_merges_options() -> None:
    factory = Calls()
    args, kwargs = dataset_registry(factory).load_dataset("fake-data", seed=3)
    assert args == ()
    assert kwargs == {"users": 10, "seed": 3}
    args, kwargs = dataset_registry(factory).load_dataset("fake-data", "some/where")
    assert kwargs == {"users": 10, "seed": 0, "path": "some/where"}


def test_load_dataset_with_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    factory = Calls()
    registry = dataset_registry(factory, needs_path=True)
    args, kwargs = registry.load_dataset("fake-data", tmp_path, users=2)
    assert args == (tmp_path,)
    assert kwargs == {"users": 2, "seed": 0}
    with pytest.raises(DataError, match="no such file or folder"):
        registry.load_dataset("fake-data", tmp_path / "missing")
    monkeypatch.delenv("ZOO_DATA_DIR", raising=False)
    monkeypatch.setenv("ZOO_CACHE_DIR", str(tmp_path / "cache"))
    with pytest.raises(DataError, match="--data PATH"):
        registry.load_dataset("fake-data")


# -- default registry --------------------------------------------------------------------------------


def test_default_registry_is_cached_per_plugin_paths(tmp_path: Path) -> None:
    first = default_registry()
    assert default_registry() is first
    assert default_registry(()) is first
    other = default_registry([tmp_path / "missing.py"])
    assert other is not first
    assert default_registry([str(tmp_path / "missing.py")]) is other  # str and Path give the same key
    assert other.manager.records[-1].status == "failed"
    reset_default_registry()
    fresh = default_registry()
    assert fresh is not first
    assert default_registry() is fresh


def test_reset_picks_up_a_changed_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert "dssm" in list_models()
    monkeypatch.setenv("ZOO_DISABLE_PLUGINS", "dssm")
    assert "dssm" in list_models()  # still cached
    reset_default_registry()
    assert "dssm" not in list_models()


def test_timm_style_listing() -> None:
    assert "dssm" in list_models("*")
    assert list_models("d*ss*") == ["dssm"]
    assert list_models("*dssm") == ["dssm", "facebook-dssm"]
    assert list_models("nothing*") == []
    assert list_retrievers() == sorted(list_retrievers())
    assert {"exact", "hnsw"} <= set(list_retrievers("*"))
    assert list_datasets("movielens-*") == MOVIELENS


def test_module_level_functions_use_the_default_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    factory = Calls()
    monkeypatch.setitem(registry_module._DEFAULT, (), retriever_registry(factory))
    _, kwargs = registry_module.create_retriever("fake-index", m=4)
    assert kwargs == {"metric": "ip", "m": 4, "seed": 1, "ef": 64}
    with pytest.raises(UsageError):
        registry_module.create_retriever("fake-index", nope=1)
    assert list_retrievers() == ["fake-index"]
