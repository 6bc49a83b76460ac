"""``zoo export RUN_DIR``: a run's model as files any serving stack reads.

The export folder (default ``RUN_DIR/export``) holds, by format:

* ``onnx``: ``user_tower.onnx``, the user tower (:class:`~zoo.export.onnx.ONNXExporter`);
* ``parquet``: ``item_vectors.parquet`` (columns ``item_id``, the original ids, and ``vector``) and
  ``item_vectors.safetensors`` (``vectors [N, dim]`` float32, ``codes [N]`` the encoded ids, and the
  original ids as ``item_ids`` when they are integers, else as JSON in the file's metadata);

and always ``vocab.json`` (the run's vocabularies: encode raw ids with them, unknown values are 1) and
``manifest.json``: the model's name and family, the metric (``ip``), the vector dimension, the
number of interests K, the history length, each ONNX input (name, dtype, shape, kind, vocabulary in
``vocab.json``) and output, and the size and sha256 of every file.

Like ``zoo run --out``, the folder is written whole and atomically, and an existing folder is only
replaced when it is an earlier export (it has this manifest); anything else is refused.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from zoo.errors import ModelFileError, UsageError

FORMATS = ("onnx", "parquet")
EXPORT_DIR = "export"
MANIFEST_FILE = "manifest.json"
MANIFEST_FORMAT = "recall-zoo-export"
FORMAT_VERSION = 1
USER_TOWER_FILE = "user_tower.onnx"
ITEMS_PARQUET = "item_vectors.parquet"
ITEMS_SAFETENSORS = "item_vectors.safetensors"


def check_export_folder(target: Path, *, option: str = "--out") -> None:
    """Validate an export folder before any work: missing, empty, or an earlier export (replaced whole);
    UsageError for a file, a folder holding anything else, or a place that cannot be written."""
    from zoo.folders import check_output_folder

    check_output_folder(
        target,
        kind="export",
        is_ours=lambda folder: _is_export(folder / MANIFEST_FILE),
        option=option,
        replaced=True,
    )


def _is_export(path: Path) -> bool:
    try:
        return json.loads(path.read_text()).get("format") == MANIFEST_FORMAT
    except (OSError, ValueError, AttributeError):
        return False


def export_run(
    run_dir: str | os.PathLike[str],
    formats: tuple[str, ...] | list[str] = FORMATS,
    out: str | os.PathLike[str] | None = None,
    *,
    registry: Any = None,
) -> dict[str, Any]:
    """Export ``run_dir``'s model in ``formats`` (``onnx``, ``parquet``) to ``out`` (default
    ``RUN_DIR/export``); returns the manifest written (its ``folder`` key says where)."""
    from zoo.folders import writer_lock
    from zoo.pipeline.save import MODEL_DIR

    formats = tuple(dict.fromkeys(formats or FORMATS))
    unknown = [f for f in formats if f not in FORMATS]
    if unknown:
        raise UsageError(f"--format {unknown[0]!r} must be one of {', '.join(FORMATS)}")
    run_dir = Path(run_dir)
    if not (run_dir / MODEL_DIR).is_dir():
        raise UsageError(f"{run_dir}: not a run folder (no {MODEL_DIR}/); give the --out folder of a zoo run")
    target = Path(out) if out is not None else run_dir / EXPORT_DIR
    check_export_folder(target)
    _require(formats)
    with writer_lock(target):
        return _export(run_dir, target, formats, registry)


def _require(formats: tuple[str, ...]) -> None:
    import importlib.util

    if "onnx" in formats:
        from zoo.export.onnx import require_onnx

        require_onnx()
    if "parquet" in formats and importlib.util.find_spec("pyarrow") is None:
        raise UsageError('--format parquet needs pyarrow: pip install "recall-zoo[parquet]"')


def _export(run_dir: Path, target: Path, formats: tuple[str, ...], registry: Any) -> dict[str, Any]:
    import torch

    from zoo._version import __version__
    from zoo.data.encoder import FIRST_CODE, FeatureEncoder
    from zoo.data.run_store import run_metric
    from zoo.io import atomic_dir, commit_dir, file_records
    from zoo.models import load_model
    from zoo.models.base import RecallModel
    from zoo.pipeline.save import MODEL_DIR, VOCAB_FILE

    model_dir = run_dir / MODEL_DIR
    meta = RecallModel.read_meta(model_dir)
    schema = meta.get("schema")
    if not isinstance(schema, dict) or "history_len" not in schema:
        raise ModelFileError(f"{model_dir}: model.json has no schema; run zoo run again")
    model = load_model(model_dir, map_location="cpu", registry=registry).eval()
    encoder = FeatureEncoder.load(model_dir / VOCAB_FILE)
    codes = torch.arange(FIRST_CODE, int(schema["item_vocab"]), dtype=torch.long)
    with torch.no_grad():
        dimension = int(model.item_vectors(codes[:1]).shape[-1])
    manifest: dict[str, Any] = {
        "format": MANIFEST_FORMAT,
        "format_version": FORMAT_VERSION,
        "zoo_version": __version__,
        "run": str(run_dir.resolve()),
        "model": meta.get("model"),
        "family": meta.get("family"),
        "metric": run_metric(run_dir),
        "dimension": dimension,
        "interests": int(model.num_interests),
        "history_len": int(schema["history_len"]),
        "vocabularies": VOCAB_FILE,
    }
    tmp = atomic_dir(target)
    try:
        shutil.copyfile(model_dir / VOCAB_FILE, tmp / VOCAB_FILE)
        if "onnx" in formats:
            manifest["user_tower"] = _user_tower(model, encoder, schema, tmp / USER_TOWER_FILE)
        if "parquet" in formats:
            manifest["item_vectors"] = _item_vectors(model, encoder, codes, tmp)
        manifest["files"] = file_records(tmp)
        (tmp / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2) + "\n")
        commit_dir(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return {**manifest, "folder": str(target)}


def _user_tower(model: Any, encoder: Any, schema: dict[str, Any], path: Path) -> dict[str, Any]:
    from zoo.export.onnx import ONNXExporter

    info = ONNXExporter(model, history_len=int(schema["history_len"])).export(path, mode="user")
    vocabularies = _vocabularies(model, encoder, schema)
    inputs = [{**spec, "vocabulary": vocabularies.get(spec["name"])} for spec in info.inputs]
    return {
        "file": path.name,
        "opset": info.opset,
        "inputs": inputs,
        "output": info.output,
        "unused_features": info.unused,
        "verified_max_abs_diff": info.max_abs_diff,
    }


def _vocabularies(model: Any, encoder: Any, schema: dict[str, Any]) -> dict[str, str]:
    """Input name -> its vocabulary in ``vocab.json`` (``user_id``, ``item_id``, ``user:COLUMN``)."""
    from zoo.data.run_store import user_columns

    names = {schema.get("user_id", "user_id"): "user_id"}
    for column, batch_name in user_columns(encoder, schema.get("user_side", {})).items():
        names[batch_name] = f"user:{column}"
    for feature in [*model.user_features, *model.history_features]:
        if getattr(feature, "table", None) == model.item_id_feature:
            names[feature.name] = "item_id"
    return names


def _item_vectors(model: Any, encoder: Any, codes: Any, folder: Path) -> dict[str, Any]:
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq
    from safetensors.numpy import save

    from zoo.train.inference import embed_items

    vectors = np.ascontiguousarray(embed_items(model, codes, codes.device).numpy(), dtype=np.float32)
    ids = [v.item() if hasattr(v, "item") else v for v in encoder.vocabs["item_id"].decode(codes.numpy())]
    dimension = int(vectors.shape[1])
    column = pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1), pa.float32()), dimension)
    table = pa.table({"item_id": pa.array(ids), "vector": column})
    pq.write_table(table, folder / ITEMS_PARQUET)
    tensors = {"vectors": vectors, "codes": codes.numpy().astype(np.int64)}
    metadata = {"format": "recall-zoo-item-vectors", "metric": "ip"}
    if all(isinstance(i, int) and not isinstance(i, bool) for i in ids):
        tensors["item_ids"] = np.asarray(ids, dtype=np.int64)
    else:
        metadata["item_ids"] = json.dumps(ids)
    (folder / ITEMS_SAFETENSORS).write_bytes(save(tensors, metadata=metadata))
    return {
        "parquet": ITEMS_PARQUET,
        "safetensors": ITEMS_SAFETENSORS,
        "count": int(vectors.shape[0]),
        "columns": {"item_id": "original item id", "vector": f"float32[{dimension}]"},
    }
