"""MovieLens-1M: data preparation time, DSSM training throughput (samples/s), full-ranking evaluation."""

from __future__ import annotations

import time

import pytest
import torch

from zoo.data.match import MatchData
from zoo.data.protocol import get_protocol


@pytest.fixture(scope="module")
def ml1m(ml1m_dir):
    from zoo_plugins.movielens.loader import load_ml1m

    return MatchData.from_interactions(load_ml1m(ml1m_dir), get_protocol("deepmatch"))


def test_prepare_movielens_1m(benchmark, ml1m_dir):
    """Read ratings/users/movies, filter, split, encode and index histories (target: < 15 s)."""
    from zoo_plugins.movielens.loader import load_ml1m

    data = benchmark.pedantic(
        lambda: MatchData.from_interactions(load_ml1m(ml1m_dir), get_protocol("deepmatch")),
        rounds=3,
        iterations=1,
    )
    benchmark.extra_info["train_samples"] = int(data.train_positions.shape[0])


def _dssm(data, device):
    from zoo.train.trainer import MatchTrainer
    from zoo_plugins.dssm.model import DSSM

    torch.manual_seed(0)
    model = DSSM.from_schema(data.schema, embed_dim=32, dims=[128, 64], temperature=0.05)
    model.set_item_table(data.item_table)
    return MatchTrainer(
        model,
        mode=2,
        negatives="inbatch",
        model_path=None,
        item_counts=data.item_counts,
        verbose=False,
        device=device,
        seed=0,
    )


@pytest.mark.parametrize("batch_size", [512, 2048])
def test_dssm_training_throughput(benchmark, ml1m, device, batch_size):
    """Optimisation steps (batch building included) over shuffled ML-1M samples; reports samples/s."""
    trainer = _dssm(ml1m, device)
    batches = iter(ml1m.train_batches(batch_size, seed=0))
    steps = 50

    def train_steps():
        for _ in range(steps):
            batch = {k: v.to(trainer.device) for k, v in next(batches).items()}
            loss = trainer.compute_loss(batch)
            trainer.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            trainer.optimizer.step()
        if trainer.device.type == "cuda":
            torch.cuda.synchronize()

    train_steps()  # warm-up
    benchmark.pedantic(train_steps, rounds=3, iterations=1)
    benchmark.extra_info["samples_per_s"] = steps * batch_size / benchmark.stats.stats.mean
    benchmark.extra_info["batch_size"] = batch_size


def test_full_ranking_evaluation(benchmark, ml1m, device):
    """Exact top-50 over the whole catalogue for every user (users/s), the evaluator's hot path."""
    from zoo.evaluate import topk_items

    generator = torch.Generator().manual_seed(0)
    users = torch.nn.functional.normalize(torch.randn(6040, 64, generator=generator), dim=1).to(device)
    items = torch.nn.functional.normalize(torch.randn(3704, 64, generator=generator), dim=1).to(device)
    benchmark(lambda: topk_items(users, items, 50, device=device))
    benchmark.extra_info["users_per_s"] = 6040 / benchmark.stats.stats.mean


def test_one_epoch_wall_clock(benchmark, ml1m, device):
    """A whole training epoch at the preset batch size, as `zoo run` trains it (one round)."""
    trainer = _dssm(ml1m, device)
    batches = ml1m.train_batches(512, seed=0)
    started = time.perf_counter()
    benchmark.pedantic(lambda: trainer.train_one_epoch(batches), rounds=1, iterations=1)
    benchmark.extra_info["samples_per_s"] = int(ml1m.train_positions.shape[0]) / (
        time.perf_counter() - started
    )
