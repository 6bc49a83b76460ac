"""A prepared-data folder: a :class:`~zoo.data.match.MatchData` as ``.npy`` arrays plus JSON, read back
memory-mapped.

Layout of one folder (``PREPARED_DIR/<dataset>-<protocol>-<key>/``)::

    prepared.json          the manifest: format and version, the key (dataset, data path, options,
                           protocol), the input's fingerprint, schema, protocol card, dataset
                           counts, warnings, and every array file with its dtype, shape, bytes, sha256
    encoder.json           the vocabularies (FeatureEncoder.to_dict, as a saved model keeps them)
    seq_items.npy ...      the flat arrays of MatchData (ARRAYS), one file each
    user_table.N.npy       user / item side tables, one file per column (names in the manifest)
    item_table.N.npy

Arrays are written with ``np.save`` and read with ``np.load(mmap_mode="c", allow_pickle=False)``:
nothing is unpickled, and an array's pages are read from disk only when a batch touches them
(copy-on-write, so a stray in-place write never reaches the file).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from zoo.errors import DataError

FORMAT = "recall-zoo-prepared"
FORMAT_VERSION = 1
MANIFEST = "prepared.json"
ENCODER = "encoder.json"
#: the flat MatchData arrays stored one file each
ARRAYS = (
    "seq_items",
    "seq_users",
    "seq_start",
    "train_positions",
    "valid_positions",
    "test_positions",
    "item_counts",
)
#: arrays up to this size are checked against their sha256 on every load; larger ones by size,
#: dtype and shape only (hashing them would read the whole file on every run)
HASH_CHECKED_BYTES = 16 << 20
#: bytes hashed at each end of an input file for its fingerprint
EDGE_BYTES = 1 << 20
#: how the input fingerprint is taken (recorded in the manifest)
FINGERPRINT_METHOD = "size + mtime_ns + sha256 of the first and last MiB of each input file"


def _rebuild_hint(folder: Path) -> str:
    return f"delete {folder} and run again to rebuild it"


def input_fingerprint(path: str | Path | None) -> dict[str, Any]:
    """What identifies the input: for a file, or each regular file directly in a folder, its size,
    modification time (ns) and a sha256 of its first and last MiB (:data:`FINGERPRINT_METHOD`);
    ``{"files": []}`` for a dataset that reads no path (generated from its options)."""
    if path is None:
        return {"method": FINGERPRINT_METHOD, "files": []}
    p = Path(path).expanduser().resolve()
    files = (
        [p] if p.is_file() else sorted(f for f in p.iterdir() if f.is_file() and not f.name.startswith("."))
    )
    return {"method": FINGERPRINT_METHOD, "files": [_file_fingerprint(f) for f in files]}


def _file_fingerprint(path: Path) -> dict[str, Any]:
    stat = path.stat()
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        digest.update(fh.read(EDGE_BYTES))
        if stat.st_size > 2 * EDGE_BYTES:
            fh.seek(stat.st_size - EDGE_BYTES)
            digest.update(fh.read(EDGE_BYTES))
        elif stat.st_size > EDGE_BYTES:
            digest.update(fh.read())
    return {
        "path": str(path),
        "bytes": stat.st_size,
        "mtime_ns": stat.st_mtime_ns,
        "edges": digest.hexdigest(),
    }


def folder_name(dataset: str, protocol_name: str, key: dict[str, Any]) -> str:
    """``<dataset>-<protocol>-<12 hex digits of the key>``: a readable, file-system-safe name."""
    digest = hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:12]
    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in f"{dataset}-{protocol_name}")
    return f"{safe}-{digest}"


def write_folder(
    folder: Path,
    data: Any,
    manifest: dict[str, Any],
    *,
    task: Callable[[str, int | None], Any],
) -> None:
    """Write ``data`` (a MatchData) into the empty temporary ``folder`` with its manifest (``manifest``
    plus the format, schema, card and file list). ``task(name, total)`` gives a progress context."""
    from zoo.io import atomic_write_json, sha256_file

    arrays: dict[str, np.ndarray] = {name: getattr(data, name).numpy() for name in ARRAYS}
    tables: dict[str, dict[str, str]] = {"user_table": {}, "item_table": {}}
    for kind in tables:
        for i, (column, tensor) in enumerate(getattr(data, kind).items()):
            name = f"{kind}.{i}"
            tables[kind][column] = name
            arrays[name] = tensor.numpy()
    files: dict[str, dict[str, Any]] = {}
    total = sum(int(a.nbytes) for a in arrays.values())
    with task(f"write {folder.name.split('.tmp-')[0].lstrip('.')}", total) as advance:
        for name, array in arrays.items():
            path = folder / f"{name}.npy"
            np.save(path, np.ascontiguousarray(array), allow_pickle=False)
            files[name] = {
                "file": path.name,
                "dtype": array.dtype.str,
                "shape": list(array.shape),
                "bytes": path.stat().st_size,
                "sha256": sha256_file(path),
            }
            advance(int(array.nbytes))
    atomic_write_json(folder / ENCODER, data.encoder.to_dict())
    document = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        **manifest,
        "schema": dataclasses.asdict(data.schema),
        "protocol": dataclasses.asdict(data.protocol),
        "card": data.card,
        "tables": tables,
        "arrays": files,
        "encoder": {"file": ENCODER, "sha256": sha256_file(folder / ENCODER)},
    }
    atomic_write_json(folder / MANIFEST, document)


def read_manifest(folder: Path) -> dict[str, Any]:
    """The folder's manifest; a one-line DataError naming the folder for one that is missing, unreadable,
    foreign or of another format version."""
    path = folder / MANIFEST
    try:
        document = json.loads(path.read_text())
    except FileNotFoundError:
        entries = sorted(e.name for e in folder.iterdir())[:3] if folder.is_dir() else []
        shown = f" (it holds {', '.join(map(repr, entries))})" if entries else ""
        raise DataError(
            f"{folder} is not a recall-zoo prepared-data folder{shown}; move it away or choose another"
            " --prepared-dir (recall-zoo replaces only folders it wrote)"
        ) from None
    except (OSError, ValueError) as exc:
        raise DataError(
            f"{path}: unreadable manifest ({exc.__class__.__name__}); {_rebuild_hint(folder)}"
        ) from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise DataError(
            f"{folder} is not a recall-zoo prepared-data folder ({MANIFEST} is another file); move it away"
            " or choose another --prepared-dir"
        )
    if document.get("format_version") != FORMAT_VERSION:
        raise DataError(
            f"{folder}: prepared-data format {document.get('format_version')!r}, this recall-zoo reads"
            f" {FORMAT_VERSION}; {_rebuild_hint(folder)}"
        )
    return document


def load_folder(folder: Path, document: dict[str, Any] | None = None) -> Any:
    """The MatchData stored in ``folder``, its arrays memory-mapped (nothing is read until used).
    A missing, truncated or altered file is a one-line DataError naming it and what to do."""
    import torch

    from zoo.data.encoder import FeatureEncoder
    from zoo.data.match import MatchData
    from zoo.data.protocol import Protocol
    from zoo.features import Schema
    from zoo.io import sha256_file

    document = document if document is not None else read_manifest(folder)
    hint = _rebuild_hint(folder)
    try:
        files = document["arrays"]
        arrays = {name: _load_array(folder, name, files[name], hint) for name in files}
        encoder_entry = document["encoder"]
        encoder_path = folder / encoder_entry["file"]
        if not encoder_path.is_file() or sha256_file(encoder_path) != encoder_entry["sha256"]:
            raise DataError(f"{encoder_path}: missing or altered; the folder is damaged, {hint}")
        encoder = FeatureEncoder.from_dict(json.loads(encoder_path.read_text()))
        schema_fields = dict(document["schema"])
        schema_fields["item_multivalue"] = tuple(schema_fields.get("item_multivalue", ()))
        schema = Schema(**schema_fields)
        protocol = Protocol(**document["protocol"])
        tables = {
            kind: {
                column: torch.from_numpy(arrays[name]) for column, name in document["tables"][kind].items()
            }
            for kind in ("user_table", "item_table")
        }
        return MatchData(
            encoder=encoder,
            schema=schema,
            protocol=protocol,
            **{name: torch.from_numpy(arrays[name]) for name in ARRAYS},
            user_table=tables["user_table"],
            item_table=tables["item_table"],
            card=dict(document["card"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, DataError):
            raise
        raise DataError(f"{folder / MANIFEST}: malformed manifest ({exc!r:.80}); {hint}") from None


def _load_array(folder: Path, name: str, entry: dict[str, Any], hint: str) -> np.ndarray:
    from zoo.io import sha256_file

    path = folder / str(entry["file"])
    if Path(str(entry["file"])).name != str(entry["file"]) or not path.is_file():
        raise DataError(f"{path}: missing; the folder is incomplete, {hint}")
    size = path.stat().st_size
    if size != entry["bytes"]:
        raise DataError(
            f"{path}: {size} bytes, the manifest says {entry['bytes']}; the file is damaged, {hint}"
        )
    if size <= HASH_CHECKED_BYTES and sha256_file(path) != entry["sha256"]:
        raise DataError(f"{path}: checksum mismatch; the file is damaged, {hint}")
    empty = 0 in [int(n) for n in entry["shape"]]  # an empty file region cannot be memory-mapped
    try:
        array = np.load(path, mmap_mode=None if empty else "c", allow_pickle=False)
    except ValueError as exc:
        raise DataError(
            f"{path}: not a plain .npy array ({' '.join(str(exc).split())[:120]}); {hint}"
        ) from None
    if array.dtype.str != entry["dtype"] or list(array.shape) != list(entry["shape"]):
        raise DataError(
            f"{path}: holds {array.dtype.str}{list(array.shape)}, the manifest says"
            f" {entry['dtype']}{entry['shape']}; the file is damaged, {hint}"
        )
    return array


def folder_bytes(folder: Path) -> int:
    """Total size of the folder's files."""
    return sum(f.stat().st_size for f in folder.iterdir() if f.is_file())
