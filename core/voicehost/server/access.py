"""Who may use voicehost's own HTTP API (``/api/calls``: read call records, place calls).

With an API token (``[records] api_token``) every request must carry
``Authorization: Bearer <token>`` (compared in constant time; 401 otherwise). Without one only
loopback clients are served (403 otherwise), so a server that Twilio can reach neither
publishes transcripts nor places calls for strangers. Behind a reverse proxy on the same host
every client looks local: set a token there.
"""

from __future__ import annotations

import hmac
from typing import Any

from aiohttp import web

from voicehost.server.settings import is_loopback

__all__ = ["access_refusal", "api_refusal", "json_error"]


def api_refusal(
    request: web.Request, api_token: str, *, what: str = "call records are served"
) -> web.Response | None:
    """None when ``request`` may use the API, else the 401/403 JSON answer to send.

    Args:
        api_token: the bearer token required; ``""``: loopback clients only.
        what: the start of the 403 message (``"call records are served"``,
            ``"calls are placed"``).
    """
    return access_refusal(
        request.remote, request.headers.get("Authorization", ""), api_token, what=what
    )


def access_refusal(
    remote: str | None,
    authorization: str,
    api_token: str,
    *,
    what: str = "call records are served",
) -> web.Response | None:
    """:func:`api_refusal` on its parts: the client address ``remote`` and the
    ``Authorization`` header's value."""
    if api_token:
        expected = f"Bearer {api_token}".encode()
        if hmac.compare_digest(authorization.encode("utf-8", "replace"), expected):
            return None
        return json_error(401, "missing or wrong bearer token")
    if is_loopback(remote):
        return None
    return json_error(403, f"{what} to loopback clients only; set [records] api_token")


def json_error(status: int, message: str, **extra: Any) -> web.Response:
    """``{"error": message, **extra}`` with ``status``."""
    body: dict[str, Any] = {"error": message, **extra}
    return web.json_response(body, status=status)
