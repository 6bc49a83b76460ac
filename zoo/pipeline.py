"""The run pipeline: dataset -> protocol -> encoding -> model -> training -> embeddings -> exact and
ANN evaluation -> RunReport (DESIGN section 3). One direction, no stage reaches back; nothing here
prints. The CLI parses options into a :class:`RunConfig` and calls :func:`run`.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from zoo._version import __version__
from zoo.errors import UsageError
from zoo.registry import Registry, default_registry
from zoo.report import REPORT_FILE, RunReport

#: keys of ``--param`` that configure the trainer rather than the model
TRAINER_KEYS = {
    "mode": int,
    "negatives": str,
    "num_negatives": int,
    "epochs": int,
    "batch_size": int,
    "lr": float,
    "weight_decay": float,
    "embedding_l2": float,
    "dense_l2": float,
    "patience": int,
    "valid_metric": str,
    "pairwise_loss": str,
    "margin": float,
    "popularity_alpha": float,
    "logq_correction": bool,
    "grad_clip": float,
}
DEFAULT_TRAINER = {"mode": 2, "negatives": "auto", "epochs": 10, "batch_size": 512, "lr": 1e-3, "patience": 3}


@dataclass
class RunConfig:
    """Everything ``zoo run`` needs. ``params`` override the model's preset (model and trainer keys);
    ``retriever_params`` and ``dataset_options`` go to the retriever and the dataset."""

    model: str
    retriever: str = "exact"
    dataset: str = "synthetic"
    data_path: str | None = None
    protocol: str | None = None
    mask_seen: bool | None = None
    device: str = "auto"
    epochs: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    seed: int = 0
    params: dict[str, Any] = field(default_factory=dict)
    retriever_params: dict[str, Any] = field(default_factory=dict)
    dataset_options: dict[str, Any] = field(default_factory=dict)
    protocol_overrides: dict[str, Any] = field(default_factory=dict)
    ks: tuple[int, ...] = (10, 50)
    metric: str = "ip"
    out: str | None = None
    save: bool = True

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Progress:
    """Receives stage events from :func:`run` (the CLI shows them; the default ignores them)."""

    def stage(self, name: str, detail: str = "") -> None:
        """A stage started (``load``, ``prepare``, ``train``, ``evaluate``, ``index``, ``save``)."""

    def trainer_callbacks(self) -> list[Any]:
        """Callbacks handed to the MatchTrainer (e.g. a progress bar)."""
        return []


def _versions(extra: Mapping[str, str]) -> dict[str, str]:
    import numpy
    import pandas
    import torch

    out = {
        "recall-zoo": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "pandas": pandas.__version__,
        "platform": platform.platform(),
    }
    if torch.version.cuda:
        out["cuda"] = str(torch.version.cuda)
    out.update({k: v for k, v in extra.items() if v})
    return out


def split_params(params: Mapping[str, Any], model_defaults: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split merged preset + user parameters into (trainer settings, model constructor settings)."""
    merged = {**DEFAULT_TRAINER, **dict(model_defaults), **dict(params)}
    trainer = {k: v for k, v in merged.items() if k in TRAINER_KEYS}
    model = {k: v for k, v in merged.items() if k not in TRAINER_KEYS}
    return trainer, model


def default_run_dir(config: RunConfig) -> Path:
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{stamp}-{config.model}-{config.retriever}-{config.dataset}"


