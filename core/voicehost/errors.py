"""Errors raised by the host and by provider plugins.

Every error a user can cause (a bad ``plugins.toml``, a missing API key, a vendor that
refuses a request) is a subclass of :class:`VoicehostError`, so the CLI can print one clear
line and exit 1 instead of a traceback.
"""

from __future__ import annotations


class VoicehostError(Exception):
    """Base class of every error voicehost raises on purpose."""


class ConfigError(VoicehostError):
    """``plugins.toml`` (or the environment it reads) is wrong.

    Raised at start-up (``voicehost serve``, ``voicehost config check``), never in the middle
    of a call. The message names the file, table or variable at fault.

    Attributes:
        problems: one line per problem (the message is these lines joined); a single-problem
            error holds its message.
    """

    def __init__(self, message: str, *, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.problems = list(problems) if problems else [message]


class PluginError(VoicehostError):
    """A plugin could not be imported or registered, or two plugins collide."""


class ProviderError(VoicehostError):
    """A vendor refused or broke a request.

    Attributes:
        provider: the provider id (``"deepgram"``, ``"openai"`` …).
        status: the vendor's HTTP status or WebSocket close code, when there is one.
        code: the vendor's own error code string (``"invalid_api_key"``), when there is one.
    """

    def __init__(
        self,
        provider: str,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
    ) -> None:
        self.provider = provider
        self.status = status
        self.code = code
        self.message = message
        where = f" (status {status})" if status is not None else ""
        super().__init__(f"{provider}: {message}{where}")


class ProviderAuthError(ProviderError):
    """The vendor rejected the credentials (HTTP 401/403). Never retried: it is a config error."""


class ProviderConnectionError(ProviderError):
    """The vendor's socket or stream dropped, or could not be reached."""


def error_for_status(
    provider: str, status: int, message: str, *, code: str | None = None
) -> ProviderError:
    """The typed error for a vendor's non-2xx HTTP status (or refused WebSocket upgrade).

    Returns:
        :class:`ProviderAuthError` for 401/403 (the key is wrong: never retried), a plain
        :class:`ProviderError` for any other status; both carry ``status`` and ``code``.
    """
    cls = ProviderAuthError if status in (401, 403) else ProviderError
    return cls(provider, message, status=status, code=code)


def stream_timed_out(provider: str, received: int) -> ProviderConnectionError:
    """A vendor's audio stream timed out (connect or a read) after ``received`` bytes of
    audio; code ``timeout``."""
    return ProviderConnectionError(
        provider, f"timed out after {received} bytes of audio", code="timeout"
    )


def stream_dropped(
    provider: str, received: int, detail: str, *, status: int | None = None
) -> ProviderConnectionError:
    """A vendor's audio stream ended, after ``received`` bytes, before the vendor said it was
    complete; code ``stream_dropped``, ``status`` the close code when there is one."""
    return ProviderConnectionError(
        provider,
        f"audio stream dropped after {received} bytes: {detail}",
        status=status,
        code="stream_dropped",
    )
