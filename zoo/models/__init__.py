"""Models: the RecallModel contract and a lazy facade over the model registry.

``from zoo.models import DSSM`` resolves ``DSSM`` through the installed plugins (the ``dssm`` model),
so the seed tutorial's imports keep working while every model stays a plugin. What it returns is the
class bound to its spec (``ModelSpec.load()``): a subclass of the plugin's class whose models read
their registry name, family, train modes and training data from the spec.
"""

from __future__ import annotations

import os
from typing import Any

from zoo.models.base import RecallModel as RecallModel
from zoo.models.base import TrainOutputs as TrainOutputs

_CORE = ["RecallModel", "TrainOutputs", "load_model"]


def model_class_names(registry: Any = None) -> list[str]:
    """The class name of every installed model plugin (``DSSM``, ``GRU4Rec``...), in registry order."""
    from zoo.registry import default_registry

    names: list[str] = []
    for spec in (registry or default_registry()).specs("model"):
        factory = spec.factory if isinstance(spec.factory, str) else ""
        name = factory.rpartition(":")[2].rpartition(".")[2]
        if name and name not in names:
            names.append(name)
    return names


def load_model(
    directory: str | os.PathLike[str], *, map_location: Any = "cpu", registry: Any = None
) -> RecallModel:
    """Load a model saved with ``model.save(dir)``, finding its class through the plugin registry."""
    from zoo.registry import default_registry

    meta = RecallModel.read_meta(directory)
    registry = registry or default_registry()
    cls = registry.model_class(meta["model"])
    return cls.load(directory, map_location=map_location)


def __getattr__(name: str) -> Any:
    """Resolve a model class by its class name (``DSSM``) or registry name through the registry.

    ``__all__`` lists the core names and every installed model's class name, so code that walks
    ``zoo.models.__all__`` (as Torch-RecHub's tests walk ``torch_rechub.models.matching.__all__``)
    reaches every model plugin."""
    if name == "__all__":
        return [*_CORE, *model_class_names()]
    if name.startswith("_"):
        raise AttributeError(name)
    from zoo.registry import default_registry

    registry = default_registry()
    wanted = name.lower()
    for spec in registry.specs("model"):
        if spec.name == wanted or spec.name.replace("-", "_") == wanted:
            return spec.load()
        factory = spec.factory if isinstance(spec.factory, str) else ""
        if factory.rpartition(":")[2].rpartition(".")[2] == name:
            return spec.load()
    raise AttributeError(
        f"module 'zoo.models' has no attribute {name!r} (no installed model plugin provides it)"
    )


def __dir__() -> list[str]:
    return sorted({*globals(), *__getattr__("__all__")})
