"""How a training step runs: numeric precision (autocast, loss scaling) and ``torch.compile``.

Two :class:`~zoo.train.config.TrainerConfig` settings are owned here:

* ``precision``: ``fp32`` (default); ``bf16``, the loss computed under
  ``torch.autocast(dtype=torch.bfloat16)`` (on CPU and on GPUs with bf16 support; weights, optimiser
  state and gradients stay fp32); ``fp16``, autocast to float16 with dynamic loss scaling
  (``torch.amp.GradScaler``), CUDA only. Only the training loss runs in reduced precision: validation,
  embedding and ranking always run in fp32, so metrics are computed the same way in every setting.
* ``compile``: the batch-loss function goes through ``torch.compile`` (dynamic shapes, since batch and
  per-position row counts vary). The first steps pay the compilation; a model whose code the compiler
  cannot trace falls back to eager execution for those parts (graph breaks), never to a wrong result.

:class:`StepRunner` is what the trainer calls each step: ``loss = runner.loss(batch)``, then
``runner.backward_and_step(loss, ...)``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import torch

from zoo.errors import UsageError
from zoo.train.config import PRECISIONS

__all__ = ["PRECISIONS", "StepRunner", "autocast", "check_precision", "make_optimizer"]

#: optimisers whose fused implementation (one kernel per parameter instead of a dozen element-wise
#: operations) computes the same update
_FUSABLE = (torch.optim.Adam, torch.optim.AdamW)

LossFn = Callable[[Mapping[str, torch.Tensor]], torch.Tensor]


def check_precision(precision: str, device: torch.device) -> None:
    """A one-line UsageError when ``precision`` cannot run on ``device``."""
    if precision == "fp16" and device.type != "cuda":
        raise UsageError(
            f"precision=fp16 needs a CUDA device (this run trains on {device.type}); use precision=bf16"
            " or fp32"
        )
    if precision == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise UsageError("precision=bf16: this GPU has no bfloat16 support; use precision=fp16 or fp32")
    if precision == "bf16" and device.type not in ("cpu", "cuda"):
        raise UsageError(f"precision=bf16 runs on cpu or cuda, not {device.type}; use precision=fp32")


def make_optimizer(optimizer_fn: Any, parameters: Any, options: Mapping[str, Any]) -> torch.optim.Optimizer:
    """``optimizer_fn(parameters, **options)``; Adam and AdamW get their fused implementation when the
    caller chose neither ``fused`` nor ``foreach`` and this torch build has it for the parameters'
    device (otherwise the default implementation)."""
    parameters = list(parameters)
    if optimizer_fn in _FUSABLE and "fused" not in options and "foreach" not in options:
        try:
            return optimizer_fn(parameters, **options, fused=True)
        except (RuntimeError, TypeError, ValueError):  # no fused kernel for this device or build
            pass
    return optimizer_fn(parameters, **options)


def autocast(precision: str, device: torch.device) -> AbstractContextManager[Any]:
    """The autocast context of ``precision`` on ``device`` (a no-op for fp32)."""
    if precision == "fp32":
        return nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


class StepRunner:
    """Runs a training step's loss under the configured precision (and compiled when asked), and its
    backward pass and optimiser step with loss scaling for fp16.

    Args:
        loss_fn: computes the batch's loss (the trainer's own, or its DDP-wrapped module).
        precision: one of :data:`PRECISIONS`.
        compile: pass ``loss_fn`` through ``torch.compile``.
        device: the training device.
    """

    def __init__(self, loss_fn: LossFn, *, precision: str, compile: bool, device: torch.device) -> None:
        check_precision(precision, device)
        self.precision = precision
        self.device = device
        self.compiled = bool(compile)
        self._loss_fn: LossFn = torch.compile(loss_fn, dynamic=True) if compile else loss_fn
        self.scaler = torch.amp.GradScaler("cuda") if precision == "fp16" else None

    def loss(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """The batch's loss (a float32 scalar whatever the precision)."""
        with autocast(self.precision, self.device):
            loss = self._loss_fn(batch)
        return loss.float()

    def backward_and_step(
        self,
        loss: torch.Tensor,
        optimizer: torch.optim.Optimizer,
        parameters: Callable[[], Any],
        grad_clip_norm: float | None,
    ) -> None:
        """``loss.backward()``, optional gradient clipping (on unscaled gradients) and the optimiser
        step; with fp16 the loss is scaled and a step whose gradients overflowed is skipped."""
        optimizer.zero_grad(set_to_none=True)
        if self.scaler is None:
            loss.backward()
            if grad_clip_norm is not None:
                torch.nn.utils.clip_grad_norm_(parameters(), grad_clip_norm)
            optimizer.step()
            return
        self.scaler.scale(loss).backward()
        if grad_clip_norm is not None:
            self.scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(parameters(), grad_clip_norm)
        self.scaler.step(optimizer)
        self.scaler.update()
