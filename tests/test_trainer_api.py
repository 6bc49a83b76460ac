"""MatchTrainer's two entrances (the seed constructor and from_config) read one TrainerConfig; fit
seeds its own generators and leaves the caller's random state alone; grad_clip_norm clips."""

from __future__ import annotations

import pytest
import torch

from zoo.data.match import MatchData
from zoo.data.protocol import get_protocol
from zoo.errors import UsageError
from zoo.train.config import TrainerConfig
from zoo.train.trainer import MatchTrainer
from zoo_plugins.dssm.model import DSSM


@pytest.fixture(scope="module")
def data(tiny_interactions) -> MatchData:
    return MatchData.from_interactions(tiny_interactions, get_protocol("loo"))


def build(data: MatchData, dropout: float = 0.0) -> DSSM:
    torch.manual_seed(0)
    model = DSSM.from_schema(data.schema, embed_dim=8, dims=[16, 8], temperature=0.1, dropout=dropout)
    model.set_item_table(data.item_table)
    return model


def weights(trainer: MatchTrainer) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in trainer.model.state_dict().items()}


def test_seed_constructor_maps_into_one_config(data):
    trainer = MatchTrainer(
        build(data),
        mode=2,
        optimizer_params={"lr": 0.01, "weight_decay": 1e-4, "betas": (0.8, 0.99)},
        regularization_params={"embedding_l2": 1e-5},
        n_epoch=3,
        earlystop_patience=2,
        model_path=None,
        verbose=False,
        negatives="mixed",
        num_negatives=8,
        grad_clip_norm=2.0,
        seed=3,
    )
    config = trainer.config
    assert (config.mode, config.lr, config.weight_decay, config.embedding_l2) == (2, 0.01, 1e-4, 1e-5)
    assert (config.epochs, config.patience, config.negatives, config.grad_clip_norm) == (3, 2, "mixed", 2.0)
    group = trainer.optimizer.param_groups[0]
    assert (group["lr"], group["weight_decay"], group["betas"]) == (0.01, 1e-4, (0.8, 0.99))
    read_back = (trainer.n_epoch, trainer.earlystop_patience, trainer.negatives, trainer.num_negatives)
    assert read_back == (3, 2, "mixed", 8)
    trainer.n_epoch = 5  # the attributes write through the config, validated
    assert trainer.config.epochs == 5
    with pytest.raises(UsageError, match="epochs=0"):
        trainer.n_epoch = 0
    with pytest.raises(AttributeError, match="mode is fixed"):
        trainer.mode = 1


def test_seed_constructor_argument_errors(data):
    model = build(data)
    with pytest.raises(UsageError, match="'negative' is not a trainer setting; did you mean 'negatives'"):
        MatchTrainer(model, mode=2, verbose=False, negative="uniform")
    with pytest.raises(UsageError, match="n_epoch and epochs= both set epochs"):
        MatchTrainer(model, n_epoch=3, epochs=4, verbose=False)
    with pytest.raises(UsageError, match="lr=-1: must be a finite number > 0"):
        MatchTrainer(model, optimizer_params={"lr": -1}, verbose=False)
    assert MatchTrainer(model, grad_clip=1.5, verbose=False).grad_clip_norm == 1.5  # the old name
    assert MatchTrainer(model, grad_clip=0, verbose=False).grad_clip_norm is None  # where 0 meant off


