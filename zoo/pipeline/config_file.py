"""A run's settings in a TOML or YAML file (``zoo run --config FILE``, ``zoo bench --config FILE``), and
the ``config.yaml`` every run folder gets, which reproduces the run.

::

    [run]                      # what runs where (the command-line flags of the same names)
    model = "dssm"             # zoo bench: a list of models
    retriever = "hnsw"
    dataset = "movielens-1m"
    data = "ml-1m"             # --data
    protocol = "deepmatch"
    device = "cpu"
    seed = 0
    k = [10, 50]

    [model]                    # the model's constructor parameters over its preset
    embed_dim = 64
    [trainer]                  # TrainerConfig settings (and window_stride)
    epochs = 20
    [retriever]                # index parameters
    ef = 128
    [data]                     # dataset options (data.KEY=V)
    users = 5000
    [protocol]                 # protocol overrides (protocol.KEY=V)
    min_rating = 3

Flags and ``--param`` given on the command line override the file. A run folder's ``config.yaml``
(written by every ``zoo run``) is such a file and reproduces the run; a run's ``run.json`` is read too.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zoo.errors import UsageError

#: the [run] keys and the RunConfig fields they set
RUN_KEYS = {
    "model": "model",
    "retriever": "retriever",
    "dataset": "dataset",
    "data": "data_path",
    "protocol": "protocol",
    "mask_seen": "mask_seen",
    "device": "device",
    "seed": "seed",
    "k": "ks",
    "out": "out",
}
SECTIONS = ("run", "model", "trainer", "retriever", "data", "protocol")


@dataclass
class FileSettings:
    """What a settings file sets: RunConfig fields and parameters by destination."""

    run: dict[str, Any] = field(default_factory=dict)  # RunConfig field -> value
    params: dict[str, Any] = field(default_factory=dict)  # model and trainer keys (the pipeline routes them)
    retriever: dict[str, Any] = field(default_factory=dict)
    dataset: dict[str, Any] = field(default_factory=dict)
    protocol: dict[str, Any] = field(default_factory=dict)


def _unknown(what: str, key: str, known: list[str], path: Path) -> UsageError:
    close = difflib.get_close_matches(key, known, n=1)
    hint = f"; did you mean '{close[0]}'?" if close else f"; use {', '.join(known)}"
    return UsageError(f"{path}: unknown {what} '{key}'{hint}")


def _section(document: dict[str, Any], name: str, path: Path) -> dict[str, Any]:
    value = document.get(name) or {}
    if not isinstance(value, dict):
        hint = " (a name goes in [run])" if isinstance(value, str) else ""
        raise UsageError(f"{path}: [{name}] must be a table of key = value, not {type(value).__name__}{hint}")
    return dict(value)


def _from_run_report(report: dict[str, Any]) -> dict[str, Any]:
    """The sections of a ``run.json`` (its resolved config) as a settings document."""
    config = report["config"]
    trainer = dict(config.get("trainer") or {})
    trainer.pop("seed", None)
    return {
        "run": {key: config.get(field_name) for key, field_name in RUN_KEYS.items() if key != "out"},
        "model": dict(config.get("model_params") or {}),
        "trainer": {**trainer, **dict(config.get("data_params") or {})},
        "retriever": dict(config.get("retriever_params") or {}),
        "data": dict(config.get("dataset_options") or {}),
        "protocol": dict(config.get("protocol_overrides") or {}),
    }


def read_config_file(path: Path) -> FileSettings:
    """Read and check a settings file; unknown sections and keys are one-line errors naming them."""
    from zoo.io import read_settings_file
    from zoo.specs import ModelSpec

    path = Path(path)
    document = read_settings_file(path, "config file")
    if not isinstance(document, dict):
        raise UsageError(
            f"{path}: expected tables [run], [model], [trainer]...; found a {type(document).__name__}"
        )
    if isinstance(document.get("config"), dict) and "schema" in document:  # a run.json
        document = _from_run_report(document)
    for name in document:
        if name not in SECTIONS:
            raise _unknown("section", f"[{name}]", [f"[{s}]" for s in SECTIONS], path)
    settings = FileSettings()
    for key, value in _section(document, "run", path).items():
        if key not in RUN_KEYS:
            raise _unknown("key in [run]", key, list(RUN_KEYS), path)
        if value is not None:
            settings.run[RUN_KEYS[key]] = tuple(value) if key == "k" and isinstance(value, list) else value
    trainer_keys = sorted(ModelSpec.trainer_keys() | set(ModelSpec.DATA_KEYS))
    model = _section(document, "model", path)
    trainer = _section(document, "trainer", path)
    for key in trainer:
        if key not in trainer_keys:
            raise _unknown("key in [trainer]", key, trainer_keys, path)
    misplaced = sorted(set(model) & set(trainer_keys))
    if misplaced:
        raise UsageError(f"{path}: {', '.join(misplaced)} in [model] belong(s) in [trainer]")
    settings.params = {**model, **trainer}
    settings.retriever = _section(document, "retriever", path)
    settings.dataset = _section(document, "data", path)
    settings.protocol = _section(document, "protocol", path)
    return settings


def config_document(config: Any, settings: Any) -> dict[str, Any]:
    """The settings file of a finished run: its [run] keys and the *resolved* model, trainer and data
    settings (the preset included), so that reading it back reproduces the run even if a preset
    changes later."""
    trainer = settings.trainer.to_dict()
    trainer.pop("seed", None)
    run = {key: getattr(config, field_name) for key, field_name in RUN_KEYS.items() if key != "out"}
    run["k"] = list(config.resolved_ks())
    return {
        "run": {k: v for k, v in run.items() if v is not None},
        "model": dict(settings.model),
        "trainer": {**trainer, **dict(settings.data)},
        "retriever": dict(config.retriever_params),
        "data": dict(config.dataset_options),
        "protocol": dict(config.protocol_overrides),
    }


def write_config_file(path: Path, config: Any, settings: Any) -> None:
    """Write :func:`config_document` as YAML to ``path`` (atomically)."""
    import yaml

    from zoo.io import atomic_write_text

    header = "# Reproduces this run: zoo run --config config.yaml (flags and --param override it)\n"
    atomic_write_text(Path(path), header + yaml.safe_dump(config_document(config, settings), sort_keys=False))
