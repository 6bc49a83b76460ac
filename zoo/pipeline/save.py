"""Writing a trained model and a run folder (the hand-off between training and use, DESIGN section 3)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from zoo.report import REPORT_FILE, RunReport

MODEL_DIR = "model"
INDEX_DIR = "index"
VOCAB_FILE = "vocab.json"


def save_model(folder: Path, trained: Any) -> None:
    """``folder``: the model's weights and config (safetensors + ``model.json``) with the schema and
    protocol it was trained under, and the vocabularies (``vocab.json``) that encode raw ids."""
    data = trained.data
    vocab = (json.dumps(data.encoder.to_dict(), indent=2) + "\n").encode()
    trained.model.save(
        folder,
        extra={"schema": data.schema.to_dict(), "protocol": data.protocol.name},
        extra_files={VOCAB_FILE: vocab},
    )


def save_run(
    run_dir: Path, report: RunReport, trained: Any, retriever: Any, *, into_existing: bool = False
) -> None:
    """Write ``run.json``, ``model/`` and ``index/`` atomically.

    The folder is replaced whole (it is missing, empty or a previous run), or with ``into_existing``
    the run's entries are moved into a folder that holds other files, which stay untouched
    (:func:`zoo.folders.check_run_folder` decides which, before training)."""
    from zoo.folders import commit_entries
    from zoo.io import atomic_dir, commit_dir

    tmp = atomic_dir(run_dir)
    try:
        save_model(tmp / MODEL_DIR, trained)
        retriever.save(tmp / INDEX_DIR)
        (tmp / REPORT_FILE).write_text(report.to_json())
        if into_existing:
            commit_entries(tmp, run_dir)
        else:
            commit_dir(tmp, run_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
