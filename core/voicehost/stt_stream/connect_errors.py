"""How a failed vendor connection is classified: credentials (never retried), a request
retrying cannot fix (never retried), or a transient failure (retried with backoff).
See :mod:`voicehost.stt_stream`."""

from __future__ import annotations

from voicehost.errors import ProviderConnectionError, ProviderError, error_for_status

__all__ = ["http_status_of", "retryable", "upgrade_error"]


def http_status_of(exc: BaseException) -> int | None:
    """The HTTP status of a failed WebSocket upgrade, whatever library raised it: ``websockets``
    ``InvalidStatus`` (``.response.status_code``), legacy ``InvalidStatusCode`` and SDK API
    errors (``.status_code``). Looks through ``__cause__``; None when there is none."""
    seen: BaseException | None = exc
    for _ in range(4):
        if seen is None:
            return None
        status = getattr(seen, "status_code", None)
        if status is None:
            status = getattr(getattr(seen, "response", None), "status_code", None)
        if isinstance(status, int):
            return status
        seen = seen.__cause__ or seen.__context__
    return None


def upgrade_error(provider_id: str, exc: BaseException, *, where: str) -> ProviderError | None:
    """Classify a failed WebSocket upgrade by its HTTP status (:func:`http_status_of`).

    Returns:
        :class:`~voicehost.errors.ProviderAuthError` for 401/403 (a configuration error: the
        message names ``where``, e.g. ``"[stt.deepgram] api_key"``), a plain
        :class:`~voicehost.errors.ProviderError` for other 4xx statuses except 408/429 (the
        request is wrong; retrying cannot help), None for anything worth retrying.
    """
    status = http_status_of(exc)
    if status in (401, 403):
        message = f"the vendor rejected the credentials; check {where}"
    elif status is not None and 400 <= status < 500 and status not in (408, 429):
        message = f"the vendor refused the connection: {exc}"
    else:
        return None
    return error_for_status(provider_id, status, message)


def retryable(exc: BaseException) -> bool:
    """True when a failed connect try is worth another: anything but a
    :class:`~voicehost.errors.ProviderError` that is not a
    :class:`~voicehost.errors.ProviderConnectionError` (credentials, a refused request)."""
    return not isinstance(exc, ProviderError) or isinstance(exc, ProviderConnectionError)
