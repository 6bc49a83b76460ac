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
    "bpr_max_reg": float,
    "popularity_alpha": float,
    "logq_correction": bool,
    "grad_clip": float,
    "time_limit": float,
    "window_stride": int,
    "lr_schedule": str,
    "lr_factor": float,
    "lr_patience": int,
    "ema_decay": float,
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
    force: bool = False

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


@dataclass
class TrainedModel:
    """A model trained by :func:`train_model`, with everything needed to evaluate or serve it."""

    config: RunConfig
    model_spec: Any
    dataset_spec: Any
    data: Any  # MatchData
    model: Any  # RecallModel
    trainer: Any  # MatchTrainer
    history: list[dict[str, Any]]
    device: Any
    trainer_cfg: dict[str, Any]
    model_cfg: dict[str, Any]
    dataset_stats: dict[str, Any]
    timings: dict[str, float]

    @property
    def samples_per_s(self) -> float:
        samples = int(self.data.train_sample_count(self.model))
        return len(self.history) * samples / max(self.timings["train_s"], 1e-9)

    def training_summary(self) -> dict[str, Any]:
        return {
            "mode": int(self.trainer_cfg["mode"]),
            "negatives": self.trainer.negatives,
            "epochs_run": len(self.history),
            "best_epoch": self.trainer.best_epoch,
            "stopped": self.trainer.stop_reason,
            "best_valid": self.trainer.best_score,
            "valid_metric": self.trainer.valid_metric,
            "history": self.history,
            "samples_per_s": self.samples_per_s,
            "parameters": int(sum(p.numel() for p in self.model.parameters())),
        }


@dataclass
class TestEmbeddings:
    """The test ranking task with its user and item vectors and the exact top-K (ground truth)."""

    task: Any  # RankingTask
    user_vectors: Any  # torch.Tensor [U, D] or [U, K, D]
    item_vectors: Any  # torch.Tensor [N, D]
    exact_top: Any  # np.ndarray [U, max_k] item ids
    timings: dict[str, float]

    @property
    def catalogue(self) -> Any:
        return self.task.catalogue.numpy()

    def exclude_ids(self) -> tuple[Any, Any] | None:
        """The task's exclusion CSR with item ids (what a retriever returns) instead of catalogue rows."""
        if self.task.exclude is None:
            return None
        indptr, rows = (t.numpy() for t in self.task.exclude)
        return indptr, self.catalogue[rows]


def _resolve_ks(ks: Iterable[int]) -> tuple[int, ...]:
    out = tuple(sorted(set(int(k) for k in ks)))
    if not out or out[0] < 1:
        raise UsageError(f"--k values must be positive integers, got {tuple(ks)}")
    return out


