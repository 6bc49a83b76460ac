"""Seeding a block of code without touching the caller's random state, and saving and restoring the
states it draws from (what a resumed ``fit`` continues with)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch


def _accelerator(device: torch.device) -> tuple[str | None, int]:
    """The device's accelerator type (None for the CPU) and its index."""
    accelerator = device.type if device.type in ("cuda", "xpu", "mps") else None
    index = 0
    if accelerator is not None:
        current = getattr(torch.get_device_module(accelerator), "current_device", lambda: 0)
        index = device.index if device.index is not None else int(current())
    return accelerator, index


def rng_state(device: torch.device) -> dict[str, torch.Tensor]:
    """The states of the generators a scoped block draws from: ``cpu`` (the default generator) and,
    on an accelerator, its type (``cuda``, ``xpu``, ``mps``). :func:`set_rng_state` puts them back."""
    state = {"cpu": torch.random.get_rng_state()}
    accelerator, index = _accelerator(device)
    if accelerator == "mps":
        state["mps"] = torch.mps.get_rng_state()
    elif accelerator is not None:
        state[accelerator] = torch.get_device_module(accelerator).get_rng_state(index)
    return state


def set_rng_state(state: dict[str, torch.Tensor], device: torch.device) -> None:
    """Restore states saved by :func:`rng_state` (an accelerator state saved on another kind of
    device is ignored)."""
    torch.random.set_rng_state(state["cpu"].cpu())
    accelerator, index = _accelerator(device)
    if accelerator is None or accelerator not in state:
        return
    if accelerator == "mps":
        torch.mps.set_rng_state(state["mps"].cpu())
    else:
        torch.get_device_module(accelerator).set_rng_state(state[accelerator].cpu(), index)


@contextmanager
def scoped_seed(seed: int | None, device: torch.device) -> Iterator[None]:
    """Run the block with the CPU generator and ``device``'s generator seeded with ``seed`` (what
    ``torch.manual_seed`` would do for them), and give the caller's states back afterwards.
    ``seed=None``: the block runs on the caller's generators, unscoped."""
    if seed is None:
        yield
        return
    accelerator, index = _accelerator(device)
    devices = [index] if accelerator is not None else []
    with torch.random.fork_rng(devices=devices, device_type=accelerator or "cuda"):
        torch.random.default_generator.manual_seed(seed)
        if accelerator == "mps":
            torch.mps.manual_seed(seed)
        elif accelerator is not None:
            with torch.get_device_module(accelerator).device(index):
                torch.get_device_module(accelerator).manual_seed(seed)
        yield
