"""MatchTrainer: every mode and negative source trains, early stopping keeps the best weights,
seeded runs repeat exactly, evaluate returns AUC in every mode, checkpoints are safetensors."""

from __future__ import annotations

import math

import pytest
import torch

from zoo.data.match import MatchData
from zoo.data.protocol import get_protocol
from zoo.errors import UsageError
from zoo.train import losses as losses_module
from zoo.train.callbacks import Callback
from zoo.train.trainer import CHECKPOINT_FILE, MatchTrainer
from zoo_plugins.dssm.model import DSSM


@pytest.fixture(scope="module")
def data(tiny_interactions) -> MatchData:
    return MatchData.from_interactions(tiny_interactions, get_protocol("loo"))


def build(data: MatchData, seed: int = 0, temperature: float = 0.1) -> DSSM:
    torch.manual_seed(seed)
    model = DSSM.from_schema(data.schema, embed_dim=8, dims=[16, 8], temperature=temperature)
    model.set_item_table(data.item_table)
    return model


def trainer_for(data: MatchData, mode: int, negatives: str = "auto", **kwargs) -> MatchTrainer:
    kwargs.setdefault("optimizer_params", {"lr": 0.01})
    kwargs.setdefault("model_path", None)
    return MatchTrainer(
        build(data),
        mode=mode,
        negatives=negatives,
        n_epoch=1,
        item_counts=data.item_counts,
        seed=0,
        verbose=False,
        **kwargs,
    )


@pytest.mark.parametrize(
    "mode, negatives",
    [
        (0, "uniform"),
        (0, "popularity"),
        (0, "shared"),
        (1, "uniform"),
        (1, "popularity"),
        (1, "shared"),
        (2, "inbatch"),
        (2, "mixed"),
        (2, "uniform"),
        (2, "popularity"),
        (2, "shared"),
        (2, "full"),
    ],
)
def test_each_mode_lowers_the_loss_on_a_fixed_batch(data, mode, negatives):
    trainer = trainer_for(data, mode, negatives, num_negatives=16)
    batch = data.batch(data.train_positions[:128])
    first = None
    for _ in range(40):
        loss = trainer.compute_loss(batch)
        trainer.optimizer.zero_grad()
        loss.backward()
        trainer.optimizer.step()
        first = float(loss.detach()) if first is None else first
    assert math.isfinite(first)
    assert float(trainer.compute_loss(batch).detach()) < 0.8 * first


def test_hinge_loss_and_batch_negatives_are_used(data):
    trainer = trainer_for(data, 1, "batch", pairwise_loss="hinge")
    batch = data.batch(data.train_positions[:64])
    with pytest.raises(UsageError, match="neg_items"):
        trainer.compute_loss(batch)
    batch["neg_items"] = (batch["item_id"] % (data.schema.item_vocab - 2)) + 2
    assert float(trainer.compute_loss(batch).detach()) >= 0


def test_bpr_max_trains(data):
    trainer = trainer_for(data, 1, "shared", pairwise_loss="bpr-max", num_negatives=32)
    batch = data.batch(data.train_positions[:128])
    first = float(trainer.compute_loss(batch).detach())
    for _ in range(40):
        loss = trainer.compute_loss(batch)
        trainer.optimizer.zero_grad()
        loss.backward()
        trainer.optimizer.step()
    assert float(trainer.compute_loss(batch).detach()) < first


def test_full_softmax_equals_cross_entropy_over_the_catalogue(data):
    trainer = trainer_for(data, 2, "full")
    batch = data.batch(data.train_positions[:16])
    model = trainer.model
    with torch.no_grad():
        user = model.user_tower(batch)
        items = model.item_vectors(torch.arange(2, data.schema.item_vocab))
        expected = torch.nn.functional.cross_entropy(user @ items.T / model.temperature, batch["item_id"] - 2)
        assert float(trainer.compute_loss(batch)) == pytest.approx(float(expected), rel=1e-5)


def test_shared_negatives_are_shared_and_never_the_positive(data, monkeypatch):
    trainer = trainer_for(data, 2, "shared", num_negatives=8)
    batch = data.batch(data.train_positions[:32])
    seen = {}
    original = losses_module.softmax_loss

    def spy(pos_logits, neg_logits, neg_mask=None):
        seen["neg"], seen["mask"] = neg_logits, neg_mask
        return original(pos_logits, neg_logits, neg_mask)

    monkeypatch.setattr(losses_module, "softmax_loss", spy)
    trainer.compute_loss(batch)
    assert seen["neg"].shape == (32, 8)
    assert seen["mask"].shape == (32, 8)


