"""``POST /api/calls``: place an outbound call over HTTP (what ``voicehost call`` does).

Request: ``Content-Type: application/json``, at most :data:`MAX_DIAL_BODY_BYTES` (16 KiB)::

    {"to": "+15550001111", "from": "+15550002222", "mode": "conversation" | "notify",
     "message": "Your table is ready", "machine_detection": false}

``to`` is required (E.164, ``sip:`` or ``client:``); ``from`` defaults to
``[twilio] from_number``; ``mode`` defaults to ``conversation``; ``message`` is required in
``notify`` mode and refused otherwise; ``machine_detection`` is a JSON boolean. Unknown keys
are refused, so a typo never silently places a different call.

=====  ==========================================================================================
201    ``{"call_sid", "status", "to", "from", "mode"}``: Twilio accepted the call
400    not JSON, not an object, a wrong or unknown field, a bad number, no caller ID, …;
       or Twilio refused the call (``{"error", "twilio_code"}``, e.g. 21211)
401    ``[records] api_token`` is set and the bearer token is missing or wrong
403    no ``api_token`` and the client is not on a loopback address
413    body over 16 KiB
415    ``Content-Type`` is not ``application/json`` (UTF-8)
429    Twilio is rate-limiting the account (``twilio_code`` set)
502    Twilio could not be reached, answered 5xx, or refused voicehost's own credentials or
       account (401/403/404: a configuration problem, not the client's)
503    Twilio's REST API is not configured (``[twilio] account_sid`` and ``auth_token``),
       or the server is draining
=====  ==========================================================================================

The access rule is the one of ``GET /api/calls`` (:mod:`voicehost.server.access`). URLs and
the default caller ID are read from the running server (``app[SERVER_KEY]``) at each request,
so a ``public_url`` set after start-up (``serve --port 0``) is the one handed to Twilio.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from aiohttp import web

from voicehost.server.access import api_refusal, json_error
from voicehost.server.dialer import DialRequest, dial_request, send_dial_request
from voicehost.server.protocol import sanitize_log_text
from voicehost.server.rest import TwilioRest, TwilioRestError
from voicehost.server.state import SERVER_KEY

log = logging.getLogger(__name__)

__all__ = [
    "DIAL_PATH",
    "DIAL_REST_KEY",
    "MAX_DIAL_BODY_BYTES",
    "DialBodyError",
    "add_dial_route",
    "handle_dial",
    "parse_dial_body",
    "twilio_error_status",
]

DIAL_PATH = "/api/calls"
MAX_DIAL_BODY_BYTES = 16 * 1024

#: ``app[DIAL_REST_KEY]``: the REST client the route places calls with (None: not configured).
DIAL_REST_KEY = web.AppKey("voicehost.dial_rest", TwilioRest)

_FIELDS = frozenset({"to", "from", "mode", "message", "machine_detection"})
_JSON_TYPE = "application/json"


class DialBodyError(ValueError):
    """The request body is not a valid dial request; ``status`` is the HTTP answer."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def add_dial_route(app: web.Application, *, rest: TwilioRest | None, api_token: str = "") -> None:
    """Add ``POST /api/calls`` to ``app`` (an app of :func:`voicehost.server.build_app`).

    Args:
        rest: the REST client calls are placed with (``TwilioRest.from_settings``); None:
            every request is answered 503. The app closes it on clean-up.
        api_token: the bearer token required (``[records] api_token``); ``""``: loopback
            clients only.
    """
    if rest is not None:
        app[DIAL_REST_KEY] = rest

    async def place(request: web.Request) -> web.StreamResponse:
        return await handle_dial(request, api_token)

    async def close_rest(app: web.Application) -> None:
        client = app.get(DIAL_REST_KEY)
        if client is not None:
            await client.aclose()

    app.router.add_post(DIAL_PATH, place)
    app.on_cleanup.append(close_rest)


