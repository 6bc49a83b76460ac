"""The run pipeline: dataset -> protocol -> encoding -> model -> training -> embeddings -> exact and
index evaluation -> report and run folder (DESIGN section 3).

Each stage is a public function (:mod:`zoo.pipeline.stages`); :func:`run` calls them in order for
``zoo run``, and ``zoo bench``, the quality benchmark and the serving commands call the same ones.
Nothing here prints or speaks in command-line flags: the CLI parses options into a
:class:`RunConfig` and shows the :class:`Progress` events.
"""

from __future__ import annotations

from zoo.pipeline.config import RunConfig, Settings, resolve_settings
from zoo.pipeline.run import build_report, run
from zoo.pipeline.save import save_model, save_run
from zoo.pipeline.stages import (
    Embedded,
    Prepared,
    Progress,
    Ranking,
    Trained,
    build_model,
    embed,
    evaluate_exact,
    evaluate_index,
    evaluate_popularity,
    prepare,
    train,
)

__all__ = [
    "Embedded",
    "Prepared",
    "Progress",
    "Ranking",
    "RunConfig",
    "Settings",
    "Trained",
    "build_model",
    "build_report",
    "embed",
    "evaluate_exact",
    "evaluate_index",
    "evaluate_popularity",
    "prepare",
    "resolve_settings",
    "run",
    "save_model",
    "save_run",
    "train",
]
