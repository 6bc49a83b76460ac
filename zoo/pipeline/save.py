"""Writing a trained model and a run folder (the hand-off between training and use, DESIGN section 3)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from zoo.report import REPORT_FILE, RunReport

MODEL_DIR = "model"
INDEX_DIR = "index"
VOCAB_FILE = "vocab.json"
CHECKPOINTS_DIR = "checkpoints"
CONFIG_FILE = "config.yaml"


def checkpoint_folder(run_dir: Path) -> Path:
    """Where a run's epoch checkpoints live while it trains: the hidden sibling ``.NAME.checkpoints`` of
    the run folder (which is only committed at the end); :func:`save_run` moves them into the run
    folder as ``checkpoints/``."""
    run_dir = Path(run_dir)
    return run_dir.with_name(f".{run_dir.name}.checkpoints")


def open_checkpoints(run_dir: Path, *, resume: bool) -> Path:
    """The checkpoint folder of a run about to train (call it under the folder's writer lock).

    Without ``resume`` a stale one (an interrupted run's) is removed. With ``resume`` it must hold a
    checkpoint, or the finished run folder's ``checkpoints/`` is copied there; UsageError when neither
    exists."""
    from zoo.errors import UsageError
    from zoo.train.checkpoint import RESUME_FILE

    run_dir = Path(run_dir)
    folder = checkpoint_folder(run_dir)
    if not resume:
        if folder.is_dir() and not folder.is_symlink():
            shutil.rmtree(folder)
        elif folder.exists() or folder.is_symlink():
            folder.unlink()
        return folder
    if (folder / RESUME_FILE).is_file():
        return folder
    committed = run_dir / CHECKPOINTS_DIR
    if not (committed / RESUME_FILE).is_file():
        raise UsageError(
            f"--resume: no checkpoint to continue for --out {run_dir} (neither {folder} nor {committed}"
            " holds one); run without --resume to start over"
        )
    shutil.rmtree(folder, ignore_errors=True)
    shutil.copytree(committed, folder)
    return folder


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


def save_serving_data(folder: Path, trained: Any) -> None:
    """The run's users and items for recommendations (:mod:`zoo.data.run_store`): every user's encoded
    events and side features in ``users/``, the catalogue items' original ids and raw side values in
    ``items/``."""
    from zoo.data.run_store import ITEMS_DIR, USERS_DIR, write_items, write_users

    write_users(Path(folder) / USERS_DIR, trained.data)
    write_items(Path(folder) / ITEMS_DIR, trained.data)


def save_run(
    run_dir: Path,
    report: RunReport,
    trained: Any,
    retriever: Any,
    *,
    into_existing: bool = False,
    checkpoints: Path | None = None,
) -> None:
    """Write ``run.json``, ``config.yaml`` (reproduces the run), ``model/``, ``index/``, ``users/`` and
    ``items/`` atomically, and move the
    ``checkpoints`` folder (the training's last epoch checkpoint, when given and present) in as
    ``checkpoints/``.

    The folder is replaced whole (it is missing, empty or a previous run), or with ``into_existing``
    the run's entries are moved into a folder that holds other files, which stay untouched
    (:func:`zoo.folders.check_run_folder` decides which, before training)."""
    from zoo.folders import commit_entries
    from zoo.io import atomic_dir, commit_dir
    from zoo.pipeline.config_file import write_config_file

    tmp = atomic_dir(run_dir)
    try:
        save_model(tmp / MODEL_DIR, trained)
        save_serving_data(tmp, trained)
        retriever.save(tmp / INDEX_DIR)
        (tmp / REPORT_FILE).write_text(report.to_json())
        write_config_file(tmp / CONFIG_FILE, trained.prepared.config, trained.settings)
        if checkpoints is not None and Path(checkpoints).is_dir():
            os.replace(checkpoints, tmp / CHECKPOINTS_DIR)
        if into_existing:
            commit_entries(tmp, run_dir)
        else:
            commit_dir(tmp, run_dir)
    except BaseException:
        if checkpoints is not None and (tmp / CHECKPOINTS_DIR).is_dir() and not Path(checkpoints).exists():
            os.replace(tmp / CHECKPOINTS_DIR, checkpoints)  # keep them for --resume
        shutil.rmtree(tmp, ignore_errors=True)
        raise
