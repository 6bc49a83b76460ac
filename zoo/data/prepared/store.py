"""Build a prepared-data folder once, reuse it while the input and the protocol stay the same.

:func:`prepared_match_data` is what :func:`zoo.pipeline.prepare` calls when a run has a
``prepared_dir``. The folder for a run is ``prepared_dir/<dataset>-<protocol>-<key>``, where the key
covers the dataset, its path and options and every protocol setting, so runs under other protocols
get folders of their own. A folder is reused when its manifest's key, input fingerprint and
recall-zoo version all match; otherwise it is rebuilt in a temporary sibling and swapped in
atomically (``zoo.io.commit_dir``), under the folder's writer lock. A folder that recall-zoo did not
write is never replaced.

The log is streamed (:mod:`~zoo.data.prepared.stream`) when the dataset's loader offers a stream
reader (a ``zoo_stream`` attribute, as the ``csv`` dataset's does) that accepts the input; any other
dataset is loaded in memory by its loader once, and later runs read the folder.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zoo.data.prepared.folder import (
    FINGERPRINT_METHOD,
    folder_bytes,
    folder_name,
    input_fingerprint,
    load_folder,
    read_manifest,
    write_folder,
)
from zoo.errors import UsageError

#: the attribute of a dataset loader naming its stream reader: ``reader(path, advance=..., **options)``
#: returns an :class:`~zoo.data.prepared.stream.EncodedLog`, or None when it cannot stream that input
STREAM_ATTRIBUTE = "zoo_stream"
#: seconds between two looks at a folder another process is building
WAIT_S = 1.0


@dataclass
class PreparedData:
    """The encoded data of a run read from its prepared-data folder, and how it got there."""

    data: Any  # zoo.data.match.MatchData over memory-mapped arrays
    folder: Path
    reused: bool
    streamed: bool
    dataset_stats: dict[str, Any]
    warnings: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)


def _normalised(value: Any) -> Any:
    """``value`` as it reads back from JSON (tuples become lists, paths strings)."""
    return json.loads(json.dumps(value, default=str))


def prepared_match_data(
    prepared_dir: str | Path,
    *,
    registry: Any,
    dataset_spec: Any,
    data_path: Any,
    options: dict[str, Any],
    protocol: Any,
    progress: Any,
) -> PreparedData:
    """The run's MatchData from its folder under ``prepared_dir``: reused when the input fingerprint
    and protocol match, built (streamed where the dataset allows) otherwise.

    Raises:
        UsageError: ``prepared_dir`` is a file or cannot be written; an unknown dataset option.
        DataError: the folder is not one recall-zoo wrote, or is damaged (the message says what to do).
    """
    import zoo

    root = Path(prepared_dir).expanduser()
    if root.exists() and not root.is_dir():
        raise UsageError(f"--prepared-dir {root} is a file; give a folder path (nothing was written)")
    unknown = sorted(set(options) - set(dataset_spec.options))
    if unknown:
        raise UsageError(
            f"dataset '{dataset_spec.name}' has no option {', '.join(repr(u) for u in unknown)};"
            f" its options are {', '.join(sorted(dataset_spec.options)) or 'none'}"
        )
    merged = {**dataset_spec.options, **options}
    path = Path(data_path).expanduser().resolve() if data_path is not None else None
    key = _normalised(
        {
            "dataset": dataset_spec.qualified_name,
            "data_path": str(path) if path is not None else None,
            "options": merged,
            "protocol": dataclasses.asdict(protocol),
        }
    )
    folder = root / folder_name(dataset_spec.name, protocol.name, key)
    expected = {"key": key, "input": input_fingerprint(path), "recall_zoo": zoo.__version__}
    started = time.perf_counter()
    while True:
        reason = _stale_reason(folder, expected)
        if reason is None:
            return _reuse(folder, started, progress)
        built = _build_locked(
            folder, reason, expected, registry, dataset_spec, path, merged, protocol, progress
        )
        if built is not None:
            return built
        progress.stage("prepare", f"waiting for another process building {folder}")
        time.sleep(WAIT_S)


def _stale_reason(folder: Path, expected: dict[str, Any]) -> str | None:
    """Why ``folder`` cannot be reused (None: it can). A foreign or damaged folder raises DataError."""
    if not folder.exists():
        return "not built yet"
    document = read_manifest(folder)
    if document.get("key") != expected["key"]:
        return "its key differs"
    if document.get("input", {}).get("files") != expected["input"]["files"]:
        return "the input changed (size, modification time or first/last MiB)"
    if document.get("recall_zoo") != expected["recall_zoo"]:
        return f"it was built by recall-zoo {document.get('recall_zoo')}"
    return None


def _reuse(folder: Path, started: float, progress: Any) -> PreparedData:
    document = read_manifest(folder)
    data = load_folder(folder, document)
    progress.stage("prepare", f"reusing {folder} (same input and protocol)")
    return PreparedData(
        data=data,
        folder=folder,
        reused=True,
        streamed=bool(document.get("streamed")),
        dataset_stats=dict(document.get("dataset_stats") or {}),
        warnings=list(document.get("warnings") or []),
        timings={"prepare_s": time.perf_counter() - started},
    )


def _build_locked(
    folder: Path,
    reason: str,
    expected: dict[str, Any],
    registry: Any,
    dataset_spec: Any,
    path: Path | None,
    options: dict[str, Any],
    protocol: Any,
    progress: Any,
) -> PreparedData | None:
    """Build and commit ``folder`` under its writer lock; None when another process holds the lock."""
    from zoo.folders import writer_lock

    try:
        lock = writer_lock(folder, option="--prepared-dir")
        lock.__enter__()
    except UsageError as exc:
        if "another recall-zoo process" in str(exc):
            return None
        raise
    try:
        if _stale_reason(folder, expected) is None:  # built by another process meanwhile
            return _reuse(folder, time.perf_counter(), progress)
        return _build(folder, reason, expected, registry, dataset_spec, path, options, protocol, progress)
    finally:
        lock.__exit__(None, None, None)


def _build(
    folder: Path,
    reason: str,
    expected: dict[str, Any],
    registry: Any,
    dataset_spec: Any,
    path: Path | None,
    options: dict[str, Any],
    protocol: Any,
    progress: Any,
) -> PreparedData:
    from zoo.data.match import MatchData
    from zoo.data.prepared.build import build_match_data
    from zoo.data.prepared.stream import stream_size
    from zoo.io import atomic_dir, commit_dir

    if folder.exists():
        progress.stage("prepare", f"rebuilding {folder}: {reason}")
    timings: dict[str, float] = {}
    stream = getattr(dataset_spec.load(), STREAM_ATTRIBUTE, None)
    log = None
    started = time.perf_counter()
    progress.stage("load", f"{dataset_spec.name} (streamed into {folder})" if stream else dataset_spec.name)
    if stream is not None and path is not None and path.is_file():
        with progress.task(f"read {path.name}", stream_size(path)) as advance:
            log = stream(path, advance=advance, **options)
    streamed = log is not None
    if log is not None:
        stats, warnings = log.stats(), list(log.warnings)
        timings["load_s"] = time.perf_counter() - started
        progress.stage("prepare", protocol.name)
        started = time.perf_counter()
        with progress.task(f"split and encode {len(log):,} events", None):
            data = build_match_data(log, protocol)
        del log
    else:
        interactions = registry.load_dataset(dataset_spec.qualified_name, path, **options)
        stats, warnings = interactions.stats(), list(interactions.warnings)
        timings["load_s"] = time.perf_counter() - started
        progress.stage("prepare", protocol.name)
        started = time.perf_counter()
        data = MatchData.from_interactions(interactions, protocol)
        del interactions
    tmp = atomic_dir(folder)
    try:
        manifest = {
            **expected,
            "fingerprint_method": FINGERPRINT_METHOD,
            "streamed": streamed,
            "dataset_stats": {"dataset": dataset_spec.name, **stats},
            "warnings": warnings,
        }
        write_folder(tmp, data, manifest, task=progress.task)
        del data
        commit_dir(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    loaded = load_folder(folder)
    timings["prepare_s"] = time.perf_counter() - started
    progress.stage("prepare", f"wrote {folder} ({folder_bytes(folder) / 1e6:,.0f} MB)")
    return PreparedData(
        data=loaded,
        folder=folder,
        reused=False,
        streamed=streamed,
        dataset_stats=manifest["dataset_stats"],
        warnings=warnings,
        timings=timings,
    )
