"""The trainer's checkpoints, never unpickled.

* ``model.safetensors``: a model's weights (:func:`save_checkpoint` / :func:`load_checkpoint`).
* Epoch checkpoints (:class:`EpochCheckpoints`): after every epoch, everything a fit needs to continue
  bit-for-bit. A folder holds the last one only::

      checkpoint.json         epoch, history, best score / epoch / stale count, stop reason, the
                              fingerprint of the fit, the non-tensor parts of the optimiser, scheduler
                              and EMA state, and the size and sha256 of the two files below
      state-EEEE.safetensors  model weights, optimiser and scheduler tensors, EMA weights, the
                              negative sampler's generator, the fit's scoped RNG states, counted item
                              frequencies and remembered item features
      best-EEEE.safetensors   the best weights so far (written when they change)

  The tensor files are written first and ``checkpoint.json`` last (each atomically), so whenever a
  process dies the folder's ``checkpoint.json`` names a complete checkpoint; files it does not name
  are removed by the next save.

State dicts are stored by :func:`encode_state`: every tensor goes to the safetensors file under its
path (``optimizer.state.0.exp_avg``) and the JSON keeps a reference to it; tuples, dicts with
non-string keys and non-finite floats are tagged so that :func:`decode_state` rebuilds them exactly.
"""

from __future__ import annotations

import json
import math
import numbers
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from zoo.errors import ModelFileError, UsageError

CHECKPOINT_FILE = "model.safetensors"
#: the file that makes a folder an epoch checkpoint (written last)
RESUME_FILE = "checkpoint.json"
FORMAT, FORMAT_VERSION = "recall-zoo-checkpoint", 1

_TENSOR, _TUPLE, _ITEMS, _FLOAT = "__tensor__", "__tuple__", "__items__", "__float__"
_TAGS = (_TENSOR, _TUPLE, _ITEMS, _FLOAT)
_OWN_FILE = re.compile(r"^(state|best)-\d+\.safetensors$")
#: what an interrupted atomic write of one of our files leaves (``zoo.io.atomic_write_bytes``)
_OWN_TEMP = re.compile(r"^\.(checkpoint\.json|(state|best)-\d+\.safetensors)\..+$")


def save_checkpoint(model: torch.nn.Module, folder: str | os.PathLike[str]) -> Path:
    """Write ``model``'s weights to ``folder/model.safetensors`` atomically; returns the path."""
    from safetensors.torch import save

    from zoo.io import atomic_write_bytes

    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    return atomic_write_bytes(Path(folder) / CHECKPOINT_FILE, save(tensors))


def load_checkpoint(model: torch.nn.Module, path: str | os.PathLike[str]) -> None:
    """Load the weights at ``path`` (a safetensors file) into ``model``."""
    from safetensors.torch import load_file

    model.load_state_dict(load_file(str(path), device="cpu"))


# -- state dicts as JSON + tensors ----------------------------------------------------------------------
def encode_state(value: Any, key: str, tensors: dict[str, torch.Tensor]) -> Any:
    """``value`` (a state dict, or any nest of dicts, lists, tuples, tensors and scalars) as JSON, its
    tensors moved (as CPU copies) into ``tensors`` under their path from ``key``. TypeError for a value
    that is none of these."""
    if isinstance(value, torch.Tensor):
        if key in tensors:
            raise TypeError(f"two tensors would be stored as {key!r}")
        tensors[key] = value.detach().cpu().clone().contiguous()
        return {_TENSOR: key}
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        number = float(value)
        return number if math.isfinite(number) else {_FLOAT: repr(number)}
    if isinstance(value, tuple):
        return {_TUPLE: [encode_state(v, f"{key}.{i}", tensors) for i, v in enumerate(value)]}
    if isinstance(value, list):
        return [encode_state(v, f"{key}.{i}", tensors) for i, v in enumerate(value)]
    if isinstance(value, Mapping):
        if all(isinstance(k, str) and k not in _TAGS for k in value):
            return {k: encode_state(v, f"{key}.{k}", tensors) for k, v in value.items()}
        return {
            _ITEMS: [
                [encode_state(k, f"{key}.key{i}", tensors), encode_state(v, f"{key}.{k}", tensors)]
                for i, (k, v) in enumerate(value.items())
            ]
        }
    raise TypeError(f"{key}: cannot store a {type(value).__name__} in a checkpoint")


