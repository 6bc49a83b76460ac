"""The stages of a run, each a public function (DESIGN section 3)::

    prepared = prepare(RunConfig(model="dssm"))       # names, settings, dataset, protocol, encoding
    trained = train(prepared)                          # the model from its preset, fitted
    embedded = embed(trained)                          # test users and the catalogue as vectors
    exact = evaluate_exact(embedded, ks)               # ground truth: exact full ranking + metrics
    baseline = evaluate_popularity(embedded, ks)       # the popularity baseline, same protocol
    retriever.fit(embedded.item_matrix(), ids=embedded.catalogue)
    through_index = evaluate_index(retriever, embedded, ks, exact)

``zoo run``, ``zoo bench`` and the quality benchmark call these; no stage reaches back into an
earlier one, and nothing here prints (events go to a :class:`Progress`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from zoo.pipeline.config import RunConfig, Settings, resolve_settings
from zoo.registry import Registry, default_registry


class Progress:
    """Receives stage events (the CLI shows them; the default ignores them)."""

    def stage(self, name: str, detail: str = "") -> None:
        """A stage started (``load``, ``prepare``, ``train``, ``evaluate``, ``index``, ``save``)."""

    def trainer_callbacks(self) -> list[Any]:
        """Callbacks handed to the MatchTrainer (e.g. a progress bar)."""
        return []

    def warning(self, line: str) -> None:
        """Something went wrong but the run goes on (e.g. a plugin's callback failed)."""

    def task(
        self, name: str, total: int | None = None
    ) -> contextlib.AbstractContextManager[Callable[[int], None]]:
        """A long step inside a stage (embedding the catalogue, building the index): entering gives a
        function to call with the amount done since the last call; ``total`` None when unknown (a
        spinner with the elapsed time)."""
        return contextlib.nullcontext(_ignore)


def _ignore(done: int) -> None:
    """The default progress of a task: nothing shown."""


# -- prepare -------------------------------------------------------------------------------------------
@dataclass
class Prepared:
    """A run's resolved names and settings and its encoded data, ready to train."""

    config: RunConfig
    model_spec: Any  # ModelSpec
    dataset_spec: Any  # DatasetSpec
    device: Any  # torch.device
    settings: Settings
    data: Any  # zoo.data.match.MatchData
    dataset_stats: dict[str, Any]
    timings: dict[str, float] = field(default_factory=dict)
    #: one line each: what was repaired in the data, or a setting that does not fit it
    warnings: list[str] = field(default_factory=list)
    registry: Any = None  # the registry the names were resolved in (plugins' trainer callbacks)


def prepare(
    config: RunConfig, *, registry: Registry | None = None, progress: Progress | None = None
) -> Prepared:
    """Resolve the model, dataset, protocol, device and settings (a typo fails here, before any work),
    then load the dataset and encode it under the protocol."""
    from zoo.data.locate import resolve_data_path
    from zoo.data.match import MatchData
    from zoo.data.protocol import get_protocol
    from zoo.device import resolve_device
    from zoo.pipeline.model_params import check_model_params

    registry = registry or default_registry()
    progress = progress or Progress()
    model_spec = registry.model(config.model)
    dataset_spec = registry.dataset(config.dataset)
    device = resolve_device(config.device)
    protocol = get_protocol(config.protocol or dataset_spec.default_protocol)
    protocol = protocol.replace(mask_seen=config.mask_seen, **config.protocol_overrides)
    settings = resolve_settings(model_spec, config)
    model_params = check_model_params(
        model_spec.name, model_spec.load(), settings.model, model_spec.model_defaults
    )
    settings = dataclasses.replace(settings, model=model_params)
    data_path = (
        resolve_data_path(dataset_spec, config.data_path) if dataset_spec.needs_path else config.data_path
    )
    timings: dict[str, float] = {}

    if config.prepared_dir is not None:
        from zoo.data.prepared import prepared_match_data

        found = prepared_match_data(
            config.prepared_dir,
            registry=registry,
            dataset_spec=dataset_spec,
            data_path=data_path,
            options=config.dataset_options,
            protocol=protocol,
            progress=progress,
        )
        data, dataset_stats, warnings = found.data, found.dataset_stats, list(found.warnings)
        timings.update(found.timings)
    else:
        progress.stage("load", dataset_spec.name)
        started = time.perf_counter()
        interactions = registry.load_dataset(dataset_spec.qualified_name, data_path, **config.dataset_options)
        timings["load_s"] = time.perf_counter() - started

        progress.stage("prepare", protocol.name)
        started = time.perf_counter()
        data = MatchData.from_interactions(interactions, protocol)
        timings["prepare_s"] = time.perf_counter() - started
        warnings = list(interactions.warnings)
        dataset_stats = {"dataset": dataset_spec.name, **interactions.stats()}
    samples, batch_size = data.train_sample_count(), settings.trainer.batch_size
    if samples < batch_size:
        warnings.append(
            f"warning: batch_size={batch_size} exceeds the {samples} training samples, so every epoch is one"
            f" batch; use a smaller batch_size (e.g. --batch-size {max(1, samples // 8)})"
        )
    return Prepared(
        config=config,
        model_spec=model_spec,
        dataset_spec=dataset_spec,
        device=device,
        settings=settings,
        data=data,
        dataset_stats=dataset_stats,
        timings=timings,
        warnings=warnings,
        registry=registry,
    )


# -- train ---------------------------------------------------------------------------------------------
@dataclass
class Trained:
    """A model trained by :func:`train`, with its trainer and training history."""

    prepared: Prepared
    model: Any  # RecallModel
    trainer: Any  # MatchTrainer
    history: list[dict[str, Any]]
    timings: dict[str, float]

    @property
    def data(self) -> Any:
        return self.prepared.data

    @property
    def device(self) -> Any:
        return self.prepared.device

    @property
    def settings(self) -> Settings:
        return self.prepared.settings

    @property
    def samples_per_s(self) -> float:
        samples = int(self.data.train_sample_count(self.model))
        return len(self.history) * samples / max(self.timings["train_s"], 1e-9)

    def training_summary(self) -> dict[str, Any]:
        """Epochs, best epoch, why it stopped, validation metric, speed and size (for reports)."""
        return {
            "mode": self.settings.trainer.mode,
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


def build_model(prepared: Prepared) -> Any:
    """The model from its preset over the prepared schema, seeded by the run's seed, with the
    catalogue's item table installed."""
    import torch

    from zoo.errors import UsageError, one_line

    spec = prepared.model_spec
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(prepared.config.seed)
        try:
            model = spec.load().from_schema(prepared.data.schema, **prepared.settings.model)
        except (TypeError, ValueError, RuntimeError) as exc:
            raise UsageError(
                f"model '{spec.name}' cannot be built with these parameters ({one_line(exc)}); check the"
                " --param names and values (zoo models --json shows the preset)"
            ) from None
    model.set_item_table(prepared.data.item_table)
    return model


def plugin_callbacks(prepared: Prepared, progress: Progress) -> list[Any]:
    """The trainer callbacks plugins add to this run (``zoo_trainer_callbacks``), each guarded: one that
    raises is switched off with a warning instead of stopping training."""
    from zoo.train.callbacks import GuardedCallback

    if prepared.registry is None:
        return []
    results, warnings = prepared.registry.manager.gather_safely(
        "zoo_trainer_callbacks", config=prepared.config
    )
    for line in warnings:
        progress.warning(line)
    return [
        GuardedCallback(callback, type(callback).__name__, progress.warning)
        for result in results
        for callback in result
    ]


def train(prepared: Prepared, *, progress: Progress | None = None, checkpoint_dir: Any = None) -> Trained:
    """Build the model from its preset and fit it on the prepared data, validating on the valid split.

    With ``checkpoint_dir`` (a folder), a checkpoint is written there after every epoch, and with the
    run's ``resume`` the fit continues from the one there instead of starting over (a checkpoint of a
    run with another model, dataset, parameters or seed is refused; see ``MatchTrainer.fit``).

    Under ``torchrun`` (several processes, :mod:`zoo.distributed`) every rank calls this: the process
    group is joined here, each rank trains on its share of every global batch through DDP, and only
    rank 0 runs the plugins' callbacks and writes checkpoints (give the others ``checkpoint_dir=None``)."""
    from zoo.distributed import init_from_env
    from zoo.errors import UsageError
    from zoo.train.trainer import MatchTrainer

    progress = progress or Progress()
    context, device = init_from_env(prepared.device)
    if context is not None:
        if prepared.config.resume:
            raise UsageError("--resume is not supported with several processes yet; resume without --nproc")
        prepared = dataclasses.replace(prepared, device=device)
        context.announce(announcement(prepared.config))
    main = context is None or context.is_main
    settings = prepared.settings
    model = build_model(prepared)
    trainer = MatchTrainer.from_config(
        model,
        settings.trainer,
        device=prepared.device,
        item_counts=prepared.data.item_counts,
        callbacks=[*progress.trainer_callbacks(), *(plugin_callbacks(prepared, progress) if main else [])],
    )
    where = str(prepared.device) if context is None else f"{context.world_size} processes ({device.type})"
    progress.stage("train", f"{prepared.model_spec.name} on {where}")
    started = time.perf_counter()
    batches = prepared.data.training_batches(
        model,
        settings.trainer.batch_size,
        seed=prepared.config.seed,
        window_stride=settings.data.get("window_stride"),
    )
    if context is not None:
        batches = context.shard(batches)
    config = prepared.config
    fingerprint = {
        "model": prepared.model_spec.name,
        "dataset": prepared.dataset_spec.name,
        "data_path": config.data_path,
        "dataset_options": config.dataset_options,
        "protocol": prepared.data.protocol.name,
        "protocol_overrides": config.protocol_overrides,
        "mask_seen": config.mask_seen,
        "params": {
            **config.params,
            "epochs": config.epochs,
            "batch_size": config.batch_size,
            "lr": config.lr,
        },
        "seed": config.seed,
        "settings": settings.to_dict(),
        "data": prepared.data.summary(),
    }
    history = trainer.fit(
        batches,
        prepared.data.ranking_task("valid"),
        resume=config.resume,
        checkpoint_dir=checkpoint_dir if main else None,
        fingerprint=fingerprint,
    )
    return Trained(
        prepared=prepared,
        model=model,
        trainer=trainer,
        history=history,
        timings={"train_s": time.perf_counter() - started},
    )


def announcement(config: RunConfig) -> str:
    """What rank 0 of a leading command tells the other ranks before training: the model and its seed
    (``MODEL@SEED``; a command training one model under several seeds runs each alike on every rank)."""
    return config.model if config.seed is None else f"{config.model}@{config.seed}"


def lead_training(
    work: Callable[[], Any],
    run_config: Callable[[str], RunConfig],
    device: Any,
    *,
    registry: Registry | None = None,
) -> Any:
    """``work()`` (which trains models through :func:`train`) on rank 0 of a distributed command, the
    other ranks training each model with it (:func:`follow_training`); returns ``work()``'s result on
    rank 0 and None on the others. In a single process: just ``work()``."""
    from zoo.device import resolve_device
    from zoo.distributed import finish_leading, is_main_process, lead, under_launcher

    if not under_launcher():
        return work()
    lead()
    if not is_main_process():
        follow_training(run_config, resolve_device(device), registry=registry)
        return None
    result = work()  # a failure here ends this rank, and torchrun stops the others
    finish_leading(resolve_device(device))
    return result


def follow_training(
    run_config: Callable[[str], RunConfig], device: Any, *, registry: Registry | None = None
) -> int:
    """On a rank other than 0 of a command whose rank 0 decides what to train (``zoo bench`` skips the
    models it trained before): train each model rank 0 announces, with ``run_config(name)``'s
    settings and the announced seed (:func:`announcement`), until rank 0 says it is done
    (:func:`zoo.distributed.finish_leading`). Returns how many models were trained here."""
    from zoo.distributed import init_from_env, leave_group

    registry = registry or default_registry()
    context, _ = init_from_env(device)
    trained = 0
    while context is not None:
        message = context.receive()
        if message is None:
            leave_group()
            break
        name, _, seed = message.partition("@")
        config = run_config(name)
        if seed:
            config = dataclasses.replace(config, seed=int(seed))
        train(prepare(config, registry=registry))
        trained += 1
    return trained


# -- embed ---------------------------------------------------------------------------------------------
@dataclass
class Embedded:
    """A ranking task (test users, targets, catalogue, exclusions) with its user and item vectors."""

    task: Any  # zoo.data.match.RankingTask
    user_vectors: Any  # torch.Tensor [U, D] or [U, K, D], CPU
    item_vectors: Any  # torch.Tensor [N, D], CPU
    item_counts: Any = None  # training frequency per item id (the popularity baseline)
    device: Any = None  # where exact scoring runs (None: CPU)
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def catalogue(self) -> np.ndarray:
        """Item id of each catalogue row."""
        return self.task.catalogue.numpy()

    @property
    def num_users(self) -> int:
        return int(self.task.num_users)

    def user_matrix(self) -> np.ndarray:
        """User vectors as a contiguous float32 array (what a retriever is queried with)."""
        return np.ascontiguousarray(self.user_vectors.detach().cpu().numpy(), dtype=np.float32)

    def item_matrix(self) -> np.ndarray:
        """Item vectors as a contiguous float32 array (what a retriever is fitted on)."""
        return np.ascontiguousarray(self.item_vectors.detach().cpu().numpy(), dtype=np.float32)

    def exclude_ids(self) -> tuple[np.ndarray, np.ndarray] | None:
        """The task's exclusion CSR with item ids (what a retriever returns) instead of catalogue rows."""
        if self.task.exclude is None:
            return None
        indptr, rows = (t.numpy() for t in self.task.exclude)
        return indptr, self.catalogue[rows]


def embed(trained: Trained, split: str = "test", *, progress: Progress | None = None) -> Embedded:
    """User vectors of the ``split`` task's users and item vectors of the whole catalogue."""
    from zoo.train.inference import embed_items, embed_users

    task = trained.data.ranking_task(split)
    progress = progress or Progress()
    started = time.perf_counter()
    users, items = len(task.targets), int(task.catalogue.shape[0])
    with progress.task(f"embed {users:,} users and {items:,} items", users + items) as advance:
        user_vectors = embed_users(trained.model, task.users, trained.device, on_rows=advance)
        item_vectors = embed_items(trained.model, task.catalogue, trained.device, on_rows=advance)
    return Embedded(
        task=task,
        user_vectors=user_vectors,
        item_vectors=item_vectors,
        item_counts=trained.data.item_counts,
        device=trained.device,
        timings={"embed_s": time.perf_counter() - started},
    )


# -- evaluate ------------------------------------------------------------------------------------------
@dataclass
class Ranking:
    """Top item ids per task user (``-1`` pads), their task metrics and how long the search took."""

    top: np.ndarray  # [U, max_k] item ids
    metrics: dict[str, float]
    seconds: float
    users_per_s: float
    recall_vs_exact: dict[str, float] = field(default_factory=dict)


def _ranking(top: np.ndarray, embedded: Embedded, ks: Sequence[int], seconds: float) -> Ranking:
    from zoo.evaluate import ranking_metrics

    return Ranking(
        top=top,
        metrics=ranking_metrics(top, embedded.task.targets, ks=ks),
        seconds=seconds,
        users_per_s=embedded.num_users / max(seconds, 1e-9),
    )


def evaluate_exact(embedded: Embedded, ks: Iterable[int], *, masked: bool = True) -> Ranking:
    """The ground truth: exact full ranking over the catalogue (the task's exclusions masked unless
    ``masked=False``) and its metrics at every K."""
    from zoo.evaluate import rows_to_ids, topk_items

    ks = tuple(ks)
    device = embedded.device
    exclude = embedded.task.exclude if masked else None
    started = time.perf_counter()
    rows, _ = topk_items(
        embedded.user_vectors, embedded.item_vectors, max(ks), exclude=exclude, device=device
    )
    seconds = time.perf_counter() - started
    return _ranking(rows_to_ids(rows.numpy(), embedded.catalogue), embedded, ks, seconds)


def evaluate_popularity(embedded: Embedded, ks: Iterable[int]) -> Ranking:
    """The popularity baseline under the same protocol (same masking, same candidates)."""
    import torch

    from zoo.evaluate import rows_to_ids, topk_items

    ks = tuple(ks)
    task = embedded.task
    popularity = embedded.item_counts[task.catalogue].float().unsqueeze(1)
    started = time.perf_counter()
    rows, _ = topk_items(torch.ones(task.num_users, 1), popularity, max(ks), exclude=task.exclude)
    seconds = time.perf_counter() - started
    return _ranking(rows_to_ids(rows.numpy(), embedded.catalogue), embedded, ks, seconds)


def evaluate_index(retriever: Any, embedded: Embedded, ks: Iterable[int], exact: Ranking) -> Ranking:
    """Query a fitted retriever for every task user (the task's exclusions filtered out) and score it:
    task metrics, recall against the exact top-K at every K, and query speed."""
    from zoo.evaluate import ann_recall
    from zoo.retrieval.filtering import query_excluding

    ks = tuple(ks)
    started = time.perf_counter()
    top, _ = query_excluding(retriever, embedded.user_matrix(), max(ks), embedded.exclude_ids())
    ranking = _ranking(top, embedded, ks, time.perf_counter() - started)
    ranking.recall_vs_exact = {f"recall@{k}": ann_recall(top[:, :k], exact.top[:, :k]) for k in ks}
    return ranking
