"""The process group of a distributed run and the collectives the trainer needs.

:func:`init_from_env` joins the group ``torchrun`` describes (``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``): gloo on the CPU, NCCL on CUDA (one GPU per local
rank). It returns None for a single process, and so does :func:`active_context` afterwards: the
trainer's single-process path is then the only one that runs.

What a rank computes and what it shares:

* the loss goes through :meth:`DistContext.wrap_loss`: DDP around a module whose forward *returns the
  loss*, so its backward averages the gradients over the ranks (a tower called on the wrapped
  module's inner model would train without that synchronisation);
* in-batch negatives see every rank's positives through :meth:`DistContext.gather_rows`, an
  all-gather that carries gradients back to the rank that owns each row
  (``torch.distributed.nn.functional.all_gather``; a plain ``dist.all_gather`` returns tensors
  without a graph and the other ranks' item gradients would silently be lost);
* item counts observed from the batches are summed over the ranks (:meth:`DistContext.observe`), so
  logQ comes from the global counts;
* the epoch's loss is averaged (:meth:`DistContext.mean`) and the decision to stop is rank 0's
  (:meth:`DistContext.agree`), so every rank runs the same number of epochs.
"""

from __future__ import annotations

import atexit
import datetime as _dt
import os
from collections.abc import Callable, Mapping
from typing import Any

import torch
import torch.distributed as dist

from zoo.distributed.launch import under_launcher
from zoo.errors import UsageError

DEFAULT_TIMEOUT_S = 600
"""How long a collective waits for the other ranks before failing (``ZOO_DIST_TIMEOUT`` overrides)."""

NAME_BYTES = 256
"""Longest model name rank 0 can announce to the others (:meth:`DistContext.announce`)."""

_ACTIVE: DistContext | None = None
_LEADING = False


