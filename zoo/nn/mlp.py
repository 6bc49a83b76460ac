"""A multi-layer perceptron with the seed's ``dims`` / ``activation`` / ``dropout`` parameters."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from zoo.errors import UsageError

ACTIVATIONS = ("relu", "prelu", "leakyrelu", "tanh", "sigmoid", "gelu", "silu", "linear")


def activation_layer(name: str | None, dim: int) -> nn.Module:
    """Build an activation by name (``prelu`` gets one slope per unit)."""
    key = (name or "linear").lower().replace("_", "")
    if key == "relu":
        return nn.ReLU()
    if key == "prelu":
        return nn.PReLU(dim)
    if key == "leakyrelu":
        return nn.LeakyReLU(0.1)
    if key == "tanh":
        return nn.Tanh()
    if key == "sigmoid":
        return nn.Sigmoid()
    if key == "gelu":
        return nn.GELU()
    if key in ("silu", "swish"):
        return nn.SiLU()
    if key in ("linear", "none", "identity"):
        return nn.Identity()
    raise UsageError(f"activation {name!r} is unknown; use one of {', '.join(ACTIVATIONS)}")


class MLP(nn.Module):
    """``Linear -> [BatchNorm] -> activation -> dropout`` per hidden layer, then a plain ``Linear``.

    The last layer has no activation: the towers' outputs are L2-normalised afterwards, and an
    activation there (ReLU especially) would confine every vector to one orthant.

    Args:
        input_dim: size of the input vector.
        dims: output size of each layer; the last one is the output size. Empty = identity.
        activation: hidden-layer activation (see ``ACTIVATIONS``).
        dropout: dropout probability after each hidden activation.
        batch_norm: add BatchNorm1d after each hidden Linear.
    """

    def __init__(
        self,
        input_dim: int,
        dims: Sequence[int] = (),
        activation: str = "relu",
        dropout: float = 0.0,
        batch_norm: bool = False,
    ) -> None:
        super().__init__()
        dims = [int(d) for d in dims]
        if any(d < 1 for d in dims):
            raise UsageError(f"MLP dims must be positive integers, got {dims}")
        if not 0.0 <= float(dropout) < 1.0:
            raise UsageError(f"dropout must be in [0, 1), got {dropout}")
        layers: list[nn.Module] = []
        previous = int(input_dim)
        for i, dim in enumerate(dims):
            linear = nn.Linear(previous, dim)
            # Zero biases: with small input embeddings, random biases dominate the output and every
            # input maps to nearly the same (normalised) vector, a collapse point-wise training rarely
            # escapes. Without them the output direction is a function of the input alone.
            nn.init.zeros_(linear.bias)
            layers.append(linear)
            if i < len(dims) - 1:
                if batch_norm:
                    layers.append(nn.BatchNorm1d(dim))
                layers.append(activation_layer(activation, dim))
                if dropout > 0:
                    layers.append(nn.Dropout(dropout))
            previous = dim
        self.layers = nn.Sequential(*layers)
        self.output_dim = previous

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)
