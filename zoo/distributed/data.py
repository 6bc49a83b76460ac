"""Each rank's share of the training batches.

The positions (or sequence windows) of an epoch are split by ``DistributedSampler(drop_last=True)``:
shuffled by ``(seed, epoch)`` the same way on every rank, the tail that does not divide evenly
dropped, rank ``r`` taking every ``world_size``-th one from ``r``. Every rank then has the same number
of batches (a rank with one batch more would wait for the others forever). A rank's batch holds
``batch_size // world_size`` rows, so the ranks' batches together make the global batch of
``batch_size`` rows that a single process would train on.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import torch
from torch.utils.data import DistributedSampler

from zoo.errors import UsageError


class ShardedBatches:
    """This rank's batches of ``batches`` (:class:`~zoo.data.match.TrainBatches` or
    :class:`~zoo.data.match.SequenceBatches`); iterable like them, with ``set_epoch``."""

    def __init__(self, batches: Any, rank: int, world_size: int) -> None:
        if batches.batch_size < world_size:
            raise UsageError(
                f"batch_size={batches.batch_size} is split over {world_size} processes; give a batch size"
                f" of at least {world_size} (each rank trains on batch_size // nproc rows)"
            )
        self.batches = batches
        self.rank, self.world_size = int(rank), int(world_size)
        self.batch_size = batches.batch_size // world_size
        count = int(batches.positions.shape[0])
        if count < world_size:
            raise UsageError(f"{count} training samples cannot be split over {world_size} processes")
        self.sampler = DistributedSampler(
            range(count),
            num_replicas=world_size,
            rank=rank,
            shuffle=batches.shuffle,
            seed=batches.seed,
            drop_last=True,
        )
        self.epoch = 0

    def __len__(self) -> int:
        return math.ceil(len(self.sampler) / self.batch_size)

    def set_epoch(self, epoch: int) -> None:
        """Make the next pass epoch ``epoch`` (the same shuffle on every rank)."""
        self.epoch = int(epoch)

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        self.sampler.set_epoch(self.epoch)
        self.epoch += 1
        order = torch.tensor(list(iter(self.sampler)), dtype=torch.long)
        positions = self.batches.positions[order]
        data = self.batches.data
        stride = getattr(self.batches, "stride", None)
        sequences = hasattr(self.batches, "stride")
        for start in range(0, positions.shape[0], self.batch_size):
            chunk = positions[start : start + self.batch_size]
            yield data.sequence_batch(chunk, stride=stride) if sequences else data.batch(chunk)
