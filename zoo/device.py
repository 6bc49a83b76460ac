"""Turn ``auto | cpu | cuda | cuda:N | mps`` into a ``torch.device``, with errors that list what exists."""

from __future__ import annotations

import re
from typing import Any

from zoo.errors import DeviceError

DEVICE_PATTERN = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


def available_devices() -> list[str]:
    """Devices usable in this process, e.g. ``["cpu", "cuda:0", "cuda:1"]``."""
    import torch

    found = ["cpu"]
    if torch.cuda.is_available():
        found += [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        found.append("mps")
    return found


def resolve_device(spec: Any = "auto") -> Any:
    """Return the ``torch.device`` for ``spec``; raise :class:`DeviceError` (exit 2) when it does not exist.

    ``auto`` picks the first CUDA device, then MPS, then the CPU.
    """
    import torch

    if isinstance(spec, torch.device):
        spec = str(spec)
    text = str(spec or "auto").strip().lower()
    if not DEVICE_PATTERN.match(text):
        raise DeviceError(f"--device {spec!r} is not a device; use auto, cpu, cuda, cuda:N or mps")
    present = available_devices()
    if text == "auto":
        for candidate in present:
            if candidate.startswith("cuda"):
                return torch.device(candidate)
        return torch.device("mps" if "mps" in present else "cpu")
    if text == "cpu":
        return torch.device("cpu")
    if text == "mps":
        if "mps" not in present:
            raise DeviceError(f"--device mps: no Apple MPS device here; available: {', '.join(present)}")
        return torch.device("mps")
    if not torch.cuda.is_available():
        raise DeviceError(
            f"--device {text}: no CUDA device here (torch {torch.__version__}"
            f"{' is a CPU build' if torch.version.cuda is None else ''}); available: {', '.join(present)}"
        )
    index = int(text.split(":")[1]) if ":" in text else 0
    if index >= torch.cuda.device_count():
        raise DeviceError(
            f"--device {text}: only {torch.cuda.device_count()} CUDA device(s); available:"
            f" {', '.join(present)}"
        )
    return torch.device(f"cuda:{index}")


def device_info(device: Any) -> dict[str, Any]:
    """Name and memory of a device, for reports."""
    import torch

    device = torch.device(device)
    info: dict[str, Any] = {"device": str(device)}
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info.update(name=props.name, memory_gb=round(props.total_memory / 2**30, 1), cuda=torch.version.cuda)
    elif device.type == "cpu":
        import os
        import platform

        info.update(
            name=platform.processor() or platform.machine(),
            cores=os.cpu_count(),
            threads=torch.get_num_threads(),
        )
    return info
