"""MatchTrainer: the seed's trainer, with the three modes done right.

::

    trainer = MatchTrainer(model, mode=2, optimizer_params={"lr": 1e-3}, n_epoch=10, device="cpu")
    trainer.fit(train_dl, val_dl)
    auc = trainer.evaluate(trainer.model, test_dl)
    user_embeddings = trainer.inference_embedding(model, "user", user_dl, model_path="./")

Modes: 0 point-wise (BCE on labelled pairs, or on positives plus sampled negatives), 1 pair-wise
(BPR, or hinge), 2 list-wise (softmax over the positive and its negatives: sampled, in-batch with
logQ correction, or mixed). Early stopping watches a validation ranking metric (Recall@K by default)
and the best epoch's weights are the ones kept and saved; ``evaluate`` returns AUC in every mode.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from zoo.data.match import RankingTask
from zoo.data.negatives import NegativeSampler, UniformSampler, make_sampler
from zoo.device import resolve_device
from zoo.errors import UsageError
from zoo.evaluate import auc_score
from zoo.models.base import RecallModel
from zoo.nn.embedding import EmbeddingBank
from zoo.train import losses
from zoo.train.callbacks import Callback, CallbackList
from zoo.train.inference import (
    embed_batches,
    evaluate_task,
    to_device,
    to_tensor_batch,
)

CHECKPOINT_FILE = "model.safetensors"
NEGATIVE_KINDS = ("auto", "batch", "uniform", "popularity", "inbatch", "mixed", "shared", "full")
PAIRWISE_LOSSES = ("bpr", "hinge", "bpr-max")
LR_SCHEDULES = ("constant", "cosine", "plateau")
DEFAULT_NUM_NEGATIVES = {0: 4, 1: 1, 2: 50}


class MatchTrainer:
    """Train a :class:`RecallModel` (seed-compatible constructor; see the module docstring).

    Args:
        model: the model.
        mode: 0 point-wise, 1 pair-wise, 2 list-wise.
        optimizer_fn / optimizer_params: optimiser class and its arguments (Adam, lr 1e-3 by default).
        regularization_params: ``{"embedding_l2": ..., "dense_l2": ...}`` L2 penalties on the embedding
            tables and on the dense weight matrices.
        scheduler_fn / scheduler_params: optional learning-rate scheduler, stepped once per epoch.
        lr_schedule: a built-in schedule instead of ``scheduler_fn``: ``constant`` (the default),
            ``cosine`` (cosine decay from the initial rate to 0 over ``n_epoch`` epochs) or ``plateau``
            (multiply the rate by ``lr_factor`` after ``lr_patience`` epochs in a row without a better
            validation metric; needs validation data).
        lr_factor / lr_patience: the ``plateau`` schedule's factor (0 < f < 1) and patience (>= 1).
        ema_decay: keep an exponential moving average of the weights, updated after every step with
            this decay (0 < d < 1; the decay ramps up as ``min(d, (1 + t) / (10 + t))`` at step t), and
            validate, keep and return the averaged weights instead of the last ones (parameters are
            averaged, buffers are the live ones). ``None`` or 0: off.
        n_epoch: maximum epochs.
        earlystop_patience: stop after this many epochs without a better validation metric.
        device: ``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``mps``.
        gpus: accepted for compatibility; one device is used.
        model_path: folder where the best weights are saved as ``model.safetensors`` (None: do not save).
        negatives: ``auto`` (mode 0: uniform, 1: uniform, 2: inbatch), ``batch`` (only what the batch
            carries: ``label`` rows or a ``neg_items`` column), ``uniform``, ``popularity``, ``inbatch``,
            ``mixed`` (in-batch plus uniform negatives shared by the batch), ``shared`` (popularity^alpha
            negatives drawn once per batch and shared by every row, logQ-corrected), ``full`` (mode 2:
            softmax over the whole catalogue). A batch's own ``neg_items`` column is always used when
            present.
        num_negatives: negatives per positive (sampled modes) or shared uniform ones (``mixed``).
        pairwise_loss: ``bpr``, ``hinge`` or ``bpr-max`` (mode 1); ``margin`` for hinge, ``bpr_max_reg``
            for BPR-max's score regularisation.
        item_counts: training frequency per item id (popularity sampling and logQ correction);
            counted from the batches as they pass when not given.
        popularity_alpha: exponent of popularity sampling.
        logq_correction: subtract log proposal probability in sampled / in-batch softmax.
        valid_metric: the early-stopping metric, e.g. ``recall@50``, ``ndcg@10``.
        seed: seeds torch and the negative sampler at ``fit`` (same seed, same result on CPU).
        grad_clip: clip the gradient norm to this value.
        verbose: show a rich progress bar.
        time_limit: seconds of training after which no new epoch starts (the epoch running when the
            limit passes finishes; the best epoch's weights are kept as always). ``None``: no limit.
        callbacks: extra :class:`~zoo.train.callbacks.Callback` objects.
    """

    def __init__(
        self,
        model: RecallModel,
        mode: int = 0,
        optimizer_fn: Any = torch.optim.Adam,
        optimizer_params: Mapping[str, Any] | None = None,
        regularization_params: Mapping[str, float] | None = None,
        scheduler_fn: Any = None,
        scheduler_params: Mapping[str, Any] | None = None,
        n_epoch: int = 10,
        earlystop_patience: int = 10,
        device: Any = "cpu",
        gpus: Sequence[int] | None = None,
        model_path: str | os.PathLike[str] | None = "./",
        *,
        negatives: str = "auto",
        num_negatives: int | None = None,
        pairwise_loss: str = "bpr",
        margin: float = 1.0,
        bpr_max_reg: float = 1.0,
        item_counts: Any = None,
        popularity_alpha: float = 0.75,
        logq_correction: bool = True,
        valid_metric: str = "recall@50",
        seed: int | None = None,
        grad_clip: float | None = None,
        verbose: bool = True,
        callbacks: Iterable[Callback] = (),
        time_limit: float | None = None,
        lr_schedule: str = "constant",
        lr_factor: float = 0.5,
        lr_patience: int = 2,
        ema_decay: float | None = None,
    ) -> None:
        if mode not in (0, 1, 2):
            raise UsageError(f"mode must be 0 (point-wise), 1 (pair-wise) or 2 (list-wise), got {mode!r}")
        supported = getattr(model, "train_modes", (0, 1, 2))
        if mode not in supported:
            raise UsageError(f"{type(model).__name__} does not train in mode {mode}; it supports modes {supported}")
        if negatives not in NEGATIVE_KINDS:
            raise UsageError(f"negatives {negatives!r} is unknown; use one of {', '.join(NEGATIVE_KINDS)}")
        if negatives in ("inbatch", "mixed", "full") and mode != 2:
            raise UsageError(f"negatives '{negatives}' needs list-wise training (mode 2), not mode {mode}")
        if pairwise_loss not in PAIRWISE_LOSSES:
            raise UsageError(f"pairwise_loss must be one of {', '.join(PAIRWISE_LOSSES)}, got {pairwise_loss!r}")
        if int(n_epoch) < 1:
            raise UsageError(f"n_epoch must be >= 1, got {n_epoch}")
        if time_limit is not None and not float(time_limit) > 0:
            raise UsageError(f"time_limit must be a positive number of seconds, got {time_limit}")
        if lr_schedule not in LR_SCHEDULES:
            raise UsageError(f"lr_schedule {lr_schedule!r} is unknown; use one of {', '.join(LR_SCHEDULES)}")
        if lr_schedule != "constant" and scheduler_fn is not None:
            raise UsageError(f"give either scheduler_fn or lr_schedule={lr_schedule!r}, not both")
        if lr_schedule == "plateau" and not (0.0 < float(lr_factor) < 1.0 and int(lr_patience) >= 1):
            raise UsageError(f"lr_factor must be in (0, 1) and lr_patience >= 1, got {lr_factor} and {lr_patience}")
        if ema_decay is not None and not 0.0 <= float(ema_decay) < 1.0:
            raise UsageError(f"ema_decay must be in (0, 1), or 0 for off, got {ema_decay}")
        self.metric_name, self.metric_k = _parse_metric(valid_metric)
        self.model = model
        self.mode = int(mode)
        self.device = resolve_device(device)
        self.model.to(self.device)
        self.optimizer_params = dict(optimizer_params or {"lr": 1e-3})
        self.optimizer = optimizer_fn(self.model.parameters(), **self.optimizer_params)
        self.scheduler = scheduler_fn(self.optimizer, **(scheduler_params or {})) if scheduler_fn else None
        self.lr_schedule = lr_schedule
        self.ema_decay = float(ema_decay) if ema_decay else None
        self._ema: list[torch.Tensor] | None = None
        self._ema_steps = 0
        if lr_schedule == "cosine":
            self.scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(self.optimizer, T_max=int(n_epoch))
        # threshold 0: "better" means strictly higher, the same test as early stopping's
        self._plateau = (
            torch.optim.lr_scheduler.ReduceLROnPlateau(
                self.optimizer, mode="max", factor=float(lr_factor), patience=int(lr_patience) - 1, threshold=0.0
            )
            if lr_schedule == "plateau" else None
        )
        reg = dict(regularization_params or {})
        unknown = sorted(set(reg) - {"embedding_l2", "dense_l2"})
        if unknown:
            raise UsageError(f"regularization_params: unknown key(s) {', '.join(unknown)}; use embedding_l2, dense_l2")
        self.embedding_l2 = float(reg.get("embedding_l2", 0.0))
        self.dense_l2 = float(reg.get("dense_l2", 0.0))
        self.n_epoch = int(n_epoch)
        self.earlystop_patience = int(earlystop_patience)
        self.time_limit = None if time_limit is None else float(time_limit)
        #: why the last ``fit`` stopped: ``epochs`` (all ran), ``patience`` or ``time_limit``
        self.stop_reason: str | None = None
        self.gpus = gpus
        self.model_path = None if model_path is None else Path(model_path)
        self.negatives = ("inbatch" if mode == 2 else "uniform") if negatives == "auto" else negatives
        self.num_negatives = int(num_negatives) if num_negatives is not None else DEFAULT_NUM_NEGATIVES[self.mode]
        if self.num_negatives < 1:
            raise UsageError(f"num_negatives must be >= 1, got {num_negatives}")
        self.pairwise_loss = pairwise_loss
        self.margin = float(margin)
        self.bpr_max_reg = float(bpr_max_reg)
        self.popularity_alpha = float(popularity_alpha)
        self.logq_correction = bool(logq_correction)
        self.seed = seed
        self.grad_clip = grad_clip
        self.valid_metric = valid_metric
        vocab = model._item_vocab()
        self._counts_given = item_counts is not None
        self.item_counts = (
            torch.as_tensor(np.asarray(item_counts), dtype=torch.float64) if item_counts is not None
            else torch.zeros(vocab, dtype=torch.float64)
        )
        self._sampler: NegativeSampler | None = None
        self.generator = torch.Generator().manual_seed(seed if seed is not None else 0)
        cbs = list(callbacks)
        if verbose:
            from zoo.train.progress import RichProgress

            cbs.insert(0, RichProgress())
        self.callbacks = CallbackList(cbs)
        self.history: list[dict[str, Any]] = []
        self.best_epoch: int | None = None
        self.best_score: float | None = None
        self._banks = [m for m in model.modules() if isinstance(m, EmbeddingBank)]

    # -- fitting --------------------------------------------------------------------------------------
    def fit(self, train_dataloader: Iterable[Any], val_dataloader: Any = None) -> list[dict[str, Any]]:
        """Train for up to ``n_epoch`` epochs; with validation data, stop early on the validation metric
        and keep (and save to ``model_path``) the best epoch's weights. Returns the per-epoch history."""
        if self.seed is not None:
            torch.manual_seed(self.seed)
            self.generator.manual_seed(self.seed)
        steps = len(train_dataloader) if hasattr(train_dataloader, "__len__") else None
        task = self._ranking_task(val_dataloader) if val_dataloader is not None else None
        if self._plateau is not None and task is None:
            raise UsageError("lr_schedule='plateau' needs validation data; pass val_dataloader or use 'cosine'")
        self.callbacks.on_fit_start(self, self.n_epoch, steps)
        best_state: dict[str, torch.Tensor] | None = None
        if self.ema_decay is not None:
            self._ema = [p.detach().clone() for p in self.model.parameters()]
            self._ema_steps = 0
        stale = 0
        self.history = []
        self.stop_reason = "epochs"
        fit_started = time.perf_counter()
        try:
            for epoch in range(self.n_epoch):
                self.callbacks.on_epoch_start(self, epoch)
                started = time.perf_counter()
                loss = self.train_one_epoch(train_dataloader)
                logs: dict[str, Any] = {"epoch": epoch + 1, "loss": loss, "lr": self.optimizer.param_groups[0]["lr"]}
                if self.scheduler is not None:
                    self.scheduler.step()
                live = self._swap_in_ema()
                if task is not None:
                    score = self.evaluate_ranking(task, ks=(self.metric_k,))[self.valid_metric]
                    improved = self.best_score is None or score > self.best_score
                    logs.update(valid=score, valid_metric=self.valid_metric, improved=improved)
                    if self._plateau is not None:
                        self._plateau.step(score)
                    if improved:
                        self.best_score, self.best_epoch, stale = score, epoch + 1, 0
                        best_state = {k: v.detach().clone().cpu() for k, v in self.model.state_dict().items()}
                    else:
                        stale += 1
                else:
                    self.best_epoch = epoch + 1
                    if live is not None:
                        best_state = {k: v.detach().clone().cpu() for k, v in self.model.state_dict().items()}
                self._swap_out_ema(live)
                logs["seconds"] = time.perf_counter() - started
                self.history.append(logs)
                self.callbacks.on_epoch_end(self, epoch, logs)
                if task is not None and stale >= self.earlystop_patience:
                    self.stop_reason = "patience"
                    break
                if self.time_limit is not None and time.perf_counter() - fit_started >= self.time_limit:
                    if epoch + 1 < self.n_epoch:
                        self.stop_reason = "time_limit"
                    break
        finally:
            if best_state is not None:
                self.model.load_state_dict(best_state)
            self.callbacks.on_fit_end(self, self.history)
        if self.model_path is not None:
            self.save_checkpoint(self.model_path)
        return self.history

    def train_one_epoch(self, data_loader: Iterable[Any]) -> float:
        """One pass over ``data_loader``; returns the mean training loss."""
        self.model.train()
        total, steps = 0.0, 0
        for step, raw in enumerate(data_loader):
            batch = to_tensor_batch(raw)
            for bank in self._banks:
                bank.check_ids(batch)
            self.model.remember_items(batch)
            if not self._counts_given:
                self._count_items(batch)
            batch = to_device(batch, self.device)
            loss = self.compute_loss(batch)
            reg = self._regularization()
            if reg is not None:
                loss = loss + reg
            if not torch.isfinite(loss):
                raise UsageError(f"training diverged at step {step + 1} (loss {loss.item()}); lower the learning rate")
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if self.grad_clip:
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.grad_clip)
            self.optimizer.step()
            if self._ema is not None:
                self._update_ema()
            value = float(loss.detach())
            total += value
            steps += 1
            self.callbacks.on_batch_end(self, step, value)
        if steps == 0:
            raise UsageError("the training data loader produced no batches")
        return total / steps

    # -- weight averaging ------------------------------------------------------------------------------
    @torch.no_grad()
    def _update_ema(self) -> None:
        """Move the averaged weights toward the live ones (after each optimiser step)."""
        assert self._ema is not None and self.ema_decay is not None
        decay = min(self.ema_decay, (1 + self._ema_steps) / (10 + self._ema_steps))
        self._ema_steps += 1
        torch._foreach_lerp_(self._ema, [p.detach() for p in self.model.parameters()], 1.0 - decay)

    @torch.no_grad()
    def _swap_in_ema(self) -> list[torch.Tensor] | None:
        """Load the averaged weights into the model; returns the live weights to restore (None: no EMA)."""
        if self._ema is None:
            return None
        params = list(self.model.parameters())
        live = [p.detach().clone() for p in params]
        for param, average in zip(params, self._ema, strict=True):
            param.copy_(average)
        return live

    @torch.no_grad()
    def _swap_out_ema(self, live: list[torch.Tensor] | None) -> None:
        """Put the live weights back after evaluating the averaged ones."""
        if live is None:
            return
        for param, weights in zip(self.model.parameters(), live, strict=True):
            param.copy_(weights)

    # -- losses ---------------------------------------------------------------------------------------
    def compute_loss(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """The training loss of one batch (on the trainer's device) under the trainer's mode."""
        model = self.model
        out = model.train_outputs(batch)
        user, pos_ids, pos_item = out.user, out.pos_ids, out.pos_item
        labels = batch.get("label")
        if out.valid is not None:
            user, pos_ids = user[out.valid], pos_ids[out.valid]
            pos_item = pos_item[out.valid] if pos_item is not None else None
            labels = labels[out.valid] if labels is not None and labels.shape[0] == out.valid.shape[0] else labels
        if pos_item is None:
            # The batch's own item columns describe the positives only when rows are the batch's rows.
            same_rows = out.valid is None and out.user.shape[0] == batch[model.item_id_feature].shape[0]
            pos_item = self._positive_vectors(batch, pos_ids) if same_rows else model.item_vectors(pos_ids)
        tau = model.temperature
        if self.mode == 0 and labels is not None:
            return losses.labelled_loss(model.score(user, pos_item) / tau, labels)
        query = model.select_interest(user, pos_item)
        pos_logits = (query * pos_item).sum(-1) / tau
        own_negatives = model.neg_items_key in batch
        if self.mode == 2 and self.negatives in ("inbatch", "mixed") and not own_negatives:
            return self._inbatch_loss(query, pos_item, pos_ids)
        if self.mode == 2 and self.negatives == "full" and not own_negatives:
            return self._full_softmax_loss(query, pos_ids)
        pos_correction = neg_correction = None
        if self.negatives == "shared" and not own_negatives:
            sampler = self._offline_sampler()
            shared = sampler.sample_shared(self.num_negatives, self.generator).to(pos_ids.device)
            neg_logits = query @ model.item_vectors(shared).T / tau
            neg_mask = shared.unsqueeze(0) == pos_ids.unsqueeze(1)
            if self.logq_correction:
                shift = math.log(self.num_negatives)
                pos_correction = sampler.log_q(pos_ids) + shift
                neg_correction = (sampler.log_q(shared) + shift).unsqueeze(0)
        else:
            neg_ids = self._negative_ids(batch, pos_ids)
            neg_item = model.item_vectors(neg_ids)
            neg_logits = (query.unsqueeze(1) * neg_item).sum(-1) / tau
            neg_mask = neg_ids == pos_ids.unsqueeze(1)
            if self.logq_correction and self.negatives == "popularity" and not own_negatives:
                sampler = self._offline_sampler()
                shift = math.log(self.num_negatives)
                pos_correction = sampler.log_q(pos_ids) + shift
                neg_correction = sampler.log_q(neg_ids) + shift
        if self.mode == 0:
            return losses.pointwise_loss(pos_logits, neg_logits, neg_mask)
        if self.mode == 1:
            if self.pairwise_loss == "bpr-max":
                return losses.bpr_max_loss(pos_logits, neg_logits, neg_mask, reg=self.bpr_max_reg)
            return losses.pairwise_loss(pos_logits, neg_logits, neg_mask, kind=self.pairwise_loss, margin=self.margin)
        if pos_correction is not None and neg_correction is not None:
            pos_logits = pos_logits - pos_correction
            neg_logits = neg_logits - neg_correction
        return losses.softmax_loss(pos_logits, neg_logits, neg_mask)

    def _catalogue_range(self) -> tuple[int, int]:
        """Item ids that can be recommended: 2.. with the pipeline's encoder (0 padding, 1 OOV), 1.. with
        the seed's label encoding (0 padding)."""
        low = 2 if self._counts_given and float(self.item_counts[:2].sum()) == 0 else 1
        return low, self.model._item_vocab()

    def _full_softmax_loss(self, query: torch.Tensor, pos_ids: torch.Tensor) -> torch.Tensor:
        low, high = self._catalogue_range()
        candidates = torch.arange(low, high, device=pos_ids.device)
        logits = query @ self.model.item_vectors(candidates).T / self.model.temperature
        return torch.nn.functional.cross_entropy(logits, pos_ids - low)

    def _positive_vectors(self, batch: Mapping[str, torch.Tensor], pos_ids: torch.Tensor) -> torch.Tensor:
        names = [f.name for f in self.model.item_features]
        if all(n in batch for n in names) and batch[self.model.item_id_feature].shape[0] == pos_ids.shape[0]:
            return self.model.item_tower(batch)
        return self.model.item_vectors(pos_ids)

    def _inbatch_loss(self, query: torch.Tensor, pos_item: torch.Tensor, pos_ids: torch.Tensor) -> torch.Tensor:
        log_q = None
        if self.logq_correction:
            probs = self._unigram().to(pos_ids.device)
            log_q = torch.log(probs[pos_ids].clamp_min(1e-12) * pos_ids.shape[0])
        extra_items = extra_ids = extra_log_q = None
        if self.negatives == "mixed":
            extra_ids = self._uniform().sample_shared(self.num_negatives, self.generator).to(pos_ids.device)
            extra_items = self.model.item_vectors(extra_ids)
            span = self._uniform().high - self._uniform().low
            extra_log_q = torch.full(extra_ids.shape, math.log(self.num_negatives / span), device=pos_ids.device)
        return losses.inbatch_softmax_loss(
            query, pos_item, pos_ids, self.model.temperature,
            log_q=log_q, extra_items=extra_items, extra_ids=extra_ids, extra_log_q=extra_log_q,
        )

    def _negative_ids(self, batch: Mapping[str, torch.Tensor], pos_ids: torch.Tensor) -> torch.Tensor:
        key = self.model.neg_items_key
        if key in batch:
            neg = batch[key].long()
            return neg.unsqueeze(1) if neg.dim() == 1 else neg
        if self.negatives == "batch":
            raise UsageError(
                f"negatives='batch' but the batch has no '{key}' column (and no 'label' column in mode 0);"
                " add negatives to the data or choose negatives='uniform'"
            )
        sampler = self._offline_sampler()
        return sampler.sample(pos_ids.cpu(), self.num_negatives, self.generator).to(pos_ids.device)

    def _uniform(self) -> UniformSampler:
        return UniformSampler(*self._catalogue_range())

    def _offline_sampler(self) -> NegativeSampler:
        if self.negatives in ("popularity", "shared"):
            if self._sampler is None or not self._counts_given:
                self._sampler = make_sampler("popularity", self.model._item_vocab(), self.item_counts + (0 if self._counts_given else 1), self.popularity_alpha)
            return self._sampler
        if self._sampler is None:
            self._sampler = self._uniform()
        return self._sampler

    def _unigram(self) -> torch.Tensor:
        counts = self.item_counts if self._counts_given else self.item_counts + 1.0
        return (counts / counts.sum()).float()

    def _count_items(self, batch: Mapping[str, torch.Tensor]) -> None:
        key = self.model.item_id_feature
        if key in batch:
            ids = batch[key].reshape(-1).long()
            if "label" in batch and batch["label"].shape[0] == ids.shape[0]:
                ids = ids[batch["label"].reshape(-1) > 0]
            self.item_counts += torch.bincount(ids, minlength=self.item_counts.shape[0])[: self.item_counts.shape[0]].double()

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

    # -- evaluation -----------------------------------------------------------------------------------
    def evaluate_ranking(self, task: RankingTask, ks: Sequence[int] = (10, 50)) -> dict[str, float]:
        """Full-ranking metrics (HitRate/Recall/NDCG/MRR/Precision @ks) of the current model on ``task``."""
        return evaluate_task(self.model, task, ks, self.device)

    @torch.no_grad()
    def evaluate(self, model: RecallModel, data_loader: Iterable[Any]) -> float:
        """AUC on ``data_loader`` in every mode: rows labelled 0 and 1 use their labels; otherwise (rows
        that are all positives) each positive is scored against its ``neg_items`` or against uniformly
        sampled negatives (seeded), never against itself."""
        model.eval()
        labelled: list[tuple[torch.Tensor, torch.Tensor]] = []  # (scores, labels) of labelled rows
        pairs: list[tuple[torch.Tensor, torch.Tensor]] = []  # (positive scores, negative scores)
        generator = torch.Generator().manual_seed(self.seed if self.seed is not None else 0)
        for raw in data_loader:
            batch = to_device(to_tensor_batch(raw), self.device)
            pos_ids = batch[model.item_id_feature].long()
            user = model.user_tower(batch)
            pos_item = self._positive_vectors(batch, pos_ids)
            label = batch.get("label")
            if label is not None:
                labelled.append((model.score(user, pos_item).float().cpu(), label.float().reshape(-1).cpu()))
            key = model.neg_items_key
            if key in batch:
                neg_ids = batch[key].long()
                neg_ids = neg_ids.unsqueeze(1) if neg_ids.dim() == 1 else neg_ids
            else:
                neg_ids = self._uniform().sample(pos_ids.cpu(), 1, generator).to(pos_ids.device)
            query = model.select_interest(user, pos_item)
            neg_scores = (query.unsqueeze(1) * model.item_vectors(neg_ids)).sum(-1)
            keep = neg_ids != pos_ids.unsqueeze(1)
            positive = label.reshape(-1) > 0 if label is not None else torch.ones_like(pos_ids, dtype=torch.bool)
            pos_scores = (query * pos_item).sum(-1)
            pairs.append((pos_scores[positive].float().cpu(), neg_scores[positive.unsqueeze(1) & keep].float().cpu()))
        model.train()
        if not pairs:
            raise UsageError("evaluate() got an empty data loader")
        if labelled:
            scores, labels = (torch.cat(parts) for parts in zip(*labelled, strict=True))
            if bool((labels > 0).any()) and bool((labels <= 0).any()):
                return auc_score(scores.numpy(), labels.numpy())
        # Positives only (the seed's test_dl, or pair/list-wise data): each positive against negatives.
        pos, neg = (torch.cat(parts) for parts in zip(*pairs, strict=True))
        scores = torch.cat([pos, neg]).numpy()
        labels = torch.cat([torch.ones(pos.shape[0]), torch.zeros(neg.shape[0])]).numpy()
        return auc_score(scores, labels)

    def _ranking_task(self, val: Any) -> RankingTask:
        """Validation as a ranking task: a RankingTask as is, or the positive rows of a seed loader ranked
        against every item id the model knows."""
        if isinstance(val, RankingTask):
            return val
        rows: dict[str, list[torch.Tensor]] = {}
        for raw in val:
            for key, value in to_tensor_batch(raw).items():
                rows.setdefault(key, []).append(value)
        if not rows:
            raise UsageError("the validation data loader produced no batches")
        batch = {k: torch.cat(v) for k, v in rows.items()}
        if "label" in batch:
            positive = batch.pop("label").reshape(-1) > 0
            batch = {k: v[positive] for k, v in batch.items()}
        item_key = self.model.item_id_feature
        if item_key not in batch:
            raise UsageError(f"validation data has no '{item_key}' column to use as the target item")
        targets = batch[item_key].long().numpy()
        catalogue = torch.arange(1, self.model._item_vocab(), dtype=torch.long)
        return RankingTask(users=batch, targets=targets, catalogue=catalogue, exclude=None, name="valid")

    # -- embeddings and checkpoints -----------------------------------------------------------------
    def inference_embedding(
        self, model: RecallModel, mode: str, data_loader: Iterable[Any], model_path: str | os.PathLike[str] | None = None
    ) -> torch.Tensor:
        """User or item vectors for every row of ``data_loader`` (a CPU tensor).

        With ``model_path``, the weights saved there by :meth:`fit` are loaded first (safetensors,
        never unpickled); a folder without a checkpoint leaves the in-memory weights as they are.
        """
        if mode not in ("user", "item"):
            raise UsageError(f"mode must be 'user' or 'item', got {mode!r}")
        if model_path is not None:
            checkpoint = Path(model_path) / CHECKPOINT_FILE
            if checkpoint.is_file():
                self.load_checkpoint(model, checkpoint)
        model.to(self.device)
        return embed_batches(model, data_loader, mode, self.device)

    def save_checkpoint(self, folder: str | os.PathLike[str]) -> Path:
        """Write the model's weights to ``folder/model.safetensors`` atomically."""
        from safetensors.torch import save

        tensors = {k: v.detach().cpu().contiguous() for k, v in self.model.state_dict().items()}
        from zoo.io import atomic_write_bytes

        return atomic_write_bytes(Path(folder) / CHECKPOINT_FILE, save(tensors))

    @staticmethod
    def load_checkpoint(model: RecallModel, path: str | os.PathLike[str]) -> None:
        from safetensors.torch import load_file

        state = load_file(str(path), device="cpu")
        model.load_state_dict(state)


def _parse_metric(name: str) -> tuple[str, int]:
    metric, sep, k = str(name).partition("@")
    allowed = ("recall", "hitrate", "ndcg", "mrr", "precision")
    if not sep or metric not in allowed or not k.isdigit() or int(k) < 1:
        raise UsageError(f"valid_metric {name!r} must look like recall@50 ({', '.join(allowed)} at a positive K)")
    return metric, int(k)
