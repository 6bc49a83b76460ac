"""TrainerConfig: every training setting, with its default, its accepted range and its meaning.

This is the one owner of the trainer's settings. Presets (``ModelSpec.trainer_defaults``), ``--param``
overrides and the Python API all end up here, are validated here, and the trainer reads nothing else.
No torch import: listing and spec commands stay light.

::

    config = TrainerConfig.layered(spec.trainer_defaults, {"lr": "0.01", "grad_clip_norm": 1.0})
    trainer = MatchTrainer.from_config(model, config, device="cpu")
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import numbers
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from zoo.errors import UsageError

#: negative kinds (``auto`` resolves per mode, see :data:`AUTO_NEGATIVES`)
NEGATIVE_KINDS = (
    "auto", "batch", "uniform", "popularity", "inbatch", "inbatch-sampled", "mixed", "shared", "full"
)  # fmt: skip
#: what ``negatives="auto"`` means in each mode
AUTO_NEGATIVES = {0: "uniform", 1: "uniform", 2: "inbatch"}
#: negative kinds that only exist as a list-wise (softmax) loss
LISTWISE_NEGATIVES = ("inbatch", "mixed", "full")
#: negatives per positive when ``num_negatives`` is None
DEFAULT_NUM_NEGATIVES = {0: 4, 1: 1, 2: 50}
PAIRWISE_LOSSES = ("bpr", "hinge", "bpr-max")
LR_SCHEDULES = ("constant", "cosine", "plateau")
#: numeric precisions of the training loss (see zoo.train.acceleration)
PRECISIONS = ("fp32", "bf16", "fp16")
VALID_METRICS = ("recall", "hitrate", "ndcg", "mrr", "precision")

Rule = Callable[[str, Any], Any]  # (key, raw value) -> coerced value, or UsageError


def _show(value: Any) -> str:
    """A value as the user typed it (``lr=nan``, ``negatives=inbach``); quoted only when blank or padded."""
    text = str(value)
    return repr(text) if isinstance(value, str) and (not text.strip() or text != text.strip()) else text


def _fail(key: str, value: Any, expected: str) -> UsageError:
    return UsageError(f"{key}={_show(value)}: must be {expected}")


def _as_int(key: str, value: Any, expected: str) -> int:
    if isinstance(value, str):
        try:
            value = int(value.strip())
        except ValueError:
            raise _fail(key, value, expected) from None
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise _fail(key, value, expected)
    if not isinstance(value, numbers.Integral) and (not math.isfinite(value) or value != int(value)):
        raise _fail(key, value, expected)
    return int(value)


def _as_float(key: str, value: Any, expected: str) -> float:
    raw = value
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            raise _fail(key, raw, expected) from None
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise _fail(key, raw, expected)
    value = float(value)
    if not math.isfinite(value):
        raise _fail(key, raw, expected)
    return value


def integer(
    minimum: int, expected: str | None = None, choices: tuple[int, ...] = (), maximum: int | None = None
) -> Rule:
    """An integer in [``minimum``, ``maximum``] (or one of ``choices``)."""
    text = expected or f"an integer >= {minimum}"

    def rule(key: str, value: Any) -> int:
        number = _as_int(key, value, text)
        too_big = maximum is not None and number > maximum
        if number < minimum or too_big or (choices and number not in choices):
            raise _fail(key, value, text)
        return number

    return rule


def number(low: float, high: float | None = None, *, low_open: bool = False, high_open: bool = True) -> Rule:
    """A finite float in the range [low, high] (ends open as told; ``high`` None: no upper bound)."""
    if high is None:
        text = f"a finite number {'>' if low_open else '>='} {low:g}"
    else:
        text = f"a number in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"

    def rule(key: str, value: Any) -> float:
        x = _as_float(key, value, text)
        below = x < low or (low_open and x == low)
        above = high is not None and (x > high or (high_open and x == high))
        if below or above:
            raise _fail(key, value, text)
        return x

    return rule


def optional(inner: Rule, off: str = "off") -> Rule:
    """``None`` (or the strings ``none`` / ``null``) or what ``inner`` accepts."""

    def rule(key: str, value: Any) -> Any:
        if value is None or (isinstance(value, str) and value.strip().lower() in ("none", "null")):
            return None
        try:
            return inner(key, value)
        except UsageError as exc:
            raise UsageError(f"{exc}, or None ({off})") from None

    return rule


def choice(values: tuple[str, ...]) -> Rule:
    """One of ``values`` (with did-you-mean)."""

    def rule(key: str, value: Any) -> str:
        if isinstance(value, str) and value in values:
            return value
        close = difflib.get_close_matches(str(value), values, n=1, cutoff=0.5)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise _fail(key, value, f"one of {', '.join(values)}{hint}")

    return rule


def boolean(key: str, value: Any) -> bool:
    """``True``/``False``, 1/0, or the strings true/false, yes/no, on/off, 1/0."""
    if isinstance(value, bool):
        return value
    if isinstance(value, numbers.Integral) and int(value) in (0, 1):
        return bool(value)
    if isinstance(value, str):
        text = value.strip().lower()
        if text in ("true", "yes", "on", "1"):
            return True
        if text in ("false", "no", "off", "0"):
            return False
    raise _fail(key, value, "true or false")


def parse_metric(name: str) -> tuple[str, int]:
    """``"recall@50"`` -> ``("recall", 50)``; UsageError unless it names a known metric at a K >= 1."""
    metric, sep, k = str(name).strip().partition("@")
    if not sep or metric not in VALID_METRICS or not k.isdigit() or int(k) < 1:
        raise UsageError(
            f"valid_metric={_show(name)}: must look like recall@50"
            f" ({', '.join(VALID_METRICS)} at an integer K >= 1)"
        )
    return metric, int(k)


def metric(key: str, value: Any) -> str:
    name, k = parse_metric(value) if isinstance(value, str) else parse_metric(repr(value))
    return f"{name}@{k}"


def setting(default: Any, rule: Rule, doc: str) -> Any:
    """A TrainerConfig field: its default, its validation rule and its documentation."""
    return field(default=default, metadata={"rule": rule, "doc": doc})


@dataclass(frozen=True)
class TrainerConfig:
    """Every MatchTrainer setting (immutable and validated; :meth:`describe` lists them with their docs).

    Build it with keywords, :meth:`from_dict` (coerces strings such as ``"3"``, rejects unknown keys) or
    :meth:`layered` (a preset overridden by the user's values). Every value is checked by type and range;
    a bad one raises :class:`~zoo.errors.UsageError` naming the key and what it accepts.
    """

    mode: int = setting(
        0,
        integer(0, "0 (point-wise), 1 (pair-wise) or 2 (list-wise)", (0, 1, 2)),
        "0 point-wise (BCE), 1 pair-wise (BPR, hinge, BPR-max), 2 list-wise (softmax)",
    )
    epochs: int = setting(10, integer(1), "maximum number of training epochs")
    batch_size: int = setting(
        512, integer(1), "rows per training batch (the pipeline builds batches of this size)"
    )
    lr: float = setting(1e-3, number(0, low_open=True), "learning rate of the optimiser (Adam)")
    weight_decay: float = setting(0.0, number(0), "the optimiser's weight decay")
    embedding_l2: float = setting(0.0, number(0), "L2 penalty on the embedding tables, added to the loss")
    dense_l2: float = setting(0.0, number(0), "L2 penalty on the dense weight matrices, added to the loss")
    patience: int = setting(10, integer(1), "stop after this many epochs without a better validation metric")
    valid_metric: str = setting(
        "recall@50",
        metric,
        "early-stopping metric on the validation task: recall, hitrate, ndcg, mrr or"
        " precision at K, e.g. recall@50",
    )
    negatives: str = setting(
        "auto",
        choice(NEGATIVE_KINDS),
        "auto (mode 0/1: uniform, mode 2: inbatch); batch (the batch's neg_items or label rows); uniform or"
        " popularity (popularity**alpha) sampled per row; inbatch (the other rows' positives,"
        " logQ-corrected); mixed (inbatch plus uniform negatives shared by the batch); shared"
        " (popularity**alpha negatives drawn once per batch, logQ-corrected); full (softmax over the whole"
        " catalogue). inbatch, mixed and full need mode 2. A batch's own neg_items column is always used"
        " when present, except by inbatch-sampled: Torch-RecHub's in_batch_neg, num_negatives of the other"
        " rows' positives per row (None: all; the highest-scoring ones with hard_negatives), softmax in"
        " modes 0 and 2, the pairwise loss in mode 1, every row a positive",
    )
    num_negatives: int | None = setting(
        None,
        optional(integer(1), "the mode's default"),
        "negatives per positive (or shared per batch for mixed and shared);"
        " None: 4 in mode 0, 1 in mode 1, 50 in mode 2",
    )
    hard_negatives: bool = setting(
        False, boolean, "inbatch-sampled negatives: the highest-scoring other rows instead of random ones"
    )
    pairwise_loss: str = setting("bpr", choice(PAIRWISE_LOSSES), "mode 1 loss: bpr, hinge or bpr-max")
    margin: float = setting(1.0, number(0), "margin of the hinge loss")
    bpr_max_reg: float = setting(1.0, number(0), "score regularisation of the BPR-max loss")
    popularity_alpha: float = setting(0.75, number(0), "exponent of popularity sampling (count**alpha)")
    logq_correction: bool = setting(
        True, boolean, "subtract the log proposal probability from sampled and in-batch logits"
    )
    grad_clip_norm: float | None = setting(
        None,
        optional(number(0, low_open=True)),
        "clip the global gradient norm to this value before each step; None: off",
    )
    time_limit: float | None = setting(
        None,
        optional(number(0, low_open=True), "no limit"),
        "seconds of training after which no new epoch starts (the running one finishes); None: no limit",
    )
    lr_schedule: str = setting(
        "constant",
        choice(LR_SCHEDULES),
        "constant; cosine (decay to 0 over the epochs); plateau (multiply the rate by"
        " lr_factor after lr_patience epochs without a better validation metric)",
    )
    lr_factor: float = setting(0.5, number(0, 1, low_open=True), "the plateau schedule's factor")
    lr_patience: int = setting(2, integer(1), "the plateau schedule's patience in epochs")
    ema_decay: float | None = setting(
        None,
        optional(number(0, 1)),
        "validate, keep and return an exponential moving average of the weights"
        " with this decay (ramped up as min(d, (1 + t) / (10 + t)) at step t);"
        " None or 0: off",
    )
    precision: str = setting(
        "fp32",
        choice(PRECISIONS),
        "numeric precision of the training loss: fp32; bf16 (autocast, CPU or GPU; weights stay fp32);"
        " fp16 (autocast with loss scaling, CUDA only). Evaluation and embeddings always run in fp32",
    )
    compile: bool = setting(
        False, boolean, "run the training loss through torch.compile (the first steps pay the compilation)"
    )
    seed: int | None = setting(
        None,
        optional(integer(-(2**63), "an integer", maximum=2**64 - 1), "not seeded"),
        "seeds the trainer's own generators at fit (dropout, shuffling, negative sampling); the caller's"
        " global random state is left as it was. Same seed, same result on CPU",
    )

    def __post_init__(self) -> None:
        for item in dataclasses.fields(self):
            value = item.metadata["rule"](item.name, getattr(self, item.name))
            object.__setattr__(self, item.name, value)
        if self.negatives in LISTWISE_NEGATIVES and self.mode != 2:
            raise UsageError(
                f"negatives={self.negatives} needs list-wise training (mode=2), not mode={self.mode};"
                f" use one of {', '.join(k for k in NEGATIVE_KINDS if k not in LISTWISE_NEGATIVES)}"
            )
        if self.hard_negatives and self.negatives != "inbatch-sampled":
            raise UsageError(
                "hard_negatives=true needs negatives=inbatch-sampled (in_batch_neg=True),"
                f" not {self.negatives}"
            )

    # -- construction ----------------------------------------------------------------------------------
    @classmethod
    def keys(cls) -> frozenset[str]:
        """The setting names."""
        return frozenset(f.name for f in dataclasses.fields(cls))

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> TrainerConfig:
        """A config from a mapping of settings (missing ones keep their defaults); values are coerced
        (``"3"`` -> 3, ``1`` -> 1.0, ``"true"`` -> True) and validated; an unknown key is a UsageError."""
        cls._check_keys(values)
        return cls(**dict(values))

    @classmethod
    def layered(cls, *layers: Mapping[str, Any]) -> TrainerConfig:
        """Later layers override earlier ones (preset, then user values). A layer that sets ``mode``
        without ``negatives`` resets ``negatives`` to ``auto``: a preset's negatives belong to its mode."""
        merged: dict[str, Any] = {}
        for layer in layers:
            cls._check_keys(layer)
            if "mode" in layer and "negatives" not in layer:
                merged["negatives"] = "auto"
            merged.update(layer)
        return cls(**merged)

    def replace(self, **changes: Any) -> TrainerConfig:
        """A copy with ``changes`` applied (validated like :meth:`from_dict`)."""
        return self.from_dict({**self.to_dict(), **changes})

    def to_dict(self) -> dict[str, Any]:
        """Every setting by name (what :meth:`from_dict` reads back)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    @classmethod
    def describe(cls) -> dict[str, dict[str, Any]]:
        """``{name: {"default": ..., "doc": ...}}`` for every setting (for help texts and docs)."""
        return {f.name: {"default": f.default, "doc": f.metadata["doc"]} for f in dataclasses.fields(cls)}

    @classmethod
    def _check_keys(cls, values: Mapping[str, Any]) -> None:
        known = cls.keys()
        for key in values:
            if key not in known:
                close = difflib.get_close_matches(str(key), sorted(known), n=1, cutoff=0.6)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                listing = ", ".join(sorted(known))
                raise UsageError(f"{key!r} is not a trainer setting{hint} (settings: {listing})")

    # -- derived values -------------------------------------------------------------------------------
    @property
    def resolved_negatives(self) -> str:
        """``negatives`` with ``auto`` resolved for the mode."""
        return AUTO_NEGATIVES[self.mode] if self.negatives == "auto" else self.negatives

    @property
    def resolved_num_negatives(self) -> int:
        """``num_negatives``, or the mode's default."""
        return DEFAULT_NUM_NEGATIVES[self.mode] if self.num_negatives is None else self.num_negatives

    @property
    def metric_k(self) -> int:
        """The K of ``valid_metric``."""
        return parse_metric(self.valid_metric)[1]
