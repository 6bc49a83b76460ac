"""TrainerConfig: defaults, coercion, one-line errors naming the key and the accepted range, unknown
keys with did-you-mean, layering of presets, and no torch import."""

from __future__ import annotations

import dataclasses
import math
import subprocess
import sys

import pytest

from zoo.errors import UsageError
from zoo.train.config import TrainerConfig


def test_defaults_are_the_documented_ones():
    config = TrainerConfig()
    assert config.to_dict() == {
        "mode": 0,
        "epochs": 10,
        "batch_size": 512,
        "lr": 1e-3,
        "weight_decay": 0.0,
        "embedding_l2": 0.0,
        "dense_l2": 0.0,
        "patience": 10,
        "valid_metric": "recall@50",
        "negatives": "auto",
        "num_negatives": None,
        "hard_negatives": False,
        "pairwise_loss": "bpr",
        "margin": 1.0,
        "bpr_max_reg": 1.0,
        "popularity_alpha": 0.75,
        "logq_correction": True,
        "grad_clip_norm": None,
        "time_limit": None,
        "lr_schedule": "constant",
        "lr_factor": 0.5,
        "lr_patience": 2,
        "ema_decay": None,
        "precision": "fp32",
        "compile": False,
        "seed": None,
    }
    assert TrainerConfig.keys() == frozenset(config.to_dict())
    described = TrainerConfig.describe()
    assert set(described) == TrainerConfig.keys()
    assert all(entry["doc"] for entry in described.values())


def test_from_dict_coerces_strings_and_numbers():
    config = TrainerConfig.from_dict(
        {
            "mode": "2",
            "epochs": 3.0,
            "lr": 1,
            "logq_correction": "false",
            "grad_clip_norm": "1.5",
            "ema_decay": "none",
            "valid_metric": "ndcg@010",
            "seed": "7",
        }
    )
    assert (config.mode, config.epochs, config.lr, config.logq_correction) == (2, 3, 1.0, False)
    assert type(config.epochs) is int and type(config.lr) is float
    read_back = (config.grad_clip_norm, config.ema_decay, config.valid_metric, config.seed)
    assert read_back == (1.5, None, "ndcg@10", 7)


@pytest.mark.parametrize(
    "key, value, message",
    [
        ("lr", math.nan, "lr=nan: must be a finite number > 0"),
        ("lr", 0, "lr=0: must be a finite number > 0"),
        ("lr", "fast", "lr=fast: must be a finite number > 0"),
        ("lr", "nan", "lr=nan: must be a finite number > 0"),  # as --param lr=nan passes it
        ("lr", " ", "lr=' ': must be a finite number > 0"),
        ("batch_size", 0, "batch_size=0: must be an integer >= 1"),
        ("epochs", 2.5, "epochs=2.5: must be an integer >= 1"),
        ("epochs", True, "epochs=True: must be an integer >= 1"),
        ("mode", 3, "mode=3: must be 0 (point-wise), 1 (pair-wise) or 2 (list-wise)"),
        ("weight_decay", math.inf, "weight_decay=inf: must be a finite number >= 0"),
        ("popularity_alpha", -1, "popularity_alpha=-1: must be a finite number >= 0"),
        ("num_negatives", 0, "num_negatives=0: must be an integer >= 1, or None (the mode's default)"),
        ("grad_clip_norm", 0, "grad_clip_norm=0: must be a finite number > 0, or None (off)"),
        ("grad_clip_norm", math.inf, "grad_clip_norm=inf: must be a finite number > 0, or None (off)"),
        ("time_limit", -1, "time_limit=-1: must be a finite number > 0, or None (no limit)"),
        ("lr_factor", 1, "lr_factor=1: must be a number in (0, 1)"),
        ("ema_decay", 1.0, "ema_decay=1.0: must be a number in [0, 1), or None (off)"),
        ("logq_correction", "maybe", "logq_correction=maybe: must be true or false"),
        ("valid_metric", "auc", "valid_metric=auc: must look like recall@50"),
        (
            "negatives",
            "inbach",
            "negatives=inbach: must be one of auto, batch, uniform, popularity, inbatch, inbatch-sampled,"
            " mixed, shared, full;"
            " did you mean 'inbatch'?",
        ),
        ("pairwise_loss", "bpr_max", "did you mean 'bpr-max'"),
        ("lr_schedule", "step", "lr_schedule=step: must be one of constant, cosine, plateau"),
        ("seed", "x", "seed=x: must be an integer"),
    ],
)
def test_bad_values_name_the_key_and_the_range(key, value, message):
    """``message`` is a literal part of the one-line error."""
    with pytest.raises(UsageError) as info:
        TrainerConfig.from_dict({key: value})
    assert message in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(UsageError) as again:
        TrainerConfig(**{key: value})  # the constructor validates the same way
    assert str(again.value) == str(info.value)


def test_unknown_keys_are_refused_with_did_you_mean():
    with pytest.raises(UsageError, match="'grad_clip' is not a trainer setting; did you mean 'grad_clip_n"):
        TrainerConfig.from_dict({"grad_clip": 1.0})
    with pytest.raises(UsageError, match="'embed_dim' is not a trainer setting"):
        TrainerConfig.from_dict({"embed_dim": 8})
    with pytest.raises(UsageError, match="'window_stride' is not a trainer setting"):
        TrainerConfig.layered({"mode": 2}, {"window_stride": 3})


def test_listwise_negatives_need_mode_2():
    with pytest.raises(UsageError, match="negatives=full needs list-wise training"):
        TrainerConfig(mode=0, negatives="full")
    assert TrainerConfig(mode=2, negatives="full").resolved_negatives == "full"
    assert [TrainerConfig(mode=m).resolved_negatives for m in (0, 1, 2)] == ["uniform", "uniform", "inbatch"]
    assert [TrainerConfig(mode=m).resolved_num_negatives for m in (0, 1, 2)] == [4, 1, 50]
    assert TrainerConfig(mode=1, num_negatives=8).resolved_num_negatives == 8


def test_layered_overrides_and_resets_the_presets_negatives_with_its_mode():
    preset = {"mode": 2, "negatives": "full", "epochs": 50, "lr": 0.003, "ema_decay": 0.999}
    config = TrainerConfig.layered(preset, {"epochs": "2"})
    assert (config.mode, config.negatives, config.epochs, config.lr) == (2, "full", 2, 0.003)
    switched = TrainerConfig.layered(preset, {"mode": 1})
    assert (switched.mode, switched.negatives, switched.resolved_negatives) == (1, "auto", "uniform")
    both = TrainerConfig.layered(preset, {"mode": 1, "negatives": "shared"})
    assert both.negatives == "shared"
    assert TrainerConfig.layered() == TrainerConfig()


def test_replace_validates_and_the_config_is_frozen():
    config = TrainerConfig(mode=2, lr=0.01)
    assert config.replace(grad_clip_norm=1).grad_clip_norm == 1.0
    assert config.replace(epochs=3).to_dict() == {**config.to_dict(), "epochs": 3}
    with pytest.raises(UsageError, match="epochs=0"):
        config.replace(epochs=0)
    with pytest.raises(UsageError, match="not a trainer setting"):
        config.replace(epoch=3)
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.lr = 0.1  # type: ignore[misc]
    assert TrainerConfig.from_dict(config.to_dict()) == config


def test_importing_the_config_does_not_import_torch():
    code = "import sys, zoo.train, zoo.train.config; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)
