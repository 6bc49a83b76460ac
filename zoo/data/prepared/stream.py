"""Read an interaction log in chunks into compact integer arrays (:class:`EncodedLog`).

The log (CSV / TSV with a header line, or Parquet) is read block by block with pyarrow; each block's
ids are dictionary-encoded in C++ and only the block's distinct ids become Python values, so the raw
log is never held as Python objects. At the end the ids are renumbered in the order their values
sort (the order the in-memory path sorts raw ids in), so that every later step gives the same
result as :meth:`zoo.data.match.MatchData.from_interactions` on the same file.

Values are typed as the in-memory reader types them: a CSV id column whose values are all integers
holds integers (else floats, else strings); timestamps are integers when every one is integral,
else floats, or ISO-8601 date-times converted to seconds; ratings are float32. A bad value is a
one-line :class:`~zoo.errors.DataError` naming the file, the data row (counted from 1, blank lines
not counted) and the column.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from zoo.data.readers import csv, parquet
from zoo.data.readers.checks import Where, require_columns, require_numeric, require_timestamp
from zoo.data.readers.log import HINT, LOG_WHAT, column_mapping
from zoo.errors import DataError

#: bytes of CSV text parsed per block
BLOCK_BYTES = 32 << 20
#: rows per Parquet batch
PARQUET_ROWS = 1 << 20
_COMPRESSED = (".gz", ".bz2", ".zst", ".lz4", ".br")


@dataclass
class EncodedLog:
    """An interaction log as compact arrays, one entry per event in file order.

    Attributes:
        users / items: int32 codes; code ``c`` stands for ``user_values[c]`` (``item_values[c]``),
            and the values are sorted, so codes order like the raw ids.
        timestamps: int64 (or float64 when some timestamp is fractional).
        ratings: float32, or None without a rating column.
        user_values / item_values: the distinct raw ids, sorted (int64, float64 or object strings).
        name / source: the dataset's name (the file's stem) and the file read.
        warnings: what was repaired while reading (one line each).
    """

    users: np.ndarray
    items: np.ndarray
    timestamps: np.ndarray
    ratings: np.ndarray | None
    user_values: np.ndarray
    item_values: np.ndarray
    name: str
    source: str
    warnings: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return int(self.users.shape[0])

    def stats(self) -> dict[str, Any]:
        """Counts for reports, as :meth:`zoo.data.interactions.Interactions.stats` gives them."""
        n_users = int(np.count_nonzero(np.bincount(self.users, minlength=len(self.user_values))))
        n_items = int(np.count_nonzero(np.bincount(self.items, minlength=len(self.item_values))))
        n = len(self)
        return {
            "interactions": n,
            "users": n_users,
            "items": n_items,
            "density": n / max(1, n_users * n_items),
        }

    def drop_duplicate_events(self) -> None:
        """Drop exact repeats of an event (same user, item, timestamp and rating), keeping the first,
        as :class:`~zoo.data.interactions.Interactions` does; one warning line."""
        columns = {"user": self.users, "item": self.items, "timestamp": self.timestamps}
        if self.ratings is not None:
            columns["rating"] = self.ratings
        # Only rows whose 64-bit hash of all columns occurs twice can repeat an event; the exact check
        # runs on those few rows (in file order, so the first of each group is kept).
        hashes = _row_hashes(self.users, self.items, self.timestamps, self.ratings, len(self.item_values))
        ordered = np.sort(hashes)
        twice = ordered[1:][ordered[1:] == ordered[:-1]]
        del ordered
        if not len(twice):
            return
        candidates = np.flatnonzero(np.isin(hashes, twice))
        del hashes
        subset = pd.DataFrame({name: values[candidates] for name, values in columns.items()})
        repeated = np.zeros(len(self), dtype=bool)
        repeated[candidates[subset.duplicated(keep="first").to_numpy()]] = True
        if not repeated.any():
            return
        keep = ~repeated
        self.users, self.items, self.timestamps = self.users[keep], self.items[keep], self.timestamps[keep]
        if self.ratings is not None:
            self.ratings = self.ratings[keep]
        self.warnings.append(
            f"warning: {self.source}: dropped {int(repeated.sum())} exact duplicate event(s) (same"
            f" {', '.join(columns)})"
        )


def _row_hashes(
    users: np.ndarray, items: np.ndarray, timestamps: np.ndarray, ratings: np.ndarray | None, n_items: int
) -> np.ndarray:
    """A 64-bit hash of each row's values (equal rows, equal hashes; ``-0.0`` counts as ``0.0``)."""

    def bits(values: np.ndarray) -> np.ndarray:
        if values.dtype.kind == "f":
            values = values + values.dtype.type(0.0)  # -0.0 -> 0.0, as equality treats them
            return values.view(np.uint32 if values.itemsize == 4 else np.uint64).astype(np.uint64)
        return values.astype(np.int64, copy=False).view(np.uint64)

    with np.errstate(over="ignore"):
        out = users.astype(np.uint64) * np.uint64(max(1, n_items)) + items.astype(np.uint64)
        for extra in (timestamps, ratings):
            if extra is None:
                continue
            out ^= out >> np.uint64(31)
            out *= np.uint64(0x9E3779B97F4A7C15)
            out ^= bits(extra)
        out ^= out >> np.uint64(29)
        out *= np.uint64(0xBF58476D1CE4E5B9)
        out ^= out >> np.uint64(32)
    return out


