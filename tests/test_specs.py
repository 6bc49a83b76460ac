"""Spec objects: names, lazy ``module:attr`` factories, requirements, validation, immutability."""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import pytest

from zoo.errors import PluginError, ZooError
from zoo.specs import (
    MODEL_FAMILIES,
    SPEC_KINDS,
    DatasetSpec,
    ModelSpec,
    RetrieverSpec,
    Spec,
)

MISSING_MODULE = "zoo_test_definitely_not_installed_xyz"


@pytest.fixture
def lazy_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A module on sys.path that records its own import; removed from sys.modules afterwards."""
    name = "zoo_test_lazy_factory_mod"
    (tmp_path / f"{name}.py").write_text(
        "IMPORTED = True\n"
        "class Thing:\n"
        "    class Inner:\n"
        "        pass\n"
        "def make(**kw):\n"
        "    return ('made', kw)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop(name, None)
    yield name
    sys.modules.pop(name, None)


# -- names ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["dssm", "gru4rec", "movielens-1m", "two_tower", "0x", "a", "a-b_c-9"])
def test_valid_names(name: str) -> None:
    assert ModelSpec(name=name, factory="m:a").name == name


@pytest.mark.parametrize(
    "name",
    ["", "DSSM", "Dssm", "-dssm", "_dssm", "my model", "my.model", "dist:name", "dssm/x", "modèle", "dssm\n"],
)
def test_invalid_names_are_rejected(name: str) -> None:
    with pytest.raises(PluginError) as info:
        ModelSpec(name=name, factory="m:a")
    assert repr(name) in str(info.value)
    assert info.value.exit_code == 4
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("name", [None, 3, b"dssm"])
def test_non_string_names_are_rejected(name: object) -> None:
    with pytest.raises(PluginError):
        RetrieverSpec(name=name, factory="m:a")  # type: ignore[arg-type]


@pytest.mark.parametrize("kind", [ModelSpec, RetrieverSpec, DatasetSpec])
def test_every_kind_validates_its_name(kind: type[Spec]) -> None:
    with pytest.raises(PluginError, match=kind.kind):
        kind(name="Bad Name", factory="m:a")


# -- factory -------------------------------------------------------------------------------------


@pytest.mark.parametrize("factory", ["package.module:attr", "m:a", "a.b.c:D.E"])
def test_factory_string_form_accepted(factory: str) -> None:
    assert DatasetSpec(name="d", factory=factory).factory == factory


@pytest.mark.parametrize("factory", ["package.module", ":attr", "module:", "", ":"])
def test_factory_string_must_be_module_colon_attr(factory: str) -> None:
    with pytest.raises(PluginError, match="module:attribute|package.module:attribute"):
        ModelSpec(name="m", factory=factory)


@pytest.mark.parametrize("factory", [42, None, ["m:a"]])
def test_factory_must_be_string_or_callable(factory: object) -> None:
    with pytest.raises(PluginError, match="factory"):
        ModelSpec(name="m", factory=factory)  # type: ignore[arg-type]


def test_callable_factory_is_returned_as_is() -> None:
    def build(**kw):
        return kw

    spec = RetrieverSpec(name="r", factory=build)
    assert spec.load() is build
    # a callable factory does not check requirements (it is already imported)
    assert RetrieverSpec(name="r", factory=build, requires=(MISSING_MODULE,)).load() is build


# -- lazy loading --------------------------------------------------------------------------------


def test_load_imports_only_on_demand(lazy_module: str) -> None:
    spec = ModelSpec(name="lazy", factory=f"{lazy_module}:Thing", requires=("json",))
    # construction, requirement checks, summary and provider stamping do not import the factory
    assert spec.available
    assert spec.missing_requirements() == []
    json.dumps(spec.summary())
    stamped = spec.with_provider(plugin="p", dist="d")
    assert lazy_module not in sys.modules
    cls = stamped.load()
    assert lazy_module in sys.modules
    assert cls is sys.modules[lazy_module].Thing
    assert cls.__name__ == "Thing"


def test_load_resolves_dotted_attributes(lazy_module: str) -> None:
    spec = ModelSpec(name="lazy", factory=f"{lazy_module}:Thing.Inner")
    assert spec.load() is sys.modules[lazy_module].Thing.Inner


def test_load_missing_attribute_is_a_plugin_error(lazy_module: str) -> None:
    spec = ModelSpec(name="lazy", factory=f"{lazy_module}:Nope")
    with pytest.raises(PluginError, match="has no attribute 'Nope'"):
        spec.load()


def test_load_missing_module_names_provider_and_hint() -> None:
    spec = RetrieverSpec(name="ghost", factory=f"{MISSING_MODULE}.sub:Index").with_provider(
        "ghost", "ghost-dist"
    )
    with pytest.raises(PluginError) as info:
        spec.load()
    message = str(info.value)
    assert "ghost-dist" in message
    assert f"could not import {MISSING_MODULE}.sub" in message
    assert "pip install" in message
    assert isinstance(info.value.__cause__, ImportError)


# -- requirements ------------------------------------------------------------------------------


def test_missing_requirement_makes_spec_unavailable(lazy_module: str) -> None:
    spec = RetrieverSpec(name="annoyish", factory=f"{lazy_module}:make", requires=("json", MISSING_MODULE))
    assert spec.missing_requirements() == [MISSING_MODULE]
    assert spec.available is False
    assert spec.install_hint() == f"pip install {MISSING_MODULE}"
    with pytest.raises(PluginError) as info:
        spec.load()
    assert MISSING_MODULE in str(info.value)
    assert spec.install_hint() in str(info.value)
    # the factory module is never imported when a requirement is missing
    assert lazy_module not in sys.modules
    summary = spec.summary()
    assert summary["available"] is False
    assert summary["install"] == spec.install_hint()


def test_install_hint_prefers_the_extra() -> None:
    spec = RetrieverSpec(name="annoy", factory="x:y", requires=(MISSING_MODULE,), extra="annoy")
    assert spec.install_hint() == 'pip install "recall-zoo[annoy]"'
    with pytest.raises(PluginError, match=r"recall-zoo\[annoy\]"):
        spec.load()


def test_requirement_with_missing_parent_package_is_missing_not_an_error() -> None:
    # find_spec("a.b") raises ModuleNotFoundError when "a" does not exist: must count as missing
    spec = ModelSpec(name="m", factory="x:y", requires=(f"{MISSING_MODULE}.sub",))
    assert spec.missing_requirements() == [f"{MISSING_MODULE}.sub"]
    assert not spec.available


def test_requirement_check_does_not_import(lazy_module: str) -> None:
    spec = ModelSpec(name="m", factory="x:y", requires=(lazy_module,))
    assert spec.available
    assert lazy_module not in sys.modules


def test_available_spec_summary_has_no_install_key() -> None:
    spec = ModelSpec(name="m", factory="x:y", requires=["json"])  # type: ignore[arg-type]
    assert spec.requires == ("json",)
    assert "install" not in spec.summary()


# -- model / retriever validation ------------------------------------------------------------------


@pytest.mark.parametrize("family", MODEL_FAMILIES)
def test_model_families_accepted(family: str) -> None:
    assert ModelSpec(name="m", factory="x:y", family=family).family == family


@pytest.mark.parametrize("family", ["twotower", "Two_Tower", "graph", ""])
def test_unknown_model_family_rejected(family: str) -> None:
    with pytest.raises(PluginError, match="family"):
        ModelSpec(name="m", factory="x:y", family=family)


@pytest.mark.parametrize("modes", [(), (3,), (0, 1, 2, 3), (-1,), ("2",)])
def test_bad_train_modes_rejected(modes: tuple) -> None:
    with pytest.raises(PluginError, match="train_modes"):
        ModelSpec(name="m", factory="x:y", train_modes=modes)


def test_train_modes_normalised_to_tuple() -> None:
    spec = ModelSpec(name="m", factory="x:y", train_modes=[2, 0])  # type: ignore[arg-type]
    assert spec.train_modes == (2, 0)
    assert isinstance(spec.train_modes, tuple)


def test_retriever_build_and_query_overlap_rejected() -> None:
    with pytest.raises(PluginError) as info:
        RetrieverSpec(name="r", factory="x:y", build_params={"ef": 1, "m": 2}, query_params={"ef": 3})
    assert "'ef'" in str(info.value)
    assert "'m'" not in str(info.value)


@pytest.mark.parametrize("metrics", [(), ("l2",), ("ip", "euclidean")])
def test_retriever_unknown_metrics_rejected(metrics: tuple) -> None:
    with pytest.raises(PluginError, match="metrics"):
        RetrieverSpec(name="r", factory="x:y", metrics=metrics)


def test_retriever_metrics_normalised_to_tuple() -> None:
    assert RetrieverSpec(name="r", factory="x:y", metrics=["cosine"]).metrics == ("cosine",)  # type: ignore[arg-type]


# -- immutability --------------------------------------------------------------------------------------


def test_specs_are_frozen() -> None:
    spec = ModelSpec(name="m", factory="x:y")
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.name = "other"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.dist = "someone"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("kind", "field_name"),
    [
        (ModelSpec, "model_defaults"),
        (RetrieverSpec, "build_params"),
        (RetrieverSpec, "query_params"),
        (DatasetSpec, "options"),
    ],
)
def test_mappings_are_frozen_copies(kind: type[Spec], field_name: str) -> None:
    source = {"a": 1}
    spec = kind(name="s", factory="x:y", **{field_name: source})
    mapping = getattr(spec, field_name)
    with pytest.raises(TypeError):
        mapping["a"] = 2  # type: ignore[index]
    with pytest.raises(TypeError):
        mapping["new"] = 2  # type: ignore[index]
    source["a"] = 99  # mutating the caller's dict afterwards does not leak into the spec
    source["b"] = 2
    assert dict(mapping) == {"a": 1}


def test_default_mappings_are_empty_and_frozen() -> None:
    spec = ModelSpec(name="m", factory="x:y")
    for name in ("model_defaults", "trainer_defaults", "data_defaults", "defaults"):
        assert dict(getattr(spec, name)) == {}
        with pytest.raises(TypeError):
            getattr(spec, name)["k"] = 1
    assert spec.training_data == "samples"


def test_with_provider_returns_a_new_spec() -> None:
    spec = ModelSpec(name="m", factory="x:y", model_defaults={"dim": 8}, trainer_defaults={"lr": 0.1})
    stamped = spec.with_provider(plugin="plug", dist="some-dist")
    assert (spec.plugin, spec.dist) == ("", "")
    assert (stamped.plugin, stamped.dist) == ("plug", "some-dist")
    assert stamped.qualified_name == "some-dist:m"
    assert spec.qualified_name == "m"
    assert isinstance(stamped, ModelSpec)
    assert (dict(stamped.model_defaults), dict(stamped.trainer_defaults)) == ({"dim": 8}, {"lr": 0.1})
    assert dict(stamped.defaults) == {"lr": 0.1, "dim": 8}
    with pytest.raises(TypeError):
        stamped.trainer_defaults["lr"] = 1  # type: ignore[index]


# -- model presets -------------------------------------------------------------------------------------


def test_model_preset_groups_and_merged_view() -> None:
    spec = ModelSpec(
        name="m",
        factory="x:y",
        family="sequential",
        train_modes=(1, 2),
        training_data="sequences",
        model_defaults={"embed_dim": 16},
        trainer_defaults={"mode": 2, "epochs": 3},
        data_defaults={"window_stride": 4},
    )
    assert dict(spec.defaults) == {"mode": 2, "epochs": 3, "embed_dim": 16, "window_stride": 4}
    changed = dataclasses.replace(spec, model_defaults={"embed_dim": 32})  # the merged view follows
    assert dict(changed.defaults) == {"mode": 2, "epochs": 3, "embed_dim": 32, "window_stride": 4}
    assert changed != spec and dataclasses.replace(spec) == spec


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"training_data": "windows"}, "training_data"),
        ({"data_defaults": {"stride": 2}, "training_data": "sequences"}, "accepts window_stride"),
        ({"data_defaults": {"window_stride": 2}}, "training_data='sequences'"),
        ({"model_defaults": {"window_stride": 2}, "training_data": "sequences"}, "data_defaults"),
        ({"trainer_defaults": {"mode": 0}, "train_modes": (1, 2)}, "not one of train_modes"),
    ],
)
def test_bad_model_presets_rejected(fields: dict, message: str) -> None:
    with pytest.raises(PluginError, match=message):
        ModelSpec(name="m", factory="x:y", **fields)


def test_trainer_defaults_checked_against_trainer_config() -> None:
    with pytest.raises(PluginError, match="did you mean 'epochs'"):
        ModelSpec(name="m", factory="x:y", trainer_defaults={"epoch": 3})
    with pytest.raises(PluginError, match="grad_clip_norm"):
        ModelSpec(name="m", factory="x:y", trainer_defaults={"grad_clip": 1.0})
    with pytest.raises(PluginError, match="move them to trainer_defaults"):
        ModelSpec(name="m", factory="x:y", model_defaults={"lr": 0.1})
    with pytest.raises(PluginError, match="trainer_defaults"):
        ModelSpec(name="m", factory="x:y", trainer_defaults={"lr": -1.0})


def test_the_old_flat_defaults_field_is_gone() -> None:
    """One owner per setting: a preset is given in its three groups, never as one flat mapping."""
    with pytest.raises(TypeError, match="defaults"):
        ModelSpec(name="m", factory="x:y", defaults={"lr": 0.1})  # type: ignore[call-arg]
    spec = ModelSpec(name="m", factory="x:y", model_defaults={"dim": 8}, trainer_defaults={"lr": 0.1})
    assert ModelSpec.split(spec.defaults) == ({"dim": 8}, {"lr": 0.1}, {})


def test_load_binds_model_classes_only(lazy_module: str) -> None:
    spec = ModelSpec(name="lazy", factory=f"{lazy_module}:Thing")
    assert spec.load() is sys.modules[lazy_module].Thing  # not a RecallModel: returned as is


# -- summary -------------------------------------------------------------------------------------------


def test_summaries_are_json_serialisable() -> None:
    specs = [
        ModelSpec(
            name="m",
            factory="x:y",
            description="a model",
            family="sequential",
            train_modes=(1, 2),
            model_defaults={"dims": [64, 32], "bias": None},
            trainer_defaults={"mode": 2, "lr": 1e-3, "negatives": "inbatch"},
            training_data="sequences",
            data_defaults={"window_stride": 2},
        ).with_provider("p", "d"),
        RetrieverSpec(
            name="r",
            factory="x:y",
            requires=(MISSING_MODULE,),
            build_params={"M": 16},
            query_params={"ef": 64},
            supports_add=True,
        ),
        DatasetSpec(name="d", factory="x:y", needs_path=True, download="d", options={"sep": ","}),
    ]
    decoded = [json.loads(json.dumps(s.summary())) for s in specs]
    model, retriever, dataset = decoded
    assert model == {
        "name": "m",
        "description": "a model",
        "plugin": "p",
        "dist": "d",
        "available": True,
        "family": "sequential",
        "train_modes": [1, 2],
        "training_data": "sequences",
        "model_defaults": {"dims": [64, 32], "bias": None},
        "trainer_defaults": {"mode": 2, "lr": 1e-3, "negatives": "inbatch"},
        "data_defaults": {"window_stride": 2},
        "defaults": {
            "mode": 2,
            "lr": 1e-3,
            "negatives": "inbatch",
            "dims": [64, 32],
            "bias": None,
            "window_stride": 2,
        },
    }
    assert retriever["metrics"] == ["ip", "cosine"]
    assert retriever["build_params"] == {"M": 16}
    assert retriever["query_params"] == {"ef": 64}
    assert retriever["supports_add"] is True
    assert retriever["supports_gpu"] is False
    assert retriever["available"] is False
    assert retriever["install"] == f"pip install {MISSING_MODULE}"
    assert dataset["needs_path"] is True
    assert dataset["download"] == "d"
    assert dataset["options"] == {"sep": ","}
    assert dataset["default_protocol"] == "loo"


def test_spec_kinds_table() -> None:
    assert {"model": ModelSpec, "retriever": RetrieverSpec, "dataset": DatasetSpec} == SPEC_KINDS
    assert {cls.kind for cls in SPEC_KINDS.values()} == {"model", "retriever", "dataset"}
    assert issubclass(PluginError, ZooError)
