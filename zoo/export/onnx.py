"""A model's user tower (or item tower) as an ONNX graph with a dynamic batch and history length.

::

    from zoo.export import ONNXExporter

    info = ONNXExporter(model, history_len=50).export("user_tower.onnx", mode="user")
    info.inputs   # [{"name": "user_id", "dtype": "int64", "shape": ["batch"], ...}, ...]

The graph takes one tensor per user feature, in the order :meth:`ONNXExporter.input_features` gives
(the model's ``user_features``, then its ``history_features``): sparse ids ``int64 [batch]``, dense
values ``float32 [batch]`` (or ``[batch, dim]``), histories ``int64 [batch, history]`` of item ids,
left-padded with 0 and most recent last, of any length. Inside the graph each history is packed to
the right (its items keep their order) and left-padded or cut to ``history_len`` items, the most
recent kept, as the training data was; so a tower sees the same input as in training whatever the
length it is given. Its output is ``user_vector``: ``float32 [batch, dim]``, or ``[batch, K, dim]``
for a multi-interest model. Ids must be encoded with the run's vocabularies (unknown values are 1);
features the tower does not read are left out of the graph (``ExportedTower.unused``).

``mode="item"`` exports the item tower: ``item_id int64 [batch]`` -> ``item_vector float32
[batch, dim]``, the item side features read from the model's item table inside the graph.

The graph is traced with torch's TorchScript-based exporter: the towers check their inputs with
Python branches on tensor values (id ranges, padding side), which ``torch.export`` cannot trace,
while a trace records the branch valid inputs take. Two aten ops that exporter maps wrongly (a
stable sort, a boolean identity matrix) get their ONNX translation here, for the duration of the
export. Every export is verified: the ONNX graph, run by onnxruntime on a batch size and history
length different from the traced ones, must give the torch tower's output.
"""

from __future__ import annotations

import contextlib
import copy
import os
import secrets
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from zoo.errors import PluginError, UsageError

OPSET = 17
MODES = ("user", "item")
#: largest difference between the ONNX graph and the torch tower that passes the export's check
TOLERANCE = 1e-4
DEFAULT_HISTORY_LEN = 50
_INSTALL = 'pip install "recall-zoo[onnx]"'


@dataclass
class ExportedTower:
    """What :meth:`ONNXExporter.export` wrote: the file, the graph's inputs (name, dtype, shape, kind,
    the embedding table it reads) and output, features left out, opset and the verified difference."""

    path: Path
    mode: str
    inputs: list[dict[str, Any]]
    output: dict[str, Any]
    history_len: int
    opset: int
    max_abs_diff: float
    unused: list[str] = field(default_factory=list)


def require_onnx() -> None:
    """UsageError with the install hint unless onnx and onnxruntime are importable."""
    import importlib.util

    missing = [m for m in ("onnx", "onnxruntime") if importlib.util.find_spec(m) is None]
    if missing:
        raise UsageError(f"exporting to ONNX needs {' and '.join(missing)}: {_INSTALL}")