class _Ids:
    """One id column read block by block: each block's distinct values get global codes in first-seen
    order (a dict over distinct values only), the blocks' codes are kept as int32."""

    def __init__(self, label: str, where: Where) -> None:
        self.label, self.where = label, where
        self.codes: dict[Any, int] = {}
        self.blocks: list[np.ndarray] = []
        self.text = False

    def add(self, column: Any, first_row: int) -> None:
        import pyarrow as pa
        import pyarrow.compute as pc

        if isinstance(column, pa.ChunkedArray):
            column = column.combine_chunks()
        if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
            self.text = True
            missing = pc.or_kleene(pc.is_null(column), pc.equal(column, "")).fill_null(True)
        else:
            missing = pc.is_null(column)
        if pc.any(missing).as_py():
            row = first_row + int(np.flatnonzero(missing.to_numpy(zero_copy_only=False))[0])
            raise DataError(
                f"{self.where.at(row)}: column '{self.label}' is empty; fill or remove those rows"
            )
        encoded = pc.dictionary_encode(column)
        lookup = np.fromiter(
            (self.codes.setdefault(v, len(self.codes)) for v in encoded.dictionary.to_pylist()),
            dtype=np.int64,
            count=len(encoded.dictionary),
        )
        self.blocks.append(lookup[encoded.indices.to_numpy()].astype(np.int32))

    def finish(self, infer_numbers: bool) -> tuple[np.ndarray, np.ndarray]:
        """(codes of every row ordered like the sorted values, the sorted distinct values)."""
        values = _typed(list(self.codes), infer_numbers and self.text)
        self.codes.clear()
        distinct, rank = np.unique(values, return_inverse=True)  # "7" and "07" are both 7, as pandas reads
        rank = rank.astype(np.int32)
        rows = np.concatenate(self.blocks) if self.blocks else np.zeros(0, np.int32)
        self.blocks.clear()
        return rank[rows], distinct


def _typed(values: list[Any], infer_numbers: bool) -> np.ndarray:
    """Distinct raw ids as an array: int64 when every text value is an integer, float64 when every
    one is a number (how pandas types a CSV column), else object strings; non-text values as read."""
    import pyarrow as pa

    if not values:
        return np.zeros(0, np.int64)
    if not isinstance(values[0], str):
        return np.asarray(values)
    if infer_numbers:
        array = pa.array(values, pa.string())
        for kind in (pa.int64(), pa.float64()):
            try:
                return array.cast(kind).to_numpy()
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                continue
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out


class _Times:
    """The timestamp column block by block: numbers (int64, or float64 where fractional) or ISO-8601
    date-times (as seconds), never both."""

    def __init__(self, label: str, where: Where) -> None:
        self.label, self.where = label, where
        self.blocks: list[np.ndarray] = []
        self.iso_at: int | None = None
        self.number_at: int | None = None

    def add(self, column: Any, first_row: int) -> None:
        import pyarrow as pa

        if isinstance(column, pa.ChunkedArray):
            column = column.combine_chunks()
        if pa.types.is_timestamp(column.type):
            column = column.cast(pa.timestamp("ns")).cast(pa.int64())
        values = _fast_numbers(column, (pa.int64(), pa.float64()))
        iso = False
        if values is None or (values.dtype.kind == "f" and not np.isfinite(values).all()):
            raw = _series(column, first_row)
            values = require_timestamp(raw, self.label, self.where).to_numpy()
            iso = bool(pd.to_numeric(raw, errors="coerce").isna().all())
        if iso and self.iso_at is None:
            self.iso_at = first_row
        if not iso and self.number_at is None:
            self.number_at = first_row
        if self.iso_at is not None and self.number_at is not None:
            row = max(self.iso_at, self.number_at)
            raise DataError(
                f"{self.where.at(row)}: column '{self.label}' mixes numbers and date-times; timestamps must"
                " be numbers (e.g. seconds since 1970) or, in every row, ISO-8601 date-times"
            )
        self.blocks.append(values)

    def finish(self) -> np.ndarray:
        if not self.blocks:
            return np.zeros(0, np.int64)
        if all(b.dtype.kind in "iu" for b in self.blocks):
            values = np.concatenate([b.astype(np.int64, copy=False) for b in self.blocks])
        else:
            values = np.concatenate([b.astype(np.float64, copy=False) for b in self.blocks])
            if (values == np.floor(values)).all():
                values = values.astype(np.int64)
        self.blocks.clear()
        return values


