"""``zoo bench``: every model x retriever x build setting x query setting, measured honestly.

* :mod:`zoo.bench.grid`: grid files (build and query parameters apart) and the shipped default grids;
* :mod:`zoo.bench.runner`: :func:`run_bench`, the resumable grid runner (trains each model once via
  :func:`zoo.pipeline.train_model`, builds each index once per build setting);
* :mod:`zoo.bench.schema`: the versioned ``bench.json`` document;
* :mod:`zoo.bench.summary` and :mod:`zoo.bench.pareto`: Pareto frontier, fastest setting per recall target;
* :mod:`zoo.bench.report` and :mod:`zoo.bench.svg`: ``report.md`` and a self-contained ``report.html``.

Importing this package is cheap (no torch); the runner imports torch when it runs.
"""

from __future__ import annotations

from typing import Any

__all__ = ["BenchConfig", "load_document", "run_bench", "write_reports"]


def __getattr__(name: str) -> Any:
    if name in ("BenchConfig", "BenchProgress", "run_bench"):
        from zoo.bench import runner

        return getattr(runner, name)
    if name == "write_reports":
        from zoo.bench.report import write_reports

        return write_reports
    if name == "load_document":
        from zoo.bench.schema import load_document

        return load_document
    raise AttributeError(f"module 'zoo.bench' has no attribute {name!r}")