async def handle_dial(request: web.Request, api_token: str) -> web.StreamResponse:
    """The ``POST /api/calls`` handler (see the module's table of answers)."""
    if denied := api_refusal(request, api_token, what="calls are placed"):
        return denied
    server = request.app[SERVER_KEY]
    if (request.content_length or 0) > MAX_DIAL_BODY_BYTES:
        return json_error(413, f"body over {MAX_DIAL_BODY_BYTES} bytes")
    try:
        fields = parse_dial_body(request.content_type, request.charset, await request.read())
        dial = dial_request(
            server.settings,
            server.twilio,
            to=fields["to"],
            from_=fields.get("from"),
            mode=fields.get("mode", "conversation"),
            message=fields.get("message"),
            machine_detection=fields.get("machine_detection", False),
        )
    except DialBodyError as exc:
        return json_error(exc.status, str(exc))
    except ValueError as exc:
        return json_error(400, str(exc))
    rest = request.app.get(DIAL_REST_KEY)
    if rest is None:
        return json_error(
            503,
            "Twilio's REST API is not configured: set [twilio] account_sid and auth_token "
            "(or TWILIO_ACCOUNT_SID / TWILIO_AUTH_TOKEN)",
        )
    if server.draining:
        return json_error(503, "the server is shutting down")
    try:
        call = await send_dial_request(rest, dial)
    except TwilioRestError as exc:
        log.warning("POST %s: %s", DIAL_PATH, exc)
        return json_error(twilio_error_status(exc), str(exc), twilio_code=exc.code)
    log.info(
        "placed %s call %s to %s (%s)",
        dial.mode,
        call.sid,
        sanitize_log_text(dial.to, 64),
        call.status or "?",
    )
    return web.json_response(_answer(call.sid, call.status, dial), status=201)


def _answer(call_sid: str, status: str, dial: DialRequest) -> dict[str, Any]:
    return {
        "call_sid": call_sid,
        "status": status,
        "to": dial.to,
        "from": dial.from_,
        "mode": dial.mode,
    }


def twilio_error_status(exc: TwilioRestError) -> int:
    """The HTTP status that reports ``exc`` to the API's client: Twilio's 400 (the call
    itself is wrong) stays 400, 429 stays 429; everything else is 502 (Twilio down or
    unreachable, or refusing voicehost's own credentials: not the client's fault)."""
    if exc.status in (400, 429):
        return exc.status
    return 502


def parse_dial_body(content_type: str, charset: Any, body: bytes) -> dict[str, Any]:
    """The fields of a dial request body, type-checked (numbers are checked later by
    :func:`voicehost.server.dialer.dial_request`).

    Returns:
        ``{"to": str, "from"?: str | None, "mode"?: str, "message"?: str | None,
        "machine_detection"?: bool}``.

    Raises:
        DialBodyError: 415 (not JSON / not UTF-8), 413 (over 16 KiB), 400 (anything else).
    """
    if content_type != _JSON_TYPE or (
        charset is not None and (not isinstance(charset, str) or charset.lower() != "utf-8")
    ):
        raise DialBodyError(f"Content-Type must be {_JSON_TYPE}", 415)
    if len(body) > MAX_DIAL_BODY_BYTES:
        raise DialBodyError(f"body over {MAX_DIAL_BODY_BYTES} bytes", 413)
    try:
        data = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise DialBodyError("body is not valid UTF-8 JSON") from None
    if not isinstance(data, dict):
        raise DialBodyError('body must be a JSON object such as {"to": "+15550001111"}')
    unknown = sorted(str(key)[:40] for key in data if key not in _FIELDS)
    if unknown:
        raise DialBodyError(f"unknown field(s): {', '.join(map(repr, unknown[:5]))}")
    if "to" not in data:
        raise DialBodyError('"to" is required')
    if not isinstance(data["to"], str):
        raise DialBodyError('"to" must be a string')
    for key in ("from", "mode", "message"):
        value = data.get(key)
        if value is not None and not isinstance(value, str):
            raise DialBodyError(f'"{key}" must be a string')
    if "mode" in data and data["mode"] is None:
        del data["mode"]
    detect = data.get("machine_detection", False)
    if not isinstance(detect, bool):
        raise DialBodyError('"machine_detection" must be true or false')
    return data
