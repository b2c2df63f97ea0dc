"""Typed errors. The CLI turns every EdgekdError into one clear message and a non-zero exit.

Each error carries a `hint`: what the user can do about it. Messages name the thing that is wrong
(file, key, artifact, device) and never rely on a traceback to be understood.
"""

from __future__ import annotations

from typing import Any


class EdgekdError(Exception):
    """Base of every error edgekd raises on purpose."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message}\n  hint: {self.hint}"


class UsageError(EdgekdError):
    """A command-line mistake (wrong option combination, missing argument)."""

    exit_code = 2


class RecipeError(EdgekdError):
    """The recipe file cannot be read or does not validate."""

    exit_code = 2


class DataError(EdgekdError):
    """The data set is empty, malformed or does not match the model."""


class ModelError(EdgekdError):
    """A model file is missing, corrupt, truncated, unsafe or has the wrong interface."""


class ConversionError(EdgekdError):
    """A converter could not produce the requested artifact (unsupported op, missing package)."""


class ParityError(EdgekdError):
    """An exported artifact does not match the reference model within the recipe's thresholds."""

    def __init__(self, message: str, *, failures: list[dict[str, Any]] | None = None, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.failures = failures or []


class TargetError(EdgekdError):
    """A device could not be reached, used or cleaned up."""


class BenchError(EdgekdError):
    """A benchmark could not be run or its output could not be understood."""


class HandoffError(EdgekdError):
    """The firmware bundle could not be written or did not verify."""


class CacheError(EdgekdError):
    """The stage cache or run directory is in a state edgekd cannot use."""


class LockError(EdgekdError):
    """Another edgekd process holds the run directory."""


class StorageError(EdgekdError):
    """Writing to disk failed (disk full, read-only, permission denied)."""
