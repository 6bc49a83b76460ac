"""The trainer's checkpoint: a model's weights as ``model.safetensors`` (never unpickled)."""

from __future__ import annotations

import os
from pathlib import Path

import torch

CHECKPOINT_FILE = "model.safetensors"


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