class ONNXExporter:
    """Export a :class:`~zoo.models.base.RecallModel`'s towers to ONNX (see the module docstring).

    Args:
        model: the model (left unchanged; a copy is exported from the CPU when it is elsewhere).
        history_len: the history length the model was trained on (a run's protocol ``history_len``);
            default: the model's ``max_length`` argument if it has one, else 50.
        opset: the ONNX opset (17 or newer: LayerNormalization).
    """

    def __init__(self, model: Any, *, history_len: int | None = None, opset: int = OPSET) -> None:
        from zoo.models.base import RecallModel

        if not isinstance(model, RecallModel):
            raise UsageError(f"ONNXExporter exports a recall-zoo model, got {type(model).__name__}")
        if history_len is None:
            configured = model.get_config().get("max_length")
            history_len = int(configured) if isinstance(configured, int) else DEFAULT_HISTORY_LEN
        if isinstance(history_len, bool) or int(history_len) < 1:
            raise UsageError(f"history_len must be a positive integer, got {history_len!r}")
        if int(opset) < OPSET:
            raise UsageError(f"opset must be {OPSET} or newer (LayerNormalization), got {opset}")
        self.model = model
        self.history_len = int(history_len)
        self.opset = int(opset)

    # -- the interface ----------------------------------------------------------------------------------
    def input_features(self, mode: str = "user") -> list[Any]:
        """The features the graph takes, in input order: the user features then the history
        features (``mode="user"``), or the item id (``mode="item"``)."""
        _check_mode(mode)
        model = self.model
        if mode == "item":
            return [next(f for f in model.item_features if f.name == model.item_id_feature)]
        features, names = [], set()
        for feature in [*model.user_features, *model.history_features]:
            if feature.name not in names:
                names.add(feature.name)
                features.append(feature)
        return features

    def _is_history(self, feature: Any) -> bool:
        from zoo.features import SequenceFeature

        model = self.model
        return isinstance(feature, SequenceFeature) and (
            feature.table == model.item_id_feature or feature in model.history_features
        )

    def input_specs(self, mode: str = "user") -> list[dict[str, Any]]:
        """Name, dtype, shape (``batch``, ``history`` or a size), kind and embedding table of each input."""
        from zoo.features import DenseFeature, SequenceFeature

        specs = []
        for feature in self.input_features(mode):
            spec: dict[str, Any] = {"name": feature.name}
            if isinstance(feature, DenseFeature):
                shape = ["batch"] if feature.embed_dim == 1 else ["batch", feature.embed_dim]
                spec.update(dtype="float32", shape=shape, kind="dense")
            elif isinstance(feature, SequenceFeature):
                length = "history" if self._is_history(feature) else f"{feature.name}_length"
                kind = "history" if self._is_history(feature) else "sequence"
                spec.update(dtype="int64", shape=["batch", length], kind=kind, table=feature.table)
                spec.update(vocab_size=feature.vocab_size, padding_id=feature.padding_idx)
            else:
                spec.update(dtype="int64", shape=["batch"], kind="sparse", table=feature.table)
                spec["vocab_size"] = feature.vocab_size
            specs.append(spec)
        return specs

    # -- export -----------------------------------------------------------------------------------------
    def export(self, path: str | os.PathLike[str], mode: str = "user") -> ExportedTower:
        """Write the ``mode`` tower to ``path`` (through a temporary file, then renamed) and verify it
        with onnxruntime; returns what was written."""
        _check_mode(mode)
        require_onnx()
        target = Path(path)
        if target.is_dir():
            raise UsageError(f"{target} is a folder; give the path of the .onnx file to write")
        target.parent.mkdir(parents=True, exist_ok=True)
        model = self.model
        was_training = model.training
        if next(model.parameters()).device.type != "cpu":
            model = copy.deepcopy(model).to("cpu")
        specs = self.input_specs(mode)
        wrapper = _Tower(model, mode, specs, self.history_len).eval()
        model.eval()
        tmp = target.with_name(f".{target.name}.{secrets.token_hex(4)}.tmp")  # renamed when verified
        try:
            traced = _examples(specs, rows=3, length=self.history_len, seed=0)
            output = "user_vector" if mode == "user" else "item_vector"
            axes = {spec["name"]: _dynamic_axes(spec) for spec in specs}
            axes[output] = {0: "batch"}
            with _quiet(), _translations(self.opset), torch.no_grad():
                torch.onnx.export(
                    wrapper,
                    tuple(traced),
                    str(tmp),
                    input_names=[s["name"] for s in specs],
                    output_names=[output],
                    dynamic_axes=axes,
                    opset_version=self.opset,
                    dynamo=False,
                )
            graph_inputs = _graph_inputs(tmp)
            difference = _verify(tmp, wrapper, specs, graph_inputs, self.history_len)
            if not difference <= TOLERANCE:
                raise PluginError(
                    f"model '{model.registry_name or type(model).__name__}': its {mode} tower does not"
                    f" trace to ONNX faithfully (the graph differs from torch by {difference:.3g}); its"
                    " tower branches on tensor values in a way a trace cannot record"
                )
            os.replace(tmp, target)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        finally:
            self.model.train(was_training)
        with torch.no_grad():
            sample = wrapper(*_examples(specs, rows=1, length=1, seed=1))
        shape: list[Any] = ["batch", *sample.shape[1:]]
        return ExportedTower(
            path=target,
            mode=mode,
            inputs=[s for s in specs if s["name"] in graph_inputs],
            output={"name": output, "dtype": "float32", "shape": shape},
            history_len=self.history_len,
            opset=self.opset,
            max_abs_diff=float(difference),
            unused=[s["name"] for s in specs if s["name"] not in graph_inputs],
        )