def test_temperature_scales_the_logits(data):
    """Halving the temperature doubles every logit: BCE on labelled rows shows it exactly."""
    batch = data.batch(data.train_positions[:32])
    batch["label"] = (torch.arange(32) % 2).float()
    losses = []
    for tau in (1.0, 0.5):
        trainer = trainer_for(data, 0, "uniform")
        trainer.model.temperature = tau
        with torch.no_grad():
            losses.append(float(trainer.compute_loss(batch)))
        model = trainer.model
        score = model.score(model.user_tower(batch), model.item_tower(batch))
        expected = torch.nn.functional.binary_cross_entropy_with_logits(score / tau, batch["label"])
        assert losses[-1] == pytest.approx(float(expected.detach()), rel=1e-5)
    assert losses[0] != pytest.approx(losses[1])


class Recorder(Callback):
    def __init__(self) -> None:
        self.valid: list[float] = []

    def on_epoch_end(self, trainer, epoch, logs):
        self.valid.append(logs["valid"])


def test_early_stopping_keeps_and_saves_the_best_epoch(data, tmp_path):
    recorder = Recorder()
    # A large learning rate makes the validation metric move around between epochs.
    trainer = MatchTrainer(
        build(data),
        mode=2,
        optimizer_params={"lr": 0.05},
        n_epoch=5,
        earlystop_patience=2,
        model_path=tmp_path,
        item_counts=data.item_counts,
        seed=0,
        verbose=False,
        callbacks=[recorder],
        valid_metric="recall@10",
    )
    history = trainer.fit(data.train_batches(128, seed=0), data.ranking_task("valid"))
    best = max(recorder.valid)
    assert trainer.best_score == best
    assert trainer.best_epoch == recorder.valid.index(best) + 1
    assert len(history) <= 5
    # The weights kept are the best epoch's: re-evaluating gives the best score, not the last.
    assert trainer.evaluate_ranking(data.ranking_task("valid"), ks=(10,))["recall@10"] == pytest.approx(best)
    # ... and they are what was saved.
    assert (tmp_path / CHECKPOINT_FILE).is_file()
    reloaded = build(data, seed=123)
    MatchTrainer.load_checkpoint(reloaded, tmp_path / CHECKPOINT_FILE)
    for key, value in trainer.model.state_dict().items():
        torch.testing.assert_close(reloaded.state_dict()[key], value.cpu())


def test_patience_stops_training(data, monkeypatch):
    monkeypatch.setattr(MatchTrainer, "evaluate_ranking", lambda self, task, ks: {self.valid_metric: 0.5})
    recorder = Recorder()
    trainer = MatchTrainer(
        build(data),
        mode=2,
        n_epoch=10,
        earlystop_patience=2,
        model_path=None,
        item_counts=data.item_counts,
        verbose=False,
        callbacks=[recorder],
    )
    trainer.fit(data.train_batches(256), data.ranking_task("valid"))
    assert len(recorder.valid) == 3  # first epoch sets the best, then two epochs without improvement
    assert trainer.stop_reason == "patience"


def test_time_limit_stops_after_the_running_epoch_and_keeps_the_best(data, monkeypatch):
    clock = iter(float(t) for t in range(0, 10_000, 10))  # every perf_counter call advances 10 s
    monkeypatch.setattr("zoo.train.trainer.time.perf_counter", lambda: next(clock))
    trainer = trainer_for(data, 2, "inbatch", time_limit=25.0)
    trainer.n_epoch = 50
    history = trainer.fit(data.train_batches(256), data.ranking_task("valid"))
    assert 1 <= len(history) < 50 and trainer.stop_reason == "time_limit"
    assert trainer.best_epoch is not None and trainer.best_epoch <= len(history)
    unlimited = trainer_for(data, 2, "inbatch")
    unlimited.n_epoch = 2
    unlimited.fit(data.train_batches(256), data.ranking_task("valid"))
    assert unlimited.stop_reason == "epochs"
    with pytest.raises(UsageError, match="time_limit"):
        trainer_for(data, 2, "inbatch", time_limit=0)