def decode_state(value: Any, tensors: Mapping[str, torch.Tensor]) -> Any:
    """The value :func:`encode_state` encoded, its tensors taken from ``tensors``."""
    if isinstance(value, list):
        return [decode_state(v, tensors) for v in value]
    if not isinstance(value, dict):
        return value
    if len(value) == 1:
        tag, inner = next(iter(value.items()))
        if tag == _TENSOR:
            return tensors[inner]
        if tag == _TUPLE:
            return tuple(decode_state(v, tensors) for v in inner)
        if tag == _ITEMS:
            return {decode_state(k, tensors): decode_state(v, tensors) for k, v in inner}
        if tag == _FLOAT:
            return float(inner)
    return {k: decode_state(v, tensors) for k, v in value.items()}


def fingerprint_difference(saved: Mapping[str, Any], current: Mapping[str, Any]) -> str | None:
    """The first setting in which two fingerprints differ, as ``key: checkpoint X, now Y``; None when
    they are the same. Keys are dotted paths, checked in ``current``'s order."""
    flat_saved, flat_current = _flatten(_as_json(saved)), _flatten(_as_json(current))
    for key in [*flat_current, *(k for k in flat_saved if k not in flat_current)]:
        before, now = (json.dumps(flat[key]) if key in flat else None for flat in (flat_saved, flat_current))
        if before != now:
            before = "not set in the checkpoint" if before is None else f"checkpoint {before}"
            return f"{key}: {before}, now {'not set' if now is None else now}"
    return None


def _as_json(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict) and value:
        flat: dict[str, Any] = {}
        for key, inner in value.items():
            flat.update(_flatten(inner, f"{prefix}.{key}" if prefix else str(key)))
        return flat
    return {prefix: value}


# -- epoch checkpoints ----------------------------------------------------------------------------------
@dataclass
class Restored:
    """An epoch checkpoint read back: its JSON, its tensors and the best weights (None: none kept)."""

    meta: dict[str, Any]
    tensors: dict[str, torch.Tensor]
    best: dict[str, torch.Tensor] | None

    def state(self, name: str) -> Any:
        """The decoded state stored under ``name`` (``optimizer``, ``scheduler``, ``ema``...)."""
        return decode_state(self.meta["state"][name], self.tensors)


