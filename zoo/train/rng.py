"""Seeding a block of code without touching the caller's random state."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch


@contextmanager
def scoped_seed(seed: int | None, device: torch.device) -> Iterator[None]:
    """Run the block with the CPU generator and ``device``'s generator seeded with ``seed`` (what
    ``torch.manual_seed`` would do for them), and give the caller's states back afterwards.
    ``seed=None``: the block runs on the caller's generators, unscoped."""
    if seed is None:
        yield
        return
    accelerator = device.type if device.type in ("cuda", "xpu", "mps") else None
    index = 0
    if accelerator is not None:
        current = getattr(torch.get_device_module(accelerator), "current_device", lambda: 0)
        index = device.index if device.index is not None else int(current())
    devices = [index] if accelerator is not None else []
    with torch.random.fork_rng(devices=devices, device_type=accelerator or "cuda"):
        torch.random.default_generator.manual_seed(seed)
        if accelerator == "mps":
            torch.mps.manual_seed(seed)
        elif accelerator is not None:
            with torch.get_device_module(accelerator).device(index):
                torch.get_device_module(accelerator).manual_seed(seed)
        yield