def test_from_config_trains_exactly_like_the_seed_constructor(data):
    settings = {
        "mode": 2,
        "negatives": "mixed",
        "num_negatives": 8,
        "lr": 0.01,
        "epochs": 2,
        "seed": 4,
        "dense_l2": 1e-4,
        "ema_decay": 0.9,
        "lr_schedule": "cosine",
        "valid_metric": "recall@10",
    }
    config = TrainerConfig.from_dict(settings)
    by_config = MatchTrainer.from_config(build(data), config, device="cpu", item_counts=data.item_counts)
    assert by_config.config is config and by_config.model_path is None
    seed_style = MatchTrainer(
        build(data),
        mode=2,
        optimizer_params={"lr": 0.01},
        regularization_params={"dense_l2": 1e-4},
        n_epoch=2,
        model_path=None,
        item_counts=data.item_counts,
        verbose=False,
        negatives="mixed",
        num_negatives=8,
        seed=4,
        ema_decay=0.9,
        lr_schedule="cosine",
        valid_metric="recall@10",
    )
    valid = data.ranking_task("valid")
    histories = [t.fit(data.train_batches(128, seed=0), valid) for t in (by_config, seed_style)]
    assert [(h["loss"], h["valid"], h["lr"]) for h in histories[0]] == [
        (h["loss"], h["valid"], h["lr"]) for h in histories[1]
    ]
    for key, value in weights(by_config).items():
        assert torch.equal(value, weights(seed_style)[key])
    mapping = MatchTrainer.from_config(build(data), settings, device="cpu")  # a mapping of settings works too
    assert mapping.config == config


def test_fit_leaves_the_global_random_state_alone_and_the_seed_decides(data):
    """Dropout draws from the seeded, scoped generator: the caller's state neither leaks in nor changes."""

    def train(seed: int, global_seed: int) -> dict[str, torch.Tensor]:
        config = TrainerConfig(mode=2, negatives="inbatch", epochs=2, lr=0.01, seed=seed)
        trainer = MatchTrainer.from_config(
            build(data, dropout=0.3), config, device="cpu", item_counts=data.item_counts
        )
        torch.manual_seed(global_seed)
        before = torch.get_rng_state()
        trainer.fit(data.train_batches(64, seed=0), data.ranking_task("valid"))
        assert torch.equal(torch.get_rng_state(), before), "fit changed the global random state"
        return weights(trainer)

    first, again, other_global, other_seed = train(5, 1), train(5, 1), train(5, 2), train(6, 1)
    for key in first:
        assert torch.equal(first[key], again[key]) and torch.equal(first[key], other_global[key])
    assert any(not torch.equal(first[key], other_seed[key]) for key in first)


def test_fit_restores_the_global_state_even_when_training_fails(data):
    trainer = MatchTrainer.from_config(build(data), TrainerConfig(mode=2, seed=1), device="cpu")
    before = torch.get_rng_state()
    with pytest.raises(UsageError, match="no batches"):
        trainer.fit([])
    assert torch.equal(torch.get_rng_state(), before)


def _step_grad_norms(trainer: MatchTrainer, data: MatchData) -> list[float]:
    """The global gradient norm the optimiser sees at each step of one epoch."""
    norms: list[float] = []

    def record(optimizer, args, kwargs):
        grads = [p.grad for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
        per_tensor = torch.stack([torch.linalg.vector_norm(g) for g in grads])
        norms.append(float(torch.linalg.vector_norm(per_tensor)))

    trainer.optimizer.register_step_pre_hook(record)
    trainer.train_one_epoch(data.train_batches(64, seed=0))
    return norms


@pytest.mark.parametrize("how", ["keyword", "old-name", "config"])
def test_grad_clip_norm_bounds_the_gradient_the_optimiser_sees(data, how):
    limit = 0.05
    free = MatchTrainer.from_config(build(data), TrainerConfig(mode=2, lr=0.01, seed=0), device="cpu")
    unclipped = _step_grad_norms(free, data)
    assert max(unclipped) > 2 * limit  # the limit bites, so the test below can fail
    if how == "config":
        trainer = MatchTrainer.from_config(
            build(data), TrainerConfig(mode=2, lr=0.01, seed=0, grad_clip_norm=limit), device="cpu"
        )
    else:
        key = "grad_clip_norm" if how == "keyword" else "grad_clip"
        trainer = MatchTrainer(
            build(data),
            mode=2,
            optimizer_params={"lr": 0.01},
            seed=0,
            model_path=None,
            verbose=False,
            **{key: limit},
        )
    clipped = _step_grad_norms(trainer, data)
    assert len(clipped) == len(unclipped)
    assert max(clipped) <= limit * (1 + 1e-4)
    assert clipped[0] == pytest.approx(limit, rel=1e-4)  # the first step's gradient is the same, scaled down
