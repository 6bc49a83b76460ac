"""Where a folder-based dataset's files are: ``--data PATH``, ``ZOO_DATA_DIR`` or the download cache.

Nothing else is searched: data is never found by walking up the directory tree.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from zoo.errors import DataError

if TYPE_CHECKING:
    from zoo.specs import DatasetSpec


def cache_dir() -> Path:
    """Where ``zoo data download`` puts archives: ``$ZOO_CACHE_DIR`` or ``~/.cache/recall-zoo``."""
    env = os.environ.get("ZOO_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "recall-zoo"


def resolve_data_path(spec: DatasetSpec, path: str | os.PathLike[str] | None) -> Path:
    """The folder (or file) a dataset reads, or a one-line :class:`DataError` saying how to provide it."""
    if path is not None:
        p = Path(path).expanduser()
        if not p.exists():
            raise DataError(f"--data {p}: no such file or folder (dataset '{spec.name}')")
        return p
    candidates: list[Path] = []
    env = os.environ.get("ZOO_DATA_DIR")
    if env:
        root = Path(env).expanduser()
        if spec.data_dir_name:
            candidates.append(root / spec.data_dir_name)
        if spec.data_dir_name is None or root.name == spec.data_dir_name:
            candidates.append(root)
    if spec.data_dir_name:
        candidates.append(cache_dir() / spec.data_dir_name)
    for candidate in candidates:
        if candidate.is_dir():
            return candidate
    how = ["pass --data PATH"]
    if spec.data_dir_name:
        how.append(f"set ZOO_DATA_DIR to a folder holding {spec.data_dir_name}/")
    else:
        how.append("set ZOO_DATA_DIR")
    if spec.download:
        how.append(f"run 'zoo data download {spec.download}'")
    raise DataError(f"dataset '{spec.name}' needs its files: " + ", or ".join(how))


def env_data_dir() -> Path | None:
    """The folder ``$ZOO_DATA_DIR`` names, or None when it is unset or not a folder.

    Tests and benchmarks that need real data read it from here and skip with a clear reason when it
    is None; nothing looks for data anywhere else (no search up the directory tree).
    """
    env = os.environ.get("ZOO_DATA_DIR")
    if env and Path(env).expanduser().is_dir():
        return Path(env).expanduser()
    return None
