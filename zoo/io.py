"""Atomic file output: a crash or a bad input never leaves a half-written file or folder behind."""

from __future__ import annotations

import ctypes
import errno
import hashlib
import json
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

#: temporary and backup siblings of a committed folder: ``.NAME.tmp-XXXXXXXX`` and ``.NAME.old-PID``
_TMP_TAG, _OLD_TAG = "tmp-", "old-"


def _umask() -> int:
    """The process's file-mode creation mask (read without changing it where Linux allows)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_dir(target: Path) -> Path:
    """Create a fresh temporary sibling folder of ``target``; finish with :func:`commit_dir`.

    The folder gets the permissions of an ordinary ``mkdir`` (the umask's), not the private 0700 of a
    temporary folder, so teammates and services can read what is committed."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.{_TMP_TAG}", dir=target.parent))
    tmp.chmod(0o777 & ~_umask())
    return tmp


def _exchange(a: Path, b: Path) -> bool:
    """Swap two existing paths in one atomic step (Linux ``renameat2(RENAME_EXCHANGE)``); False where
    the system cannot (another OS, an old kernel or C library, a file system without it)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    renameat2.argtypes = (ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint)
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
        return False
    raise OSError(code, os.strerror(code), str(b))


def commit_dir(tmp: Path, target: Path) -> None:
    """Replace ``target`` by the finished ``tmp`` folder so that, whenever the process dies, ``target``
    holds either the old or the new complete folder.

    Where the system can swap two paths atomically, it does, then deletes the old folder (now at the
    temporary name; a kill during that delete leaves a leftover that :func:`clean_leftovers`
    removes). Elsewhere the old folder is renamed to a backup first; a kill between the two renames
    leaves the backup, which :func:`clean_leftovers` puts back.
    """
    tmp, target = Path(tmp), Path(target)
    if not target.exists():
        os.replace(tmp, target)
        return
    if _exchange(tmp, target):
        shutil.rmtree(tmp, ignore_errors=True)
        return
    backup = target.with_name(f".{target.name}.{_OLD_TAG}{os.getpid()}")
    if backup.exists():
        shutil.rmtree(backup)
    os.replace(target, backup)
    os.replace(tmp, target)
    shutil.rmtree(backup, ignore_errors=True)


def clean_leftovers(target: Path) -> list[Path]:
    """Remove what an interrupted :func:`commit_dir` of ``target`` left beside it: temporary folders,
    and backups, except that a backup is put back when ``target`` itself is missing (a kill between
    the two renames). Call it only while holding the folder's writer lock. Returns what it removed."""
    target = Path(target)
    if not target.parent.is_dir():
        return []
    pattern = re.compile(rf"^\.{re.escape(target.name)}\.({_TMP_TAG}[A-Za-z0-9_]+|{_OLD_TAG}\d+)$")
    found = sorted(
        (p for p in target.parent.iterdir() if pattern.match(p.name)), key=lambda p: p.stat().st_mtime
    )
    backups = [p for p in found if p.name.split(".")[-1].startswith(_OLD_TAG)]
    if not target.exists() and backups:
        os.replace(backups[-1], target)  # the newest backup is the last complete folder
        found.remove(backups[-1])
    for leftover in found:
        if leftover.is_dir() and not leftover.is_symlink():
            shutil.rmtree(leftover, ignore_errors=True)
        else:
            leftover.unlink(missing_ok=True)
    return found


def atomic_write_bytes(path: Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file in the same folder, then rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # an ordinary file's permissions, not mkstemp's private 0600
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


def file_records(folder: Path, names: list[str] | None = None) -> dict[str, dict[str, Any]]:
    """Size and sha256 of the files in ``folder`` (all regular files, or ``names``): what a header
    records so that :func:`verify_files` can reject a truncated or corrupted copy later."""
    folder = Path(folder)
    paths = (
        [folder / n for n in names]
        if names is not None
        else sorted(p for p in folder.iterdir() if p.is_file())
    )
    return {p.name: {"bytes": p.stat().st_size, "sha256": sha256_file(p)} for p in paths}


def verify_files(folder: Path, files: Any, *, header: Path, what: str) -> None:
    """Check every file a header lists (size, then sha256); a ModelFileError names the first bad file.

    ``what`` says what to do about it (e.g. "rebuild the index", "save the model again")."""
    from zoo.errors import ModelFileError

    if not isinstance(files, dict) or not files:
        raise ModelFileError(f"{header}: lists no files; {what}")
    for name, info in files.items():
        path = Path(folder) / str(name)
        if not isinstance(info, dict) or Path(str(name)).name != str(name):
            raise ModelFileError(f"{header}: malformed file entry {name!r}; {what}")
        if not path.is_file():
            raise ModelFileError(f"{path}: missing; the folder is incomplete, {what}")
        if path.stat().st_size != info.get("bytes"):
            raise ModelFileError(
                f"{path}: {path.stat().st_size} bytes, {header.name} says {info.get('bytes')}; the file is"
                f" truncated or corrupted, {what}"
            )
        if sha256_file(path) != info.get("sha256"):
            raise ModelFileError(f"{path}: checksum mismatch; the file is corrupted, {what}")


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
        raise ModelFileError(
            f"{path}: format_version {header.get('format_version')!r} is not a number"
        ) from None
    if version > format_version:
        raise ModelFileError(
            f"{path}: format {version} is newer than this recall-zoo reads; upgrade recall-zoo"
        )
    return header


def read_settings_file(path: Path, option: str) -> Any:
    """A settings file (``zoo run --config``, ``zoo bench --grid``) as plain data: TOML, YAML (``.yaml``
    / ``.yml``) or JSON by its suffix; a missing or malformed file is a one-line UsageError naming the
    option and the file."""
    from zoo.errors import UsageError

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"{option} {path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"{option} {path}: unreadable ({exc})") from None
    suffix = path.suffix.lower()
    if suffix in (".yaml", ".yml"):
        import yaml

        try:
            return yaml.safe_load(text) or {}
        except yaml.YAMLError as exc:
            raise UsageError(f"{option} {path}: invalid YAML ({' '.join(str(exc).split())})") from None
    if suffix == ".json":
        try:
            return json.loads(text)
        except ValueError as exc:
            raise UsageError(f"{option} {path}: invalid JSON ({exc})") from None
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        import tomli as tomllib
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{option} {path}: invalid TOML ({exc})") from None