class LossModule(torch.nn.Module):
    """The module DDP wraps: holds the model (so DDP sees its parameters) and returns the loss of a
    batch from ``loss_fn`` (which reads the model)."""

    def __init__(self, model: torch.nn.Module, loss_fn: Callable[[Mapping[str, torch.Tensor]], torch.Tensor]):
        super().__init__()
        self.model = model
        self.loss_fn = loss_fn

    def forward(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        return self.loss_fn(batch)


class DistContext:
    """This process's place in the group (``rank`` of ``world_size``; ``local_rank`` on its machine)
    and the collectives of a distributed fit.

    ``differentiable_gather`` is True in every run; a test sets it False to show that a plain
    all-gather loses the cross-rank gradients."""

    def __init__(self, rank: int, world_size: int, local_rank: int, device: torch.device) -> None:
        self.rank, self.world_size, self.local_rank = int(rank), int(world_size), int(local_rank)
        self.device = device
        #: a second group for the loss's gathers, so they never interleave with DDP's own all-reduces
        self.loss_group = dist.new_group(backend=dist.get_backend())
        self.differentiable_gather = True

    @property
    def is_main(self) -> bool:
        """Rank 0: the one that saves, builds the index and writes the run folder."""
        return self.rank == 0

    # -- the loss ----------------------------------------------------------------------------------
    def wrap_loss(
        self, model: torch.nn.Module, loss_fn: Callable[[Mapping[str, torch.Tensor]], torch.Tensor]
    ) -> torch.nn.Module:
        """DDP around :class:`LossModule` (``model``, ``loss_fn``): calling it returns the batch's loss,
        and its backward averages the gradients over the ranks. Building it broadcasts rank 0's
        weights, so every rank starts from the same model."""
        from torch.nn.parallel import DistributedDataParallel

        device_ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(LossModule(model, loss_fn), device_ids=device_ids)

    def gather_rows(self, items: torch.Tensor, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The other ranks' in-batch positives: their item vectors [M', D] (gradients flow back to the
        rank that computed them) and ids [M'], in rank order, without this rank's own rows. Ranks may
        hold different numbers of rows."""
        group = self.loss_group
        size = torch.tensor([items.shape[0]], dtype=torch.long, device=items.device)
        sizes = [torch.zeros_like(size) for _ in range(self.world_size)]
        dist.all_gather(sizes, size, group=group)
        counts = [int(s.item()) for s in sizes]
        longest = max(counts)
        pad = longest - items.shape[0]
        padded_items = torch.nn.functional.pad(items, (0, 0, 0, pad)) if pad else items
        padded_ids = torch.nn.functional.pad(ids, (0, pad)) if pad else ids
        if self.differentiable_gather:
            import warnings

            from torch.distributed.nn.functional import all_gather

            with warnings.catch_warnings():  # newer torch calls it deprecated; it is the autograd one
                warnings.simplefilter("ignore", FutureWarning)
                all_items = list(all_gather(padded_items.contiguous(), group=group))
        else:
            all_items = [torch.empty_like(padded_items) for _ in range(self.world_size)]
            dist.all_gather(all_items, padded_items.contiguous(), group=group)
        all_ids = [torch.empty_like(padded_ids) for _ in range(self.world_size)]
        dist.all_gather(all_ids, padded_ids.contiguous(), group=group)
        others = [r for r in range(self.world_size) if r != self.rank]
        if not others:
            return items[:0], ids[:0]
        return (
            torch.cat([all_items[r][: counts[r]] for r in others]),
            torch.cat([all_ids[r][: counts[r]] for r in others]),
        )

    # -- agreement ---------------------------------------------------------------------------------
    def mean(self, value: float) -> float:
        """``value`` averaged over the ranks (the same on every rank)."""
        tensor = torch.tensor([float(value)], dtype=torch.float64, device=self._comm_device)
        dist.all_reduce(tensor)
        return float(tensor.item()) / self.world_size

    def sum(self, values: torch.Tensor) -> torch.Tensor:
        """``values`` summed over the ranks (float64, on the CPU)."""
        tensor = values.to(self._comm_device, torch.float64)
        dist.all_reduce(tensor)
        return tensor.cpu()

    def agree(
        self, choice: str | None, choices: tuple[str | None, ...] = (None, "patience", "time_limit")
    ) -> Any:
        """Rank 0's ``choice`` (one of ``choices``) on every rank: decisions that depend on a rank's
        own clock (a time limit) must not differ, or the ranks would run different epochs."""
        code = torch.tensor([choices.index(choice)], dtype=torch.long, device=self._comm_device)
        dist.broadcast(code, src=0)
        return choices[int(code.item())]

    def observe(self, proposals: Any, batch: Mapping[str, torch.Tensor], item_key: str) -> None:
        """Count the positives of every rank's batch in ``proposals`` (:class:`ItemProposals`), so the
        counted frequencies, and logQ from them, are the global ones."""
        if proposals.counts_given:
            return
        before = proposals.counts.clone()
        proposals.observe(batch, item_key)
        proposals.counts = before + self.sum(proposals.counts - before)

    def evaluate(self, evaluate: Callable[[Any], dict[str, float]], task: Any) -> dict[str, float]:
        """Metrics of ``task`` (a :class:`~zoo.data.match.RankingTask`) with each rank ranking its share
        of the users through ``evaluate`` and the sums all-reduced (:mod:`zoo.distributed.evaluate`)."""
        from zoo.distributed.evaluate import evaluate_sharded

        return evaluate_sharded(evaluate, task, self.rank, self.world_size, self.sum)

    def shard(self, batches: Any) -> Any:
        """This rank's share of the training ``batches`` (:class:`~zoo.distributed.data.ShardedBatches`)."""
        from zoo.distributed.data import ShardedBatches

        return ShardedBatches(batches, self.rank, self.world_size)

    # -- rank 0 leads ------------------------------------------------------------------------------
    def announce(self, name: str | None) -> None:
        """In a command whose rank 0 decides what to train (:func:`lead`): rank 0 tells the others the
        model it trains next (None: nothing more). Otherwise, and on the other ranks, nothing."""
        if not (_LEADING and self.is_main):
            return
        message = torch.full((NAME_BYTES + 1,), 0, dtype=torch.long, device=self._comm_device)
        if name is None:
            message[0] = -1
        else:
            raw = name.encode()[:NAME_BYTES]
            message[0] = len(raw)
            message[1 : len(raw) + 1] = torch.tensor(list(raw), dtype=torch.long)
        dist.broadcast(message, src=0)

    def receive(self) -> str | None:
        """On a rank other than 0: the next name rank 0 announces (None: done)."""
        message = torch.zeros(NAME_BYTES + 1, dtype=torch.long, device=self._comm_device)
        dist.broadcast(message, src=0)
        length = int(message[0].item())
        return None if length < 0 else bytes(message[1 : length + 1].tolist()).decode()

    def barrier(self) -> None:
        dist.barrier()

    @property
    def _comm_device(self) -> torch.device:
        return self.device if dist.get_backend() == "nccl" else torch.device("cpu")


def lead() -> None:
    """Rank 0 of this command decides what the ranks train and announces each model (``zoo bench``);
    the other ranks follow (:func:`zoo.pipeline.stages.follow_training`). Call before training."""
    global _LEADING
    _LEADING = True


def finish_leading(device: Any) -> None:
    """On rank 0 of a command that :func:`lead` s: tell the other ranks nothing more will be trained
    (joining the group first if no model was trained)."""
    context, _ = init_from_env(device)
    if context is not None:
        context.announce(None)
        leave_group()


def active_context() -> DistContext | None:
    """The group this process trains in (None: a single process)."""
    return _ACTIVE


def init_from_env(device: Any) -> tuple[DistContext | None, torch.device]:
    """Join the process group ``torchrun`` describes, once (later calls return the same context), and
    return it with the device this rank trains on: ``cuda:LOCAL_RANK`` for a CUDA ``device``, else
    ``device``. Outside ``torchrun``, or with one process in all: ``(None, device)``."""
    global _ACTIVE
    device = torch.device(device)
    if _ACTIVE is not None:
        return _ACTIVE, _ACTIVE.device
    if not under_launcher() or int(os.environ["WORLD_SIZE"]) < 2:
        return None, device
    rank, world, local = (int(os.environ[k]) for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK"))
    if device.type == "cuda":
        if local >= torch.cuda.device_count():
            raise UsageError(
                f"local rank {local} has no GPU (this machine has {torch.cuda.device_count()});"
                " give --nproc at most the number of GPUs"
            )
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
        backend = "nccl"
    elif device.type == "cpu":
        backend = "gloo"
    else:
        raise UsageError(f"--nproc trains on the CPU (gloo) or on CUDA GPUs (NCCL), not on {device.type}")
    timeout = _dt.timedelta(seconds=float(os.environ.get("ZOO_DIST_TIMEOUT", DEFAULT_TIMEOUT_S)))
    if not dist.is_initialized():
        dist.init_process_group(backend, rank=rank, world_size=world, timeout=timeout)
    _ACTIVE = DistContext(rank, world, local, device)
    atexit.register(shutdown)
    return _ACTIVE, device


def leave_group() -> None:
    """Leave the process group when this rank's share of the work is done: every rank waits for the
    others first (a barrier), so none tears its connections down while another still uses them.
    Without a group: nothing."""
    if _ACTIVE is None:
        return
    _ACTIVE.barrier()
    shutdown()


def shutdown() -> None:
    """Leave the process group (at exit; safe to call twice)."""
    global _ACTIVE
    _ACTIVE = None
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