class _Ratings:
    """The rating column block by block, as float32."""

    def __init__(self, label: str, where: Where) -> None:
        self.label, self.where = label, where
        self.blocks: list[np.ndarray] = []

    def add(self, column: Any, first_row: int) -> None:
        import pyarrow as pa

        if isinstance(column, pa.ChunkedArray):
            column = column.combine_chunks()
        values = _fast_numbers(column, (pa.float64(),))
        if values is None:
            values = require_numeric(_series(column, first_row), self.label, self.where).to_numpy()
        nan = np.isnan(values)
        if nan.any():
            row = first_row + int(np.flatnonzero(nan)[0])
            raise DataError(
                f"{self.where.at(row)}: column '{self.label}' is NaN; drop or fill those rows (ratings"
                " must be numbers)"
            )
        self.blocks.append(values.astype(np.float32))

    def finish(self) -> np.ndarray:
        out = np.concatenate(self.blocks) if self.blocks else np.zeros(0, np.float32)
        self.blocks.clear()
        return out


def _fast_numbers(column: Any, kinds: tuple[Any, ...]) -> np.ndarray | None:
    """The column cast to the first of ``kinds`` that holds every value (no nulls), or None."""
    import pyarrow as pa

    if column.null_count:
        return None
    for kind in kinds:
        if column.type == kind:
            return column.to_numpy()
        try:
            return column.cast(kind).to_numpy()
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            continue
    return None


def _series(column: Any, first_row: int) -> pd.Series:
    """A block's column as a pandas Series indexed by data row (empty text as missing): the slow path
    that reuses the readers' checks and their error messages."""
    values = column.to_numpy(zero_copy_only=False)
    series = pd.Series(values, index=np.arange(first_row, first_row + len(values)), dtype=object)
    return series.where(series != "", None)


def stream_interactions(
    path: str | Path,
    *,
    user_col: str = "user_id",
    item_col: str = "item_id",
    time_col: str = "timestamp",
    rating_col: str | None = None,
    sep: str = ",",
    advance: Callable[[int], None] | None = None,
) -> EncodedLog:
    """Read a CSV / TSV (one-character separator) or Parquet log in blocks into an :class:`EncodedLog`.

    Args:
        path, user_col, item_col, time_col, rating_col, sep: as for
            :func:`zoo.data.readers.read_interactions`.
        advance: called after each block with the bytes (CSV) or rows (Parquet) read since the last
            call; :func:`stream_size` gives the total.

    Raises:
        DataError: a missing file or column, an empty id, a value that is not a number.
        UsageError: two options naming the same column, an empty separator.
    """
    from zoo.data.readers.checks import existing_file

    p = existing_file(Path(path).expanduser(), LOG_WHAT)
    mapping = column_mapping(user_col, item_col, time_col, rating_col)
    sep = csv.normalize_sep(sep)
    where = Where(p, first_line=1, unit="data row")
    users, items = _Ids(user_col, where), _Ids(item_col, where)
    times = _Times(time_col, where)
    ratings = _Ratings(rating_col, where) if rating_col else None
    advance = advance or (lambda done: None)
    try:  # CSV: numbers parsed as numbers first; any other value reads everything as text instead
        row = _read(p, mapping, sep, advance, users, items, times, ratings, typed=True)
    except _NotNumbers:
        users, items = _Ids(user_col, where), _Ids(item_col, where)
        times = _Times(time_col, where)
        ratings = _Ratings(rating_col, where) if rating_col else None
        row = _read(p, mapping, sep, advance, users, items, times, ratings, typed=False)
    if row == 0:
        raise DataError(f"{p}: no interactions; the file is empty or every row was filtered out")
    is_csv = not parquet.is_parquet(p)
    user_codes, user_values = users.finish(infer_numbers=is_csv)
    item_codes, item_values = items.finish(infer_numbers=is_csv)
    log = EncodedLog(
        users=user_codes,
        items=item_codes,
        timestamps=times.finish(),
        ratings=ratings.finish() if ratings is not None else None,
        user_values=user_values,
        item_values=item_values,
        name=p.stem,
        source=str(p),
    )
    log.drop_duplicate_events()
    return log


class _NotNumbers(Exception):
    """A CSV column read as numbers holds something else: read the log again as text."""


