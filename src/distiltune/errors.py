"""User-facing errors: each one says what is wrong and what to do about it.

The CLI prints a :class:`DistiltuneError` as a single line and exits with code 2; anything else is a bug
and shows a traceback. Library code raises these instead of asserting on user input.
"""

from __future__ import annotations


class DistiltuneError(Exception):
    """An error caused by user input (config, data, paths), with a hint on how to fix it."""

    exit_code = 2

    def __init__(self, message: str, hint: str | None = None) -> None:
        self.message = message
        self.hint = hint
        super().__init__(self.one_line())

    def one_line(self) -> str:
        return f"{self.message} {self.hint}" if self.hint else self.message


class ConfigError(DistiltuneError):
    """A config value or key is invalid."""


class DataError(DistiltuneError):
    """A data file, column or row is invalid."""


class ModelError(DistiltuneError):
    """A model or tokenizer cannot be loaded."""


class RunError(DistiltuneError):
    """A run directory is missing, incomplete or inconsistent."""


class ExportError(DistiltuneError):
    """An export cannot be written (missing extra, or its parity check failed)."""


class ServingError(DistiltuneError):
    """A prediction server cannot be reached, or refused a request (API key, overloaded, not ready)."""

    def __init__(self, message: str, hint: str | None = None, status_code: int | None = None) -> None:
        super().__init__(message, hint)
        self.status_code = status_code
