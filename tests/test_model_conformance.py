"""Every installed model runs :class:`zoo.testing.models.ModelConformance` (timm-style: the suite is
parametrised over the registry, so a new model plugin is tested for free).

One test class is generated per model the registry lists when this module is collected. A model
whose plugin fails to import, or whose factory module does not exist yet, is simply not collected
(``zoo plugins`` says why). To tune the suite for one model, add its name to ``TUNING`` with the
class attributes to override (``slow``, ``quality_params``, ``interests_param``...).
"""

from __future__ import annotations

import importlib.util
from typing import Any

from zoo.registry import default_registry
from zoo.testing.models import ModelConformance

#: per-model overrides of ModelConformance's class attributes
_MULTI_INTEREST = {"interests_param": "interest_num", "params": {"embed_dim": 32}}
TUNING: dict[str, dict[str, Any]] = {
    "mind": _MULTI_INTEREST,
    "comirec-sa": _MULTI_INTEREST,
    "comirec-dr": _MULTI_INTEREST,
    # SINE's K interests are its num_intention activated prototypes (readout="interests"; the preset's
    # aggregated read-out returns one vector and is covered by tests/test_sine.py)
    "sine": {"interests_param": "num_intention", "params": {"embed_dim": 32, "readout": "interests"}},
    "sdm": {"params": {"embed_dim": 32}},
    "sasrec": {"quality_params": {"epochs": 8, "patience": 2}},
    "gru4rec": {
        "quality_params": {"epochs": 8, "patience": 2, "batch_size": 64}
    },  # preset batch is for ML-1M
    "narm": {"quality_params": {"epochs": 8, "patience": 2, "batch_size": 64}},
    "stamp": {"quality_params": {"epochs": 8, "patience": 2, "batch_size": 64}},
}


def _importable(factory: Any) -> bool:
    if not isinstance(factory, str):
        return True
    module = factory.partition(":")[0]
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def _conformance_classes() -> dict[str, type[ModelConformance]]:
    registry = default_registry()
    classes: dict[str, type[ModelConformance]] = {}
    for spec in registry.list("model"):
        if spec.dist != "recall-zoo" or not spec.available or not _importable(spec.factory):
            continue
        attrs = {"model_name": spec.qualified_name, **TUNING.get(spec.name, {})}
        name = "TestModel_" + spec.name.replace("-", "_")
        classes[name] = type(name, (ModelConformance,), {"__module__": __name__, **attrs})
    return classes


globals().update(_conformance_classes())


def test_every_builtin_model_is_checked() -> None:
    generated = {
        cls.model_name.partition(":")[2] for name, cls in globals().items() if name.startswith("TestModel_")
    }
    assert "dssm" in generated


def test_tuning_names_registered_models() -> None:
    """A misspelt TUNING key would silently run a model with the wrong suite settings."""
    names = {spec.name for spec in default_registry().list("model")}
    assert set(TUNING) <= names, sorted(set(TUNING) - names)
