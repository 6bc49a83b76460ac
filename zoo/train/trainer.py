"""MatchTrainer: the seed's trainer, with the three modes done right.

::

    trainer = MatchTrainer(model, mode=2, optimizer_params={"lr": 1e-3}, n_epoch=10, device="cpu")
    trainer.fit(train_dl, val_dl)
    auc = trainer.evaluate(trainer.model, test_dl)
    user_embeddings = trainer.inference_embedding(model, "user", user_dl, model_path="./")

    # or from one TrainerConfig (what the pipeline does)
    config = TrainerConfig(mode=2, lr=3e-3, grad_clip_norm=1.0)
    trainer = MatchTrainer.from_config(model, config, device="cpu")

Modes: 0 point-wise (BCE on labelled pairs, or on positives plus sampled negatives), 1 pair-wise
(BPR, hinge or BPR-max), 2 list-wise (softmax over the positive and its negatives: sampled, in-batch
with logQ correction, mixed, shared or the full catalogue). Early stopping watches a validation ranking
metric (Recall@K by default) and the best epoch's weights are the ones kept and saved; ``evaluate``
returns AUC in every mode. Every setting is a :class:`~zoo.train.config.TrainerConfig` field; the
losses are in :mod:`zoo.train.negatives`, schedules in :mod:`zoo.train.schedules`, weight averaging in
:mod:`zoo.train.ema`, the seed loaders' adapter in :mod:`zoo.train.seed_adapter`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Mapping, Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch

from zoo.data.match import RankingTask
from zoo.device import resolve_device
from zoo.distributed import active_context
from zoo.errors import UsageError
from zoo.models.base import RecallModel
from zoo.nn.embedding import EmbeddingBank
from zoo.train import checkpoint, seed_adapter
from zoo.train.acceleration import StepRunner, check_precision, make_optimizer
from zoo.train.advice import warn_once
from zoo.train.callbacks import Callback, CallbackList
from zoo.train.checkpoint import CHECKPOINT_FILE, EpochCheckpoints, Restored
from zoo.train.config import TrainerConfig, parse_metric
from zoo.train.ema import WeightAverage
from zoo.train.inference import embed_batches, evaluate_task, to_device, to_tensor_batch
from zoo.train.negatives import LossContext, batch_loss
from zoo.train.proposals import ItemProposals
from zoo.train.rng import scoped_seed
from zoo.train.schedules import make_schedule

__all__ = ["CHECKPOINT_FILE", "MatchTrainer"]


class _Setting:
    """A trainer attribute that reads one TrainerConfig setting; a writable one replaces it (validated)."""

    def __init__(self, key: str, *, writable: bool = True) -> None:
        self.key, self.writable = key, writable

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, trainer: Any, owner: type | None = None) -> Any:
        return self if trainer is None else getattr(trainer.config, self.key)

    def __set__(self, trainer: Any, value: Any) -> None:
        if not self.writable:
            raise AttributeError(f"{self.name} is fixed when the trainer is built; build a new trainer")
        trainer.config = trainer.config.replace(**{self.key: value})


class MatchTrainer:
    """Train a :class:`RecallModel` (seed-compatible constructor; see the module docstring).

    Args:
        model: the model.
        mode: 0 point-wise, 1 pair-wise, 2 list-wise (default: TrainerConfig's).
        optimizer_fn / optimizer_params: optimiser class (Adam) and its arguments; ``lr`` and
            ``weight_decay`` are the TrainerConfig settings of those names.
        regularization_params: ``{"embedding_l2": ..., "dense_l2": ...}`` L2 penalties on the embedding
            tables and on the dense weight matrices.
        scheduler_fn / scheduler_params: a learning-rate scheduler stepped once per epoch, instead of the
            ``lr_schedule`` setting.
        n_epoch: maximum epochs (the ``epochs`` setting).
        earlystop_patience: stop after this many epochs without a better validation metric (``patience``).
        device: ``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``mps``.
        gpus: accepted for compatibility; one device is used.
        model_path: folder where the best weights are saved as ``model.safetensors`` (None: do not save).
        item_counts: training frequency per item id (popularity sampling and logQ correction);
            counted from the batches as they pass when not given.
        verbose: show a rich progress bar.
        callbacks: extra :class:`~zoo.train.callbacks.Callback` objects.
        grad_clip: the old name of ``grad_clip_norm`` (0 meant off).
        in_batch_neg / in_batch_neg_ratio / hard_negative / sampler_seed: Torch-RecHub's in-batch
            negatives, mapped by :func:`~zoo.train.seed_adapter.in_batch_settings` onto
            ``negatives="inbatch-sampled"``, ``num_negatives``, ``hard_negatives`` and ``seed``.
        settings: any other :class:`~zoo.train.config.TrainerConfig` setting by name (``negatives``,
            ``num_negatives``, ``pairwise_loss``, ``valid_metric``, ``seed``, ``grad_clip_norm``,
            ``lr_schedule``, ``ema_decay``, ``time_limit``...); ``TrainerConfig.describe()`` documents
            them all.
    """

    n_epoch = _Setting("epochs")
    earlystop_patience = _Setting("patience")
    mode = _Setting("mode", writable=False)
    lr_schedule = _Setting("lr_schedule", writable=False)
    popularity_alpha = _Setting("popularity_alpha", writable=False)
    embedding_l2 = _Setting("embedding_l2")
    dense_l2 = _Setting("dense_l2")
    pairwise_loss = _Setting("pairwise_loss")
    margin = _Setting("margin")
    bpr_max_reg = _Setting("bpr_max_reg")
    logq_correction = _Setting("logq_correction")
    valid_metric = _Setting("valid_metric")
    seed = _Setting("seed")
    grad_clip_norm = _Setting("grad_clip_norm")
    time_limit = _Setting("time_limit")

    def __init__(
        self,
        model: RecallModel,
        mode: int | None = None,
        optimizer_fn: Any = torch.optim.Adam,
        optimizer_params: Mapping[str, Any] | None = None,
        regularization_params: Mapping[str, float] | None = None,
        scheduler_fn: Any = None,
        scheduler_params: Mapping[str, Any] | None = None,
        n_epoch: int | None = None,
        earlystop_patience: int | None = None,
        device: Any = "cpu",
        gpus: Sequence[int] | None = None,
        model_path: str | os.PathLike[str] | None = "./",
        *,
        item_counts: Any = None,
        verbose: bool = True,
        callbacks: Iterable[Callback] = (),
        grad_clip: float | None = None,
        in_batch_neg: bool = False,
        in_batch_neg_ratio: int | None = None,
        hard_negative: bool = False,
        sampler_seed: int | None = None,
        **settings: Any,
    ) -> None:
        optimizer_params = dict(optimizer_params or {})
        regularization = dict(regularization_params or {})
        seed_kwargs = seed_adapter.in_batch_settings(
            in_batch_neg, in_batch_neg_ratio, hard_negative, sampler_seed
        )
        regularization = seed_adapter.l2_regularization(regularization)
        given: dict[str, tuple[str, Any]] = {  # setting -> (the argument that gave it, value)
            key: (name, value)
            for name, key, value in (
                ("mode", "mode", mode),
                ("n_epoch", "epochs", n_epoch),
                ("earlystop_patience", "patience", earlystop_patience),
                ("grad_clip", "grad_clip_norm", grad_clip or None),  # the old 0 meant off
            )
            if value is not None
        }
        for key in ("lr", "weight_decay"):
            if key in optimizer_params:
                given[key] = ("optimizer_params", optimizer_params[key])
        given.update({k: ("regularization_params", v) for k, v in regularization.items()})
        given.update(seed_kwargs)
        for key, (name, value) in given.items():
            if key in settings and settings[key] != value:
                raise UsageError(f"{name} and {key}= both set {key}; give one of them")
            settings[key] = value
        config = TrainerConfig.from_dict(settings)
        extra = {k: v for k, v in optimizer_params.items() if k not in ("lr", "weight_decay")}
        extra["lr"] = config.lr
        if "weight_decay" in optimizer_params or config.weight_decay:
            extra["weight_decay"] = config.weight_decay
        self._setup(
            model,
            config,
            device=device,
            item_counts=item_counts,
            callbacks=callbacks,
            model_path=model_path,
            verbose=verbose,
            optimizer_fn=optimizer_fn,
            optimizer_params=extra,
            scheduler_fn=scheduler_fn,
            scheduler_params=scheduler_params,
            gpus=gpus,
        )

    @classmethod
    def from_config(
        cls,
        model: RecallModel,
        config: TrainerConfig | Mapping[str, Any],
        *,
        device: Any,
        item_counts: Any = None,
        callbacks: Iterable[Callback] = (),
        model_path: str | os.PathLike[str] | None = None,
        verbose: bool = False,
    ) -> MatchTrainer:
        """A trainer for ``model`` with every setting from ``config`` (a TrainerConfig, or a mapping
        of its settings); the optimiser is Adam with ``config.lr`` and ``config.weight_decay``."""
        if not isinstance(config, TrainerConfig):
            config = TrainerConfig.from_dict(config)
        trainer = cls.__new__(cls)
        trainer._setup(
            model,
            config,
            device=device,
            item_counts=item_counts,
            callbacks=callbacks,
            model_path=model_path,
            verbose=verbose,
            optimizer_fn=torch.optim.Adam,
            optimizer_params={"lr": config.lr, "weight_decay": config.weight_decay},
        )
        return trainer

    def _setup(
        self,
        model: RecallModel,
        config: TrainerConfig,
        *,
        device: Any,
        item_counts: Any,
        callbacks: Iterable[Callback],
        model_path: str | os.PathLike[str] | None,
        verbose: bool,
        optimizer_fn: Any,
        optimizer_params: dict[str, Any],
        scheduler_fn: Any = None,
        scheduler_params: Mapping[str, Any] | None = None,
        gpus: Sequence[int] | None = None,
    ) -> None:
        supported = getattr(model, "train_modes", (0, 1, 2))
        if config.mode not in supported:
            raise UsageError(
                f"{type(model).__name__} does not train in mode {config.mode}; it supports modes {supported}"
            )
        #: every setting; the attributes named like settings read it
        self.config = config
        self.model = model
        self.device = resolve_device(device)
        self.model.to(self.device)
        self.optimizer_params = optimizer_params
        self.optimizer = make_optimizer(optimizer_fn, self.model.parameters(), optimizer_params)
        self.schedule = make_schedule(self.optimizer, config, scheduler_fn, scheduler_params)
        #: the torch learning-rate scheduler (None with the constant schedule)
        self.scheduler = self.schedule.scheduler
        #: why the last ``fit`` stopped: ``epochs`` (all ran), ``patience`` or ``time_limit``
        self.stop_reason: str | None = None
        self.gpus = gpus
        self.model_path = None if model_path is None else Path(model_path)
        self.proposals = ItemProposals(model._item_vocab(), item_counts, config.popularity_alpha)
        #: the process group when training on several processes (None: this process alone); see
        #: :mod:`zoo.distributed`
        self.dist = active_context()
        self._rank = 0 if self.dist is None else self.dist.rank
        #: the negative sampler's generator (seeded again by ``fit``; seed + rank on several processes)
        self.generator = torch.Generator().manual_seed(
            (config.seed if config.seed is not None else 0) + self._rank
        )
        #: draws the ranks share (negatives of the global batch): seeded alike on every rank
        self._shared_generator = (
            None if self.dist is None else torch.Generator().manual_seed(config.seed or 0)
        )
        self._ddp = None if self.dist is None else self.dist.wrap_loss(self.model, self._batch_loss)
        check_precision(config.precision, self.device)
        self._steps: StepRunner | None = None
        cbs = list(callbacks)
        if verbose:
            from zoo.train.progress import RichProgress

            cbs.insert(0, RichProgress())
        self.callbacks = CallbackList(cbs)
        self.history: list[dict[str, Any]] = []
        self.best_epoch: int | None = None
        self.best_score: float | None = None
        self._ema: WeightAverage | None = None
        self._banks = [m for m in model.modules() if isinstance(m, EmbeddingBank)]

    # -- settings read through the config ------------------------------------------------------------------
    @property
    def negatives(self) -> str:
        """The negative kind in use (``auto`` resolved for the mode)."""
        return self.config.resolved_negatives

    @property
    def num_negatives(self) -> int:
        """Negatives per positive (or per batch for shared ones)."""
        return self.config.resolved_num_negatives

    @property
    def ema_decay(self) -> float | None:
        """The weight-averaging decay (None: off)."""
        return self.config.ema_decay or None

    @property
    def grad_clip(self) -> float | None:
        """Old name of :attr:`grad_clip_norm`."""
        return self.config.grad_clip_norm

    @property
    def metric_name(self) -> str:
        return parse_metric(self.config.valid_metric)[0]

    @property
    def metric_k(self) -> int:
        return self.config.metric_k

    @property
    def item_counts(self) -> torch.Tensor:
        """Training frequency per item id (given, or counted so far)."""
        return self.proposals.counts

    @property
    def steps(self) -> StepRunner:
        """Runs each step's loss (``precision``, ``compile``) and its backward pass and optimiser step;
        rebuilt when either setting changes."""
        key = (self.config.precision, self.config.compile)
        if self._steps is None or (self._steps.precision, self._steps.compiled) != key:
            self._steps = StepRunner(
                self._ddp if self._ddp is not None else self._batch_loss,
                precision=self.config.precision,
                compile=self.config.compile,
                device=self.device,
            )
        return self._steps

    # -- fitting -------------------------------------------------------------------------------------------
    def fit(
        self,
        train_dataloader: Iterable[Any],
        val_dataloader: Any = None,
        resume: bool = False,
        checkpoint_dir: str | os.PathLike[str] | None = None,
        *,
        fingerprint: Mapping[str, Any] | None = None,
    ) -> list[dict[str, Any]]:
        """Train for up to ``n_epoch`` epochs; with validation data, stop early on the validation metric
        and keep (and save to ``model_path``) the best epoch's weights. Returns the per-epoch history.

        With a ``seed``, training draws from generators seeded with it (dropout, shuffling, negatives)
        and the caller's global random state is the same after ``fit`` as before. A training loader
        with ``set_epoch`` (:class:`~zoo.data.match.TrainBatches`) is told each epoch's number first.

        Resuming: with ``checkpoint_dir``, a checkpoint is written there after every epoch (after the
        callbacks' ``on_epoch_end``), replacing the one before and any a previous fit left there; see
        :mod:`zoo.train.checkpoint` for what it holds. With ``resume=True`` the fit continues from that
        checkpoint instead (an interrupted fit resumed on the same device ends with the same weights and
        history as an uninterrupted one; a finished one runs no more epochs). The checkpoint must come
        from a fit with the same settings, model, optimiser and batches per epoch, plus the caller's
        ``fingerprint`` entries (a UsageError names the first difference); none is a UsageError too.
        Without a ``seed``, resuming sets the global random state to the saved one."""
        if resume and checkpoint_dir is None:
            raise UsageError(
                "resume=True needs checkpoint_dir: the folder the interrupted fit wrote its checkpoints to"
            )
        warn_once(self.model)
        checkpoints = restored = None
        if checkpoint_dir is not None:
            checkpoints = EpochCheckpoints(checkpoint_dir, self._fingerprint(train_dataloader, fingerprint))
            if resume:
                restored = checkpoints.load()
            else:
                checkpoints.clear()
        seed = self.seed
        if seed is not None:
            self.generator.manual_seed(seed + self._rank)
            if self._shared_generator is not None:
                self._shared_generator.manual_seed(seed)
        with scoped_seed(None if seed is None else seed + self._rank, self.device):
            self._fit(train_dataloader, val_dataloader, checkpoints, restored)
        if self.model_path is not None and self._rank == 0:
            self.save_checkpoint(self.model_path)
        return self.history

    def _fingerprint(self, train_dataloader: Any, extra: Mapping[str, Any] | None) -> dict[str, Any]:
        """What a checkpoint must have been written with to be resumed by this fit."""
        return {
            **({"run": dict(extra)} if extra else {}),
            "trainer": self.config.to_dict(),
            "model": type(self.model).__name__,
            "optimizer": type(self.optimizer).__name__,
            "optimizer_params": dict(self.optimizer_params),
            "scheduler": None if self.scheduler is None else type(self.scheduler).__name__,
            "batches_per_epoch": len(train_dataloader) if hasattr(train_dataloader, "__len__") else None,
            "weights": {k: list(v.shape) for k, v in self.model.state_dict().items()},
        }

    def _fit(
        self,
        train_dataloader: Iterable[Any],
        val_dataloader: Any,
        checkpoints: EpochCheckpoints | None = None,
        restored: Restored | None = None,
    ) -> None:
        steps = len(train_dataloader) if hasattr(train_dataloader, "__len__") else None
        task = None if val_dataloader is None else seed_adapter.as_ranking_task(self.model, val_dataloader)
        if self.schedule.needs_validation and task is None:
            raise UsageError(
                f"lr_schedule={self.lr_schedule!r} needs validation data; pass val_dataloader or use 'cosine'"
            )
        best_state: dict[str, torch.Tensor] | None = None
        decay = self.ema_decay
        self._ema = None if decay is None else WeightAverage(self.model.parameters(), decay)
        stale, first_epoch, elapsed_before, end_epoch = 0, 0, 0.0, self.n_epoch
        self.history = []
        self.stop_reason = "epochs"
        if restored is not None:
            saved = checkpoint.restore_training(self, restored)
            self.history, self.best_score, self.best_epoch = (
                saved["history"],
                saved["best_score"],
                saved["best_epoch"],
            )
            stale, first_epoch, elapsed_before = saved["stale"], restored.meta["epoch"], saved["elapsed_s"]
            best_state = restored.best
            if saved["stop_reason"] is not None:  # the fit had stopped early: nothing is left to run
                self.stop_reason, end_epoch = saved["stop_reason"], first_epoch
        self.callbacks.on_fit_start(self, self.n_epoch, steps)
        fit_started = time.perf_counter() - elapsed_before
        try:
            for epoch in range(first_epoch, end_epoch):
                if hasattr(train_dataloader, "set_epoch"):
                    train_dataloader.set_epoch(epoch)
                self.callbacks.on_epoch_start(self, epoch)
                started = time.perf_counter()
                loss = self.train_one_epoch(train_dataloader)
                lr = self.optimizer.param_groups[0]["lr"]
                logs: dict[str, Any] = {"epoch": epoch + 1, "loss": loss, "lr": lr}
                score, best_changed = None, False
                with self._ema.applied() if self._ema is not None else nullcontext():
                    if task is not None:
                        score = self.evaluate_ranking(task, ks=(self.metric_k,))[self.valid_metric]
                        improved = self.best_score is None or score > self.best_score
                        logs.update(valid=score, valid_metric=self.valid_metric, improved=improved)
                        if improved:
                            self.best_score, self.best_epoch, stale = score, epoch + 1, 0
                            best_state, best_changed = self._snapshot(), True
                        else:
                            stale += 1
                    else:
                        self.best_epoch = epoch + 1
                        if self._ema is not None:
                            best_state, best_changed = self._snapshot(), True
                self.schedule.step(score)
                logs["seconds"] = time.perf_counter() - started
                self.history.append(logs)
                self.callbacks.on_epoch_end(self, epoch, logs)
                elapsed = time.perf_counter() - fit_started
                stop = None
                if task is not None and stale >= self.earlystop_patience:
                    stop = "patience"
                elif self.time_limit is not None and elapsed >= self.time_limit and epoch + 1 < self.n_epoch:
                    stop = "time_limit"
                if self.dist is not None:  # rank 0's clock decides: every rank runs the same epochs
                    stop = self.dist.agree(stop)
                if checkpoints is not None:
                    progress = {
                        "history": self.history,
                        "best_score": self.best_score,
                        "best_epoch": self.best_epoch,
                        "stale": stale,
                        "stop_reason": stop,
                        "elapsed_s": elapsed,
                    }
                    self._save_epoch(checkpoints, epoch + 1, progress, best_state, best_changed)
                if stop is not None:
                    self.stop_reason = stop
                    break
        finally:
            if best_state is not None:
                self.model.load_state_dict(best_state)
            self.callbacks.on_fit_end(self, self.history)

    def _save_epoch(
        self,
        checkpoints: EpochCheckpoints,
        epoch: int,
        progress: dict[str, Any],
        best_state: dict[str, torch.Tensor] | None,
        best_changed: bool,
    ) -> None:
        try:
            meta, tensors = checkpoint.capture_training(self, progress)
        except TypeError as exc:
            raise UsageError(f"cannot checkpoint the fit ({exc}); fit without checkpoint_dir") from None
        checkpoints.save(meta, tensors, best_state, epoch=epoch, best_changed=best_changed)

    def _snapshot(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().clone().cpu() for k, v in self.model.state_dict().items()}

    def train_one_epoch(self, data_loader: Iterable[Any], log_interval: int = 10) -> float:
        """One pass over ``data_loader``; returns the mean training loss (``log_interval``: accepted for
        Torch-RecHub's signature; progress goes to the callbacks)."""
        self.model.train()
        total, steps = 0.0, 0
        for step, raw in enumerate(data_loader):
            batch = to_tensor_batch(raw)
            for bank in self._banks:
                bank.check_ids(batch)
            self.model.remember_items(batch)
            # Only point-wise rows carry a 0/1 label; in the other modes every row's item is a positive
            # (the seed's list-wise loaders pass y = 0, meaning "the positive is column 0").
            counted = batch if self.mode == 0 else {k: v for k, v in batch.items() if k != "label"}
            if self.dist is None:
                self.proposals.observe(counted, self.model.item_id_feature)
            else:
                self.dist.observe(self.proposals, counted, self.model.item_id_feature)
            batch = to_device(batch, self.device)
            loss = self.steps.loss(batch)
            reg = self._regularization()
            if reg is not None:
                loss = loss + reg
            if not torch.isfinite(loss):
                raise UsageError(
                    f"training diverged at step {step + 1} (loss {loss.item()}); lower the learning rate"
                )
            self.steps.backward_and_step(
                loss, self.optimizer, self.model.parameters, self.config.grad_clip_norm
            )
            if self._ema is not None:
                self._ema.update()
            value = float(loss.detach())
            total += value
            steps += 1
            self.callbacks.on_batch_end(self, step, value)
        if steps == 0:
            raise UsageError("the training data loader produced no batches")
        return total / steps if self.dist is None else self.dist.mean(total / steps)

    def compute_loss(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """The training loss of one batch (on the trainer's device) under the trainer's mode and negatives.
        On several processes it goes through DDP, whose backward averages the gradients."""
        if self._ddp is not None:
            return self._ddp(batch)
        return self._batch_loss(batch)

    def _batch_loss(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        if self.dist is None:
            return batch_loss(LossContext(self.model, self.config, self.proposals, self.generator), batch)
        context = LossContext(
            self.model,
            self.config,
            self.proposals,
            self.generator,
            gather=self.dist.gather_rows,
            shared_generator=self._shared_generator,
        )
        return batch_loss(context, batch)

    def _regularization(self) -> torch.Tensor | None:
        if not self.embedding_l2 and not self.dense_l2:
            return None
        embeddings, dense = self.model.regularization_groups()
        total = torch.zeros((), device=self.device)
        if self.embedding_l2:
            total = total + self.embedding_l2 * sum(p.pow(2).sum() for p in embeddings)
        if self.dense_l2:
            total = total + self.dense_l2 * sum(p.pow(2).sum() for p in dense)
        return total

    # -- evaluation ----------------------------------------------------------------------------------------
    def evaluate_ranking(self, task: RankingTask, ks: Sequence[int] = (10, 50)) -> dict[str, float]:
        """Full-ranking metrics (HitRate/Recall/NDCG/MRR/Precision @ks) of the current model on ``task``
        (on several processes each ranks its share of the users and the metric sums are all-reduced)."""
        if self.dist is not None:
            return self.dist.evaluate(lambda shard: evaluate_task(self.model, shard, ks, self.device), task)
        return evaluate_task(self.model, task, ks, self.device)

    def evaluate(self, model: RecallModel, data_loader: Iterable[Any]) -> float:
        """AUC on ``data_loader`` in every mode: rows labelled 0 and 1 use their labels; otherwise (rows
        that are all positives) each positive is scored against its ``neg_items`` or against uniformly
        sampled negatives (seeded), never against itself."""
        seed = self.seed if self.seed is not None else 0
        return seed_adapter.auc(model, data_loader, self.device, self.proposals.uniform(), seed)

    def predict(self, model: RecallModel, data_loader: Iterable[Any]) -> list[float]:
        """Torch-RecHub's ``predict``: ``model(x)`` of every row of ``data_loader`` (the probability
        ``sigmoid(score / temperature)`` of each (user, item) row), as one list."""
        return seed_adapter.predict(model, data_loader, self.device)

    # -- embeddings and checkpoints ------------------------------------------------------------------------
    def inference_embedding(
        self,
        model: RecallModel,
        mode: str,
        data_loader: Iterable[Any],
        model_path: str | os.PathLike[str] | None = None,
    ) -> torch.Tensor:
        """User or item vectors for every row of ``data_loader`` (a CPU tensor).

        With ``model_path``, the weights saved there by :meth:`fit` are loaded first (safetensors,
        never unpickled); a folder without a checkpoint leaves the in-memory weights as they are.
        """
        if mode not in ("user", "item"):
            raise UsageError(f"mode must be 'user' or 'item', got {mode!r}")
        if model_path is not None:
            path = Path(model_path) / CHECKPOINT_FILE
            if path.is_file():
                self.load_checkpoint(model, path)
        model.to(self.device)
        return embed_batches(model, data_loader, mode, self.device)

    def save_checkpoint(self, folder: str | os.PathLike[str]) -> Path:
        """Write the model's weights to ``folder/model.safetensors`` atomically."""
        return checkpoint.save_checkpoint(self.model, folder)

    @staticmethod
    def load_checkpoint(model: RecallModel, path: str | os.PathLike[str]) -> None:
        """Load a ``model.safetensors`` written by :meth:`save_checkpoint` into ``model``."""
        checkpoint.load_checkpoint(model, path)

    def export_onnx(
        self,
        output_path: str | os.PathLike[str],
        mode: str = "user",
        *,
        history_len: int | None = None,
        opset_version: int | None = None,
    ) -> Path:
        """Torch-RecHub's ``export_onnx``: the model's ``mode`` tower (``"user"`` or ``"item"``) as ONNX
        with a dynamic batch and history length, verified with onnxruntime (:class:`zoo.export.ONNXExporter`,
        which documents the inputs and ``history_len``); returns the file written."""
        from zoo.export.onnx import OPSET, ONNXExporter

        exporter = ONNXExporter(self.model, history_len=history_len, opset=opset_version or OPSET)
        return exporter.export(output_path, mode=mode).path
