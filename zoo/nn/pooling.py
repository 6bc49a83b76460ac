"""Pooling over sequences that ignores padding positions."""

from __future__ import annotations

import torch


def masked_sum(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Sum ``values`` [B, L, D] over L where ``mask`` [B, L] is true."""
    return (values * mask.unsqueeze(-1).to(values.dtype)).sum(dim=1)


def masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``values`` [B, L, D] over the positions where ``mask`` [B, L] is true.

    A row with no valid position gives a zero vector (not NaN).
    """
    counts = mask.sum(dim=1, keepdim=True).clamp_min(1).to(values.dtype)
    return masked_sum(values, mask) / counts