# -- the wrapped tower -------------------------------------------------------------------------------------
class _Tower(nn.Module):
    """One tensor per input feature -> the tower's vectors (histories packed and padded as in training)."""

    def __init__(self, model: Any, mode: str, specs: list[dict[str, Any]], history_len: int) -> None:
        super().__init__()
        self.model = model
        self.mode = mode
        self.names = [s["name"] for s in specs]
        self.histories = {s["name"]: int(s.get("padding_id") or 0) for s in specs if s["kind"] == "history"}
        self.history_len = int(history_len)

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        if self.mode == "item":
            return self.model.item_vectors(inputs[0])
        batch = {}
        for name, value in zip(self.names, inputs, strict=True):
            pad = self.histories.get(name)
            batch[name] = value if pad is None else _pack_history(value, pad, self.history_len)
        return self.model.user_tower(batch)


def _pack_history(ids: torch.Tensor, pad: int, length: int) -> torch.Tensor:
    """Items moved right in their order (padding first), then left-padded or cut to ``length`` columns."""
    real = (ids != pad).to(torch.int8)
    ids = ids.gather(1, torch.argsort(real, dim=1, stable=True))
    return F.pad(ids, (length, 0), value=pad)[:, -length:]


def _check_mode(mode: str) -> None:
    if mode not in MODES:
        raise UsageError(f"mode must be 'user' or 'item' (the tower to export), got {mode!r}")


def _dynamic_axes(spec: dict[str, Any]) -> dict[int, str]:
    return {i: d for i, d in enumerate(spec["shape"]) if isinstance(d, str)}


def _examples(specs: list[dict[str, Any]], *, rows: int, length: int, seed: int) -> list[torch.Tensor]:
    """Valid inputs: known ids (>= 2), histories of ``length`` columns with varied left padding."""
    generator = torch.Generator().manual_seed(seed)
    out = []
    for spec in specs:
        if spec["dtype"] == "float32":
            out.append(
                torch.randn(*[rows if d == "batch" else d for d in spec["shape"]], generator=generator)
            )
            continue
        size = int(spec["vocab_size"])
        low = min(2, size - 1)
        if len(spec["shape"]) == 1:
            out.append(torch.randint(low, size, (rows,), generator=generator))
            continue
        ids = torch.randint(low, size, (rows, length), generator=generator)
        real = torch.arange(length).unsqueeze(0) >= (torch.arange(rows).unsqueeze(1) * 2) % max(length, 1)
        out.append(torch.where(real, ids, torch.full_like(ids, int(spec.get("padding_id") or 0))))
    return out


def _graph_inputs(path: Path) -> list[str]:
    import onnx

    return [i.name for i in onnx.load(str(path), load_external_data=False).graph.input]


