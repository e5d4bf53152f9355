"""The one exception type users see, and its kinds.

Every failure a user can cause or meet is a ``ComposeError`` with a message that names
the thing and a hint that says what to do. The CLI prints both and exits non-zero;
anything else escaping is a bug.
"""

from __future__ import annotations


class ComposeError(Exception):
    """A failure explained to the user: ``message`` names the thing, ``hint`` the fix."""

    exit_code = 2

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


class ProfileError(ComposeError):
    """A profile that cannot be used as written."""


class ConfigError(ComposeError):
    """Mirror or cache configuration that cannot be used."""


class TrustError(ComposeError):
    """A signature, hash or suite check failed: nothing from that source is used."""


class FetchError(ComposeError):
    """A download failed after retries."""


class FormatError(ComposeError):
    """Bytes that do not parse as the Debian format they claim to be."""


class ResolveError(ComposeError):
    """The requested packages cannot be installed together."""


class LockError(ComposeError):
    """A lockfile that is missing, stale, edited or of an unknown schema."""


class StaleLock(LockError):
    """The lock no longer matches its profile."""

    exit_code = 1
