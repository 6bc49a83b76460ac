"""What a run is asked to do (:class:`RunConfig`) and the settings it resolves to (:class:`Settings`).

A model's preset (its spec's ``model_defaults``, ``trainer_defaults`` and ``data_defaults``) is
overridden by the run's ``params``; each key goes to its one owner (``ModelSpec.split``):
:class:`~zoo.train.config.TrainerConfig` for training settings, the training data for
``window_stride``, the model constructor for the rest. Nothing here restates a default.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from zoo.errors import UsageError


@dataclass
class RunConfig:
    """Everything one run needs. ``params`` override the model's preset (model, trainer and data keys);
    ``retriever_params`` and ``dataset_options`` go to the retriever and the dataset."""

    model: str
    retriever: str = "exact"
    dataset: str = "synthetic"
    data_path: str | None = None
    protocol: str | None = None
    mask_seen: bool | None = None
    device: str = "auto"
    epochs: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    seed: int = 0
    params: dict[str, Any] = field(default_factory=dict)
    retriever_params: dict[str, Any] = field(default_factory=dict)
    dataset_options: dict[str, Any] = field(default_factory=dict)
    protocol_overrides: dict[str, Any] = field(default_factory=dict)
    ks: tuple[int, ...] = (10, 50)
    metric: str = "ip"
    out: str | None = None
    save: bool = True
    force: bool = False
    #: continue an interrupted run with the same ``out`` from its last epoch checkpoint
    resume: bool = False
    #: folder for prepared data (``zoo.data.prepared``): the encoded log is written there once and later
    #: runs with the same input and protocol read it memory-mapped; None prepares in memory every run
    prepared_dir: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def resolved_ks(self) -> tuple[int, ...]:
        """The cut-offs, sorted and unique; UsageError unless they are positive integers."""
        ks = tuple(self.ks)
        if not ks or any(isinstance(k, bool) or not isinstance(k, int) or k < 1 for k in ks):
            raise UsageError(f"k values must be positive integers, got {ks}")
        return tuple(sorted(set(ks)))

    def run_dir(self) -> Path:
        """``out``, or ``runs/<time>-<model>-<retriever>-<dataset>``."""
        if self.out:
            return Path(self.out)
        stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        return Path("runs") / f"{stamp}-{self.model}-{self.retriever}-{self.dataset}"


@dataclass(frozen=True)
class Settings:
    """A run's resolved settings: model constructor arguments, the trainer's configuration and the
    training-data settings."""

    model: dict[str, Any]
    trainer: Any  # zoo.train.config.TrainerConfig
    data: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {"model": dict(self.model), "trainer": self.trainer.to_dict(), "data": dict(self.data)}


def resolve_settings(spec: Any, config: RunConfig) -> Settings:
    """The preset of ``spec`` overridden by ``config`` (``params``, then ``epochs``/``batch_size``/``lr``).

    The validation metric follows the largest reported K unless the preset or the params name one.
    Raises UsageError for a bad value or a training mode the model does not support.
    """
    from zoo.train.config import TrainerConfig

    params = dict(config.params)
    for key, value in (("epochs", config.epochs), ("batch_size", config.batch_size), ("lr", config.lr)):
        if value is not None:
            params[key] = value
    model_params, trainer_params, data_params = spec.split(params)
    layers: list[Mapping[str, Any]] = [spec.trainer_defaults, trainer_params]
    if "valid_metric" not in spec.trainer_defaults and "valid_metric" not in trainer_params:
        layers.insert(0, {"valid_metric": f"recall@{max(config.resolved_ks())}"})
    trainer = TrainerConfig.layered(*layers, {"seed": config.seed})
    if trainer.mode not in spec.train_modes:
        raise UsageError(f"mode={trainer.mode}: model '{spec.name}' trains in modes {list(spec.train_modes)}")
    return Settings(
        model={**spec.model_defaults, **model_params},
        trainer=trainer,
        data={**spec.data_defaults, **data_params},
    )
