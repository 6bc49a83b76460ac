"""Prepared data: logs that outgrow memory, read in chunks and kept as memory-mapped arrays.

``zoo run ... --prepared-dir DIR`` (``RunConfig.prepared_dir``) prepares the data once into a folder
under ``DIR`` (:mod:`~zoo.data.prepared.folder` describes its layout) and later runs with the same
input and protocol read it back memory-mapped, so training gathers each batch from the mapped arrays
instead of holding every derived array in memory. A log the dataset can stream (a CSV / TSV /
Parquet log of the ``csv`` dataset) is read block by block into compact integer arrays
(:func:`stream_interactions`) and gives exactly the arrays, batches and metrics of the in-memory path.
"""

from __future__ import annotations

from zoo.data.prepared.build import RankedIds, build_match_data
from zoo.data.prepared.folder import FORMAT, FORMAT_VERSION, MANIFEST, load_folder, read_manifest
from zoo.data.prepared.store import STREAM_ATTRIBUTE, PreparedData, prepared_match_data
from zoo.data.prepared.stream import EncodedLog, can_stream, stream_interactions, stream_size

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "MANIFEST",
    "STREAM_ATTRIBUTE",
    "EncodedLog",
    "PreparedData",
    "RankedIds",
    "build_match_data",
    "can_stream",
    "load_folder",
    "prepared_match_data",
    "read_manifest",
    "stream_interactions",
    "stream_size",
]