def run(config: RunConfig, *, registry: Registry | None = None, progress: Progress | None = None) -> RunReport:
    """Train ``config.model`` on ``config.dataset``, evaluate it exactly and through ``config.retriever``,
    write the run directory and return the report."""
    import numpy as np
    import torch

    from zoo.data.locate import resolve_data_path
    from zoo.data.match import MatchData
    from zoo.data.protocol import get_protocol
    from zoo.device import device_info, resolve_device
    from zoo.evaluate import ann_recall, ranking_metrics, topk_items
    from zoo.retrieval.filtering import query_excluding
    from zoo.train.inference import embed_items, embed_users
    from zoo.train.trainer import MatchTrainer

    registry = registry or default_registry()
    progress = progress or Progress()
    timings: dict[str, float] = {}
    ks = tuple(sorted(set(int(k) for k in config.ks)))
    if not ks or ks[0] < 1:
        raise UsageError(f"--k values must be positive integers, got {config.ks}")
    max_k = ks[-1]

    # Resolve every name first: a typo fails in a second, not after training.
    model_spec = registry.model(config.model)
    retriever_spec = registry.retriever(config.retriever)
    dataset_spec = registry.dataset(config.dataset)
    device = resolve_device(config.device)
    protocol = get_protocol(config.protocol or dataset_spec.default_protocol)
    protocol = protocol.replace(mask_seen=config.mask_seen, **config.protocol_overrides)
    params = dict(config.params)
    for key, value in (("epochs", config.epochs), ("batch_size", config.batch_size), ("lr", config.lr)):
        if value is not None:
            params[key] = value
    trainer_cfg, model_cfg = split_params(params, model_spec.defaults)
    mode = int(trainer_cfg["mode"])
    if mode not in model_spec.train_modes:
        raise UsageError(f"--param mode={mode}: model '{model_spec.name}' trains in modes {list(model_spec.train_modes)}")
    model_cls = model_spec.load()
    retriever = registry.create_retriever(retriever_spec.qualified_name, metric=config.metric, **config.retriever_params)
    data_path = resolve_data_path(dataset_spec, config.data_path) if dataset_spec.needs_path else config.data_path

    progress.stage("load", dataset_spec.name)
    started = time.perf_counter()
    interactions = registry.load_dataset(dataset_spec.qualified_name, data_path, **config.dataset_options)
    timings["load_s"] = time.perf_counter() - started

    progress.stage("prepare", protocol.name)
    started = time.perf_counter()
    data = MatchData.from_interactions(interactions, protocol)
    timings["prepare_s"] = time.perf_counter() - started

    torch.manual_seed(config.seed)
    np.random.seed(config.seed % 2**32)
    try:
        model = model_cls.from_schema(data.schema, **model_cfg)
    except TypeError as exc:
        raise UsageError(f"model '{model_spec.name}': {exc}; check the --param names (zoo models --json lists them)") from None
    model.set_item_table(data.item_table)
    trainer = MatchTrainer(
        model,
        mode=mode,
        optimizer_params={"lr": float(trainer_cfg["lr"]), "weight_decay": float(trainer_cfg.get("weight_decay", 0.0))},
        regularization_params={k: float(trainer_cfg[k]) for k in ("embedding_l2", "dense_l2") if k in trainer_cfg},
        n_epoch=int(trainer_cfg["epochs"]),
        earlystop_patience=int(trainer_cfg["patience"]),
        device=device,
        model_path=None,
        negatives=str(trainer_cfg["negatives"]),
        num_negatives=trainer_cfg.get("num_negatives"),
        pairwise_loss=str(trainer_cfg.get("pairwise_loss", "bpr")),
        margin=float(trainer_cfg.get("margin", 1.0)),
        item_counts=data.item_counts,
        popularity_alpha=float(trainer_cfg.get("popularity_alpha", 0.75)),
        logq_correction=bool(trainer_cfg.get("logq_correction", True)),
        valid_metric=str(trainer_cfg.get("valid_metric", f"recall@{max_k}")),
        seed=config.seed,
        grad_clip=trainer_cfg.get("grad_clip"),
        verbose=False,
        callbacks=progress.trainer_callbacks(),
    )
    progress.stage("train", f"{model_spec.name} on {device}")
    started = time.perf_counter()
    history = trainer.fit(data.train_batches(int(trainer_cfg["batch_size"]), seed=config.seed), data.ranking_task("valid"))
    timings["train_s"] = time.perf_counter() - started
    epochs_run = len(history)
    samples_per_s = epochs_run * int(data.train_positions.shape[0]) / max(timings["train_s"], 1e-9)

    progress.stage("evaluate", "exact full ranking")
    task = data.ranking_task("test")
    started = time.perf_counter()
    user_vectors = embed_users(model, task.users, device)
    item_vectors = embed_items(model, task.catalogue, device)
    timings["embed_s"] = time.perf_counter() - started
    started = time.perf_counter()
    rows, _ = topk_items(user_vectors.to(device), item_vectors.to(device), max_k, exclude=task.exclude, device=device)
    timings["exact_search_s"] = time.perf_counter() - started
    catalogue = task.catalogue.numpy()
    rows = rows.numpy()
    exact_top = np.where(rows >= 0, catalogue[rows.clip(min=0)], -1)
    metrics = {"exact": ranking_metrics(exact_top, task.targets, ks=ks)}
    popularity = data.item_counts[task.catalogue].float().unsqueeze(1)
    pop_rows, _ = topk_items(torch.ones(task.num_users, 1), popularity, max_k, exclude=task.exclude)
    pop_rows = pop_rows.numpy()
    metrics["popularity"] = ranking_metrics(np.where(pop_rows >= 0, catalogue[pop_rows.clip(min=0)], -1), task.targets, ks=ks)

    progress.stage("index", f"{retriever_spec.name} over {len(catalogue)} items")
    started = time.perf_counter()
    retriever.fit(item_vectors.numpy(), ids=catalogue)
    timings["index_build_s"] = time.perf_counter() - started
    exclude_ids = None
    if task.exclude is not None:
        indptr, excluded_rows = (t.numpy() for t in task.exclude)
        exclude_ids = (indptr, catalogue[excluded_rows])
    started = time.perf_counter()
    ann_top, _ = query_excluding(retriever, user_vectors.numpy(), max_k, exclude_ids)
    timings["index_query_s"] = time.perf_counter() - started
    metrics["retriever"] = ranking_metrics(ann_top, task.targets, ks=ks)
    recall_vs_exact = {f"recall@{k}": ann_recall(ann_top[:, :k], exact_top[:, :k]) for k in ks}

    report = RunReport(
        config=config.to_dict() | {"model_params": model_cfg, "trainer": trainer_cfg},
        protocol=data.card,
        data={"dataset": dataset_spec.name, **interactions.stats(), **data.summary(), "schema": data.schema.to_dict()},
        training={
            "mode": mode,
            "negatives": trainer.negatives,
            "epochs_run": epochs_run,
            "best_epoch": trainer.best_epoch,
            "best_valid": trainer.best_score,
            "valid_metric": trainer.valid_metric,
            "history": history,
            "samples_per_s": samples_per_s,
            "parameters": int(sum(p.numel() for p in model.parameters())),
        },
        metrics=metrics,
        retriever={
            "name": retriever_spec.name,
            "metric": config.metric,
            "build_params": dict(retriever.build_params),
            "query_params": dict(retriever.query_params),
            "recall_vs_exact": recall_vs_exact,
            "queries_per_s": task.num_users / max(timings["index_query_s"], 1e-9),
            "exact_queries_per_s": task.num_users / max(timings["exact_search_s"], 1e-9),
        },
        timings=timings,
        versions=_versions({retriever_spec.name: retriever.backend_version()}),
        device=device_info(device),
        created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    )
    if config.save:
        progress.stage("save", "run directory")
        run_dir = Path(config.out) if config.out else default_run_dir(config)
        report.run_dir = str(run_dir)
        save_run(run_dir, report, model, data, retriever)
    report.warnings += registry.manager.call_safely("zoo_run_finished", report=report)
    return report