def train_model(config: RunConfig, *, registry: Registry | None = None, progress: Progress | None = None) -> TrainedModel:
    """Resolve names, load and prepare the dataset, build the model from its preset and train it."""
    import numpy as np
    import torch

    from zoo.data.locate import resolve_data_path
    from zoo.data.match import MatchData
    from zoo.data.protocol import get_protocol
    from zoo.device import resolve_device
    from zoo.train.trainer import MatchTrainer

    registry = registry or default_registry()
    progress = progress or Progress()
    timings: dict[str, float] = {}
    # Resolve every name first: a typo fails in a second, not after training.
    model_spec = registry.model(config.model)
    dataset_spec = registry.dataset(config.dataset)
    device = resolve_device(config.device)
    protocol = get_protocol(config.protocol or dataset_spec.default_protocol)
    protocol = protocol.replace(mask_seen=config.mask_seen, **config.protocol_overrides)
    params = dict(config.params)
    for key, value in (("epochs", config.epochs), ("batch_size", config.batch_size), ("lr", config.lr)):
        if value is not None:
            params[key] = value
    trainer_cfg, model_cfg = split_params(params, model_spec.defaults)
    if "mode" in params and "negatives" not in params:
        trainer_cfg["negatives"] = "auto"  # the preset's negatives belong to the preset's mode
    mode = int(trainer_cfg["mode"])
    if mode not in model_spec.train_modes:
        raise UsageError(f"--param mode={mode}: model '{model_spec.name}' trains in modes {list(model_spec.train_modes)}")
    model_cls = model_spec.load()
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
    max_k = max(config.ks)
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
        bpr_max_reg=float(trainer_cfg.get("bpr_max_reg", 1.0)),
        item_counts=data.item_counts,
        popularity_alpha=float(trainer_cfg.get("popularity_alpha", 0.75)),
        logq_correction=bool(trainer_cfg.get("logq_correction", True)),
        valid_metric=str(trainer_cfg.get("valid_metric", f"recall@{max_k}")),
        seed=config.seed,
        grad_clip=trainer_cfg.get("grad_clip"),
        verbose=False,
        callbacks=progress.trainer_callbacks(),
        time_limit=trainer_cfg.get("time_limit"),
        # the schedule and averaging keys keep the trainer's defaults unless given
        **{k: trainer_cfg[k] for k in ("lr_schedule", "lr_factor", "lr_patience", "ema_decay") if k in trainer_cfg},
    )
    progress.stage("train", f"{model_spec.name} on {device}")
    started = time.perf_counter()
    batches = data.training_batches(
        model, int(trainer_cfg["batch_size"]), seed=config.seed, window_stride=trainer_cfg.get("window_stride")
    )
    history = trainer.fit(batches, data.ranking_task("valid"))
    timings["train_s"] = time.perf_counter() - started
    return TrainedModel(
        config=config, model_spec=model_spec, dataset_spec=dataset_spec, data=data, model=model, trainer=trainer,
        history=history, device=device, trainer_cfg=trainer_cfg, model_cfg=model_cfg,
        dataset_stats={"dataset": dataset_spec.name, **interactions.stats()}, timings=timings,
    )


def embed_test(trained: TrainedModel, ks: Iterable[int]) -> TestEmbeddings:
    """User vectors of the test task, item vectors of the catalogue, and the exact top-max(ks)."""
    import numpy as np

    from zoo.evaluate import topk_items
    from zoo.train.inference import embed_items, embed_users

    timings: dict[str, float] = {}
    task = trained.data.ranking_task("test")
    device = trained.device
    started = time.perf_counter()
    user_vectors = embed_users(trained.model, task.users, device)
    item_vectors = embed_items(trained.model, task.catalogue, device)
    timings["embed_s"] = time.perf_counter() - started
    started = time.perf_counter()
    rows, _ = topk_items(user_vectors.to(device), item_vectors.to(device), max(ks), exclude=task.exclude, device=device)
    timings["exact_search_s"] = time.perf_counter() - started
    catalogue = task.catalogue.numpy()
    rows = rows.numpy()
    exact_top = np.where(rows >= 0, catalogue[rows.clip(min=0)], -1)
    return TestEmbeddings(task=task, user_vectors=user_vectors, item_vectors=item_vectors, exact_top=exact_top, timings=timings)


def popularity_metrics(trained: TrainedModel, test: TestEmbeddings, ks: tuple[int, ...]) -> dict[str, float]:
    """The popularity baseline under the same protocol (same masking, same candidates)."""
    import numpy as np
    import torch

    from zoo.evaluate import ranking_metrics, topk_items

    task = test.task
    popularity = trained.data.item_counts[task.catalogue].float().unsqueeze(1)
    rows, _ = topk_items(torch.ones(task.num_users, 1), popularity, max(ks), exclude=task.exclude)
    rows = rows.numpy()
    return ranking_metrics(np.where(rows >= 0, test.catalogue[rows.clip(min=0)], -1), task.targets, ks=ks)


def evaluate_retriever(retriever: Any, test: TestEmbeddings, ks: tuple[int, ...]) -> dict[str, Any]:
    """Query a fitted retriever for every test user (seen items excluded when the protocol masks) and
    score it: task metrics, recall against exact top-K, and query time."""
    from zoo.evaluate import ann_recall, ranking_metrics
    from zoo.retrieval.filtering import query_excluding

    started = time.perf_counter()
    top, _ = query_excluding(retriever, test.user_vectors.numpy(), max(ks), test.exclude_ids())
    query_s = time.perf_counter() - started
    return {
        "top": top,
        "metrics": ranking_metrics(top, test.task.targets, ks=ks),
        "recall_vs_exact": {f"recall@{k}": ann_recall(top[:, :k], test.exact_top[:, :k]) for k in ks},
        "query_s": query_s,
        "queries_per_s": test.task.num_users / max(query_s, 1e-9),
    }


