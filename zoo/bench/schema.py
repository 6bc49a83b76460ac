"""``bench.json``: the versioned document ``zoo bench`` writes and ``zoo report`` renders.

Schema version 1 (``"format": "recall-zoo-bench"``, ``"schema_version": 1``). A reader must accept
unknown keys (later minor additions) and reject a higher ``schema_version``. Top level:

``format``, ``schema_version``
    Always ``"recall-zoo-bench"`` and ``1``.
``created``, ``updated``
    ISO-8601 UTC times of the first and the latest run that wrote the file.
``config``
    What was measured: ``models``, ``retrievers`` (requested, in order), ``dataset``, ``data_path``,
    ``protocol``, ``device`` (training, and the default for GPU-capable retrievers), ``seed``,
    ``epochs``, ``params`` (model/trainer overrides), ``dataset_options``, ``protocol_overrides``,
    ``ks``, ``repeat`` (timed passes per measurement), ``latency_queries`` (single-user queries timed
    per measurement), ``recall_target``, ``recall_k`` (the K of the Pareto plot and the target), and
    ``metric`` (``"ip"``: the models score by inner product). ``fingerprint`` lists the keys that must
    match for a rerun to reuse finished cells.
``machine``
    ``cpu``, ``cores``, ``usable_cores``, ``memory_gb``, ``platform``, ``torch_threads``, ``gpu``,
    ``device`` (name and memory of the training device) and ``load_average`` when the run started.
``versions``
    ``recall-zoo``, ``python``, ``torch``, ``numpy``, ``cuda``, and each installed backend library.
``runs``
    One entry per invocation: ``started``, ``finished``, ``load_average`` at both ends, ``cells_measured``,
    ``cells_skipped``, ``failures``. Numbers from a run with a high load average were measured on a
    busy machine.
``plugins``
    ``retrievers``: per requested retriever ``name``, ``dist``, ``available``, ``install`` (the hint
    when unavailable), ``backend_version``, ``grid_source``; ``models``: ``name``, ``dist``, ``family``.
``grid``
    The grid used, per retriever: ``source`` and ``groups`` (``build`` / ``query`` value lists).
``models``
    Per model name: ``status`` (``done`` | ``failed``), ``error``, ``family``, ``train_s``,
    ``training`` (epochs, best epoch, validation metric, samples/s, parameters), ``timings`` (load,
    prepare, train, embed, exact search seconds), ``data`` (users, items, train samples), ``protocol``
    (the protocol card), ``users``, ``items``, ``dim``, ``interests`` (vectors per user),
    ``metrics`` (``exact`` and ``popularity`` task metrics at every K), ``artifacts`` (folder with the
    saved model and the test embeddings, relative to the bench folder).
``cells``
    One per model x retriever x build setting x query setting:

    ``key`` (stable identity), ``id`` (short hash of the key), ``model``, ``retriever``, ``build``,
    ``query`` (the parameters set; the rest are the retriever's defaults), ``effective`` (the build and
    query parameters the index actually ran with), ``status`` (``done`` | ``failed``), ``error``,
    ``finished``, ``backend_version``, ``index_info`` (backend details, e.g. faiss's resolved factory
    string), ``train_s`` (the model's training time), ``build_s`` (index build seconds),
    ``memory_bytes`` and ``memory_method`` (``reported`` by the backend, or ``rss`` growth of the
    process while building), ``disk_bytes`` (size of the saved index), and ``at``: per K (as a
    string) a measurement with

    * ``recall``: search recall@K against the exact top-K (all items, no masking): the y of the
      Pareto plot;
    * ``qps``: users answered per second, one batched top-K query of every test user (a K-interest
      user counts once; its interests are merged in the core), median of ``repeat`` passes;
      ``qps_best`` the fastest pass; ``query_s`` every pass in seconds;
    * ``latency_ms``: ``p50``, ``p99``, ``mean`` of one-user queries, ``samples`` how many;
    * ``quality``: the task metrics through the index (HitRate, Recall, NDCG, MRR, Precision @K),
      with the user's seen items excluded when the protocol masks them (over-fetching K plus the
      exclusions, as ``zoo run`` does);
    * ``recall_masked``: recall@K of that masked list against the masked exact top-K;
    * ``eval_qps``: users per second of that masked evaluation (over-fetch included);
    * ``speedup``: ``qps`` divided by the exact retriever's ``qps`` for the same model, K and
      device (absent without an exact cell).
``summary``
    Per model: ``recall_target``, ``recall_k``, ``best`` (the fastest cell whose ``recall`` reaches
    the target: ``cell`` id, ``retriever``, ``build``, ``query``, ``recall``, ``qps``, ``speedup``;
    null when none does), ``per_retriever`` (the same per retriever), ``frontier`` (cell ids on the
    recall-vs-QPS Pareto frontier, all retrievers together), ``exact`` (the exact cell's throughput and
    latency), ``caveats`` (one line each: a catalogue too small for an index to pay off, a machine whose
    load moved during the run); every entry carries ``latency_p99_ms`` beside its throughput.
``unavailable``
    Requested retrievers whose library is missing: ``name``, ``reason``, ``install``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from zoo.errors import ModelFileError

BENCH_FILE = "bench.json"
BENCH_FORMAT = "recall-zoo-bench"
SCHEMA_VERSION = 1
REPORT_MD = "report.md"
REPORT_HTML = "report.html"

#: config keys that must be equal for a rerun to reuse finished cells and trained models
FINGERPRINT_KEYS = (
    "dataset",
    "data_path",
    "protocol",
    "device",
    "seed",
    "epochs",
    "params",
    "dataset_options",
    "protocol_overrides",
    "metric",
)


def new_document() -> dict[str, Any]:
    """An empty bench document of the current schema."""
    return {
        "format": BENCH_FORMAT,
        "schema_version": SCHEMA_VERSION,
        "created": "",
        "updated": "",
        "config": {},
        "machine": {},
        "versions": {},
        "runs": [],
        "plugins": {"retrievers": [], "models": []},
        "grid": {},
        "models": {},
        "cells": [],
        "summary": {},
        "unavailable": [],
    }


def load_document(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read ``bench.json`` (or the ``bench.json`` inside a folder) and check its format and version."""
    path = Path(path)
    if path.is_dir():
        path = path / BENCH_FILE
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise ModelFileError(
            f"{path}: no bench results here; run 'zoo bench ... --out {path.parent}' first"
        ) from None
    except (OSError, ValueError) as exc:
        raise ModelFileError(f"{path}: unreadable bench results ({exc})") from None
    if not isinstance(data, dict) or data.get("format") != BENCH_FORMAT:
        raise ModelFileError(
            f"{path}: not a recall-zoo bench file (format"
            f" {data.get('format') if isinstance(data, dict) else None!r})"
        )
    version = data.get("schema_version")
    if not isinstance(version, int) or version > SCHEMA_VERSION:
        raise ModelFileError(
            f"{path}: bench schema version {version!r} is newer than this recall-zoo reads"
            f" ({SCHEMA_VERSION}); upgrade recall-zoo"
        )
    base = new_document()
    for key, value in data.items():
        if key in base and not isinstance(value, type(base[key])):
            raise ModelFileError(
                f"{path}: '{key}' is a {type(value).__name__}, expected a {type(base[key]).__name__};"
                " the file was edited or written by another program: run the bench again"
            )
    base.update(data)
    if not all(isinstance(cell, dict) for cell in base["cells"]):
        raise ModelFileError(f"{path}: 'cells' holds an entry that is not an object; run the bench again")
    return base
