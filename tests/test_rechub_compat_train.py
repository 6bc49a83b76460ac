"""Torch-RecHub's trainer keywords, predict, in-batch sampling helpers and loss modules."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from zoo.errors import UsageError


def test_inbatch_sampling_helpers() -> None:
    from zoo.data import gather_inbatch_logits, inbatch_negative_sampling

    scores = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 0.0]])
    assert inbatch_negative_sampling(scores, 1, hard_negative=True).squeeze(1).tolist() == [2, 2, 1]
    zeros = torch.zeros(6, 6)
    for seed in range(5):
        neg = inbatch_negative_sampling(zeros, 3, generator=torch.Generator().manual_seed(seed))
        assert neg.shape == (6, 3)
        for row, picked in enumerate(neg.tolist()):
            assert row not in picked and len(set(picked)) == 3
    assert (
        inbatch_negative_sampling(zeros, None).shape == (6, 5) == inbatch_negative_sampling(zeros, 99).shape
    )
    a = inbatch_negative_sampling(zeros, 2, generator=torch.Generator().manual_seed(0))
    assert torch.equal(a, inbatch_negative_sampling(zeros, 2, generator=torch.Generator().manual_seed(0)))
    logits = gather_inbatch_logits(scores, torch.tensor([[1], [0], [0]]))
    assert logits.tolist() == [[1.0, 2.0], [5.0, 4.0], [0.0, 7.0]]
    with pytest.raises(UsageError):
        inbatch_negative_sampling(torch.zeros(1, 1))


def _model_and_loader(mode: int = 0):
    from zoo.data import MatchDataGenerator, df_to_dict, gen_model_input, generate_seq_feature_match
    from zoo.features import SequenceFeature, SparseFeature
    from zoo.models import DSSM

    rng = np.random.default_rng(1)
    data = pd.DataFrame(
        {"user_id": rng.integers(0, 12, 120), "item_id": rng.integers(1, 25, 120), "time": range(120)}
    )
    train, test = generate_seq_feature_match(
        data, "user_id", "item_id", "time", mode=mode, neg_ratio=0, seed=0
    )
    users, items = pd.DataFrame({"user_id": range(12)}), pd.DataFrame({"item_id": range(25)})
    x = gen_model_input(train, users, "user_id", items, "item_id", seq_max_len=8)
    x_test = gen_model_input(test, users, "user_id", items, "item_id", seq_max_len=8)
    user_features = [
        SparseFeature("user_id", 12, embed_dim=8),
        SequenceFeature("hist_item_id", 25, embed_dim=8, pooling="mean", shared_with="item_id"),
    ]
    model = DSSM(
        user_features,
        [SparseFeature("item_id", 25, embed_dim=8)],
        user_params={"dims": [16]},
        item_params={"dims": [16]},
    )
    train_dl, test_dl, _ = MatchDataGenerator(x, np.zeros(len(train))).generate_dataloader(
        x_test, df_to_dict(items), 8
    )
    return model, train_dl, test_dl


@pytest.mark.parametrize("mode", [0, 1, 2])
def test_match_trainer_in_batch_keywords(mode: int) -> None:
    from zoo.train import MatchTrainer

    model, train_dl, _ = _model_and_loader()
    trainer = MatchTrainer(
        model, mode=mode, in_batch_neg=True, in_batch_neg_ratio=3, hard_negative=mode == 1, sampler_seed=2,
        n_epoch=1, device="cpu", model_path=None, verbose=False,
    )  # fmt: skip
    assert trainer.config.negatives == "inbatch-sampled" and trainer.config.num_negatives == 3
    assert trainer.config.hard_negatives is (mode == 1) and trainer.config.seed == 2
    before = [p.detach().clone() for p in model.parameters()]
    loss = trainer.train_one_epoch(train_dl, log_interval=100)
    assert np.isfinite(loss)
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))


def test_match_trainer_keyword_errors_and_regularization_keys() -> None:
    from zoo.train import MatchTrainer

    model, _, _ = _model_and_loader()
    with pytest.raises(UsageError, match="in_batch_neg=True"):
        MatchTrainer(model, hard_negative=True, model_path=None)
    with pytest.raises(UsageError, match="both set seed"):
        MatchTrainer(model, sampler_seed=1, seed=2, model_path=None)
    zero_l1 = {"embedding_l1": 0.0, "embedding_l2": 1e-5, "dense_l1": 0.0, "dense_l2": 0.0}
    assert MatchTrainer(model, regularization_params=zero_l1, model_path=None).config.embedding_l2 == 1e-5
    with pytest.raises(UsageError, match="embedding_l1"):
        MatchTrainer(model, regularization_params={"embedding_l1": 0.1}, model_path=None)


def test_predict_returns_each_rows_probability() -> None:
    from zoo.train import MatchTrainer

    model, _, test_dl = _model_and_loader()
    trainer = MatchTrainer(model, model_path=None, verbose=False)
    got = trainer.predict(model, test_dl)
    assert model.training  # predict leaves the model as it found it
    model.eval()
    want = []
    with torch.no_grad():
        for batch in test_dl:
            want += model(batch).reshape(-1).tolist()
    assert len(got) == sum(len(b["user_id"]) for b in test_dl) and np.allclose(got, want, atol=1e-6)


class Tiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embedding = nn.Embedding(10, 3)
        self.linear = nn.Linear(3, 2)
        self.norm = nn.LayerNorm(2)


def test_regularization_loss_against_reference() -> None:
    from zoo.train.losses import RegularizationLoss

    model = Tiny()
    emb = model.embedding.weight
    dense = [model.linear.weight, model.linear.bias]
    want = 0.1 * emb.abs().sum() + 0.2 * emb.pow(2).sum()
    want = want + sum(
        0.3 * p.abs().sum() + 0.4 * p.pow(2).sum() for p in dense
    )  # LayerNorm is never penalised
    got = RegularizationLoss(0.1, 0.2, 0.3, 0.4)(model)
    assert float(got) == pytest.approx(float(want), rel=1e-5)
    assert RegularizationLoss()(model) == 0.0
    got.backward()
    assert model.embedding.weight.grad is not None and model.norm.weight.grad is None


def test_pairwise_and_nce_losses_against_reference() -> None:
    from zoo.train.losses import BPRLoss, HingeLoss, InBatchNCELoss, NCELoss

    torch.manual_seed(0)
    pos, neg, neg1 = torch.randn(6), torch.randn(6, 4), torch.randn(6)
    bpr = np.mean(
        [-np.log(1 / (1 + np.exp(-(pos[i] - neg[i, j]).item()))) for i in range(6) for j in range(4)]
    )
    assert BPRLoss()(pos, neg).item() == pytest.approx(bpr, rel=1e-5)
    assert BPRLoss()(pos, neg1).item() == pytest.approx(-F.logsigmoid(pos - neg1).mean().item(), rel=1e-5)
    hinge = np.mean([max(0.0, 2 + neg[i].max().item() - pos[i].item()) for i in range(6)])
    assert HingeLoss()(pos, neg).item() == pytest.approx(hinge, rel=1e-5)
    weighted = np.mean(
        [
            max(0.0, 1 + neg[i].max().item() - pos[i].item())
            * np.log(1 + 100 * np.mean([(neg[i, j] - pos[i] + 1).item() > 0 for j in range(4)]))
            for i in range(6)
        ]
    )
    assert HingeLoss(margin=1, num_items=100)(pos, neg).item() == pytest.approx(weighted, rel=1e-5)
    logits, targets = torch.randn(5, 7), torch.tensor([0, 3, 6, 0, 2])
    rows = [-torch.log_softmax(logits[i] / 0.5, -1)[targets[i]].item() for i in range(5) if targets[i] != 0]
    assert NCELoss(temperature=0.5)(logits, targets).item() == pytest.approx(np.mean(rows), rel=1e-5)
    assert NCELoss(0.5, reduction="sum")(logits, targets).item() == pytest.approx(np.sum(rows), rel=1e-5)
    assert NCELoss(0.5, reduction="none")(logits, targets).shape == (3,)
    assert NCELoss(ignore_index=-1)(logits, targets).item() == pytest.approx(
        F.cross_entropy(logits, targets).item()
    )
    user, items = torch.randn(5, 4), torch.randn(7, 4)
    assert InBatchNCELoss()(user, items, targets).item() == pytest.approx(
        NCELoss(temperature=0.1)(user @ items.T, targets).item(), rel=1e-5
    )
    with pytest.raises(UsageError):
        NCELoss(reduction="avg")