def test_same_seed_same_result_on_cpu(data):
    def train_once() -> dict[str, torch.Tensor]:
        trainer = trainer_for(data, 2, "mixed", num_negatives=8)
        trainer.n_epoch = 2
        trainer.fit(data.train_batches(128, seed=3), data.ranking_task("valid"))
        return {k: v.clone() for k, v in trainer.model.state_dict().items()}

    first, second = train_once(), train_once()
    for key in first:
        torch.testing.assert_close(first[key], second[key], rtol=0, atol=0)


@pytest.mark.parametrize("mode", [0, 1, 2])
def test_evaluate_returns_auc_in_every_mode(data, mode):
    trainer = trainer_for(data, mode)
    trainer.n_epoch = 2
    trainer.fit(data.train_batches(64, seed=0))
    test = data.batch(data.test_positions)
    labelled = dict(test)
    labelled["label"] = torch.ones(test["item_id"].shape[0])
    auc_positive_only = trainer.evaluate(trainer.model, [labelled])
    mixed = {k: torch.cat([v, v]) for k, v in test.items()}
    mixed["item_id"] = torch.cat([test["item_id"], (test["item_id"] * 7) % (data.schema.item_vocab - 2) + 2])
    mixed["label"] = torch.cat([torch.ones(test["item_id"].shape[0]), torch.zeros(test["item_id"].shape[0])])
    auc_labelled = trainer.evaluate(trainer.model, [mixed])
    negatives = torch.randint(2, data.schema.item_vocab, (test["item_id"].shape[0], 5))
    with_negatives = dict(test, neg_items=negatives)
    auc_negatives = trainer.evaluate(trainer.model, [with_negatives])
    for auc in (auc_positive_only, auc_labelled, auc_negatives):
        assert 0.5 < auc <= 1.0


def test_inference_embedding_loads_the_checkpoint(data, tmp_path):
    trainer = trainer_for(data, 2, model_path=tmp_path)
    trainer.fit(data.train_batches(128, seed=0))
    users = data.batch(data.test_positions)
    expected = trainer.inference_embedding(trainer.model, "user", [users])
    with torch.no_grad():
        for p in trainer.model.parameters():
            p.add_(0.5)
    assert not torch.allclose(trainer.inference_embedding(trainer.model, "user", [users]), expected)
    restored = trainer.inference_embedding(trainer.model, "user", [users], model_path=tmp_path)
    torch.testing.assert_close(restored, expected)
    items = trainer.inference_embedding(trainer.model, "item", [data.item_features(data.catalogue)])
    assert items.shape == (data.catalogue.shape[0], 8)


def test_argument_errors(data):
    model = build(data)
    with pytest.raises(UsageError, match="mode"):
        MatchTrainer(model, mode=3, verbose=False)
    with pytest.raises(UsageError, match="list-wise"):
        MatchTrainer(model, mode=0, negatives="inbatch", verbose=False)
    with pytest.raises(UsageError, match="valid_metric"):
        MatchTrainer(model, mode=2, valid_metric="auc", verbose=False)
    with pytest.raises(UsageError, match="regularization_params"):
        MatchTrainer(model, mode=2, regularization_params={"l2": 1.0}, verbose=False)
    with pytest.raises(UsageError, match="device"):
        MatchTrainer(model, mode=2, device="tpu", verbose=False)


def test_regularization_adds_the_l2_penalties(data):
    trainer = trainer_for(data, 2, regularization_params={"embedding_l2": 1e-3, "dense_l2": 1e-2})
    embeddings, dense = trainer.model.regularization_groups()
    with torch.no_grad():
        expected = 1e-3 * sum(float(p.pow(2).sum()) for p in embeddings)
        expected += 1e-2 * sum(float(p.pow(2).sum()) for p in dense)
        assert float(trainer._regularization()) == pytest.approx(expected, rel=1e-5)
    assert embeddings and dense


def test_cosine_schedule_decays_the_rate_each_epoch(data):
    trainer = MatchTrainer(
        build(data),
        mode=2,
        optimizer_params={"lr": 0.01},
        n_epoch=4,
        model_path=None,
        item_counts=data.item_counts,
        seed=0,
        verbose=False,
        lr_schedule="cosine",
    )
    history = trainer.fit(data.train_batches(256), data.ranking_task("valid"))
    expected = [0.01 * (1 + math.cos(math.pi * epoch / 4)) / 2 for epoch in range(4)]
    assert [h["lr"] for h in history] == pytest.approx(expected)