def _read(
    path: Path,
    mapping: dict[str, str],
    sep: str,
    advance: Callable[[int], None],
    users: _Ids,
    items: _Ids,
    times: _Times,
    ratings: _Ratings | None,
    *,
    typed: bool,
) -> int:
    """Feed every block to the column readers; returns the number of rows."""
    by_role = {role: column for column, role in mapping.items()}
    row = 0
    for block in _blocks(path, list(mapping), sep, advance, typed=typed):
        users.add(block.column(by_role["user_id"]), row)
        items.add(block.column(by_role["item_id"]), row)
        times.add(block.column(by_role["timestamp"]), row)
        if ratings is not None:
            ratings.add(block.column(by_role["rating"]), row)
        row += block.num_rows
    return row


def can_stream(path: str | Path, sep: str = ",") -> bool:
    """Whether :func:`stream_interactions` reads this log: Parquet, or text with a one-character
    separator (pyarrow's CSV reader takes no longer ones), and pyarrow installed (the ``parquet``
    extra); otherwise the log is loaded in memory once and the folder written from that."""
    import importlib.util

    if importlib.util.find_spec("pyarrow") is None:
        return False
    p = Path(path).expanduser()
    return parquet.is_parquet(p) or len(csv.normalize_sep(sep)) == 1


def stream_size(path: str | Path) -> int | None:
    """The total :func:`stream_interactions` reports progress against: the file's bytes (CSV) or rows
    (Parquet), or None when unknown (a compressed file)."""
    p = Path(path).expanduser()
    if parquet.is_parquet(p):
        parquet.parquet_columns(p)
        import pyarrow.parquet as pq

        return int(pq.ParquetFile(p).metadata.num_rows)
    return None if p.suffix.lower() in _COMPRESSED else p.stat().st_size


def _blocks(path: Path, columns: list[str], sep: str, advance: Callable[[int], None], *, typed: bool) -> Any:
    """The requested columns of the log, block by block (pyarrow RecordBatches); with ``typed``, CSV
    ids and timestamps parsed as int64 and ratings as float64 (:class:`_NotNumbers` when one is not)."""
    if parquet.is_parquet(path):
        require_columns(path, parquet.parquet_columns(path), columns, HINT)
        yield from _parquet_blocks(path, columns, advance)
        return
    header = csv.csv_header(path, sep, "an interaction log with a header line")
    require_columns(path, header, columns, HINT)
    yield from _csv_blocks(path, header, columns, sep, advance, typed=typed)


def _parquet_blocks(path: Path, columns: list[str], advance: Callable[[int], None]) -> Any:
    import pyarrow.parquet as pq

    try:
        for batch in pq.ParquetFile(path).iter_batches(batch_size=PARQUET_ROWS, columns=columns):
            yield batch
            advance(batch.num_rows)
    except OSError as exc:
        raise DataError(f"{path}: not a readable Parquet file ({' '.join(str(exc).split())[:200]})") from exc


def _csv_blocks(
    path: Path,
    header: list[str],
    columns: list[str],
    sep: str,
    advance: Callable[[int], None],
    *,
    typed: bool,
) -> Any:
    import pyarrow as pa
    import pyarrow.csv as pacsv

    read = pacsv.ReadOptions(block_size=BLOCK_BYTES, column_names=header, skip_rows=1)
    parse = pacsv.ParseOptions(delimiter=sep)
    if typed:  # columns in mapping order: user, item, time (int64), then rating (float64)
        kinds = dict(zip(columns, (pa.int64(), pa.int64(), pa.int64(), pa.float64()), strict=False))
        convert = pacsv.ConvertOptions(column_types=kinds, include_columns=columns, null_values=[])
    else:
        convert = pacsv.ConvertOptions(
            column_types=dict.fromkeys(columns, pa.string()),
            include_columns=columns,
            strings_can_be_null=False,
        )
    compressed = path.suffix.lower() in _COMPRESSED
    handle = None if compressed else path.open("rb")
    source: Any = str(path) if handle is None else handle
    done = 0
    try:
        reader = pacsv.open_csv(source, read_options=read, parse_options=parse, convert_options=convert)
        for batch in reader:
            yield batch
            if handle is not None:
                position = handle.tell()
                advance(position - done)
                done = position
    except pa.ArrowInvalid as exc:
        if typed and "conversion error" in str(exc).lower():
            raise _NotNumbers from None
        raise DataError(_csv_error(path, str(exc))) from exc
    finally:
        if handle is not None:
            handle.close()


def _csv_error(path: Path, message: str) -> str:
    """One line for a pyarrow CSV failure: wrong field counts, bad text, anything else."""
    text = " ".join(message.split())
    if "columns, got" in text or "Expected" in text:
        return f"{path}: wrong number of fields on a line ({text[:160]}); fix or remove that line"
    if "UTF8" in text or "utf8" in text.lower():
        return f"{path}: not valid utf-8 text; save it as UTF-8"
    return f"{path}: cannot read an interaction log: {text[:200]}"
