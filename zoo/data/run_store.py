"""What a run folder keeps so that it can answer recommendations: every user's events and the items'
side values (``users/`` and ``items/`` beside ``model/`` and ``index/``).

``users/events.safetensors`` holds the encoded log exactly as :class:`~zoo.data.match.MatchData` held
it: the item code of every event, users contiguous and time-ordered (``items``), where each user's
events start (``indptr``, one more entry than users), each user's code (``user_codes``) and the user
side tables indexed by user code (``table.NAME``). ``users/users.json`` is its header: format, counts,
the protocol's ``history_len`` and ``mask_seen``, and the size and sha256 of the tensor file.

``items/items.json`` holds, for every catalogue item (in catalogue order), its original id and the raw
value of each item side column of the dataset (multi-valued columns joined by their separator), so
that recommendations can show them.

:func:`events_view` turns the stored events back into a ``MatchData``, so the user inputs and the
seen items of a stored user are cut by the very code that cut them for ``zoo run``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from zoo.errors import ModelFileError

USERS_DIR = "users"
ITEMS_DIR = "items"
USERS_FILE = "users.json"
EVENTS_FILE = "events.safetensors"
ITEMS_FILE = "items.json"
USERS_FORMAT = "recall-zoo-users"
ITEMS_FORMAT = "recall-zoo-items"
FORMAT_VERSION = 1
_TABLE = "table."


# -- writing -------------------------------------------------------------------------------------------
def write_users(folder: Path, data: Any) -> None:
    """Write ``data``'s (a MatchData) events, user codes and user side tables to ``folder``."""
    from safetensors.torch import save

    from zoo.io import file_records

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    ends = data.test_positions + 1
    starts = data.seq_start[data.test_positions]
    indptr = torch.cat([starts, ends[-1:]]) if len(ends) else torch.zeros(1, dtype=torch.long)
    tensors = {
        "items": data.seq_items.long(),
        "indptr": indptr.long(),
        "user_codes": data.seq_users[data.test_positions].long(),
    }
    tensors.update({_TABLE + name: table for name, table in data.user_table.items()})
    (folder / EVENTS_FILE).write_bytes(save({k: v.contiguous() for k, v in tensors.items()}))
    header = {
        "format": USERS_FORMAT,
        "format_version": FORMAT_VERSION,
        "users": int(tensors["user_codes"].shape[0]),
        "events": int(tensors["items"].shape[0]),
        "protocol": data.protocol.name,
        "mask_seen": bool(data.protocol.mask_seen),
        "history_len": int(data.schema.history_len),
        "tables": list(data.user_table),
        "files": file_records(folder, [EVENTS_FILE]),
    }
    (folder / USERS_FILE).write_text(json.dumps(header, indent=2) + "\n")


def write_items(folder: Path, data: Any) -> None:
    """Write the original id and the raw side values of every catalogue item of ``data`` to ``folder``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    encoder = data.encoder
    codes = data.catalogue.numpy()
    columns: dict[str, list[Any]] = {}
    for column in encoder.item_columns:
        table = data.item_table.get(column)
        if table is None:
            continue
        vocab = encoder.vocabs[f"item:{column}"]
        values = vocab.decode(table.numpy()[codes])
        separator = encoder.item_multivalue.get(column)
        if values.ndim == 2:  # multi-valued: the row's tokens, padding dropped, joined again
            joiner = separator if separator is not None else "|"
            columns[column] = [joiner.join(str(v) for v in row if v is not None) for row in values]
        else:
            columns[column] = [_plain(v) for v in values]
    header = {
        "format": ITEMS_FORMAT,
        "format_version": FORMAT_VERSION,
        "count": int(len(codes)),
        "ids": [_plain(v) for v in encoder.vocabs["item_id"].decode(codes)],
        "columns": columns,
    }
    (folder / ITEMS_FILE).write_text(json.dumps(header, indent=2) + "\n")


def _plain(value: Any) -> Any:
    """A JSON value for a decoded vocabulary entry (numpy scalars to Python, NaN to None)."""
    if value is None:
        return None
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and value != value:
        return None
    return value


# -- reading -------------------------------------------------------------------------------------------
@dataclass
class StoredUsers:
    """The users of a run folder (see the module docstring): numpy arrays and the side tables."""

    user_codes: np.ndarray  # [U]
    indptr: np.ndarray  # [U + 1]
    items: np.ndarray  # [E]
    tables: dict[str, torch.Tensor]
    protocol: str
    mask_seen: bool
    history_len: int

    @property
    def count(self) -> int:
        return int(self.user_codes.shape[0])


def read_users(folder: Path) -> StoredUsers:
    """Read ``users/`` (checked against its header); ModelFileError when missing or damaged."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from zoo.io import read_json_header, verify_files

    folder = Path(folder)
    header = read_json_header(
        folder / USERS_FILE, format_name=USERS_FORMAT, format_version=FORMAT_VERSION, what="a run's users"
    )
    verify_files(folder, header.get("files"), header=folder / USERS_FILE, what="run zoo run again")
    try:
        tensors = load_file(str(folder / EVENTS_FILE))
        stored = StoredUsers(
            user_codes=tensors["user_codes"].numpy(),
            indptr=tensors["indptr"].numpy(),
            items=tensors["items"].numpy(),
            tables={k[len(_TABLE) :]: v for k, v in tensors.items() if k.startswith(_TABLE)},
            protocol=str(header["protocol"]),
            mask_seen=bool(header["mask_seen"]),
            history_len=int(header["history_len"]),
        )
    except (SafetensorError, OSError, KeyError, TypeError, ValueError) as exc:
        raise ModelFileError(f"{folder / EVENTS_FILE}: unreadable ({exc}); run zoo run again") from None
    count = stored.count
    if (
        stored.indptr.shape != (count + 1,)
        or (count and (stored.indptr[0] != 0 or stored.indptr[-1] != len(stored.items)))
        or np.any(np.diff(stored.indptr) < 1)
    ):
        raise ModelFileError(f"{folder / EVENTS_FILE}: inconsistent event offsets; run zoo run again")
    return stored