def test_plateau_schedule_cuts_the_rate_after_epochs_without_gain(data, monkeypatch):
    monkeypatch.setattr(MatchTrainer, "evaluate_ranking", lambda self, task, ks: {self.valid_metric: 0.5})
    trainer = trainer_for(
        data, 2, "inbatch", lr_schedule="plateau", lr_factor=0.5, lr_patience=2, valid_metric="recall@10"
    )
    trainer.n_epoch, trainer.earlystop_patience = 7, 100
    history = trainer.fit(data.train_batches(256), data.ranking_task("valid"))
    # epoch 1 sets the best; epochs 2-3 are without gain -> cut; 4-5 -> cut; 6-7 -> cut after the last
    assert [h["lr"] / 0.01 for h in history] == pytest.approx([1, 1, 1, 0.5, 0.5, 0.25, 0.25])
    assert trainer.optimizer.param_groups[0]["lr"] == pytest.approx(0.01 / 8)


def test_plateau_schedule_keeps_the_rate_while_the_metric_improves(data, monkeypatch):
    scores = iter([0.1, 0.2, 0.2, 0.3, 0.25, 0.24, 0.4])
    monkeypatch.setattr(
        MatchTrainer, "evaluate_ranking", lambda self, task, ks: {self.valid_metric: next(scores)}
    )
    trainer = trainer_for(data, 2, "inbatch", lr_schedule="plateau", lr_patience=2, valid_metric="recall@10")
    trainer.n_epoch = 7
    history = trainer.fit(data.train_batches(256), data.ranking_task("valid"))
    # one stale epoch (3) is forgiven; two in a row (5, 6) halve the rate for epoch 7
    assert [h["lr"] / 0.01 for h in history] == pytest.approx([1, 1, 1, 1, 1, 1, 0.5])


def test_schedule_errors(data):
    with pytest.raises(UsageError, match="lr_schedule=step: must be one of constant, cosine, plateau"):
        trainer_for(data, 2, lr_schedule="step")  # the message names the key, the value and the choices
    with pytest.raises(UsageError, match="not both"):
        trainer_for(
            data,
            2,
            lr_schedule="cosine",
            scheduler_fn=torch.optim.lr_scheduler.StepLR,
            scheduler_params={"step_size": 1},
        )
    with pytest.raises(UsageError, match="lr_factor"):
        trainer_for(data, 2, lr_schedule="plateau", lr_factor=1.5)
    trainer = trainer_for(data, 2, lr_schedule="plateau")
    with pytest.raises(UsageError, match="validation data"):
        trainer.fit(data.train_batches(256))


class WeightRecorder(Callback):
    def __init__(self) -> None:
        self.snapshots: list[list[torch.Tensor]] = []

    def on_batch_end(self, trainer, step, loss):
        self.snapshots.append([p.detach().clone() for p in trainer.model.parameters()])


def test_ema_returns_the_moving_average_of_the_weights(data):
    recorder = WeightRecorder()
    trainer = trainer_for(data, 2, "inbatch", ema_decay=0.9, callbacks=[recorder])
    initial = [p.detach().clone() for p in trainer.model.parameters()]
    trainer.n_epoch = 2
    trainer.fit(data.train_batches(64, seed=0))
    assert len(recorder.snapshots) > 10  # enough steps for the decay to reach 0.9
    # slow reference: one weight tensor at a time, step by step
    for index, start in enumerate(initial):
        average = start.clone()
        for t, weights in enumerate(recorder.snapshots):
            decay = min(0.9, (1 + t) / (10 + t))
            average = decay * average + (1 - decay) * weights[index]
        torch.testing.assert_close(list(trainer.model.parameters())[index], average, rtol=1e-5, atol=1e-6)
        assert not torch.allclose(average, recorder.snapshots[-1][index])  # not just the last weights


def test_ema_with_validation_keeps_the_best_averaged_weights(data):
    recorder = Recorder()
    trainer = trainer_for(data, 2, "inbatch", ema_decay=0.95, callbacks=[recorder], valid_metric="recall@10")
    trainer.n_epoch = 3
    trainer.fit(data.train_batches(128, seed=0), data.ranking_task("valid"))
    assert trainer.best_score == max(recorder.valid)
    score = trainer.evaluate_ranking(data.ranking_task("valid"), ks=(10,))["recall@10"]
    assert score == pytest.approx(trainer.best_score)
    with pytest.raises(UsageError, match="ema_decay"):
        trainer_for(data, 2, ema_decay=1.0)
    assert trainer_for(data, 2, ema_decay=0).ema_decay is None  # how a preset's average is switched off