def save_run(run_dir: Path, report: RunReport, model: Any, data: Any, retriever: Any) -> None:
    """Write ``run.json``, ``model/`` (safetensors + config + vocabularies) and ``index/`` atomically."""
    from zoo.io import atomic_dir, commit_dir

    tmp = atomic_dir(run_dir)
    try:
        model.save(tmp / "model", extra={"schema": data.schema.to_dict(), "protocol": data.protocol.name})
        data.encoder.save(tmp / "model" / "vocab.json")
        retriever.save(tmp / "index")
        (tmp / REPORT_FILE).write_text(report.to_json())
        commit_dir(tmp, run_dir)
    except BaseException:
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
        raise


def parse_param_value(text: str) -> Any:
    """``--param`` values: JSON (numbers, true/false, lists) where it parses, else a string.
    ``128,64`` is read as a list of numbers."""
    try:
        return json.loads(text)
    except ValueError:
        pass
    if "," in text:
        parts = [parse_param_value(p.strip()) for p in text.split(",") if p.strip()]
        return parts
    lowered = text.lower()
    if lowered in ("true", "yes", "on"):
        return True
    if lowered in ("false", "no", "off"):
        return False
    return text


def parse_params(items: Iterable[str]) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any], dict[str, Any]]:
    """Parse ``key=value`` strings into (model/trainer params, retriever params, dataset options,
    protocol overrides).

    ``retriever.KEY=V`` goes to the retriever, ``data.KEY=V`` to the dataset, ``protocol.KEY=V`` to the
    protocol (``min_rating``, ``user_core``, ``item_core``, ``history_len``), the rest to the model.
    """
    model: dict[str, Any] = {}
    retriever: dict[str, Any] = {}
    dataset: dict[str, Any] = {}
    protocol: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise UsageError(f"--param {item!r} must look like key=value (e.g. temperature=0.05, retriever.ef=128)")
        target = model
        for prefix, bucket in (("retriever.", retriever), ("data.", dataset), ("protocol.", protocol), ("model.", model)):
            if key.startswith(prefix):
                key, target = key[len(prefix):], bucket
                break
        target[key] = parse_param_value(value.strip())
    return model, retriever, dataset, protocol


def environment_summary() -> dict[str, Any]:
    """Versions and devices for ``zoo doctor``."""
    from zoo.device import available_devices

    return {"versions": _versions({}), "devices": available_devices(), "cpu_count": os.cpu_count()}


ProgressCallback = Callable[[str, str], None]