@dataclass
class StoredItems:
    """The catalogue items' original ids and raw side values, in catalogue order."""

    ids: list[Any]
    columns: dict[str, list[Any]]

    def metadata(self, rows: np.ndarray) -> list[dict[str, Any]]:
        """``{column: raw value}`` of the catalogue items at ``rows``."""
        return [{name: values[int(r)] for name, values in self.columns.items()} for r in rows]


def read_items(folder: Path) -> StoredItems:
    """Read ``items/items.json``; ModelFileError when missing or damaged."""
    from zoo.io import read_json_header

    path = Path(folder) / ITEMS_FILE
    header = read_json_header(path, format_name=ITEMS_FORMAT, format_version=FORMAT_VERSION, what="run items")
    ids, columns = header.get("ids"), header.get("columns")
    if (
        not isinstance(ids, list)
        or not isinstance(columns, dict)
        or any(not isinstance(v, list) or len(v) != len(ids) for v in columns.values())
    ):
        raise ModelFileError(f"{path}: malformed item table; run zoo run again")
    return StoredItems(ids=ids, columns={str(k): v for k, v in columns.items()})


def user_columns(encoder: Any, user_side: Any) -> dict[str, str]:
    """Dataset user column -> its batch column (MatchData prefixes ``user_`` to a name that clashes
    with an item column or an id), for the columns of ``encoder`` given the schema's ``user_side``."""
    return {c: (f"user_{c}" if f"user_{c}" in user_side else c) for c in encoder.user_columns}


def run_metric(run_dir: Path) -> str:
    """The run's retrieval metric from its ``run.json`` (``ip`` unless it says ``cosine``)."""
    from zoo.report import RunReport

    try:
        config = RunReport.load(run_dir).config
    except ModelFileError:
        return "ip"
    return "cosine" if isinstance(config, dict) and config.get("metric") == "cosine" else "ip"


# -- events as MatchData ---------------------------------------------------------------------------------
def events_view(
    encoder: Any,
    schema: Any,
    protocol: Any,
    user_codes: np.ndarray,
    indptr: np.ndarray,
    items: np.ndarray,
    user_table: dict[str, torch.Tensor],
    *,
    next_event: bool,
) -> tuple[Any, torch.Tensor]:
    """A :class:`~zoo.data.match.MatchData` over the events of users ``user_codes`` (``items[indptr[u] :
    indptr[u + 1]]`` each, time-ordered) and the position to query each user at.

    With ``next_event`` every user gets one more (padding) event after their last one and is queried
    there: the input is the user's whole history and the seen items all of them. Without it the user is
    queried at their last event, as ``zoo run``'s test split did (history and seen items before it).
    """
    from zoo.data.match import MatchData

    lengths = np.diff(indptr).astype(np.int64)
    if next_event:
        owner = np.repeat(np.arange(len(lengths)), lengths)
        shift = np.arange(len(items)) + owner  # each user's events move by the users before them
        seq = np.zeros(len(items) + len(lengths), dtype=np.int64)
        seq[shift] = items
        lengths = lengths + 1
    else:
        seq = np.asarray(items, dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    positions = torch.from_numpy(starts + lengths - 1)
    empty = torch.zeros(0, dtype=torch.long)
    data = MatchData(
        encoder=encoder,
        schema=schema,
        protocol=protocol,
        seq_items=torch.from_numpy(seq),
        seq_users=torch.from_numpy(np.repeat(np.asarray(user_codes, dtype=np.int64), lengths)),
        seq_start=torch.from_numpy(np.repeat(starts, lengths)),
        train_positions=empty,
        valid_positions=positions - 1,
        test_positions=positions,
        user_table=dict(user_table),
        item_table={},
        item_counts=empty,
    )
    return data, positions
