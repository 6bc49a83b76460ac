"""Atomic file output: a crash or a bad input never leaves a half-written file or folder behind."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any


def atomic_dir(target: Path) -> Path:
    """Create a fresh temporary sibling folder of ``target``; finish with :func:`commit_dir`."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))


def commit_dir(tmp: Path, target: Path) -> None:
    """Replace ``target`` by the finished ``tmp`` folder (the old content is removed only after success)."""
    target = Path(target)
    backup = None
    if target.exists():
        backup = target.with_name(f".{target.name}.old-{os.getpid()}")
        if backup.exists():
            shutil.rmtree(backup)
        os.replace(target, backup)
    os.replace(tmp, target)
    if backup is not None:
        shutil.rmtree(backup, ignore_errors=True)


def atomic_write_bytes(path: Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file in the same folder, then rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: Path, data: Any) -> Path:
    return atomic_write_text(path, json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_json_header(path: Path, *, format_name: str, format_version: int, what: str) -> dict[str, Any]:
    """Read a recall-zoo JSON header (``model.json``, ``index.json``) and check its format and version.

    Raises ModelFileError with a one-line reason when the file is missing, unreadable, of another
    format, or written by a newer recall-zoo.
    """
    from zoo.errors import ModelFileError

    path = Path(path)
    try:
        header = json.loads(path.read_text())
    except FileNotFoundError:
        raise ModelFileError(f"{path}: not found; is {path.parent} {what} saved by recall-zoo?") from None
    except (OSError, ValueError) as exc:
        raise ModelFileError(f"{path}: unreadable ({exc}); save it again") from None
    if not isinstance(header, dict) or header.get("format") != format_name:
        raise ModelFileError(f"{path}: not {what} saved by recall-zoo")
    try:
        version = int(header.get("format_version", 0))
    except (TypeError, ValueError):
        raise ModelFileError(f"{path}: format_version {header.get('format_version')!r} is not a number") from None
    if version > format_version:
        raise ModelFileError(f"{path}: format {version} is newer than this recall-zoo reads; upgrade recall-zoo")
    return header
