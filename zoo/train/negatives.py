"""The training loss of one batch: the batch's positives, then the negatives strategy the config names.

Each negative kind is one function in :data:`STRATEGIES`:

* ``batch``: the batch's own ``neg_items`` column (any mode). A batch that carries ``neg_items`` always
  uses them, whatever the kind.
* ``uniform`` / ``popularity``: ``num_negatives`` ids sampled per row (popularity logQ-corrected in
  mode 2).
* ``shared``: ``num_negatives`` popularity ids drawn once per batch for every row (logQ-corrected).
* ``inbatch`` / ``mixed`` (mode 2): the other rows' positives, logQ-corrected; ``mixed`` adds
  ``num_negatives`` uniform ids shared by the batch.
* ``full`` (mode 2): softmax over the whole catalogue.

Row-wise negatives go through the mode's loss (:func:`row_loss`): point-wise BCE, pair-wise BPR / hinge
/ BPR-max, or list-wise sampled softmax. Sampling uses the trainer's own generator.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch

from zoo.data.inbatch import gather_inbatch_logits, inbatch_negative_sampling
from zoo.errors import UsageError
from zoo.models.base import RecallModel
from zoo.train import losses
from zoo.train.config import TrainerConfig
from zoo.train.proposals import ItemProposals, Proposal, log_expected_count


@dataclass
class LossContext:
    """What a strategy may use: the model, the settings, the item proposals and the sampling generator.

    On several processes (:mod:`zoo.distributed`), ``gather`` returns the other ranks' in-batch
    positives (item vectors carrying gradients, ids) and ``shared_generator`` draws what the whole
    global batch shares (the same on every rank); ``generator`` is then this rank's own."""

    model: RecallModel
    config: TrainerConfig
    proposals: ItemProposals
    generator: torch.Generator
    gather: Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]] | None = None
    shared_generator: torch.Generator | None = None

    @property
    def draws(self) -> int:
        """Negatives drawn per row (or per batch for shared ones)."""
        return self.config.resolved_num_negatives

    @property
    def batch_generator(self) -> torch.Generator:
        """The generator of draws shared by the (global) batch."""
        return self.shared_generator if self.shared_generator is not None else self.generator


@dataclass
class Positives:
    """A batch's training rows: ``query`` [M, D] (the interest that scores the positive), the positive
    item vectors [M, D], their ids [M] and logits [M]."""

    batch: Mapping[str, torch.Tensor]
    query: torch.Tensor
    item: torch.Tensor
    ids: torch.Tensor
    logits: torch.Tensor


Strategy = Callable[[LossContext, Positives], torch.Tensor]


def positive_vectors(
    model: RecallModel, batch: Mapping[str, torch.Tensor], pos_ids: torch.Tensor
) -> torch.Tensor:
    """Item vectors of the positives: from the batch's own item columns when it has them for these rows,
    else from the model's item table."""
    names = [f.name for f in model.item_features]
    if all(n in batch for n in names) and batch[model.item_id_feature].shape[0] == pos_ids.shape[0]:
        return model.item_tower(batch)
    return model.item_vectors(pos_ids)