def _verify(
    path: Path,
    wrapper: nn.Module,
    specs: list[dict[str, Any]],
    graph_inputs: list[str],
    history_len: int,
) -> float:
    """Largest difference between onnxruntime and torch on batch sizes and history lengths that differ
    from the traced ones (shorter and longer histories than ``history_len``)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.log_severity_level = 3
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    worst = 0.0
    for rows, length, seed in ((1, 1, 1), (5, max(2, history_len // 2), 2), (2, history_len + 3, 3)):
        inputs = _examples(specs, rows=rows, length=length, seed=seed)
        with torch.no_grad():
            expected = wrapper(*inputs).numpy()
        feed = {s["name"]: t.numpy() for s, t in zip(specs, inputs, strict=True) if s["name"] in graph_inputs}
        (got,) = session.run(None, feed)
        if got.shape != expected.shape:
            return float("inf")
        worst = max(worst, float(np.max(np.abs(got - expected), initial=0.0)))
    return worst


# -- exporter fixes, scoped to one export -------------------------------------------------------------------
@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence the tracer's and the legacy exporter's warnings (expected for these towers)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


@contextlib.contextmanager
def _translations(opset: int) -> Iterator[None]:
    """ONNX translations for ``sort``/``argsort`` with ``stable=True`` and ``eye``, registered for the
    export only."""
    names = {"aten::sort": _sort, "aten::argsort": _argsort, "aten::eye": _eye}
    for name, function in names.items():
        torch.onnx.register_custom_op_symbolic(name, function, opset)
    try:
        yield
    finally:
        for name in names:
            torch.onnx.unregister_custom_op_symbolic(name, opset)


def _stable_topk(g: Any, values: Any, dim: int, descending: bool) -> Any:
    """ONNX TopK over the whole axis: it puts the lower index first among equal values, a stable sort."""
    index = g.op("Constant", value_t=torch.tensor([dim], dtype=torch.int64))
    size = g.op("Gather", g.op("Shape", values), index)
    from torch.onnx import symbolic_helper

    kind = symbolic_helper._try_get_scalar_type(values)
    if kind is None or not kind.dtype().is_floating_point:  # onnxruntime's TopK has no int8 / bool kernel
        values = g.op("Cast", values, to_i=7)  # int64
    return g.op("TopK", values, size, axis_i=dim, largest_i=int(descending), sorted_i=1, outputs=2)


def _constant(value: Any) -> Any:
    from torch.onnx import symbolic_helper

    return symbolic_helper._maybe_get_const(value, "i")


def _sort(g: Any, values: Any, *args: Any) -> Any:
    if len(args) == 3:  # sort.stable(self, *, stable, dim, descending)
        _, dim, descending = (_constant(a) for a in args)
        return _stable_topk(g, values, int(dim), bool(descending))
    from torch.onnx._internal.torchscript_exporter import symbolic_opset11

    return symbolic_opset11.sort(g, values, *args)


def _argsort(g: Any, values: Any, *args: Any) -> Any:
    if len(args) == 3:  # argsort.stable(self, *, stable, dim, descending)
        _, dim, descending = (_constant(a) for a in args)
        return _stable_topk(g, values, int(dim), bool(descending))[1]
    from torch.onnx._internal.torchscript_exporter import symbolic_opset11

    return symbolic_opset11.argsort(g, values, *args)


def _eye(g: Any, *args: Any) -> Any:
    """``eye(n[, m], dtype, ...)``: a float identity (EyeLike has no boolean kernel) cast to ``dtype``."""
    from torch.onnx import symbolic_helper
    from torch.onnx._internal.torchscript_exporter._type_utils import JitScalarType

    n = args[0]
    m = args[1] if len(args) == 6 else n
    dtype = args[-4]
    axis = g.op("Constant", value_t=torch.tensor([0]))
    shape = g.op("Concat", g.op("Unsqueeze", n, axis), g.op("Unsqueeze", m, axis), axis_i=0)
    identity = g.op("EyeLike", g.op("ConstantOfShape", shape, value_t=torch.tensor([0.0])))
    code = symbolic_helper._maybe_get_const(dtype, "i")
    if symbolic_helper._is_none(dtype) or not isinstance(code, int):
        return identity
    return g.op("Cast", identity, to_i=JitScalarType(code).onnx_type())
