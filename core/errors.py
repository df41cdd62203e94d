"""The project's own error types.

Every failure a user can cause (bad file, bad parameter, bad symbol) raises a subclass of
:class:`VolriskError` whose message names the file, row or parameter and what was expected.
:class:`TransientError` marks failures worth retrying (network, HTTP 429/5xx, a locked database);
nothing else is retried.
"""

from __future__ import annotations


class VolriskError(Exception):
    """Base class for every error volrisk reports to a user."""


class ConfigError(VolriskError):
    """A parameter or setting is invalid."""


class DataError(VolriskError):
    """Input data cannot be used: the message names the file/row and what was expected."""

    def __init__(self, message: str, *, location: str | None = None) -> None:
        self.location = location
        super().__init__(f"{location}: {message}" if location else message)


class TransientError(VolriskError):
    """A failure that may succeed on retry: network errors, HTTP 429/5xx, a locked database."""


class WarehouseError(VolriskError):
    """The warehouse file is missing, corrupt or incompatible."""
