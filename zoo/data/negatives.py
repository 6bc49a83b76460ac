"""Negative sampling shared by every model and training mode.

Offline samplers draw ``n`` negative ids per row (uniform, or popularity^alpha); in-batch negatives
are the other rows' positives. Each sampler knows the log-probability with which it proposes an item,
which the losses use for the logQ (sampling-bias) correction. A sampled negative equal to the row's
positive is never trained on as a negative: the losses mask it.
"""

from __future__ import annotations

import torch

from zoo.errors import UsageError


class NegativeSampler:
    """Base class: ``sample(pos_ids, n)`` -> [B, n] ids and ``log_q(ids)`` (log proposal probability)."""

    def sample(self, pos_ids: torch.Tensor, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        raise NotImplementedError

    def sample_shared(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` negatives shared by the whole batch."""
        return self.sample(torch.zeros(1, dtype=torch.long), n, generator)[0]

    def log_q(self, ids: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def to(self, device: torch.device | str) -> NegativeSampler:
        return self


class UniformSampler(NegativeSampler):
    """Uniform over item ids ``low .. high - 1`` (the catalogue)."""

    def __init__(self, low: int, high: int) -> None:
        if high <= low:
            raise UsageError(f"uniform sampler needs a non-empty id range, got {low}..{high - 1}")
        self.low, self.high = int(low), int(high)

    def sample(self, pos_ids: torch.Tensor, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return torch.randint(self.low, self.high, (pos_ids.shape[0], n), generator=generator).to(
            pos_ids.device
        )

    def log_q(self, ids: torch.Tensor) -> torch.Tensor:
        return torch.full(
            ids.shape, -torch.log(torch.tensor(float(self.high - self.low))).item(), device=ids.device
        )


class PopularitySampler(NegativeSampler):
    """Proportional to ``count ** alpha`` (alpha 0.75 as in word2vec; 1.0 = unigram; 0 = uniform over
    items with a count)."""

    def __init__(self, counts: torch.Tensor, alpha: float = 0.75) -> None:
        counts = torch.as_tensor(counts, dtype=torch.float64)
        weights = torch.where(counts > 0, counts.clamp_min(0) ** float(alpha), torch.zeros_like(counts))
        total = weights.sum()
        if total <= 0:
            raise UsageError("popularity sampler needs at least one item with a positive count")
        self.alpha = float(alpha)
        self.probs = (weights / total).float()
        self._log_probs = torch.log(self.probs.clamp_min(1e-30))

    def sample(self, pos_ids: torch.Tensor, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        rows = pos_ids.shape[0]
        flat = torch.multinomial(self.probs, rows * n, replacement=True, generator=generator)
        return flat.view(rows, n).to(pos_ids.device)

    def log_q(self, ids: torch.Tensor) -> torch.Tensor:
        return self._log_probs.to(ids.device)[ids]

    def to(self, device: torch.device | str) -> PopularitySampler:
        self._log_probs = self._log_probs.to(device)
        return self


def make_sampler(
    kind: str, item_vocab: int, counts: torch.Tensor | None, alpha: float = 0.75, low: int = 1
) -> NegativeSampler:
    """Build the offline sampler named ``kind`` ("uniform" or "popularity") over ids ``low..item_vocab-1``."""
    if kind == "uniform":
        return UniformSampler(low, item_vocab)
    if kind == "popularity":
        if counts is None:
            raise UsageError(
                "popularity negatives need item counts (the pipeline passes them; pass item_counts=...)"
            )
        return PopularitySampler(counts, alpha)
    raise UsageError(f"negative sampler {kind!r} is unknown; use uniform or popularity")
