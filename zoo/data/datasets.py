"""Torch-RecHub's torch ``Dataset`` classes (``torch_rechub.utils.data``) under their names:
``TorchDataset`` (``(x_dict, y)`` rows), ``PredictDataset`` (``x_dict`` rows), ``SeqDataset`` and
``SequenceDataGenerator`` (token sequences for next-item models). Any of them can feed ``MatchTrainer``
through a ``torch.utils.data.DataLoader``; :class:`~zoo.data.seed_compat.MatchDataGenerator` builds
faster loaders for the matching workflow.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, random_split

from zoo.errors import DataError, UsageError


def _column_length(x: Mapping[str, Any], what: str) -> int:
    if not x:
        raise DataError(f"{what}: x has no columns")
    lengths = {key: len(value) for key, value in x.items()}
    if len(set(lengths.values())) > 1:
        raise DataError(
            f"{what}: columns have different lengths {lengths}; every column needs one value per row"
        )
    return next(iter(lengths.values()))


class TorchDataset(Dataset):
    """Rows ``({column: x[column][i]}, y[i])`` of a column dict ``x`` and labels ``y``."""

    def __init__(self, x: Mapping[str, Any], y: Any) -> None:
        super().__init__()
        rows = _column_length(x, "TorchDataset")
        if len(y) != rows:
            raise DataError(f"TorchDataset: y has {len(y)} labels for {rows} rows")
        self.x, self.y = x, y

    def __getitem__(self, index: int) -> tuple[dict[str, Any], Any]:
        return {k: v[index] for k, v in self.x.items()}, self.y[index]

    def __len__(self) -> int:
        return len(self.y)


class PredictDataset(Dataset):
    """Rows ``{column: x[column][i]}`` of a column dict ``x`` (no labels)."""

    def __init__(self, x: Mapping[str, Any]) -> None:
        super().__init__()
        self.rows = _column_length(x, "PredictDataset")
        self.x = x

    def __getitem__(self, index: int) -> dict[str, Any]:
        return {k: v[index] for k, v in self.x.items()}

    def __len__(self) -> int:
        return self.rows


class SeqDataset(Dataset):
    """``(seq_tokens, seq_positions, seq_time_diffs, target)`` long tensors per row, from arrays of shapes
    ``[N, L]``, ``[N, L]``, ``[N]`` and ``[N, L]`` (Torch-RecHub's argument order: tokens, positions,
    targets, time differences)."""

    def __init__(self, seq_tokens: Any, seq_positions: Any, targets: Any, seq_time_diffs: Any) -> None:
        super().__init__()
        arrays = {
            "seq_tokens": np.asarray(seq_tokens),
            "seq_positions": np.asarray(seq_positions),
            "targets": np.asarray(targets),
            "seq_time_diffs": np.asarray(seq_time_diffs),
        }
        rows = {name: len(a) for name, a in arrays.items()}
        if len(set(rows.values())) > 1:
            raise DataError(f"SeqDataset: the arrays have different numbers of rows {rows}")
        shapes = {arrays[n].shape for n in ("seq_tokens", "seq_positions", "seq_time_diffs")}
        if len(shapes) > 1:
            raise DataError(
                f"SeqDataset: tokens, positions and time differences differ in shape {sorted(shapes)}"
            )
        self.seq_tokens = arrays["seq_tokens"]
        self.seq_positions = arrays["seq_positions"]
        self.targets = arrays["targets"]
        self.seq_time_diffs = arrays["seq_time_diffs"]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        return (
            torch.as_tensor(self.seq_tokens[index], dtype=torch.long),
            torch.as_tensor(self.seq_positions[index], dtype=torch.long),
            torch.as_tensor(self.seq_time_diffs[index], dtype=torch.long),
            torch.as_tensor(self.targets[index], dtype=torch.long),
        )

    def __len__(self) -> int:
        return len(self.targets)


class SequenceDataGenerator:
    """DataLoaders over a :class:`SeqDataset` (Torch-RecHub's class)."""

    def __init__(self, seq_tokens: Any, seq_positions: Any, targets: Any, seq_time_diffs: Any) -> None:
        self.dataset = SeqDataset(seq_tokens, seq_positions, targets, seq_time_diffs)
        self.seq_tokens, self.seq_positions = self.dataset.seq_tokens, self.dataset.seq_positions
        self.targets, self.seq_time_diffs = self.dataset.targets, self.dataset.seq_time_diffs

    def generate_dataloader(
        self,
        batch_size: int = 32,
        num_workers: int = 0,
        split_ratio: Sequence[float] | None = None,
        shuffle: bool = True,
    ) -> tuple[DataLoader, ...]:
        """``(loader,)`` over every row, or with ``split_ratio`` (train, val, test shares summing to 1)
        ``(train_loader, val_loader, test_loader)`` of a random split (only train is shuffled)."""
        if split_ratio is None:
            return (
                DataLoader(self.dataset, batch_size=batch_size, shuffle=shuffle, num_workers=num_workers),
            )
        if len(split_ratio) != 3 or abs(sum(split_ratio) - 1.0) > 1e-6 or min(split_ratio) < 0:
            raise UsageError(
                f"split_ratio must be three non-negative shares summing to 1, got {split_ratio!r}"
            )
        total = len(self.dataset)
        train_size, val_size = int(total * split_ratio[0]), int(total * split_ratio[1])
        parts = random_split(self.dataset, [train_size, val_size, total - train_size - val_size])
        return tuple(
            DataLoader(part, batch_size=batch_size, shuffle=i == 0, num_workers=num_workers)
            for i, part in enumerate(parts)
        )
