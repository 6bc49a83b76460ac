"""Exporting a trained model for serving outside recall-zoo.

* :class:`ONNXExporter` -- a model's user (or item) tower as ONNX with a dynamic batch and history
  length, verified with onnxruntime (``MatchTrainer.export_onnx`` calls it, as in Torch-RecHub);
* :func:`export_run` -- what ``zoo export RUN_DIR`` writes: the user tower (``user_tower.onnx``), the
  item vectors with their original ids (``item_vectors.parquet`` and ``.safetensors``), the
  vocabularies and a ``manifest.json`` describing them.

Imports are lazy: ``import zoo.export`` loads neither torch nor onnx.
"""

from __future__ import annotations

from typing import Any

__all__ = ["FORMATS", "ExportedTower", "ONNXExporter", "check_export_folder", "export_run"]

_WHERE = {
    "ONNXExporter": "zoo.export.onnx",
    "ExportedTower": "zoo.export.onnx",
    "FORMATS": "zoo.export.run",
    "check_export_folder": "zoo.export.run",
    "export_run": "zoo.export.run",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'zoo.export' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
