"""The ZooError tree.

Every error a user can cause carries a one-line message that names the file, column or option at
fault and says what to do, plus the process exit code the CLI uses for it. Tracebacks are for bugs,
not for bad input.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class ZooError(Exception):
    """Base class: a user-facing failure with a one-line message and an exit code."""

    exit_code: int = 1

    def __init__(self, message: str, *, exit_code: int | None = None) -> None:
        # Keep the message on one line: the CLI prints exactly this.
        super().__init__(" ".join(str(message).split()))
        if exit_code is not None:
            self.exit_code = exit_code

    @property
    def message(self) -> str:
        return str(self)


class UsageError(ZooError):
    """A command-line option or API argument has a value we cannot use (exit 2)."""

    exit_code = 2


class UnknownNameError(UsageError):
    """A model, retriever, dataset or other named thing does not exist (exit 2, with did-you-mean)."""

    def __init__(self, kind: str, name: str, choices: Iterable[str], *, hint: str = "") -> None:
        choices = sorted(set(choices))
        close = difflib.get_close_matches(name, choices, n=3, cutoff=0.5)
        parts = [f"unknown {kind} '{name}'."]
        if close:
            parts.append("Did you mean " + " or ".join(f"'{c}'" for c in close) + "?")
        parts.append("Available: " + (", ".join(choices) if choices else "none") + ".")
        if hint:
            parts.append(hint)
        super().__init__(" ".join(parts))
        self.kind = kind
        self.name = name
        self.suggestions = close


class DeviceError(UsageError):
    """The requested compute device does not exist here (exit 2)."""


class DataError(ZooError):
    """Input data is missing, malformed or inconsistent (exit 3)."""

    exit_code = 3


class PluginError(ZooError):
    """A plugin failed to load or broke its contract (exit 4)."""

    exit_code = 4


class ModelFileError(ZooError):
    """A saved model, index or run directory cannot be read (exit 5)."""

    exit_code = 5


class DownloadError(ZooError):
    """A dataset archive could not be fetched, verified or extracted (exit 6)."""

    exit_code = 6


def one_line(exc: BaseException) -> str:
    """A failure as one line: a ZooError's own message, else ``Type: message`` with whitespace folded."""
    if isinstance(exc, ZooError):
        return exc.message
    return " ".join(f"{type(exc).__name__}: {exc}".split())
