"""Benchmarks (pytest-benchmark): never part of the default test run (``testpaths = ["tests"]``).

Run: ``python -m pytest benchmarks/ --benchmark-json=bench.json``. Benchmarks that need MovieLens read
``ZOO_DATA_DIR`` (a folder holding ``ml-1m/``) and skip with a reason when it does not hold the data.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path

import pytest


def pytest_benchmark_update_machine_info(config, machine_info):
    """Record what the numbers depend on: CPU, threads, GPU, torch and CUDA versions."""
    import torch

    machine_info["torch"] = torch.__version__
    machine_info["torch_threads"] = torch.get_num_threads()
    machine_info["cpu_count"] = os.cpu_count()
    machine_info["cuda"] = torch.version.cuda
    machine_info["gpu"] = torch.cuda.get_device_name() if torch.cuda.is_available() else None
    machine_info["platform"] = platform.platform()


@pytest.fixture(scope="session")
def ml1m_dir() -> Path:
    from zoo.data.locate import env_data_dir

    root = env_data_dir()
    folder = root / "ml-1m" if root is not None else None
    if folder is None or not (folder / "ratings.dat").is_file():
        pytest.skip("MovieLens-1M not found: set ZOO_DATA_DIR to a folder holding ml-1m/")
    return folder


@pytest.fixture(scope="session")
def device():
    from zoo.device import resolve_device

    return resolve_device(os.environ.get("ZOO_BENCH_DEVICE", "cpu"))