def batch_loss(ctx: LossContext, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """The training loss of one batch (already on the model's device)."""
    model = ctx.model
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
        pos_item = positive_vectors(model, batch, pos_ids) if same_rows else model.item_vectors(pos_ids)
    # Torch-RecHub's in_batch_neg: every row is a positive, labels and neg_items are not read
    sampled_inbatch = ctx.config.negatives == "inbatch-sampled"
    if ctx.config.mode == 0 and labels is not None and not sampled_inbatch:
        return losses.labelled_loss(model.score(user, pos_item) / model.temperature, labels)
    query = model.select_interest(user, pos_item)
    logits = (query * pos_item).sum(-1) / model.temperature
    rows = Positives(batch=batch, query=query, item=pos_item, ids=pos_ids, logits=logits)
    kind = "batch" if model.neg_items_key in batch and not sampled_inbatch else ctx.config.resolved_negatives
    return STRATEGIES[kind](ctx, rows)


# -- row-wise negatives ------------------------------------------------------------------------------------
def row_loss(
    ctx: LossContext,
    rows: Positives,
    neg_logits: torch.Tensor,
    neg_mask: torch.Tensor,
    log_q: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> torch.Tensor:
    """The mode's loss of each positive against its negatives ``neg_logits`` [M, n] (``neg_mask``: the
    candidates equal to the positive). ``log_q`` (positives', negatives') is subtracted in mode 2."""
    config = ctx.config
    if config.mode == 0:
        return losses.pointwise_loss(rows.logits, neg_logits, neg_mask)
    if config.mode == 1:
        if config.pairwise_loss == "bpr-max":
            return losses.bpr_max_loss(rows.logits, neg_logits, neg_mask, reg=config.bpr_max_reg)
        return losses.pairwise_loss(
            rows.logits, neg_logits, neg_mask, kind=config.pairwise_loss, margin=config.margin
        )
    pos_logits = rows.logits
    if log_q is not None:
        pos_logits, neg_logits = pos_logits - log_q[0], neg_logits - log_q[1]
    return losses.softmax_loss(pos_logits, neg_logits, neg_mask)


def _per_row(ctx: LossContext, rows: Positives, neg_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits [M, n] and mask of per-row negative ids [M, n]."""
    neg_item = ctx.model.item_vectors(neg_ids)
    neg_logits = (rows.query.unsqueeze(1) * neg_item).sum(-1) / ctx.model.temperature
    return neg_logits, neg_ids == rows.ids.unsqueeze(1)


def batch_negatives(ctx: LossContext, rows: Positives) -> torch.Tensor:
    """The batch's own ``neg_items`` ([M] or [M, n])."""
    key = ctx.model.neg_items_key
    if key not in rows.batch:
        raise UsageError(
            f"negatives='batch' but the batch has no '{key}' column (and no 'label' column in mode 0);"
            " add negatives to the data or choose negatives='uniform'"
        )
    neg_ids = rows.batch[key].long()
    neg_ids = neg_ids.unsqueeze(1) if neg_ids.dim() == 1 else neg_ids
    return row_loss(ctx, rows, *_per_row(ctx, rows, neg_ids))


def uniform_negatives(ctx: LossContext, rows: Positives) -> torch.Tensor:
    """``num_negatives`` ids per row, uniform over the catalogue."""
    sampler = ctx.proposals.sampler("uniform")
    neg_ids = sampler.sample(rows.ids.cpu(), ctx.draws, ctx.generator).to(rows.ids.device)
    return row_loss(ctx, rows, *_per_row(ctx, rows, neg_ids))


def popularity_negatives(ctx: LossContext, rows: Positives) -> torch.Tensor:
    """``num_negatives`` ids per row drawn by popularity**alpha (logQ-corrected)."""
    sampler = ctx.proposals.sampler("popularity")
    neg_ids = sampler.sample(rows.ids.cpu(), ctx.draws, ctx.generator).to(rows.ids.device)
    neg_logits, neg_mask = _per_row(ctx, rows, neg_ids)
    log_q = _log_q(ctx, sampler, rows.ids, neg_ids)
    return row_loss(ctx, rows, neg_logits, neg_mask, log_q)


def shared_negatives(ctx: LossContext, rows: Positives) -> torch.Tensor:
    """``num_negatives`` popularity**alpha ids drawn once and shared by every row (logQ-corrected)."""
    sampler = ctx.proposals.sampler("shared")
    shared = sampler.sample_shared(ctx.draws, ctx.batch_generator).to(rows.ids.device)
    neg_logits = (rows.query / ctx.model.temperature) @ ctx.model.item_vectors(shared).T
    neg_mask = shared.unsqueeze(0) == rows.ids.unsqueeze(1)
    log_q = _log_q(ctx, sampler, rows.ids, shared)
    if log_q is not None:
        log_q = (log_q[0], log_q[1].unsqueeze(0))
    return row_loss(ctx, rows, neg_logits, neg_mask, log_q)


def _log_q(
    ctx: LossContext, proposal: Proposal, pos_ids: torch.Tensor, neg_ids: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor] | None:
    """(positives', negatives') logQ terms for the list-wise loss; None when not corrected."""
    if ctx.config.mode != 2 or not ctx.config.logq_correction:
        return None
    draws = ctx.draws
    return log_expected_count(proposal, pos_ids, draws), log_expected_count(proposal, neg_ids, draws)


# -- list-wise only ----------------------------------------------------------------------------------------
def inbatch_negatives(ctx: LossContext, rows: Positives, *, mixed: bool = False) -> torch.Tensor:
    """Softmax over the batch's positives (logQ-corrected by unigram frequency); ``mixed`` adds
    ``num_negatives`` uniform ids shared by the batch.

    With ``ctx.gather`` (several processes) the batch is the global one: the other ranks' positives
    are extra candidates of this rank's rows (their duplicates of a row's positive masked), and logQ
    counts the global batch's rows, so each rank's loss is its rows' share of the global loss."""
    others = ctx.gather(rows.item, rows.ids) if ctx.gather is not None else None
    batch_rows = rows.ids.shape[0] + (0 if others is None else others[1].shape[0])
    log_q = unigram = None
    if ctx.config.logq_correction:
        unigram = ctx.proposals.unigram().to(rows.ids.device)
        log_q = log_expected_count(unigram, rows.ids, batch_rows)
    extra_items = extra_ids = extra_log_q = None
    if others is not None:
        extra_items, extra_ids = others
        extra_log_q = (
            log_expected_count(unigram, extra_ids, batch_rows)
            if unigram is not None
            else torch.zeros(extra_ids.shape, device=extra_ids.device)
        )
    if mixed:
        uniform = ctx.proposals.uniform()
        mixed_ids = uniform.sample_shared(ctx.draws, ctx.batch_generator).to(rows.ids.device)
        mixed_items = ctx.model.item_vectors(mixed_ids)
        mixed_log_q = log_expected_count(uniform, mixed_ids, ctx.draws)
        if extra_items is None:
            extra_items, extra_ids, extra_log_q = mixed_items, mixed_ids, mixed_log_q
        else:
            extra_items = torch.cat([extra_items, mixed_items])
            extra_ids = torch.cat([extra_ids, mixed_ids])
            extra_log_q = torch.cat([extra_log_q, mixed_log_q.to(extra_log_q.dtype)])
    return losses.inbatch_softmax_loss(
        rows.query,
        rows.item,
        rows.ids,
        ctx.model.temperature,
        log_q=log_q,
        extra_items=extra_items,
        extra_ids=extra_ids,
        extra_log_q=extra_log_q,
    )


def inbatch_sampled_negatives(ctx: LossContext, rows: Positives) -> torch.Tensor:
    """Torch-RecHub's ``in_batch_neg``: ``num_negatives`` of the other rows' positives per row (all when
    None), random or the hardest (``hard_negatives``), through softmax in modes 0 and 2 and the pairwise
    loss in mode 1. Unlike Torch-RecHub, a sampled row whose item equals the positive is masked."""
    scores = (rows.query / ctx.model.temperature) @ rows.item.T
    neg = inbatch_negative_sampling(
        scores.detach(), ctx.config.num_negatives, ctx.config.hard_negatives, ctx.generator
    )
    logits = gather_inbatch_logits(scores, neg)
    neg_mask = rows.ids[neg] == rows.ids.unsqueeze(1)
    pos_logits, neg_logits = logits[:, 0], logits[:, 1:]
    if ctx.config.mode == 1:
        return row_loss(ctx, rows, neg_logits, neg_mask)
    return losses.softmax_loss(pos_logits, neg_logits, neg_mask)


def mixed_negatives(ctx: LossContext, rows: Positives) -> torch.Tensor:
    """In-batch negatives plus ``num_negatives`` uniform ones shared by the batch."""
    return inbatch_negatives(ctx, rows, mixed=True)


def full_softmax(ctx: LossContext, rows: Positives) -> torch.Tensor:
    """Cross-entropy over every catalogue item."""
    low, high = ctx.proposals.catalogue_range()
    candidates = torch.arange(low, high, device=rows.ids.device)
    # Dividing the [M, D] queries instead of the [M, catalogue] logits: the same logits, a fraction
    # of the element-wise work (forward and backward).
    logits = (rows.query / ctx.model.temperature) @ ctx.model.item_vectors(candidates).T
    return torch.nn.functional.cross_entropy(logits, rows.ids - low)


#: negative kind -> the function computing the batch's loss with it
STRATEGIES: Mapping[str, Strategy] = {
    "batch": batch_negatives,
    "uniform": uniform_negatives,
    "popularity": popularity_negatives,
    "shared": shared_negatives,
    "inbatch": inbatch_negatives,
    "inbatch-sampled": inbatch_sampled_negatives,
    "mixed": mixed_negatives,
    "full": full_softmax,
}
