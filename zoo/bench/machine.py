"""What the numbers depend on: the machine, the load on it, and library versions (no heavy imports)."""

from __future__ import annotations

import importlib.metadata
import os
import platform
from pathlib import Path
from typing import Any

from zoo._version import __version__
from zoo.retrieval.threads import available_cores

#: distributions whose versions every bench records (when installed)
LIBRARIES = ("torch", "numpy", "pandas", "hnswlib", "annoy", "faiss-cpu", "faiss-gpu", "rich")


def cpu_name() -> str:
    """The CPU model name (``/proc/cpuinfo`` on Linux, else what :mod:`platform` knows)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def memory_gb() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 2**20, 1)
    except (OSError, ValueError, IndexError):
        pass
    return None


def load_average() -> list[float] | None:
    """1, 5 and 15-minute load averages: how busy the machine was (other processes included)."""
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except (OSError, AttributeError):  # pragma: no cover - Windows
        return None


def rss_bytes() -> int | None:
    """Resident memory of this process (Linux ``/proc/self/statm``), or None."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return pages * os.sysconf("SC_PAGE_SIZE")


def machine_info(device: Any = None) -> dict[str, Any]:
    """CPU, cores, memory, GPU and torch threading, plus the current load average."""
    import torch

    info: dict[str, Any] = {
        "cpu": cpu_name(),
        "cores": os.cpu_count(),
        "usable_cores": available_cores(),
        "memory_gb": memory_gb(),
        "platform": platform.platform(),
        "torch_threads": torch.get_num_threads(),
        "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
        "load_average": load_average(),
    }
    if device is not None:
        from zoo.device import device_info

        info["device"] = device_info(device)
    return info


def versions() -> dict[str, str]:
    """recall-zoo, Python, CUDA and the installed libraries (read from metadata, nothing imported)."""
    out = {"recall-zoo": __version__, "python": platform.python_version()}
    for name in LIBRARIES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    try:
        import torch

        if torch.version.cuda:
            out["cuda"] = str(torch.version.cuda)
    except ImportError:  # pragma: no cover
        pass
    return out
