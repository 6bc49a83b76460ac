"""What the numbers depend on: the machine, the load on it, and library versions (no heavy imports).

The one owner of this record: ``zoo run`` (``run.json``), ``zoo bench`` (``bench.json``), the quality
benchmark and ``zoo doctor`` all take it from here.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
from pathlib import Path
from typing import Any

from zoo._version import __version__
from zoo.retrieval.threads import available_cores

#: distributions the core depends on, recorded with every result (backends add their own through ``extra``)
LIBRARIES = ("torch", "numpy", "pandas", "pluggy", "safetensors")


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


def versions(extra: dict[str, str] | None = None) -> dict[str, str]:
    """recall-zoo, Python, the platform, CUDA and the core libraries (read from metadata), plus
    ``extra`` (e.g. a retriever's backend version under its name)."""
    out = {"recall-zoo": __version__, "python": platform.python_version(), "platform": platform.platform()}
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
    out.update({name: version for name, version in (extra or {}).items() if version})
    return out


def summary() -> dict[str, Any]:
    """Versions, devices and cores (what ``zoo doctor`` prints first)."""
    from zoo.device import available_devices

    return {"versions": versions(), "devices": available_devices(), "cpu_count": os.cpu_count()}