def run(config: RunConfig, *, registry: Registry | None = None, progress: Progress | None = None) -> RunReport:
    """Train ``config.model`` on ``config.dataset``, evaluate it exactly and through ``config.retriever``,
    write the run directory and return the report."""
    from zoo.device import device_info
    from zoo.evaluate import ranking_metrics
    from zoo.folders import check_run_folder

    registry = registry or default_registry()
    progress = progress or Progress()
    ks = _resolve_ks(config.ks)
    run_dir = Path(config.out) if config.out else default_run_dir(config)
    into_existing = check_run_folder(run_dir, force=config.force) if config.save else False
    retriever_spec = registry.retriever(config.retriever)
    retriever = registry.create_retriever(retriever_spec.qualified_name, metric=config.metric, **config.retriever_params)
    trained = train_model(config, registry=registry, progress=progress)
    timings = dict(trained.timings)

    progress.stage("evaluate", "exact full ranking")
    test = embed_test(trained, ks)
    timings.update(test.timings)
    metrics = {
        "exact": ranking_metrics(test.exact_top, test.task.targets, ks=ks),
        "popularity": popularity_metrics(trained, test, ks),
    }

    progress.stage("index", f"{retriever_spec.name} over {len(test.catalogue)} items")
    started = time.perf_counter()
    retriever.fit(test.item_vectors.numpy(), ids=test.catalogue)
    timings["index_build_s"] = time.perf_counter() - started
    through_index = evaluate_retriever(retriever, test, ks)
    timings["index_query_s"] = through_index["query_s"]
    metrics["retriever"] = through_index["metrics"]

    report = RunReport(
        config=config.to_dict() | {"model_params": trained.model_cfg, "trainer": trained.trainer_cfg},
        protocol=trained.data.card,
        data={**trained.dataset_stats, **trained.data.summary(), "schema": trained.data.schema.to_dict()},
        training=trained.training_summary(),
        metrics=metrics,
        retriever={
            "name": retriever_spec.name,
            "metric": config.metric,
            "build_params": dict(retriever.build_params),
            "query_params": dict(retriever.query_params),
            "recall_vs_exact": through_index["recall_vs_exact"],
            "queries_per_s": through_index["queries_per_s"],
            "exact_queries_per_s": test.task.num_users / max(timings["exact_search_s"], 1e-9),
        },
        timings=timings,
        versions=_versions({retriever_spec.name: retriever.backend_version()}),
        device=device_info(trained.device),
        created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    )
    if config.save:
        progress.stage("save", "run directory")
        report.run_dir = str(run_dir)
        save_run(run_dir, report, trained.model, trained.data, retriever, into_existing=into_existing)
    report.warnings += registry.manager.call_safely("zoo_run_finished", report=report)
    return report


def save_run(
    run_dir: Path, report: RunReport, model: Any, data: Any, retriever: Any, *, into_existing: bool = False
) -> None:
    """Write ``run.json``, ``model/`` (safetensors + config + vocabularies) and ``index/`` atomically.

    The folder is replaced whole (it is missing, empty or a previous run), or with ``into_existing``
    the run's entries are moved into a folder that holds other files, which stay untouched."""
    from zoo.folders import commit_entries
    from zoo.io import atomic_dir, commit_dir

    tmp = atomic_dir(run_dir)
    try:
        model.save(tmp / "model", extra={"schema": data.schema.to_dict(), "protocol": data.protocol.name})
        data.encoder.save(tmp / "model" / "vocab.json")
        retriever.save(tmp / "index")
        (tmp / REPORT_FILE).write_text(report.to_json())
        if into_existing:
            commit_entries(tmp, run_dir)
        else:
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
    protocol (``min_rating``, ``user_core``, ``item_core``, ``history_len``, ``time_precision``), the rest to
    the model.
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
