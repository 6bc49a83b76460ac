"""The negatives table: one strategy per kind, one logQ helper (checked against its formula), the
correction applied where it belongs, and item counts gathered from the batches when not given."""

from __future__ import annotations

import math

import pytest
import torch

from zoo.data.match import MatchData
from zoo.data.negatives import PopularitySampler, UniformSampler
from zoo.data.protocol import get_protocol
from zoo.train import losses
from zoo.train.config import NEGATIVE_KINDS, TrainerConfig
from zoo.train.negatives import STRATEGIES
from zoo.train.proposals import ItemProposals, log_expected_count
from zoo.train.trainer import MatchTrainer
from zoo_plugins.dssm.model import DSSM


@pytest.fixture(scope="module")
def data(tiny_interactions) -> MatchData:
    return MatchData.from_interactions(tiny_interactions, get_protocol("loo"))


def trainer_for(data: MatchData, **settings) -> MatchTrainer:
    torch.manual_seed(0)
    model = DSSM.from_schema(data.schema, embed_dim=8, dims=[16, 8], temperature=0.1)
    model.set_item_table(data.item_table)
    config = TrainerConfig.from_dict({"mode": 2, "seed": 0, **settings})
    return MatchTrainer.from_config(model, config, device="cpu", item_counts=data.item_counts)


def test_every_negative_kind_has_one_strategy():
    assert set(STRATEGIES) == set(NEGATIVE_KINDS) - {"auto"}


def test_log_expected_count_is_the_log_of_draws_times_the_proposal_probability():
    ids = torch.tensor([[2, 3], [4, 2]])
    uniform = UniformSampler(2, 10)
    expected = torch.full((2, 2), math.log(5 / 8))
    torch.testing.assert_close(log_expected_count(uniform, ids, 5), expected)
    counts = torch.tensor([0.0, 0.0, 4.0, 1.0, 3.0])
    popularity = PopularitySampler(counts, alpha=1.0)
    torch.testing.assert_close(log_expected_count(popularity, ids, 5), torch.log(counts[ids] / 8 * 5))
    unigram = counts / counts.sum()
    torch.testing.assert_close(log_expected_count(unigram, ids, 3), torch.log(unigram[ids] * 3))
    assert torch.isfinite(log_expected_count(unigram, torch.tensor([0]), 3)).all()  # clamped, never -inf


@pytest.mark.parametrize("kind", ["popularity", "shared"])
def test_sampled_softmax_subtracts_log_q_only_when_asked(data, kind, monkeypatch):
    seen: list[tuple[torch.Tensor, torch.Tensor]] = []
    original = losses.softmax_loss

    def spy(pos_logits, neg_logits, neg_mask=None):
        seen.append((pos_logits.detach(), neg_logits.detach()))
        return original(pos_logits, neg_logits, neg_mask)

    monkeypatch.setattr(losses, "softmax_loss", spy)
    batch = data.batch(data.train_positions[:32])
    for correct in (True, False):
        trainer = trainer_for(data, negatives=kind, num_negatives=8, logq_correction=correct)
        trainer.compute_loss(batch)
    (pos_on, neg_on), (pos_off, neg_off) = seen
    sampler = trainer.proposals.sampler(kind)
    shift = sampler.log_q(batch["item_id"]) + math.log(8)
    torch.testing.assert_close(pos_off - pos_on, shift)
    assert not torch.allclose(neg_on, neg_off)


def test_batches_own_negatives_win_over_the_configured_kind(data, monkeypatch):
    batch = data.batch(data.train_positions[:16])
    batch["neg_items"] = (batch["item_id"] % (data.schema.item_vocab - 2)) + 2
    calls: list[str] = []

    def counting(name, strategy):
        def run(ctx, rows):
            calls.append(name)
            return strategy(ctx, rows)

        return run

    monkeypatch.setattr("zoo.train.negatives.STRATEGIES", {k: counting(k, f) for k, f in STRATEGIES.items()})
    trainer_for(data, negatives="popularity").compute_loss(batch)
    del batch["neg_items"]
    trainer_for(data, negatives="popularity").compute_loss(batch)
    assert calls == ["batch", "popularity"]


def test_item_counts_are_gathered_from_positive_rows_when_not_given():
    proposals = ItemProposals(6)
    proposals.observe({"item_id": torch.tensor([2, 3, 3, 5]), "label": torch.tensor([1, 1, 0, 1])}, "item_id")
    proposals.observe({"item_id": torch.tensor([3])}, "item_id")
    assert proposals.counts.tolist() == [0, 0, 1, 2, 0, 1]
    assert proposals.catalogue_range() == (1, 6)  # seed encoding: 0 is padding
    torch.testing.assert_close(proposals.unigram(), (proposals.counts + 1).float() / 10)
    given = ItemProposals(6, item_counts=[0, 0, 1, 1, 1, 1])
    given.observe({"item_id": torch.tensor([2])}, "item_id")
    assert given.counts.tolist() == [0, 0, 1, 1, 1, 1]  # given counts are never changed
    assert given.catalogue_range() == (2, 6)  # pipeline encoding: 0 padding, 1 unknown


@pytest.mark.parametrize("mode", [0, 1, 2])
def test_counted_frequencies_ignore_the_seed_list_wise_zero_labels(data, mode):
    """The seed's list-wise loaders pass y = 0 on every row (the positive is column 0): those rows are
    positives and logQ must count them; only point-wise labels say which rows are negatives."""
    torch.manual_seed(0)
    model = DSSM.from_schema(data.schema, embed_dim=8, dims=[16, 8], temperature=0.1)
    model.set_item_table(data.item_table)
    trainer = MatchTrainer.from_config(
        model,
        TrainerConfig.from_dict(
            {"mode": mode, "seed": 0, "negatives": "inbatch" if mode == 2 else "uniform"}
        ),
        device="cpu",
    )
    batch = data.batch(data.train_positions[:8])
    batch["label"] = torch.zeros(8) if mode else torch.tensor([1.0, 0, 1, 0, 1, 0, 1, 0])
    batch.pop("neg_items", None)
    trainer.train_one_epoch([batch])
    expected = 8 if mode else 4
    assert float(trainer.proposals.counts.sum()) == expected