class EpochCheckpoints:
    """The epoch checkpoints of one fit in ``folder`` (see the module docstring).

    Args:
        folder: where the checkpoint lives (created on the first save); files other than the
            checkpoint's own are never touched.
        fingerprint: what the fit was started with (settings, model, data sizes); a checkpoint with
            another fingerprint is refused by :meth:`load`.
    """

    def __init__(self, folder: str | os.PathLike[str], fingerprint: Mapping[str, Any]) -> None:
        self.folder = Path(folder)
        self.fingerprint = _as_json(dict(fingerprint))
        self._best_file: str | None = None

    @property
    def manifest(self) -> Path:
        return self.folder / RESUME_FILE

    def exists(self) -> bool:
        """Whether the folder holds a checkpoint."""
        return self.manifest.is_file()

    def clear(self) -> None:
        """Remove the checkpoint (a fresh fit replaces a stale one)."""
        if self.manifest.exists():
            self.manifest.unlink()
        self._remove_unreferenced(keep=())
        self._best_file = None

    def save(
        self,
        meta: Mapping[str, Any],
        tensors: Mapping[str, torch.Tensor],
        best: Mapping[str, torch.Tensor] | None,
        *,
        epoch: int,
        best_changed: bool,
    ) -> None:
        """Write the checkpoint of finished epoch ``epoch`` (1-based): ``tensors`` and the non-tensor
        ``meta``, and ``best`` (the best weights) when they changed since the last save."""
        from safetensors.torch import save

        from zoo.io import atomic_write_bytes, atomic_write_json, file_records

        self.folder.mkdir(parents=True, exist_ok=True)
        state_file = f"state-{epoch:04d}.safetensors"
        atomic_write_bytes(self.folder / state_file, save(dict(tensors)))
        if best is None:
            self._best_file = None
        elif best_changed or self._best_file is None or not (self.folder / self._best_file).is_file():
            self._best_file = f"best-{epoch:04d}.safetensors"
            weights = {k: v.detach().cpu().clone().contiguous() for k, v in best.items()}
            atomic_write_bytes(self.folder / self._best_file, save(weights))
        names = [state_file] + ([self._best_file] if self._best_file else [])
        atomic_write_json(
            self.manifest,
            {
                "format": FORMAT,
                "format_version": FORMAT_VERSION,
                "epoch": epoch,
                "state_file": state_file,
                "best_file": self._best_file,
                "files": file_records(self.folder, names),
                "fingerprint": self.fingerprint,
                **meta,
            },
        )
        self._remove_unreferenced(keep=names)

    def load(self) -> Restored:
        """Read and check the checkpoint: UsageError when there is none or it was written by a fit with
        another fingerprint (naming the first difference), ModelFileError when it is damaged."""
        from safetensors.torch import load_file

        from zoo.io import read_json_header, verify_files

        if not self.exists():
            raise UsageError(
                f"{self.folder}: no checkpoint to resume from ({RESUME_FILE} is missing); start over"
                " without resume"
            )
        what = "delete the folder and start over without resume"
        meta = read_json_header(
            self.manifest, format_name=FORMAT, format_version=FORMAT_VERSION, what="a training checkpoint"
        )
        difference = fingerprint_difference(meta.get("fingerprint") or {}, self.fingerprint)
        if difference is not None:
            raise UsageError(
                f"{self.folder}: the checkpoint is of another training run ({difference}); resume with"
                " the same settings, or start over without resume"
            )
        verify_files(self.folder, meta.get("files"), header=self.manifest, what=what)
        try:
            tensors = load_file(str(self.folder / meta["state_file"]), device="cpu")
            best_file = meta.get("best_file")
            best = load_file(str(self.folder / best_file), device="cpu") if best_file else None
        except (KeyError, OSError, ValueError) as exc:
            raise ModelFileError(f"{self.manifest}: unreadable checkpoint ({exc}); {what}") from None
        self._best_file = best_file
        return Restored(meta=meta, tensors=tensors, best=best)

    def _remove_unreferenced(self, keep: Any) -> None:
        if not self.folder.is_dir():
            return
        for path in self.folder.iterdir():
            if path.name in keep or not (_OWN_FILE.match(path.name) or _OWN_TEMP.match(path.name)):
                continue
            if path.is_file() or path.is_symlink():
                path.unlink(missing_ok=True)


# -- the trainer's state ---------------------------------------------------------------------------------
def capture_training(
    trainer: Any, progress: Mapping[str, Any]
) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """The JSON part and the tensors of ``trainer``'s state at the end of an epoch: ``progress`` (the
    fit loop's counters and history), model weights, optimiser, scheduler, EMA, the negative sampler's
    generator, the scoped RNG states, counted item frequencies and remembered item features."""
    from zoo.train.rng import rng_state

    model = trainer.model
    parts = {
        "model": model.state_dict(),
        "optimizer": trainer.optimizer.state_dict(),
        "scheduler": None if trainer.scheduler is None else trainer.scheduler.state_dict(),
        "ema": None if trainer._ema is None else trainer._ema.state_dict(),
        "generator": trainer.generator.get_state(),
        "rng": rng_state(trainer.device),
        "proposals": trainer.proposals.state_dict(),
        "item_table": None if getattr(model, "item_table_complete", True) else model.item_table(),
    }
    tensors: dict[str, torch.Tensor] = {}
    state = {name: encode_state(value, name, tensors) for name, value in parts.items()}
    return {"progress": encode_state(dict(progress), "progress", tensors), "state": state}, tensors


def restore_training(trainer: Any, restored: Restored) -> dict[str, Any]:
    """Put the state of :func:`capture_training` back into ``trainer`` (built with the same settings,
    inside the fit's RNG scope); returns the saved progress."""
    from zoo.train.rng import set_rng_state

    model = trainer.model
    model.load_state_dict(restored.state("model"))
    trainer.optimizer.load_state_dict(restored.state("optimizer"))
    if trainer.scheduler is not None:
        trainer.scheduler.load_state_dict(restored.state("scheduler"))
    if trainer._ema is not None:
        trainer._ema.load_state_dict(restored.state("ema"))
    trainer.generator.set_state(restored.state("generator"))
    set_rng_state(restored.state("rng"), trainer.device)
    trainer.proposals.load_state_dict(restored.state("proposals"))
    table = restored.state("item_table")
    if table is not None:
        model.set_item_table(table)
        model.item_table_complete = False
    return decode_state(restored.meta["progress"], restored.tensors)
