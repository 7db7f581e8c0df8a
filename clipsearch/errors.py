"""Typed errors. Every message says what went wrong, where, and what to do next.

The library raises these; only the CLI prints them (without a traceback).
"""

from __future__ import annotations


class ClipsearchError(Exception):
    """Base class for every expected failure a user can act on."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message}\n{self.hint}" if self.hint else self.message


class ConfigError(ClipsearchError):
    """A setting (flag or CLIPSEARCH_* variable) has a bad value."""

    exit_code = 2


class LibraryError(ClipsearchError):
    """The library directory cannot be opened or is damaged."""


class DiskFull(LibraryError):
    """The disk holding the library is full (or failing): nothing committed is lost, and the
    work can be retried once there is room."""


class LibraryDamaged(LibraryError):
    """The library database is damaged (a crash on a bad disk, a copy cut short)."""


class LibraryLocked(LibraryError):
    """Another process is writing to the library."""

    exit_code = 3


class ModelError(ClipsearchError):
    """A model cannot be resolved or loaded."""


class ModelMismatch(ClipsearchError):
    """The library's vectors were made by another model."""


class QueryError(ClipsearchError):
    """A search query is malformed or refers to something missing. `position` (1-based) is
    where in the query text the problem is, when it is in the text."""

    exit_code = 2

    def __init__(self, message: str, *, hint: str | None = None, position: int | None = None):
        super().__init__(message, hint=hint)
        self.position = position


class TagError(ClipsearchError):
    """Labels or a vocabulary that cannot be used."""

    exit_code = 2


class QuarantineError(ClipsearchError):
    """A quarantine folder or undo log that cannot be used."""

    exit_code = 2


class UnreadableImage(ClipsearchError):
    """An image file cannot be read or decoded; `reason` is short and user-facing."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


class GenerateError(ClipsearchError):
    """An image cannot be generated as asked (settings, sizes, models)."""

    exit_code = 2


class PromptError(GenerateError):
    """A generation prompt is empty or its weight is malformed."""


class VQGANError(GenerateError):
    """A VQGAN checkpoint is missing, unreadable or not one clipsearch can load."""

    exit_code = 1
