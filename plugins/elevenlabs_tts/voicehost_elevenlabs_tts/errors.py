"""Map ElevenLabs failures to voicehost's typed provider errors.

HTTP errors arrive as the SDK's ``ApiError(status_code, body)``; the body is
``{"detail": {"status": "<code>", "message": "<text>"}}`` or, for 422, FastAPI's
``{"detail": [{"loc", "msg", "type"}, …]}`` (wire-protocols.md §5.1). WebSocket errors arrive
as a handshake status, a JSON message carrying ``message``/``error``, or a close code other
than 1000 (§5.2; exact shape unconfirmed, so every variant is handled). Needs no SDK.
"""

from __future__ import annotations

from typing import Any

from voicehost import (
    ProviderAuthError,
    ProviderConnectionError,
    ProviderError,
    error_for_status,
    stream_dropped,
)
from voicehost_elevenlabs_tts.config import PROVIDER_ID

__all__ = ["POLICY_VIOLATION", "PROVIDER_ID", "dropped", "message_error", "status_error"]

#: WebSocket close code the vendor uses for a policy violation (bad key, bad message).
POLICY_VIOLATION = 1008
_AUTH_CODES = frozenset({"invalid_api_key", "unauthorized", "missing_api_key", "auth_error"})


def status_error(status: int, body: Any) -> ProviderError:
    """A typed error for an HTTP ``status`` (or WebSocket handshake status) and its body."""
    code, message = _describe(body)
    return error_for_status(PROVIDER_ID, status, message or f"HTTP {status}", code=code)


def message_error(payload: dict[str, Any], close_code: int | None) -> ProviderError:
    """A typed error for a WebSocket error message (``{"message": …, "error": …}``)."""
    code, message = _describe(payload)
    message = message or "error message from the stream-input socket"
    if code in _AUTH_CODES or "api key" in message.lower():
        return ProviderAuthError(PROVIDER_ID, message, status=close_code, code=code)
    return ProviderError(PROVIDER_ID, message, status=close_code, code=code)


def dropped(received: int, detail: str, *, status: int | None = None) -> ProviderConnectionError:
    """The audio stream ended before the vendor said it was complete
    (:func:`voicehost.errors.stream_dropped`)."""
    return stream_dropped(PROVIDER_ID, received, detail, status=status)


def _describe(body: Any) -> tuple[str | None, str]:
    """``(code, message)`` from the vendor's error body variants."""
    if isinstance(body, dict):
        detail = body.get("detail", body)
        if isinstance(detail, dict):
            code = detail.get("status") or detail.get("code") or detail.get("error")
            message = detail.get("message") or detail.get("error") or ""
            return (str(code) if code else None), str(message)
        if isinstance(detail, list):
            parts = [
                str(item.get("msg", item)) if isinstance(item, dict) else str(item)
                for item in detail
            ]
            return "validation_error", "; ".join(parts)
        if isinstance(detail, str):
            return None, detail
    if isinstance(body, str | bytes):
        text = body.decode(errors="replace") if isinstance(body, bytes) else body
        return None, text[:300]
    return None, ""
