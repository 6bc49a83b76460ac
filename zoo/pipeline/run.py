"""``run``: every stage in order, for one model x retriever (what ``zoo run`` calls)."""

from __future__ import annotations

import datetime as _dt
import time
from typing import Any

from zoo.pipeline.config import RunConfig
from zoo.pipeline.save import open_checkpoints, save_run
from zoo.pipeline.stages import (
    Embedded,
    Progress,
    Trained,
    embed,
    evaluate_exact,
    evaluate_index,
    evaluate_popularity,
    prepare,
    train,
)
from zoo.registry import Registry, default_registry
from zoo.report import RunReport


def run(
    config: RunConfig, *, registry: Registry | None = None, progress: Progress | None = None
) -> RunReport | None:
    """Train ``config.model`` on ``config.dataset``, evaluate it exactly and through ``config.retriever``,
    write the run folder (unless ``config.save`` is false) and return the report.

    The output folder, the retriever and every name and setting are checked before any work starts.

    Under ``torchrun`` (:mod:`zoo.distributed`) rank 0 does all of this, training with the other
    ranks; the other ranks only prepare the data and train (silently) and return None."""
    from zoo.distributed import is_main_process, leave_group
    from zoo.errors import UsageError
    from zoo.folders import check_run_folder, writer_lock

    registry = registry or default_registry()
    if not is_main_process():
        train(prepare(config, registry=registry))
        leave_group()  # rank 0 leaves right after training too (_run)
        return None
    progress = progress or Progress()
    if config.resume and not config.out:
        raise UsageError(
            "--resume continues an interrupted run in its folder: give the same --out as that run"
        )
    if config.resume and not config.save:
        raise UsageError("resume needs save=True: a run's checkpoints are kept beside its folder")
    run_dir = config.run_dir()
    if not config.save:
        return _run(config, registry, progress, run_dir, into_existing=False)
    into_existing = check_run_folder(run_dir, force=config.force)
    with writer_lock(run_dir):
        return _run(config, registry, progress, run_dir, into_existing=into_existing)


def _run(
    config: RunConfig, registry: Registry, progress: Progress, run_dir: Any, *, into_existing: bool
) -> RunReport:
    ks = config.resolved_ks()
    retriever_spec = registry.retriever(config.retriever)
    retriever = registry.create_retriever(
        retriever_spec.qualified_name, metric=config.metric, **config.retriever_params
    )
    checkpoints = open_checkpoints(run_dir, resume=config.resume) if config.save else None
    prepared = prepare(config, registry=registry, progress=progress)
    trained = train(prepared, progress=progress, checkpoint_dir=checkpoints)
    from zoo.distributed import leave_group

    leave_group()  # training was the ranks' shared work; rank 0 evaluates and saves alone

    progress.stage("evaluate", "exact full ranking")
    embedded = embed(trained, progress=progress)
    exact = evaluate_exact(embedded, ks)
    popularity = evaluate_popularity(embedded, ks)

    progress.stage("index", f"{retriever_spec.name} over {len(embedded.catalogue)} items")
    started = time.perf_counter()
    with progress.task(f"build the {retriever_spec.name} index"):
        retriever.fit(embedded.item_matrix(), ids=embedded.catalogue)
    index_build_s = time.perf_counter() - started
    through_index = evaluate_index(retriever, embedded, ks, exact)

    timings = {
        **prepared.timings,
        **trained.timings,
        **embedded.timings,
        "exact_search_s": exact.seconds,
        "index_build_s": index_build_s,
        "index_query_s": through_index.seconds,
    }
    report = build_report(
        config,
        trained,
        embedded,
        retriever_spec.name,
        retriever,
        timings=timings,
        metrics={
            "exact": exact.metrics,
            "retriever": through_index.metrics,
            "popularity": popularity.metrics,
        },
        index={
            "recall_vs_exact": through_index.recall_vs_exact,
            "queries_per_s": through_index.users_per_s,
            "exact_queries_per_s": exact.users_per_s,
        },
    )
    if config.save:
        progress.stage("save", "run directory")
        report.run_dir = str(run_dir)
        save_run(run_dir, report, trained, retriever, into_existing=into_existing, checkpoints=checkpoints)
    report.warnings = [*prepared.warnings, *report.warnings]
    report.warnings += registry.manager.call_safely("zoo_run_finished", report=report)
    return report


def build_report(
    config: RunConfig,
    trained: Trained,
    embedded: Embedded,
    retriever_name: str,
    retriever: Any,
    *,
    timings: dict[str, float],
    metrics: dict[str, dict[str, float]],
    index: dict[str, Any],
) -> RunReport:
    """The run's report: config and resolved settings, protocol card, data, training, metrics, the
    retriever's settings and speed, timings, versions and device."""
    from zoo.device import device_info
    from zoo.environment import versions

    settings = trained.settings
    return RunReport(
        config=config.to_dict()
        | {
            "model_params": settings.model,
            "trainer": settings.trainer.to_dict(),
            "data_params": settings.data,
        },
        protocol=trained.data.card,
        data={
            **trained.prepared.dataset_stats,
            **trained.data.summary(),
            "schema": trained.data.schema.to_dict(),
        },
        training=trained.training_summary(),
        metrics=metrics,
        retriever={
            "name": retriever_name,
            "metric": config.metric,
            "build_params": dict(retriever.build_params),
            "query_params": dict(retriever.query_params),
            **index,
        },
        timings=timings,
        versions=versions({retriever_name: retriever.backend_version()}),
        device=device_info(trained.device),
        created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    )
