"""Training on several processes (DDP), launched by ``torchrun`` (see docs/distributed.md).

* :mod:`zoo.distributed.launch`: relaunching a command under ``python -m torch.distributed.run`` and
  telling whether this process already runs under it (``RANK`` / ``WORLD_SIZE`` / ``LOCAL_RANK``).
* :mod:`zoo.distributed.context`: the process group of a run (gloo on CPU, NCCL on GPU), its
  collectives (mean, agreement, global item counts, the gradient-carrying gather of in-batch
  positives) and the DDP wrapper of the loss.
* :mod:`zoo.distributed.data`: each rank's share of the training batches (``DistributedSampler``).
* :mod:`zoo.distributed.evaluate`: ranking evaluation sharded by users, metric sums all-reduced.

Everything here is a no-op for a single process: :func:`active_context` is None and the trainer
runs exactly as it does without this package.
"""

from __future__ import annotations

from zoo.distributed.context import (
    DistContext,
    active_context,
    finish_leading,
    init_from_env,
    lead,
    leave_group,
    shutdown,
)
from zoo.distributed.launch import LaunchOptions, env_rank, is_main_process, relaunch, under_launcher

__all__ = [
    "leave_group",
    "DistContext",
    "LaunchOptions",
    "active_context",
    "env_rank",
    "finish_leading",
    "init_from_env",
    "is_main_process",
    "lead",
    "relaunch",
    "shutdown",
    "under_launcher",
]
