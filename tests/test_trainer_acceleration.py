"""The trainer's ``precision`` and ``compile`` settings: bf16 autocast computes the same loss as fp32 up to
bfloat16 rounding and keeps fp32 weights; fp16 is refused off CUDA with a one-line error; a compiled
loss equals the eager one and trains to the same weights."""

from __future__ import annotations

import shutil

import pytest
import torch

from zoo.data.match import MatchData
from zoo.data.protocol import get_protocol
from zoo.errors import UsageError
from zoo.train.acceleration import StepRunner
from zoo.train.trainer import MatchTrainer
from zoo_plugins.dssm.model import DSSM
from zoo_plugins.gru4rec.model import GRU4Rec


@pytest.fixture(scope="module")
def data(tiny_interactions) -> MatchData:
    return MatchData.from_interactions(tiny_interactions, get_protocol("loo"))


def trainer_for(data: MatchData, model_cls=DSSM, **settings) -> MatchTrainer:
    torch.manual_seed(0)
    extra = {"embed_dim": 8, "dims": [16, 8]} if model_cls is DSSM else {"embed_dim": 8}
    model = model_cls.from_schema(data.schema, temperature=0.1, **extra)
    model.set_item_table(data.item_table)
    settings.setdefault("optimizer_params", {"lr": 0.01})
    return MatchTrainer(
        model,
        mode=2,
        n_epoch=1,
        model_path=None,
        item_counts=data.item_counts,
        seed=0,
        verbose=False,
        **settings,
    )


def first_batch(data: MatchData, model) -> dict[str, torch.Tensor]:
    return next(iter(data.training_batches(model, 64, seed=0)))


def test_settings_are_validated_with_one_line_errors(data):
    with pytest.raises(UsageError, match=r"precision=fp16 needs a CUDA device .*use precision=bf16"):
        trainer_for(data, precision="fp16")
    with pytest.raises(UsageError, match=r"precision.*fp32.*bf16.*fp16"):
        trainer_for(data, precision="fp8")
    assert trainer_for(data, compile="true").config.compile is True


@pytest.mark.parametrize("model_cls", [DSSM, GRU4Rec])
def test_bf16_loss_matches_fp32_up_to_bfloat16_rounding(data, model_cls):
    fp32 = trainer_for(data, model_cls, negatives="full")
    bf16 = trainer_for(data, model_cls, negatives="full", precision="bf16")
    bf16.model.load_state_dict(fp32.model.state_dict())
    batch = first_batch(data, fp32.model)
    for trainer in (fp32, bf16):
        trainer.model.train(False)  # no dropout: the same function in both precisions
    reference = fp32.steps.loss(batch)
    reduced = bf16.steps.loss(batch)
    assert reduced.dtype == torch.float32
    assert not torch.equal(reduced, reference)  # bf16 did run: its rounding shows
    assert reduced.item() == pytest.approx(reference.item(), rel=2e-2)


def test_bf16_training_keeps_fp32_weights_and_lowers_the_loss(data):
    trainer = trainer_for(data, precision="bf16", negatives="full")
    batches = list(data.training_batches(trainer.model, 64, seed=0))
    first = trainer.train_one_epoch(batches)
    for _ in range(3):
        last = trainer.train_one_epoch(batches)
    assert last < first
    assert all(p.dtype == torch.float32 for p in trainer.model.parameters())
    assert all(p.grad is None or p.grad.dtype == torch.float32 for p in trainer.model.parameters())


def test_runner_rebuilds_when_the_setting_changes(data):
    trainer = trainer_for(data)
    runner = trainer.steps
    assert trainer.steps is runner and runner.precision == "fp32" and not runner.compiled
    trainer.config = trainer.config.replace(precision="bf16")
    assert trainer.steps is not runner and trainer.steps.precision == "bf16"


def test_fp16_scaler_skips_nothing_on_finite_gradients():
    """The fp16 path's step logic (scale, unscale for clipping, step) on a CPU stand-in scaler."""
    weight = torch.nn.Parameter(torch.tensor([1.0, -2.0]))
    optimizer = torch.optim.SGD([weight], lr=0.1)
    runner = StepRunner(
        lambda batch: (weight**2).sum(), precision="fp32", compile=False, device=torch.device("cpu")
    )
    runner.scaler = torch.amp.GradScaler("cpu", init_scale=1024.0)
    loss = runner.loss({})
    runner.backward_and_step(loss, optimizer, lambda: [weight], grad_clip_norm=100.0)
    # d/dw sum(w^2) = 2w, unscaled before the step: w - 0.1 * 2w = 0.8 w
    assert torch.allclose(weight.detach(), torch.tensor([0.8, -1.6]))


@pytest.mark.skipif(
    shutil.which("g++") is None and shutil.which("cc") is None,
    reason="torch.compile on CPU needs a C++ compiler",
)
def test_compiled_loss_equals_eager_and_trains_to_the_same_weights(data):
    eager = trainer_for(data, negatives="inbatch")
    compiled = trainer_for(data, negatives="inbatch", compile=True)
    compiled.model.load_state_dict(eager.model.state_dict())
    batches = list(data.training_batches(eager.model, 64, seed=0))[:4]
    for trainer in (eager, compiled):
        trainer.model.train(False)
    assert compiled.steps.loss(batches[0]).item() == pytest.approx(
        eager.steps.loss(batches[0]).item(), rel=1e-5
    )
    for trainer in (eager, compiled):
        trainer.model.train(True)
        trainer.generator.manual_seed(0)
        torch.manual_seed(0)
        trainer.train_one_epoch(batches)
    for name, value in eager.model.state_dict().items():
        assert torch.allclose(compiled.model.state_dict()[name], value, atol=1e-4), name


def test_adam_is_fused_and_updates_like_the_default_implementation(data):
    trainer = trainer_for(data)
    assert trainer.optimizer.param_groups[0]["fused"] is True
    reference = trainer_for(
        data, optimizer_fn=torch.optim.Adam, optimizer_params={"lr": 0.01, "foreach": False}
    )
    assert not reference.optimizer.param_groups[0].get("fused")
    batches = list(data.training_batches(trainer.model, 64, seed=0))[:5]
    for each in (trainer, reference):
        each.model.train(False)
        each.train_one_epoch(batches)
    for name, value in reference.model.state_dict().items():
        assert torch.allclose(trainer.model.state_dict()[name], value, atol=1e-5), name
