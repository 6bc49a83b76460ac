"""Output folders recall-zoo writes (``zoo run --out``, ``zoo bench --out``): what it owns and may replace.

A run folder holds only recall-zoo's own entries (:data:`RUN_ENTRIES`); a bench folder is one with a
``bench.json``. Anything else a user points ``--out`` at is not ours: it is refused before any work
starts, and with ``force`` the run's entries are written into it one by one, so that nothing but a
previous run's entries is ever replaced. An existing file is always refused.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from zoo.errors import UsageError

#: the entries of a run folder (everything recall-zoo writes there)
RUN_ENTRIES = frozenset(
    {"run.json", "model", "index", "checkpoints", "config.yaml", "users", "items", "export"}
)
RUN_MARKER = "run.json"
BENCH_MARKER = "bench.json"


def _is_run_report(path: Path) -> bool:
    """True when ``path`` is a ``run.json`` written by recall-zoo (a JSON object with its keys)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and {"schema", "config", "metrics"} <= data.keys()


def _is_ours(name: str, ours: frozenset[str]) -> bool:
    """An entry recall-zoo writes, or a hidden leftover of writing one (``.model.abc123``)."""
    return name in ours or any(name.startswith(f".{entry}.") for entry in ours)


def check_parent_writable(target: Path, option: str) -> None:
    """Raise UsageError unless ``target`` can be created: its nearest existing ancestor must be a
    writable folder."""
    parent = target.parent
    while not parent.exists():
        if parent.is_symlink():
            raise UsageError(f"{option} {target}: {parent} is a broken link; choose another {option}")
        parent = parent.parent
    if not parent.is_dir():
        raise UsageError(f"{option} {target}: {parent} is a file, not a folder; choose another {option}")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UsageError(f"{option} {target}: folder {parent} is not writable; choose another {option}")


def _check_location(target: Path, option: str, *, replaced: bool) -> bool:
    """True when ``target`` is an existing, writable folder, False when it does not exist but can be
    created; UsageError for a file or a place that cannot be written (``replaced``: the parent too)."""
    if target.exists() and not target.is_dir():
        raise UsageError(f"{option} {target} is a file; give a folder path (nothing was written)")
    if not target.exists():
        check_parent_writable(target, option)
        return False
    writable = os.access(target, os.W_OK | os.X_OK)
    if not writable or (replaced and not os.access(target.parent, os.W_OK | os.X_OK)):
        raise UsageError(f"{option} {target}: folder is not writable; choose another {option}")
    return True


def check_run_folder(target: Path, *, force: bool = False, option: str = "--out") -> bool:
    """Validate a run's output folder before any work starts.

    Returns True when the run must be written *into* an existing folder entry by entry (a folder
    with other files, accepted with ``force``), False when the folder is missing, empty or a previous
    run that the new run replaces whole. Raises UsageError for an existing file, a folder that is
    not a run (without ``force``) or a location that cannot be written.
    """
    target = Path(target)
    if not _check_location(target, option, replaced=True):
        return False
    entries = sorted(e.name for e in target.iterdir())
    if not entries:
        return False
    is_run = _is_run_report(target / RUN_MARKER)
    foreign = [n for n in entries if not _is_ours(n, RUN_ENTRIES)] if is_run else entries
    if not foreign:
        return False
    if not force:
        shown = ", ".join(repr(n) for n in foreign[:3]) + (", ..." if len(foreign) > 3 else "")
        raise UsageError(
            f"{option} {target} holds files recall-zoo did not write ({shown}); choose a new {option} folder,"
            " or pass --force to write the run's files into it (nothing else there is touched)"
        )
    return True


def check_output_folder(
    target: Path, *, kind: str, is_ours: Callable[[Path], bool], option: str = "--out", replaced: bool = False
) -> None:
    """Validate the output folder of a command that owns its whole folder (a bench, an export): it must
    be missing, empty, or one recall-zoo wrote (``is_ours(target)``); anything else is refused before
    any work, as is a file or a place that cannot be written. ``replaced``: the command replaces the
    folder whole, so its parent must be writable too."""
    target = Path(target)
    if not _check_location(target, option, replaced=replaced):
        return
    entries = sorted(e.name for e in target.iterdir())
    if entries and not is_ours(target):
        shown = ", ".join(repr(n) for n in entries[:3]) + (", ..." if len(entries) > 3 else "")
        raise UsageError(
            f"{option} {target} is a folder that is not a recall-zoo {kind} (it holds {shown}); choose a new"
            f" {option} folder (nothing was written)"
        )


def check_bench_folder(target: Path, *, option: str = "--out") -> None:
    """``zoo bench``'s output folder: missing, empty, or a previous bench (``bench.json``). A bench
    writes into its folder as it goes and resumes from it, so any other folder is refused."""
    check_output_folder(
        target, kind="bench", is_ours=lambda folder: (folder / BENCH_MARKER).is_file(), option=option
    )


@contextmanager
def writer_lock(target: Path, *, option: str = "--out") -> Iterator[None]:
    """Hold the advisory lock of an output folder while writing it: a second writer of the same folder
    gets a one-line UsageError at once instead of racing. Leftovers of an earlier interrupted commit
    are cleaned up (or a complete backup put back) once the lock is held.

    The lock is a hidden sibling file ``.NAME.lock``, there only while the lock is held.
    """
    from zoo.io import clean_leftovers

    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    path = target.with_name(f".{target.name}.lock")
    try:
        fd = _lock_file(path)
    except BlockingIOError:
        raise UsageError(
            f"{option} {target}: another recall-zoo process is writing this folder; wait for it to finish"
            f" or choose another {option}"
        ) from None
    except OSError as exc:
        raise UsageError(
            f"{option} {target}: cannot lock the folder ({exc.strerror}); choose another {option}"
        ) from None
    try:
        clean_leftovers(target)
        yield
    finally:
        path.unlink(missing_ok=True)  # while still locked: a waiter re-checks the path after locking
        os.close(fd)


def _lock_file(path: Path) -> int:
    """An open descriptor of ``path`` holding an exclusive ``flock``; BlockingIOError when another
    process holds it. The lock counts only if ``path`` still names the locked file afterwards (the
    holder deletes it when done), else it is taken again on the new file."""
    import fcntl

    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BaseException:
            os.close(fd)
            raise
        try:
            if os.stat(path).st_ino == os.fstat(fd).st_ino:
                return fd
        except FileNotFoundError:
            pass
        os.close(fd)  # the holder deleted (and maybe someone recreated) the file: lock the current one


def commit_entries(tmp: Path, target: Path) -> None:
    """Move every entry of the finished ``tmp`` folder into the existing ``target`` folder, replacing
    only entries of the same name (a previous run's), then remove ``tmp``."""
    for entry in sorted(Path(tmp).iterdir()):
        destination = Path(target) / entry.name
        backup = None
        if destination.exists() or destination.is_symlink():
            backup = destination.with_name(f".{entry.name}.old-{os.getpid()}")
            if backup.is_dir() and not backup.is_symlink():
                shutil.rmtree(backup)
            elif backup.exists() or backup.is_symlink():
                backup.unlink()
            os.replace(destination, backup)
        os.replace(entry, destination)
        if backup is not None:
            if backup.is_dir() and not backup.is_symlink():
                shutil.rmtree(backup, ignore_errors=True)
            else:
                backup.unlink(missing_ok=True)
    shutil.rmtree(tmp, ignore_errors=True)
