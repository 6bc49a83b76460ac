"""Model parameters checked by type before any work starts: a ``--param`` given as text where the model
takes a number is a one-line error naming the parameter, not a traceback from deep inside the model."""

from __future__ import annotations

import inspect
import math
import numbers
from collections.abc import Mapping
from typing import Any

from zoo.errors import UsageError


def _kind(example: Any) -> tuple[str, Any] | None:
    """What a value must be, judged from an example of it (the preset's value or the default)."""
    if isinstance(example, bool):
        return "true or false", lambda v: isinstance(v, bool)
    if isinstance(example, numbers.Integral):
        return "an integer", lambda v: isinstance(v, numbers.Integral) and not isinstance(v, bool)
    if isinstance(example, numbers.Real):
        return (
            "a finite number",
            lambda v: isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(float(v)),
        )
    if isinstance(example, (list, tuple)):
        inner = [_kind(e) for e in example if e is not None]
        if inner and all(k is not None and k[0] == inner[0][0] for k in inner):
            name, check = inner[0]  # type: ignore[misc]
            return (
                f"a list of {name.removeprefix('an ').removeprefix('a ')}s",
                lambda v: isinstance(v, (list, tuple)) and all(check(e) for e in v),
            )
        return "a list", lambda v: isinstance(v, (list, tuple))
    if isinstance(example, str):
        return "a string", lambda v: isinstance(v, str)
    return None


def constructor_defaults(cls: Any) -> dict[str, Any]:
    """Keyword defaults of the model class's constructor (what a parameter's type is judged by when
    the preset does not set it)."""
    try:
        parameters = inspect.signature(cls.__init__).parameters.values()
    except (TypeError, ValueError):
        return {}
    return {p.name: p.default for p in parameters if p.default is not inspect.Parameter.empty}


def check_model_params(
    model: str, cls: Any, params: Mapping[str, Any], preset: Mapping[str, Any]
) -> dict[str, Any]:
    """``params`` checked by the type of the preset's value (or of the constructor's default): a
    one-line UsageError otherwise, e.g. ``embed_dim=abc: must be an integer like the preset's 64``. A
    single value where a list is expected (``dims=64``) becomes a one-element list."""
    defaults = constructor_defaults(cls)
    checked = dict(params)
    for key, value in params.items():
        example, source = (
            (preset[key], "the preset's") if key in preset else (defaults.get(key), "the default")
        )
        kind = _kind(example)
        if kind is None or value is None:
            continue
        name, check = kind
        if isinstance(example, (list, tuple)) and not isinstance(value, (list, tuple)) and check([value]):
            value = checked[key] = [value]
        if not check(value):
            raise UsageError(f"model '{model}': {key}={value!r}: must be {name} like {source} {example!r}")
    return checked
