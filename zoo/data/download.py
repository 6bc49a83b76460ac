"""Fetch, verify and safely extract the dataset archives that dataset plugins declare.

A dataset plugin ships its archive in its spec (``DatasetSpec(archive=Archive(url, folder,
checksum, size))``, see :mod:`zoo.data.archive`); ``download("movielens-1m")`` finds it through the
registry, streams it to a temporary file next to the destination, checks its checksum, validates
every archive member before writing anything (no absolute paths, no ``..``, no links or devices,
nothing that resolves outside the target), extracts into a temporary folder and only then renames
the dataset folder into place. A failure at any step leaves nothing behind: never a half-extracted
dataset.

The archives can be fetched from a mirror with ``ZOO_DOWNLOAD_BASE_URL`` (the archives' file names
are appended to it); the checksums still apply.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import shutil
import stat
import tarfile
import tempfile
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path, PurePosixPath
from typing import IO, Any

from zoo.data.archive import BASE_URL_ENV, Archive, parse_checksum
from zoo.errors import DownloadError, UnknownNameError

__all__ = [
    "BASE_URL_ENV", "Archive", "archives", "download", "extract_archive", "format_size", "get_archive",
    "parse_checksum",
]  # fmt: skip

CHUNK_BYTES = 1 << 20
TIMEOUT_S = 60.0

Progress = Callable[[int, "int | None"], None]
"""``progress(bytes_done, bytes_total)``; ``bytes_total`` is None when the size is unknown."""


def archives(registry: Any = None) -> dict[str, Archive]:
    """The archives the registered dataset plugins ship, by name, in registration order.

    Args:
        registry: the registry to read; defaults to :func:`zoo.registry.default_registry`.
    """
    if registry is None:
        from zoo.registry import default_registry

        registry = default_registry()
    found: dict[str, Archive] = {}
    for spec in registry.specs("dataset"):
        if spec.archive is not None:
            found.setdefault(spec.archive.name, spec.archive)
    return found


def get_archive(name: str, registry: Any = None) -> Archive:
    """The archive called ``name`` (its folder name, e.g. ``ml-1m``, works too)."""
    table = archives(registry)
    if name in table:
        return table[name]
    for archive in table.values():
        if name == archive.folder:
            return archive
    raise UnknownNameError(
        "downloadable dataset",
        name,
        table,
        hint="Other datasets: download them yourself and pass --data PATH.",
    )


def download(
    name: str | Archive,
    dest: str | os.PathLike[str] | None = None,
    *,
    force: bool = False,
    url: str | None = None,
    checksum: str | None = None,
    progress: Progress | None = None,
    registry: Any = None,
) -> Path:
    """Download, verify and extract dataset ``name``; return its folder (``dest/<folder>``).

    Args:
        name: a name :func:`archives` lists (``movielens-1m``...), its folder name (``ml-1m``), or
            an :class:`Archive`.
        dest: the folder to extract into; defaults to :func:`zoo.data.locate.cache_dir`.
        force: download and replace the folder even when it is already there.
        url: fetch from this URL instead of the base URL (a mirror or a local copy).
        checksum: ``"sha256:<hex>"``, ``"md5:<hex>"`` or a bare hex digest (the algorithm is
            told by its length) that replaces the table's checksum.
        progress: called as ``progress(bytes_done, bytes_total)`` while downloading.
        registry: where ``name`` is looked up; defaults to :func:`zoo.registry.default_registry`.

    Raises:
        UnknownNameError: ``name`` is not a downloadable dataset.
        DownloadError: the fetch failed, the checksum did not match or the archive is unsafe.
    """
    archive = name if isinstance(name, Archive) else get_archive(name, registry)
    if dest is None:
        from zoo.data.locate import cache_dir

        dest = cache_dir()
    root = Path(dest).expanduser()
    target = root / archive.folder
    if target.is_dir() and not force:
        return target
    algorithm, expected = parse_checksum(checksum or archive.checksum)
    source = url or archive.download_url
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DownloadError(
            f"cannot create {root}: {exc.strerror or exc}; pass a writable folder with --dir"
        ) from exc
    with _temporary_file(root) as tmp_archive:
        digest = _fetch(source, tmp_archive, algorithm, progress, archive.size)
        if digest != expected:
            raise DownloadError(
                f"{source}: checksum mismatch ({algorithm} expected {expected}, got {digest}); the download"
                " is corrupt or the archive changed upstream: retry, or download it yourself and pass"
                " --data PATH"
            )
        with _temporary_dir(root) as staging:
            extract_archive(tmp_archive, staging, source=source)
            _install(staging / archive.folder, target, source=source)
    return target


# --------------------------------------------------------------------------------------------
# Fetching
# --------------------------------------------------------------------------------------------
def _fetch(url: str, out: Path, algorithm: str, progress: Progress | None, size_hint: int | None) -> str:
    """Stream ``url`` into ``out``, returning its hex digest. Network failures -> DownloadError."""
    h = hashlib.new(algorithm)
    hint = "check the connection or the URL, or download the archive yourself, unzip it and pass --data PATH"
    try:
        fh = open(out, "wb")  # noqa: SIM115 - closed below; opened first so that OSError below is the network's
    except OSError as exc:
        raise DownloadError(
            f"cannot write {out}: {exc.strerror or exc}; pass a writable folder with --dir"
        ) from exc
    try:
        request = urllib.request.Request(url, headers={"User-Agent": "recall-zoo"})
        with fh, urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
            total = _content_length(response) or size_hint
            done = 0
            if progress:
                progress(done, total)
            for chunk in iter(lambda: response.read(CHUNK_BYTES), b""):
                _write_chunk(fh, chunk, out)
                h.update(chunk)
                done += len(chunk)
                if progress:
                    progress(done, total)
    except urllib.error.HTTPError as exc:
        raise DownloadError(f"{url}: HTTP {exc.code} {exc.reason}; {hint}") from exc
    except urllib.error.URLError as exc:
        raise DownloadError(f"{url}: {exc.reason}; {hint}") from exc
    except (http.client.HTTPException, OSError) as exc:  # timeouts, resets, TLS errors while reading
        raise DownloadError(f"{url}: {type(exc).__name__}: {exc}; {hint}") from exc
    except ValueError as exc:  # urllib: "unknown url type"
        raise DownloadError(f"{url}: {exc}; give an http(s):// or file:// URL") from exc
    return h.hexdigest()


def _write_chunk(fh: IO[bytes], chunk: bytes, out: Path) -> None:
    try:
        fh.write(chunk)
    except OSError as exc:
        raise DownloadError(
            f"cannot write {out}: {exc.strerror or exc}; free some space or pass another --dir"
        ) from exc


def _content_length(response: IO[bytes]) -> int | None:
    value = getattr(response, "headers", {}).get("Content-Length")
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


@contextmanager
def _temporary_file(folder: Path) -> Iterator[Path]:
    fd, name = tempfile.mkstemp(prefix=".zoo-download-", suffix=".part", dir=folder)
    os.close(fd)
    path = Path(name)
    try:
        yield path
    finally:
        with suppress(FileNotFoundError):
            path.unlink()


@contextmanager
def _temporary_dir(folder: Path) -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix=".zoo-extract-", dir=folder))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


# --------------------------------------------------------------------------------------------
# Safe extraction
# --------------------------------------------------------------------------------------------
def _safe_relative(name: str, source: str) -> PurePosixPath | None:
    """The member path relative to the target, or a DownloadError if it could escape it.

    Returns None for entries that only name the root (``./``).
    """
    unified = name.replace("\\", "/")
    pure = PurePosixPath(unified)
    drive = len(unified) > 1 and unified[1] == ":"
    if unified.startswith("/") or drive:
        raise DownloadError(
            f"{source}: unsafe archive member {name!r} (absolute path); nothing was extracted"
        )
    parts = [p for p in pure.parts if p not in ("", ".")]
    if ".." in parts:
        raise DownloadError(
            f"{source}: unsafe archive member {name!r} ('..' in the path); nothing was extracted"
        )
    return PurePosixPath(*parts) if parts else None


def _check_inside(root: Path, rel: PurePosixPath, name: str, source: str) -> Path:
    out = (root / rel).resolve()
    if not out.is_relative_to(root.resolve()):
        raise DownloadError(
            f"{source}: unsafe archive member {name!r} (resolves outside the target); nothing was extracted"
        )
    return out


def _zip_plan(zf: zipfile.ZipFile, root: Path, source: str) -> list[tuple[zipfile.ZipInfo, Path]]:
    plan = []
    for info in zf.infolist():
        kind = stat.S_IFMT(info.external_attr >> 16)
        if kind not in (0, stat.S_IFREG, stat.S_IFDIR):
            what = "symbolic link" if kind == stat.S_IFLNK else "special file"
            raise DownloadError(
                f"{source}: unsafe archive member {info.filename!r} ({what}); nothing was extracted"
            )
        rel = _safe_relative(info.filename, source)
        if rel is not None:
            plan.append((info, _check_inside(root, rel, info.filename, source)))
    return plan


def _tar_plan(tf: tarfile.TarFile, root: Path, source: str) -> list[tuple[tarfile.TarInfo, Path]]:
    plan = []
    for info in tf.getmembers():
        if not (info.isfile() or info.isdir()):
            what = "symbolic link" if info.issym() else "hard link" if info.islnk() else "special file"
            raise DownloadError(
                f"{source}: unsafe archive member {info.name!r} ({what}); nothing was extracted"
            )
        rel = _safe_relative(info.name, source)
        if rel is not None:
            plan.append((info, _check_inside(root, rel, info.name, source)))
    return plan


def _write_member(stream: IO[bytes], out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "wb") as fh:
        shutil.copyfileobj(stream, fh, CHUNK_BYTES)


def extract_archive(
    archive: str | os.PathLike[str], target: str | os.PathLike[str], *, source: str = ""
) -> None:
    """Extract a zip or tar archive into ``target`` after validating every member.

    Absolute paths, ``..`` components, symbolic and hard links, devices and anything resolving
    outside ``target`` make the whole archive rejected before a single file is written. Only
    regular files and folders are created (permissions and ownership are not restored).

    Raises:
        DownloadError: the archive is unsafe, corrupt or not a zip/tar file.
    """
    path, root = Path(archive), Path(target)
    label = source or str(path)
    root.mkdir(parents=True, exist_ok=True)
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as zf:
                for info, out in _zip_plan(zf, root, label):
                    if info.is_dir():
                        out.mkdir(parents=True, exist_ok=True)
                    else:
                        with zf.open(info) as stream:
                            _write_member(stream, out)
        elif tarfile.is_tarfile(path):
            with tarfile.open(path) as tf:
                for info, out in _tar_plan(tf, root, label):
                    if info.isdir():
                        out.mkdir(parents=True, exist_ok=True)
                    else:
                        stream = tf.extractfile(info)
                        assert stream is not None  # regular file
                        with stream:
                            _write_member(stream, out)
        else:
            raise DownloadError(f"{label}: not a zip or tar archive; check the URL")
    except (zipfile.BadZipFile, tarfile.TarError, EOFError) as exc:
        raise DownloadError(f"{label}: corrupt archive ({exc}); delete it and download again") from exc
    except OSError as exc:  # e.g. a file and a folder of the same name, or a full disk
        raise DownloadError(f"{label}: could not extract into {root}: {exc.strerror or exc}") from exc


def _install(extracted: Path, target: Path, *, source: str) -> None:
    """Move the extracted dataset folder into place, replacing ``target`` only once it is complete."""
    if not extracted.is_dir():
        found = sorted(p.name for p in extracted.parent.iterdir())
        raise DownloadError(
            f"{source}: the archive has no top-level folder '{extracted.name}'"
            f" (found: {', '.join(found) or 'nothing'})"
        )
    backup = None
    if target.exists():
        backup = target.with_name(f".{target.name}.old-{os.getpid()}")
        target.rename(backup)
    try:
        extracted.rename(target)
    except OSError as exc:
        if backup is not None:
            backup.rename(target)
        raise DownloadError(f"cannot move the dataset into {target}: {exc.strerror or exc}") from exc
    if backup is not None:
        shutil.rmtree(backup, ignore_errors=True)


def format_size(size: int | None) -> str:
    """``978202`` -> ``"955.3 KiB"``; None -> ``"?"``."""
    if size is None:
        return "?"
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"  # pragma: no cover - loop always returns
