"""Command-line parsing shared by the commands: ``--param key=value`` and ``--k 10,50``.

The core never sees these strings: commands turn them into plain dicts and tuples here, with errors
worded in the flags the user typed.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any, NamedTuple

from zoo.errors import UsageError

#: ``--param`` prefixes that send a key to something other than the model and trainer
PREFIXES = ("retriever.", "data.", "protocol.", "model.")


class Params(NamedTuple):
    """``--param`` values by destination."""

    model: dict[str, Any]  # model constructor, trainer and training-data keys (the pipeline routes them)
    retriever: dict[str, Any]
    dataset: dict[str, Any]
    protocol: dict[str, Any]


def parse_param_value(text: str) -> Any:
    """A ``--param`` value: JSON (numbers, true/false, lists) where it parses, else a string.
    ``128,64`` is read as a list of numbers; yes/no/on/off as booleans."""
    try:
        return json.loads(text)
    except ValueError:
        pass
    if "," in text:
        return [parse_param_value(p.strip()) for p in text.split(",") if p.strip()]
    lowered = text.lower()
    if lowered in ("true", "yes", "on"):
        return True
    if lowered in ("false", "no", "off"):
        return False
    return text


def parse_params(items: Iterable[str]) -> Params:
    """Parse ``key=value`` strings: ``retriever.KEY=V`` goes to the retriever, ``data.KEY=V`` to the
    dataset, ``protocol.KEY=V`` to the protocol (``min_rating``, ``user_core``, ``item_core``,
    ``history_len``, ``time_precision``), ``model.KEY=V`` and bare keys to the model and trainer."""
    parsed = Params({}, {}, {}, {})
    buckets = dict(
        zip(PREFIXES, (parsed.retriever, parsed.dataset, parsed.protocol, parsed.model), strict=True)
    )
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise UsageError(
                f"--param {item!r} must look like key=value (e.g. temperature=0.05, retriever.ef=128)"
            )
        target = parsed.model
        for prefix, bucket in buckets.items():
            if key.startswith(prefix):
                key, target = key[len(prefix) :], bucket
                break
        target[key] = parse_param_value(value.strip())
    return parsed


def parse_ks(text: str, example: str = "10,50") -> tuple[int, ...]:
    """``--k``: comma-separated positive integers."""
    try:
        ks = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        ks = ()
    if not ks or min(ks) < 1:
        raise UsageError(f"--k {text!r} must be comma-separated positive integers, e.g. {example}")
    return ks


def settings(config_file: Any, items: Iterable[str]) -> tuple[dict[str, Any], Params]:
    """A ``--config`` file's [run] fields and its parameters overridden by ``--param`` (the command line
    wins): what ``zoo run`` and ``zoo bench`` both start from."""
    from zoo.pipeline.config_file import FileSettings, read_config_file

    file = read_config_file(config_file) if config_file is not None else FileSettings()
    given = parse_params(items)
    merged = Params(
        {**file.params, **given.model},
        {**file.retriever, **given.retriever},
        {**file.dataset, **given.dataset},
        {**file.protocol, **given.protocol},
    )
    return dict(file.run), merged
