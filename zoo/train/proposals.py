"""Where the trainer's negatives come from: item frequencies, the catalogue's id range, the offline
samplers built on them, and the one logQ helper (the log expected count of a proposed item).

The samplers themselves live in :mod:`zoo.data.negatives`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from zoo.data.negatives import NegativeSampler, UniformSampler, make_sampler

Proposal = NegativeSampler | torch.Tensor  # a sampler, or unigram probabilities per item id (in-batch)


def log_expected_count(proposal: Proposal, ids: torch.Tensor, draws: int) -> torch.Tensor:
    """logQ: the log of how many times ``ids`` are expected among ``draws`` proposals of ``proposal``.

    Subtracting it from a candidate's logit (the logQ correction) removes the sampling bias of sampled
    and in-batch softmax. ``proposal`` is a sampler (uniform: ``log(draws / span)``; popularity:
    ``log_q + log(draws)``) or the unigram probabilities of in-batch sampling (``log(p * draws)``, with
    p clamped at 1e-12).
    """
    if isinstance(proposal, torch.Tensor):
        return torch.log(proposal[ids].clamp_min(1e-12) * draws)
    if isinstance(proposal, UniformSampler):
        return torch.full(ids.shape, math.log(draws / (proposal.high - proposal.low)), device=ids.device)
    return proposal.log_q(ids) + math.log(draws)


class ItemProposals:
    """Item frequencies and the samplers drawn from them.

    Args:
        item_vocab: size of the item id space (ids ``0..item_vocab-1``).
        item_counts: training frequency per item id; ``None``: counted from the batches as they pass
            (:meth:`observe`), with add-one smoothing wherever a probability is needed.
        popularity_alpha: exponent of popularity sampling.
    """

    def __init__(self, item_vocab: int, item_counts: Any = None, popularity_alpha: float = 0.75) -> None:
        self.item_vocab = int(item_vocab)
        self.counts_given = item_counts is not None
        self.counts = (
            torch.as_tensor(np.asarray(item_counts), dtype=torch.float64)
            if item_counts is not None
            else torch.zeros(self.item_vocab, dtype=torch.float64)
        )
        self.popularity_alpha = float(popularity_alpha)
        self._sampler: NegativeSampler | None = None

    def observe(self, batch: Mapping[str, torch.Tensor], item_key: str) -> None:
        """Count the batch's positive items (only when no counts were given)."""
        if self.counts_given or item_key not in batch:
            return
        ids = batch[item_key].reshape(-1).long()
        if "label" in batch and batch["label"].shape[0] == ids.shape[0]:
            ids = ids[batch["label"].reshape(-1) > 0]
        size = self.counts.shape[0]
        self.counts += torch.bincount(ids, minlength=size)[:size].double()

    def state_dict(self) -> dict[str, Any]:
        """The frequencies counted so far (empty when they were given): what a resumed fit needs."""
        return {} if self.counts_given else {"counts": self.counts}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Continue from a :meth:`state_dict` (counted frequencies; given ones stay as they are)."""
        if not self.counts_given and "counts" in state:
            self.counts = torch.as_tensor(state["counts"], dtype=torch.float64).clone()
            self._sampler = None

    def catalogue_range(self) -> tuple[int, int]:
        """Item ids that can be recommended: 2.. with the pipeline's encoder (0 padding, 1 OOV), 1.. with
        the seed's label encoding (0 padding)."""
        low = 2 if self.counts_given and float(self.counts[:2].sum()) == 0 else 1
        return low, self.item_vocab

    def uniform(self) -> UniformSampler:
        """Uniform over the catalogue."""
        return UniformSampler(*self.catalogue_range())

    def sampler(self, kind: str) -> NegativeSampler:
        """The offline sampler of negatives ``kind``: ``popularity`` and ``shared`` draw
        popularity**alpha (rebuilt from the running counts when they were not given), anything else
        uniform over the catalogue."""
        if kind in ("popularity", "shared"):
            if self._sampler is None or not self.counts_given:
                counts = self.counts + (0 if self.counts_given else 1)
                self._sampler = make_sampler("popularity", self.item_vocab, counts, self.popularity_alpha)
            return self._sampler
        if self._sampler is None:
            self._sampler = self.uniform()
        return self._sampler

    def unigram(self) -> torch.Tensor:
        """Probability of each item id among the positives (in-batch sampling's proposal)."""
        counts = self.counts if self.counts_given else self.counts + 1.0
        return (counts / counts.sum()).float()
